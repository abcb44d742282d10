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

    /// <summary>Deployments whose start was published and whose end was not.</summary>
    private readonly HashSet<string> _announced = new(StringComparer.Ordinal);

    private readonly HashSet<string> _endedEarly = new(StringComparer.Ordinal);

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
    }

    private readonly record struct Seen(TaskState State, bool? Healthy);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _registry.AppPut -= OnAppPut;
        _registry.DeploymentStarted -= OnDeploymentStarted;
        _registry.DeploymentEnded -= OnDeploymentEnded;
        _cluster.TaskChanged -= OnTaskChanged;
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
            if (_endedEarly.Remove(d.Id))
            {
                return; // already announced, with its end
            }

            _announced.Add(d.Id);
            PublishStart(d);
        }
    }

    internal void OnDeploymentEnded(Deployment d, bool finished)
    {
        lock (_gate)
        {
            if (!_announced.Remove(d.Id))
            {
                // Its start is not published yet: the controller finished it (or a forced change replaced it)
                // between the registry's change and its start hook, or it was restored from the store.
                // Announce the start first so every stream sees a deployment begin before it ends.
                if (_endedEarly.Count >= MaxEndedEarly)
                {
                    _endedEarly.Clear();
                }

                _endedEarly.Add(d.Id);
                PublishStart(d);
            }

            var last = EventFactory.StepActions(d).Length - 1;
            if (finished)
            {
                Publish(EventTypes.DeploymentStepSuccess, (d, last), static (at, s) => EventFactory.DeploymentStepSuccess(at, s.d, s.last));
                Publish(EventTypes.DeploymentSuccess, d, EventFactory.DeploymentSuccess);
                if (d.Action == DeploymentActions.Stop)
                {
                    Publish(EventTypes.AppTerminated, d.AppId, EventFactory.AppTerminated);
                }
            }
            else
            {
                Publish(EventTypes.DeploymentStepFailure, (d, last), static (at, s) => EventFactory.DeploymentStepFailure(at, s.d, s.last));
                Publish(EventTypes.DeploymentFailed, d, EventFactory.DeploymentFailed);
            }
        }
    }

    /// <summary>
    /// A deployment's start as Marathon shows it: <c>deployment_info</c> per step begun; a new app's first
    /// step (StartApplication: the app exists, with no instances yet) succeeds at once. Then the group change.
    /// </summary>
    private void PublishStart(Deployment d)
    {
        var steps = EventFactory.StepActions(d).Length;
        for (var i = 0; i < steps; i++)
        {
            Publish(EventTypes.DeploymentInfo, (d, i), static (at, s) => EventFactory.DeploymentInfo(at, s.d, s.i));
            if (i < steps - 1)
            {
                Publish(EventTypes.DeploymentStepSuccess, (d, i), static (at, s) => EventFactory.DeploymentStepSuccess(at, s.d, s.i));
            }
        }

        Publish(EventTypes.GroupChangeSuccess, d, EventFactory.GroupChangeSuccess);
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
                    EventFactory.FailedHealthCheck(at, task, _registry.Get(task.AppId!)?.Version(task.AppVersion)));
            }

            if (killedForHealth)
            {
                Publish(EventTypes.UnhealthyInstanceKill, t, EventFactory.UnhealthyInstanceKill);
            }
        }
    }
}
