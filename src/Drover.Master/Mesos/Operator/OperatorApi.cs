using Drover.Master.Security;
using Drover.Core.Security;
using Drover.Core.Mesos;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Api;
using Drover.Master.Http;
using Drover.Master.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace Drover.Master.Mesos.Operator;

/// <summary>
/// The operator API's event fan-out. Subscribers get encoded events on their own bounded queue (a subscriber that
/// stops reading is disconnected, never waited for). Hooks: framework changes and agent removals (seen by the
/// allocator pass) from <see cref="FrameworkManager"/>, agent registrations and task changes from <see cref="ClusterState"/>. Thread-safe.
/// </summary>
internal sealed class OperatorEvents
{
    private readonly Lock _lock = new();
    private readonly List<SchedulerStream> _subscribers = [];
    private readonly ClusterState _state;

    public OperatorEvents(ClusterState state, FrameworkManager frameworks)
    {
        _state = state;
        frameworks.FrameworkChanged += (type, fw, info) =>
        {
            if (!HasSubscribers)
            {
                return;
            }

            Publish(type == "FRAMEWORK_REMOVED"
                ? new OEvent { Type = type, FrameworkRemoved = new OFrameworkRemoved(info) }
                : type == "FRAMEWORK_ADDED"
                    ? new OEvent { Type = type, FrameworkAdded = new OFrameworkEvent(frameworks.ToOperatorLocked(fw!)) }
                    : new OEvent { Type = type, FrameworkUpdated = new OFrameworkEvent(frameworks.ToOperatorLocked(fw!)) });
        };
        frameworks.AgentRemoved += agent =>
        {
            if (HasSubscribers)
            {
                Publish(new OEvent { Type = "AGENT_REMOVED", AgentRemoved = new OAgentRemoved(new MId(agent.Id)) });
            }
        };
        state.AgentAdded += agentId =>
        {
            if (HasSubscribers && _state.GetAgent(agentId) is { } view)
            {
                Publish(new OEvent { Type = "AGENT_ADDED", AgentAdded = new OAgentAdded(OperatorShapes.Agent(view, Resources.Zero)) });
            }
        };
        state.TaskChanged += view =>
        {
            if (!HasSubscribers || view.Statuses.IsDefaultOrEmpty)
            {
                return;
            }

            var task = OperatorShapes.Task(view);
            Publish(view.State == TaskState.Staging
                ? new OEvent { Type = "TASK_ADDED", TaskAdded = new OTaskAdded(task) }
                : new OEvent { Type = "TASK_UPDATED", TaskUpdated = new OTaskUpdated(task.FrameworkId, task.Statuses[^1], task.State) });
        };
    }

    private bool HasSubscribers
    {
        get
        {
            lock (_lock)
            {
                return _subscribers.Count > 0;
            }
        }
    }

    public SchedulerStream Subscribe()
    {
        var s = new SchedulerStream();
        lock (_lock)
        {
            _subscribers.Add(s);
        }

        return s;
    }

    public void Unsubscribe(SchedulerStream s)
    {
        lock (_lock)
        {
            _subscribers.Remove(s);
        }

        s.Close();
    }

    public static byte[] Encode(OEvent e) => JsonSerializer.SerializeToUtf8Bytes(e, MesosV1JsonContext.Default.OEvent);

    private void Publish(OEvent e)
    {
        var encoded = Encode(e);
        lock (_lock)
        {
            foreach (var s in _subscribers)
            {
                s.Send(encoded);
            }
        }
    }
}

/// <summary>
/// <c>POST /api/v1</c>: the Mesos v1 operator API, JSON only: GET_HEALTH, GET_VERSION, GET_STATE, GET_AGENTS,
/// GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS, GET_ROLES, and SUBSCRIBE (a RecordIO stream: SUBSCRIBED with the state, then
/// TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED, FRAMEWORK_ADDED/UPDATED/REMOVED and HEARTBEAT).
/// Built-in tasks appear under the built-in framework <see cref="MesosStateEndpoints.BuiltInFrameworkId"/>.
/// </summary>
internal static class OperatorApi
{
    private static readonly byte[] Heartbeat = OperatorEvents.Encode(new OEvent { Type = "HEARTBEAT" });

    public static void Map(IEndpointRouteBuilder app)
    {
        // Attach the event hooks now, before the first request can change anything.
        _ = app.ServiceProvider.GetService(typeof(OperatorEvents));
        app.MapPost("/api/v1", HandleAsync).Access(RouteAccess.Permission(Rids.MesosOps, PermissionAction.Read));
    }

    private static async Task HandleAsync(HttpContext http, ClusterState state, FrameworkManager frameworks, OperatorEvents events, MasterOptions options, IHostApplicationLifetime lifetime)
    {
        if (SchedulerEndpoint.ContentTypeError(http.Request) is { } refused)
        {
            await refused.ExecuteAsync(http);
            return;
        }

        var (call, error) = await ApiResults.ReadBody(http.Request, MesosV1JsonContext.Default.OCall, http.RequestAborted);
        if (error is not null)
        {
            await error.ExecuteAsync(http);
            return;
        }

        if (call!.Type == "SUBSCRIBE")
        {
            await SubscribeAsync(http, state, frameworks, events, options, lifetime);
            return;
        }

        OResponse? response = call.Type switch
        {
            "GET_HEALTH" => new OResponse { Type = "GET_HEALTH", GetHealth = new OGetHealth(true) },
            "GET_VERSION" => new OResponse { Type = "GET_VERSION", GetVersion = new OGetVersion(new OVersionInfo(MasterHost.Version, "drover")) },
            "GET_STATE" => new OResponse { Type = "GET_STATE", GetState = State(state, frameworks) },
            "GET_AGENTS" => new OResponse { Type = "GET_AGENTS", GetAgents = Agents(state, frameworks.OperatorView(Usage(state)).OfferedByAgent) },
            "GET_FRAMEWORKS" => new OResponse { Type = "GET_FRAMEWORKS", GetFrameworks = Frameworks(state, frameworks) },
            "GET_TASKS" => new OResponse { Type = "GET_TASKS", GetTasks = Tasks(state) },
            "GET_EXECUTORS" => new OResponse { Type = "GET_EXECUTORS", GetExecutors = Executors(state) },
            "GET_ROLES" => new OResponse { Type = "GET_ROLES", GetRoles = Roles(state, frameworks, options) },
            _ => null,
        };
        if (response is null)
        {
            await ApiResults.Error(StatusCodes.Status400BadRequest, ErrorCodes.ValidationFailed,
                $"type: '{call.Type}' is not an operator call Drover supports (GET_HEALTH, GET_VERSION, GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS, GET_ROLES, SUBSCRIBE)").ExecuteAsync(http);
            return;
        }

        await Results.Json(response, MesosV1JsonContext.Default.OResponse).ExecuteAsync(http);
    }

    private static async Task SubscribeAsync(HttpContext http, ClusterState state, FrameworkManager frameworks, OperatorEvents events, MasterOptions options, IHostApplicationLifetime lifetime)
    {
        // The stream lasts as long as the caller's login (CredentialLease): expired, changed or removed ends it.
        using var lease = CredentialLease.For(http);
        if (!lease.IsCurrent())
        {
            await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, lease.Reason);
            return;
        }

        // Subscribe before taking the state, so no change falls between them (one may show twice).
        var stream = events.Subscribe();
        try
        {
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json";
            http.Response.Headers.CacheControl = "no-cache";
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping, lease.Expired);
            SchedulerEndpoint.WriteRecord(http.Response.BodyWriter, OperatorEvents.Encode(new OEvent
            {
                Type = "SUBSCRIBED",
                Subscribed = new OSubscribed(State(state, frameworks), options.SchedulerHeartbeatInterval.TotalSeconds),
            }));
            await http.Response.BodyWriter.FlushAsync(stop.Token);
            await SchedulerEndpoint.WriteStreamAsync(http.Response.BodyWriter, stream.Reader, Heartbeat, options.SchedulerHeartbeatInterval, stop.Token, lease.IsCurrent);
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        finally
        {
            events.Unsubscribe(stream);
        }
    }

    private static System.Collections.Immutable.ImmutableDictionary<string, Resources> Usage(ClusterState state) => state.OfferView(0).FrameworkUsage;

    private static OGetState State(ClusterState state, FrameworkManager frameworks) => new(
        Tasks(state), Executors(state), Frameworks(state, frameworks), Agents(state, frameworks.OperatorView(Usage(state)).OfferedByAgent));

    private static OGetAgents Agents(ClusterState state, Dictionary<string, Resources> offered) => new(
        [.. state.ListAgents().Where(a => a.Status != "removed").Select(a => OperatorShapes.Agent(a, offered.GetValueOrDefault(a.Id, Resources.Zero)))],
        []);

    private static OGetFrameworks Frameworks(ClusterState state, FrameworkManager frameworks)
    {
        var usage = Usage(state);
        var (live, completed, _, _) = frameworks.OperatorView(usage);
        var (_, active, _) = state.StateDump();
        var builtInUsage = active.Where(t => t.FrameworkId is null && t.State.HoldsResources())
            .Aggregate(Resources.Zero, (acc, t) => acc.Add(Resources.Of(t.Cpus, t.Mem, t.Disk, t.Gpus)));
        var builtIn = new OFramework
        {
            FrameworkInfo = new MFrameworkInfo { Id = new MId(MesosStateEndpoints.BuiltInFrameworkId), Name = "drover", User = "root", Role = "*" },
            Active = true,
            Connected = true,
            RegisteredTime = OperatorShapes.Time(state.StartedAt),
            AllocatedResources = MesosResources.ToMesos(builtInUsage, null),
        };
        return new OGetFrameworks([builtIn, .. live], completed, []);
    }

    private static OGetTasks Tasks(ClusterState state)
    {
        var (_, active, completed) = state.StateDump();
        return new OGetTasks(
            [.. active.Where(t => t.State == TaskState.Pending).Select(OperatorShapes.Task)],
            [.. active.Where(t => t.State is not TaskState.Pending and not TaskState.Unreachable).Select(OperatorShapes.Task)],
            [.. active.Where(t => t.State == TaskState.Unreachable).Select(OperatorShapes.Task)],
            [.. completed.Select(OperatorShapes.Task)],
            []);
    }

    private static OGetExecutors Executors(ClusterState state) => new([.. state.ListExecutors().Select(OperatorShapes.Executor)], []);

    private static OGetRoles Roles(ClusterState state, FrameworkManager frameworks, MasterOptions options)
    {
        var usage = Usage(state);
        var (live, _, _, roles) = frameworks.OperatorView(usage);
        var names = roles.SelectMany(r => r.Roles).Append("*").Concat(options.RoleWeights.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        return new OGetRoles([.. names.Select(name =>
        {
            var members = roles.Where(r => r.Roles.Contains(name)).Select(r => r.Id).ToList();
            var allocated = members.Aggregate(Resources.Zero, (acc, id) => acc.Add(usage.GetValueOrDefault(id, Resources.Zero)));
            var offered = live.Where(f => members.Contains(f.FrameworkInfo.Id?.Value ?? ""))
                .SelectMany(f => f.Offers ?? []).Aggregate(Resources.Zero, (acc, o) => MesosResources.TryParse(o.Resources, out var r, out _) ? acc.Add(r) : acc);
            return new ORole
            {
                Name = name,
                Weight = options.RoleWeights.TryGetValue(name, out var w) ? w : 1.0,
                Frameworks = [.. members.Select(id => new MId(id))],
                Resources = MesosResources.ToMesos(allocated.Add(offered), null),
                Allocated = MesosResources.ToMesos(allocated, null),
                Offered = MesosResources.ToMesos(offered, null),
            };
        })]);
    }
}
