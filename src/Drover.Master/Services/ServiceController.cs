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
        registry.Changed += Wake;
        cluster.TaskChanged += OnTaskChanged;
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
            if (!_killing.TryRemove(t.Id, out _) && !t.Statuses.Any(s => s.State == TaskState.Killing))
            {
                _registry.RecordFailure(appId, new LastTaskFailure(appId, t.Id, t.State.WireName(), t.Message ?? "", t.Hostname ?? "", t.AppVersion ?? "", _time.GetUtcNow()));
            }
        }
        else if (IsHealthy(t))
        {
            _registry.RecordHealthy(appId);
        }

        Wake();
    }

    protected override TimeSpan Period => TimeSpan.FromMilliseconds(500);

    protected override void Pass() => RunPass();

    protected override void OnPassFailed(Exception e) => LogPassFailed(e);


    /// <summary>One reconciliation of every app. Internal for tests.</summary>
    internal void RunPass()
    {
        foreach (var app in _registry.List())
        {
            Reconcile(app);
        }
    }

    /// <summary>An instance counts as healthy when running and, if it has a health check, passing it.</summary>
    public static bool IsHealthy(TaskView t) => t.State == TaskState.Running && (!t.HasHealthCheck || t.Healthy == true);

    /// <summary>
    /// An instance of a deployment's new version counts towards its progress (old instances may go, the
    /// deployment may finish) when healthy and, if it has readiness checks, reported ready (Marathon).
    /// </summary>
    public static bool IsReady(TaskView t) => IsHealthy(t) && (!t.HasReadinessCheck || t.Ready == true);

    private void Reconcile(AppSnapshot app)
    {
        var appId = app.Current.Id!;
        var alive = _cluster.ActiveTasksOfGroup(appId)
            .Where(t => t.State != TaskState.Killing && !_killing.ContainsKey(t.Id))
            .ToList();
        var dep = app.Deployment;

        if (dep?.Action == DeploymentActions.Stop)
        {
            KillAll(alive);
            if (_cluster.ActiveTasksOfGroup(appId).IsEmpty)
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
        var n = current.Instances ?? AppDefinition.DefaultInstances;
        var config = ServiceRegistry.ConfigVersion(current);
        var fresh = alive.Where(t => t.AppVersion == config).ToList();
        var old = alive.Where(t => t.AppVersion != config).ToList();
        var freshHealthy = fresh.Count(IsReady);

        int keepOld, keepNew;
        if (old.Count > 0 && dep is not null)
        {
            var strategy = current.UpgradeStrategy ?? UpgradeStrategy.Default;
            var target = RollingUpdate.Next(
                new RollingState(n, old.Count, old.Count(IsHealthy), freshHealthy),
                strategy.MinimumHealthCapacity ?? 1m,
                strategy.MaximumOverCapacity ?? 1m);
            (keepOld, keepNew) = (target.Old, target.New);
        }
        else
        {
            // No rollout in progress: old-version instances still count towards the instance count
            // (a force-stopped deployment leaves them), the surplus going first.
            keepOld = Math.Max(0, Math.Min(old.Count, n - fresh.Count));
            keepNew = n - keepOld;
        }

        Kill(Choose(old, old.Count - keepOld, current));
        Kill(Choose(fresh, fresh.Count - keepNew, current));
        Launch(app, current, keepNew - fresh.Count);

        if (dep is not null && old.Count == 0 && fresh.Count == n && freshHealthy == n)
        {
            Finish(dep);
        }
    }

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
    /// Which instances to kill when there are too many: those not yet running first, then unhealthy
    /// ones, then by the app's killSelection (YOUNGEST_FIRST by default).
    /// </summary>
    private static IEnumerable<TaskView> Choose(List<TaskView> candidates, int count, AppDefinition app)
    {
        if (count <= 0)
        {
            return [];
        }

        var oldestFirst = string.Equals(app.KillSelection, "OLDEST_FIRST", StringComparison.OrdinalIgnoreCase);
        var ordered = candidates
            .OrderBy(t => t.State == TaskState.Running ? 1 : 0)
            .ThenBy(t => IsHealthy(t) ? 1 : 0);
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

    private void KillAll(List<TaskView> tasks) => Kill(tasks);

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
