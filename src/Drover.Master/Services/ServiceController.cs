using System.Collections.Concurrent;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.State;
using Drover.Master.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Services;

/// <summary>
/// Makes every app's instances match the registry: launches missing instances (subject to the app's
/// launch backoff), kills surplus ones, replaces instances that end, and drives deployments, a rolling
/// update being a target recomputed from the instances' health on every pass (<see cref="RollingUpdate"/>).
/// <code>
///  registry (desired) ──┐
///                       ├─▶ Reconcile(app) ─▶ ClusterState.Submit / Kill ─▶ placement ─▶ agents
///  cluster (observed) ──┘          ▲                                                      │
///                                  └──── TaskChanged (status updates, health) ◀───────────┘
/// </code>
/// Runs on one loop; passes are triggered by changes and at least every 500 ms.
/// </summary>
internal sealed partial class ServiceController : PassLoop
{
    private readonly ServiceRegistry _registry;
    private readonly ClusterState _cluster;
    private readonly TimeProvider _time;
    private readonly ILogger<ServiceController> _logger;

    /// <summary>Instances this controller asked to kill: their end is not a failure.</summary>
    private readonly ConcurrentDictionary<string, byte> _killing = new(StringComparer.Ordinal);

    public ServiceController(ServiceRegistry registry, ClusterState cluster, TimeProvider time, ILogger<ServiceController> logger)
        : base(time)
    {
        _registry = registry;
        _cluster = cluster;
        _time = time;
        _logger = logger;
        registry.Changed += OnRegistryChanged;
        cluster.TaskChanged += OnTaskChanged;
    }

    /// <summary>Apps whose instances changed since their last reconciliation (a pass woken by task changes visits only these).</summary>
    private readonly ConcurrentDictionary<string, byte> _dirtyApps = new(StringComparer.Ordinal);

    /// <summary>Set by a registry change: the next pass visits every app.</summary>
    private volatile bool _fullPassDue = true;

    private DateTimeOffset _lastFullPass = DateTimeOffset.MinValue;

    private void OnRegistryChanged()
    {
        _fullPassDue = true;
        Wake();
    }

    /// <summary>Raised after each pass that finished a deployment (for events and waiting clients).</summary>
    public event Action<Deployment>? DeploymentFinished;


    private void OnTaskChanged(TaskView t)
    {
        if (t.AppId is not { } appId)
        {
            return;
        }

        if (t.State.IsTerminal())
        {
            // Not failures (no launch backoff): instances this controller or a user killed, and instances
            // lost with their agent (removed, or gone when it came back): the app did nothing wrong.
            var lostWithAgent = t.State == TaskState.Gone || (t.Statuses.Length >= 2 && t.Statuses[^2].State == TaskState.Unreachable);
            if (!_killing.TryRemove(t.Id, out _) && !t.Statuses.Any(s => s.State == TaskState.Killing) && !lostWithAgent)
            {
                _registry.RecordFailure(appId, new LastTaskFailure(appId, t.Id, t.State.WireName(), t.Message ?? "", t.Hostname ?? "", t.AppVersion ?? "", _time.GetUtcNow()));
            }
        }
        else if (IsHealthy(t))
        {
            _registry.RecordHealthy(appId);
        }

        _dirtyApps.TryAdd(appId, 0);
        Wake();
    }

    protected override TimeSpan Period => TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Every app when the registry changed or a period has gone by since the last full pass (time-based
    /// work: launch backoff, unreachable instances); otherwise only the apps whose instances changed. At a
    /// thousand apps of a thousand instances, a pass per task change over every app would be the
    /// master's largest cost.
    /// </summary>
    protected override void Pass()
    {
        var now = _time.GetUtcNow();
        if (_fullPassDue || now - _lastFullPass >= Period)
        {
            RunPass();
            return;
        }

        var draining = _cluster.DrainingAgentIds();
        foreach (var appId in _dirtyApps.Keys)
        {
            _dirtyApps.TryRemove(appId, out _);
            if (_registry.Get(appId) is { } app)
            {
                Reconcile(app, draining);
            }
        }
    }

    protected override void OnPassFailed(Exception e) => LogPassFailed(e);


    /// <summary>One reconciliation of every app. Internal for tests.</summary>
    internal void RunPass()
    {
        _fullPassDue = false;
        _lastFullPass = _time.GetUtcNow();
        _dirtyApps.Clear();
        var draining = _cluster.DrainingAgentIds();
        foreach (var app in _registry.List())
        {
            Reconcile(app, draining);
        }
    }

    /// <summary>An instance counts as healthy when running and, if it has a health check, passing it.</summary>
    public static bool IsHealthy(TaskView t) => t.State == TaskState.Running && (!t.HasHealthCheck || t.Healthy == true);

    /// <summary>
    /// An instance of a deployment's new version counts towards its progress (old instances may go, the
    /// deployment may finish) when healthy and, if it has readiness checks, reported ready (Marathon).
    /// </summary>
    public static bool IsReady(TaskView t) => IsHealthy(t) && (!t.HasReadinessCheck || t.Ready == true);

    private void Reconcile(AppSnapshot app, HashSet<string> draining)
    {
        var appId = app.Current.Id!;
        var dep = app.Deployment;

        // The common case, checked without a view of every instance (a pass covers every app, and
        // at a million instances the views would dominate): exactly the wanted number of alive,
        // current instances, none on a draining agent. Nothing to launch or kill; a deployment
        // finishes once all are ready. Anything else takes the full reconciliation below.
        if (dep?.Action != DeploymentActions.Stop && (dep is null || dep.DependsOn.IsEmpty))
        {
            var wanted = app.Current.Instances ?? AppDefinition.DefaultInstances;
            var summary = _cluster.SummarizeGroup(appId, ServiceRegistry.ConfigVersion(app.Current), draining);
            if (summary.Active == wanted && summary.Settled == wanted)
            {
                if (dep is not null && summary.Ready == wanted)
                {
                    Finish(dep);
                }

                return;
            }
        }

        var all = _cluster.ActiveTasksOfGroup(appId);

        if (dep?.Action == DeploymentActions.Stop)
        {
            Kill(all.Where(t => !t.KillRequested));

            // An instance on an unreachable agent cannot confirm its end; its kill is recorded and
            // delivered if the agent comes back, so it does not hold the deletion up.
            if (_cluster.ActiveTasksOfGroup(appId).All(t => t.State == TaskState.Unreachable && t.KillRequested))
            {
                Finish(dep);
            }

            return;
        }

        // In a group plan, an app waits until the apps it depends on have finished deploying.
        if (dep is not null && !dep.DependsOn.IsEmpty && _registry.AnyDeploying(dep.Id, dep.DependsOn))
        {
            return;
        }

        var current = app.Current;
        var now = _time.GetUtcNow();
        var unreachable = current.UnreachableStrategy ?? UnreachableStrategy.Default;

        // Unreachable past expungeAfterSeconds: expunged. The kill is recorded now and carried out if
        // the agent comes back (the instance then goes straight to KILLING, never RUNNING).
        Kill(all.Where(t => !t.KillRequested && UnreachableFor(t, now) is { } away && !unreachable.IsDisabled
            && away >= TimeSpan.FromSeconds(unreachable.ExpungeAfterSeconds ?? UnreachableStrategy.DefaultExpungeAfterSeconds)));

        // Live instances: not being killed, and not unreachable past inactiveAfterSeconds (an inactive
        // instance no longer counts, so a replacement is launched; when it comes back it is a surplus
        // instance, and Choose prefers it).
        var alive = all
            .Where(t => t.State != TaskState.Killing && !t.KillRequested && !_killing.ContainsKey(t.Id) && !Inactive(t, unreachable, now))
            .ToList();

        // Killed instances that have not ended yet, on reachable agents: their processes still run (a
        // service may take its whole kill grace to drain), so each keeps its place under the app's
        // ceiling until its end is reported, as Marathon counts an instance being replaced until it is
        // terminal. One on an unreachable agent is not counted (it cannot report its end; the app's
        // unreachableStrategy decides), so a kill that never completes because its agent went away
        // does not hold launches back: the agent's tasks turn TASK_UNREACHABLE when it stops heartbeating.
        var dying = all.Count(t => t.State != TaskState.Unreachable && (t.State == TaskState.Killing || t.KillRequested || _killing.ContainsKey(t.Id)));

        var n = current.Instances ?? AppDefinition.DefaultInstances;
        var config = ServiceRegistry.ConfigVersion(current);
        var strategy = current.UpgradeStrategy ?? UpgradeStrategy.Default;
        bool Leaving(TaskView t) => t.AgentId is { } agent && draining.Contains(agent);
        var freshAll = alive.Where(t => t.AppVersion == config).ToList();
        var oldVersion = alive.Where(t => t.AppVersion != config).ToList();

        if (oldVersion.Count > 0 && dep is not null)
        {
            // Rolling update. Instances on draining agents go with the old ones: both are replaced by
            // fresh instances elsewhere within the app's upgradeStrategy.
            var fresh = freshAll.Where(t => !Leaving(t)).ToList();
            var old = oldVersion.Concat(freshAll.Where(Leaving)).ToList();
            var target = RollingUpdate.Next(
                new RollingState(n, old.Count, old.Count(IsHealthy), fresh.Count(IsReady), fresh.Count, dying),
                strategy.MinimumHealthCapacity ?? 1m,
                strategy.MaximumOverCapacity ?? 1m);
            Kill(Choose(old, old.Count - target.Old, current, Leaving));
            Kill(Choose(fresh, fresh.Count - target.New, current, Leaving));
            Launch(app, current, target.Launch);
            return;
        }

        // No rollout in progress. Instances on draining agents are moved like a rolling update whose
        // floor is the whole instance count: replacements start elsewhere at once, and a leaving
        // instance is killed only once enough healthy instances run elsewhere (without room for the
        // replacements, the leaving ones stay until the drain deadline).
        var leaving = alive.Where(Leaving).ToList();
        var staying = alive.Where(t => !Leaving(t)).ToList();
        var freshStaying = staying.Where(t => t.AppVersion == config).ToList();
        var oldStaying = staying.Where(t => t.AppVersion != config).ToList();
        var move = RollingUpdate.Next(
            new RollingState(n, leaving.Count, leaving.Count(IsHealthy), oldStaying.Count(IsHealthy) + freshStaying.Count(IsReady), staying.Count, dying),
            minimumHealthCapacity: 1m,
            maximumOverCapacity: 1m);

        // Old-version instances (a force-stopped deployment leaves them) still count towards the
        // instance count, the surplus going first.
        var keepOld = Math.Max(0, Math.Min(oldStaying.Count, move.New - freshStaying.Count));
        var keepNew = move.New - keepOld;

        Kill(Choose(leaving, leaving.Count - move.Old, current, Leaving));
        Kill(Choose(oldStaying, oldStaying.Count - keepOld, current, Leaving));
        Kill(Choose(freshStaying, freshStaying.Count - keepNew, current, Leaving));

        // Scale changes and replacements of instances that ended stay under the app's ceiling too, dying
        // instances included: Marathon's scale step starts new instances only once the ones it killed
        // have ended, and relaunches a killed instance once it is terminal. An instance that ended
        // (FAILED, LOST, ...) or is inactive per the unreachableStrategy is replaced at once. Moving off
        // a draining agent keeps its own ceiling (twice the instances, as above).
        var ceiling = RollingUpdate.Ceiling(n, strategy.MaximumOverCapacity ?? 1m);
        if (leaving.Count > 0)
        {
            ceiling = Math.Max(ceiling, RollingUpdate.Bounds(n, 1m, 1m).MaxTotal);
        }

        Launch(app, current, RollingUpdate.Room(ceiling, alive.Count, dying, keepNew - freshStaying.Count));

        if (dep is not null && oldVersion.Count == 0 && freshAll.Count == n && freshAll.Count(IsReady) == n)
        {
            Finish(dep);
        }
    }

    /// <summary>How long the instance has been TASK_UNREACHABLE, or null when it is not.</summary>
    private static TimeSpan? UnreachableFor(TaskView t, DateTimeOffset now) =>
        t.State == TaskState.Unreachable && t.UnreachableSince is { } since ? now - since : null;

    /// <summary>Marathon's UnreachableInactive: unreachable for inactiveAfterSeconds or longer (never with "disabled").</summary>
    internal static bool Inactive(TaskView t, UnreachableStrategy strategy, DateTimeOffset now) =>
        !strategy.IsDisabled && UnreachableFor(t, now) is { } away
        && away >= TimeSpan.FromSeconds(strategy.InactiveAfterSeconds ?? UnreachableStrategy.DefaultInactiveAfterSeconds);

    private void Launch(AppSnapshot app, AppDefinition version, int count)
    {
        if (count <= 0)
        {
            return;
        }

        if (app.DelayedUntil is { } until && until > _time.GetUtcNow())
        {
            return; // backing off after failures; a pass after the delay launches
        }

        for (var i = 0; i < count; i++)
        {
            _cluster.Submit(AppTaskFactory.Create(version));
        }

        LogLaunching(count, version.Id!, ServiceRegistry.ConfigVersion(version));
    }

    /// <summary>
    /// Which instances to kill when there are too many: unreachable ones first (as Marathon), then those
    /// not yet running, then unhealthy ones, then ones that have been unreachable (a copy that came back
    /// after it was replaced), then ones on draining agents, then by the app's killSelection
    /// (YOUNGEST_FIRST by default). Health comes before the rest so that the rolling-update floor,
    /// which counts healthy instances, holds.
    /// </summary>
    internal static List<TaskView> Choose(List<TaskView> candidates, int count, AppDefinition app, Func<TaskView, bool> onDrainingAgent)
    {
        if (count <= 0)
        {
            return [];
        }

        var oldestFirst = string.Equals(app.KillSelection, "OLDEST_FIRST", StringComparison.OrdinalIgnoreCase);
        var ordered = candidates
            .OrderBy(t => t.State == TaskState.Unreachable ? 0 : 1)
            .ThenBy(t => t.State == TaskState.Running ? 1 : 0)
            .ThenBy(t => IsHealthy(t) ? 1 : 0)
            .ThenBy(t => t.Statuses.Any(s => s.State == TaskState.Unreachable) ? 0 : 1)
            .ThenBy(t => onDrainingAgent(t) ? 0 : 1);
        var byAge = oldestFirst
            ? ordered.ThenBy(t => t.StartedAt ?? t.SubmittedAt)
            : ordered.ThenByDescending(t => t.StartedAt ?? t.SubmittedAt);
        return byAge.Take(count).ToList();
    }

    private void Kill(IEnumerable<TaskView> tasks)
    {
        foreach (var t in tasks)
        {
            if (_killing.TryAdd(t.Id, 0))
            {
                _cluster.Kill(t.Id);
            }
        }
    }

    private void Finish(Deployment dep)
    {
        _registry.FinishDeployment(dep.AppId, dep.Id);
        DeploymentFinished?.Invoke(dep);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Launching {Count} instances of {AppId} version {Version}")]
    private partial void LogLaunching(int count, string appId, string version);

    [LoggerMessage(Level = LogLevel.Error, Message = "Service reconciliation pass failed")]
    private partial void LogPassFailed(Exception e);
}
