using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.Services;
using Drover.Master.State;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;

namespace Drover.Master.Events;

/// <summary>
/// Turns what happens in the master into Marathon's events on the <see cref="EventBus"/>: app changes
/// and deployments from the <see cref="ServiceRegistry"/>, task status and health from the
/// <see cref="ClusterState"/> (tasks of apps only, as Marathon reports only its own tasks).
/// <para>
/// Handlers run on the thread that raised the hook and only do bookkeeping and a non-blocking publish;
/// one lock keeps each task's and each deployment's events in order. An event type no subscriber wants
/// is not even built.
/// </para>
/// </summary>
internal sealed class EventPublisher : IHostedService, IDisposable
{
    /// <summary>Deployments that ended before their start was raised; bounded (see <see cref="OnDeploymentEnded"/>).</summary>
    private const int MaxEndedEarly = 1024;

    /// <summary>Recently ended tasks remembered, so a late view of one (hooks run outside the cluster's lock) is ignored.</summary>
    private const int MaxRecentlyEnded = 4096;

    private readonly EventBus _bus;
    private readonly ServiceRegistry _registry;
    private readonly ClusterState _cluster;
    private readonly TimeProvider _time;
    private readonly IHttpContextAccessor? _http;
    private readonly Lock _gate = new();

    /// <summary>The last state and health published per live app task; removed when the task ends.</summary>
    private readonly Dictionary<string, Seen> _tasks = new(StringComparer.Ordinal);

    private readonly HashSet<string> _ended = new(StringComparer.Ordinal);
    private readonly Queue<string> _endedOrder = new();

    /// <summary>Deployment plans whose start was published and whose end was not, by plan id.</summary>
    private readonly Dictionary<string, PlanState> _plans = new(StringComparer.Ordinal);

    /// <summary>Apps' deployments (plan id, app id) that ended before their start hook ran.</summary>
    private readonly HashSet<(string Plan, string App)> _endedEarly = [];

    public EventPublisher(EventBus bus, ServiceRegistry registry, ClusterState cluster, TimeProvider time, IHttpContextAccessor? http = null)
    {
        _bus = bus;
        _registry = registry;
        _cluster = cluster;
        _time = time;
        _http = http;
        registry.AppPut += OnAppPut;
        registry.DeploymentStarted += OnDeploymentStarted;
        registry.DeploymentEnded += OnDeploymentEnded;
        cluster.TaskChanged += OnTaskChanged;
        cluster.UnknownTaskKilled += OnUnknownTaskKilled;
    }

    private readonly record struct Seen(TaskState State, bool? Healthy);

    /// <summary>
    /// One plan: the deployments of its apps (one app, or the apps of a group change, sharing the plan's
    /// id), those still running, and whether its failure was published.
    /// </summary>
    private sealed class PlanState
    {
        public ImmutableArray<Deployment> Apps { get; set; } = [];

        public HashSet<string> Running { get; } = new(StringComparer.Ordinal);

        public bool FailureReported { get; set; }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _registry.AppPut -= OnAppPut;
        _registry.DeploymentStarted -= OnDeploymentStarted;
        _registry.DeploymentEnded -= OnDeploymentEnded;
        _cluster.TaskChanged -= OnTaskChanged;
        _cluster.UnknownTaskKilled -= OnUnknownTaskKilled;
    }

    internal void OnUnknownTaskKilled(string agentId, string taskId)
    {
        lock (_gate)
        {
            Publish(EventTypes.UnknownInstanceTerminated, taskId, EventFactory.UnknownInstanceTerminated);
        }
    }

    /// <summary>Publishes an event if some subscriber wants its type; <paramref name="create"/> runs only then.</summary>
    private void Publish<TState>(string eventType, TState state, Func<DateTimeOffset, TState, MarathonEvent> create)
    {
        if (_bus.Wants(eventType))
        {
            _bus.Publish(create(_time.GetUtcNow(), state));
        }
    }

    // ------------------------------------------------------------------ registry

    internal void OnAppPut(AppDefinition app)
    {
        var request = _http?.HttpContext?.Request;
        var clientIp = request?.HttpContext.Connection.RemoteIpAddress?.ToString() ?? "";
        var uri = request is null ? "" : (request.PathBase + request.Path).ToString();
        lock (_gate)
        {
            Publish(EventTypes.ApiPost, (clientIp, uri, app), static (at, s) => EventFactory.ApiPost(at, s.clientIp, s.uri, s.app));
        }
    }

    internal void OnDeploymentStarted(Deployment d)
    {
        lock (_gate)
        {
            if (!_endedEarly.Remove((d.Id, d.AppId)))
            {
                AnnounceLocked(d);
            }
        }
    }

    /// <summary>
    /// An app's deployment ended. Its last step succeeded or failed; the plan succeeds once all its apps'
    /// deployments finished, and fails (once) as soon as one was cancelled or superseded.
    /// </summary>
    internal void OnDeploymentEnded(Deployment d, bool finished)
    {
        lock (_gate)
        {
            if (!_plans.TryGetValue(d.Id, out var plan) || !plan.Running.Contains(d.AppId))
            {
                // Its start is not published yet: the controller finished it (or a forced change replaced it)
                // between the registry's change and its start hook, or it was restored from the store.
                // Announce the start first so every stream sees a deployment begin before it ends.
                if (_endedEarly.Count >= MaxEndedEarly)
                {
                    _endedEarly.Clear();
                }

                _endedEarly.Add((d.Id, d.AppId));
                plan = AnnounceLocked(d);
            }

            plan.Running.Remove(d.AppId);
            var apps = plan.Apps;
            var last = EventFactory.StepActions(d).Length - 1;
            if (finished)
            {
                if (d.Action == DeploymentActions.Stop)
                {
                    Publish(EventTypes.AppTerminated, d.AppId, EventFactory.AppTerminated);
                }

                Publish(EventTypes.DeploymentStepSuccess, (apps, d, last), static (at, s) => EventFactory.DeploymentStepSuccess(at, s.apps, s.d, s.last));
            }
            else
            {
                Publish(EventTypes.DeploymentStepFailure, (apps, d, last), static (at, s) => EventFactory.DeploymentStepFailure(at, s.apps, s.d, s.last));
                if (!plan.FailureReported)
                {
                    plan.FailureReported = true;
                    Publish(EventTypes.DeploymentFailed, apps, EventFactory.DeploymentFailed);
                }
            }

            if (plan.Running.Count == 0)
            {
                _plans.Remove(d.Id);
                if (!plan.FailureReported)
                {
                    Publish(EventTypes.DeploymentSuccess, apps, EventFactory.DeploymentSuccess);
                }
            }
        }
    }

    /// <summary>
    /// An app's deployment starts as Marathon shows a step: <c>deployment_info</c> per step begun; a new
    /// app's first step (StartApplication: the app exists, with no instances yet) succeeds at once. The
    /// plan's first app also publishes the group change.
    /// </summary>
    private PlanState AnnounceLocked(Deployment d)
    {
        var isNew = !_plans.TryGetValue(d.Id, out var plan);
        if (plan is null)
        {
            plan = new PlanState();
            _plans[d.Id] = plan;
        }

        plan.Apps = [.. plan.Apps.Where(a => a.AppId != d.AppId), d];
        plan.Running.Add(d.AppId);
        var apps = plan.Apps;
        var steps = EventFactory.StepActions(d).Length;
        for (var i = 0; i < steps; i++)
        {
            Publish(EventTypes.DeploymentInfo, (apps, d, i), static (at, s) => EventFactory.DeploymentInfo(at, s.apps, s.d, s.i));
            if (i < steps - 1)
            {
                Publish(EventTypes.DeploymentStepSuccess, (apps, d, i), static (at, s) => EventFactory.DeploymentStepSuccess(at, s.apps, s.d, s.i));
            }
        }

        if (isNew)
        {
            Publish(EventTypes.GroupChangeSuccess, d, EventFactory.GroupChangeSuccess);
        }

        return plan;
    }

    // ------------------------------------------------------------------ tasks

    internal void OnTaskChanged(TaskView t)
    {
        if (t.AppId is null)
        {
            return; // not an app's task: Marathon reports only its own tasks
        }

        lock (_gate)
        {
            if (_ended.Contains(t.Id))
            {
                return; // a late, out-of-order view of a task already reported ended
            }

            var known = _tasks.TryGetValue(t.Id, out var seen);

            var stateChanged = !known || seen.State != t.State;
            var healthChanged = t.Healthy is { } h && (!known || seen.Healthy != h);

            if (t.State.IsTerminal())
            {
                _tasks.Remove(t.Id);
                _ended.Add(t.Id);
                _endedOrder.Enqueue(t.Id);
                if (_endedOrder.Count > MaxRecentlyEnded)
                {
                    _ended.Remove(_endedOrder.Dequeue());
                }
            }
            else
            {
                _tasks[t.Id] = new Seen(t.State, t.Healthy ?? seen.Healthy);
            }

            if (stateChanged && t.State != TaskState.Pending)
            {
                Publish(EventTypes.StatusUpdate, t, EventFactory.StatusUpdate);
                Publish(EventTypes.InstanceChanged, t, EventFactory.InstanceChanged);
            }

            if (healthChanged && !t.State.IsTerminal())
            {
                var alive = t.Healthy!.Value;
                Publish(EventTypes.HealthStatusChanged, (t, alive), static (at, s) => EventFactory.HealthStatusChanged(at, s.t, s.alive));
                Publish(EventTypes.InstanceHealthChanged, (t, alive), static (at, s) => EventFactory.InstanceHealthChanged(at, s.t, s.alive));
            }

            var killedForHealth = EventFactory.KilledForHealth(t);
            if ((healthChanged && t.Healthy == false && !t.State.IsTerminal()) || (killedForHealth && seen.Healthy != false))
            {
                Publish(EventTypes.FailedHealthCheck, t, (at, task) =>
                    EventFactory.FailedHealthCheck(at, task, _registry.Get(task.AppId!) is { } app ? app.Version(task.AppVersion) ?? app.Current : null));
            }

            if (killedForHealth)
            {
                Publish(EventTypes.UnhealthyInstanceKill, t, EventFactory.UnhealthyInstanceKill);
            }
        }
    }
}
