using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Core.Protocol;
using Drover.Master.Http;
using Drover.Master.Metrics;
using Drover.Master.Scheduling;
using Drover.Master.Services;
using Drover.Master.State;
using Drover.Store;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Services;

/// <summary>
/// The service controller, the cluster state and the placement loop wired together without HTTP or
/// processes, on a <see cref="ManualTimeProvider"/>. The test plays the agents: it reports instances
/// running (and healthy), confirms kills, heartbeats, and cuts agents off.
/// </summary>
internal sealed class ControllerHarness
{
    private readonly HashSet<string> _partitioned = new(StringComparer.Ordinal);
    private readonly IStateStore? _store;
    private readonly MasterJournal _journal;

    /// <param name="store">Where the cluster state and the apps are kept (null: nowhere), for restart tests.</param>
    public ControllerHarness(ManualTimeProvider? time = null, IStateStore? store = null, MasterOptions? options = null)
    {
        Time = time ?? new ManualTimeProvider();
        Options = options ?? new MasterOptions
        {
            AgentUnreachableTimeout = TimeSpan.FromSeconds(15),
            AgentRemovalTimeout = TimeSpan.FromHours(2),
            CommandResendAfter = TimeSpan.FromSeconds(5),
        };
        _store = store;
        _journal = store is null ? MasterJournal.None : new MasterJournal(store);
        State = new ClusterState(Options, Time, NullLogger<ClusterState>.Instance, _journal);
        Loop = new SchedulingLoop(State, new MasterMetrics(State), Options, Time, NullLogger<SchedulingLoop>.Instance);
        Registry = new ServiceRegistry(store, Time, NullLogger<ServiceRegistry>.Instance);
        Controller = new ServiceController(Registry, State, Time, NullLogger<ServiceController>.Instance);
    }

    public ManualTimeProvider Time { get; }

    public MasterOptions Options { get; }

    public ClusterState State { get; }

    public SchedulingLoop Loop { get; }

    public ServiceRegistry Registry { get; }

    public ServiceController Controller { get; }

    /// <summary>As a restarted master does before serving: reloads the cluster state and the apps from the store.</summary>
    public async Task RestoreAsync()
    {
        var (tasks, agents) = await _journal.LoadAsync(CancellationToken.None);
        State.Restore(tasks, agents);
        await Registry.LoadAsync(CancellationToken.None);
    }

    /// <summary>Completes once every change made so far is in the store.</summary>
    public async Task FlushAsync()
    {
        await Registry.LastWrite;
        await State.Undrain("no-such-agent").Durable; // changes nothing; completes after every earlier write
    }

    public string AddAgent(string hostname, string resources = "cpus:4;mem:4096;disk:1000;ports:[31000-31100]") =>
        State.Register(Build.Agent(hostname, resources)).Registered.AgentId;

    /// <summary>Validates, defaults and stores an app as <c>POST /v2/apps</c> does.</summary>
    public string Deploy(string json)
    {
        Assert.True(MarathonJson.TryParseApp(json, out var app, out var error), error?.Message);
        Assert.Null(MarathonValidator.Validate(app));
        var canonical = MarathonEndpoints.Canonical(app);
        var result = Registry.Put(canonical, mustCreate: false, force: true);
        Assert.Equal(AppChangeError.None, result.Error);
        result.Durable.GetAwaiter().GetResult(); // with a store, the controller sees the app once it is saved
        return canonical.Id!;
    }

    /// <summary>A Marathon app with an HTTP health check (instances count once reported healthy).</summary>
    public static string App(string id, int instances, string extra = "") => $$"""
        {"id": "{{id}}", "cmd": "serve", "cpus": 0.5, "mem": 64, "instances": {{instances}}{{extra}},
         "healthChecks": [{"protocol": "HTTP", "path": "/"}]}
        """;

    /// <summary>One controller pass, then one placement pass.</summary>
    public void Step()
    {
        Controller.RunPass();
        Loop.RunPass();
    }

    /// <summary>Every placed instance not yet running reports TASK_RUNNING, healthy or (health pending) not yet.</summary>
    public void StartPlaced(bool healthy = true)
    {
        foreach (var t in Live().Where(t => t.State is TaskState.Staging or TaskState.Starting && !_partitioned.Contains(t.AgentId!)))
        {
            Report(t, TaskState.Running, healthy ? true : null);
        }
    }

    /// <summary>The agent reports the task's health (a health check result).</summary>
    public void ReportHealthy(string taskId) => Report(State.GetTask(taskId)!, TaskState.Running, true);

    /// <summary>Agents carry out the kills they were sent: every KILLING task on a reachable agent ends TASK_KILLED.</summary>
    public void ConfirmKills()
    {
        foreach (var t in Live().Where(t => t.State == TaskState.Killing && !_partitioned.Contains(t.AgentId!)))
        {
            Report(t, TaskState.Killed, null);
        }
    }

    /// <summary>The agent carries out one kill: the KILLING task ends TASK_KILLED (a slow kill confirmed late).</summary>
    public void ConfirmKill(string taskId)
    {
        var t = State.GetTask(taskId)!;
        Assert.Equal(TaskState.Killing, t.State);
        Report(t, TaskState.Killed, null);
    }

    /// <summary>The agent reports the task failed (its process exited non-zero).</summary>
    public void Fail(string taskId) => Report(State.GetTask(taskId)!, TaskState.Failed, null);

    /// <summary>Runs the loop and plays well-behaved agents until the cluster is at rest.</summary>
    public void Settle()
    {
        for (var i = 0; i < 5; i++)
        {
            Step();
            StartPlaced();
            ConfirmKills();
        }
    }

    public ImmutableArray<TaskView> Instances(string appId) => State.ActiveTasksOfGroup(appId);

    /// <summary>Instances that count as live copies: running or on their way, not being killed.</summary>
    public List<TaskView> LiveInstances(string appId) =>
        [.. Instances(appId).Where(t => t.State is not (TaskState.Killing or TaskState.Unreachable) && !t.KillRequested)];

    public List<TaskView> OnAgent(string appId, string agentId) => [.. Instances(appId).Where(t => t.AgentId == agentId)];

    /// <summary>Cuts an agent off: it stops heartbeating and, after the unreachable timeout, is marked unreachable.</summary>
    public void Partition(string agentId)
    {
        _partitioned.Add(agentId);
        Advance(Options.AgentUnreachableTimeout + TimeSpan.FromSeconds(1));
    }

    /// <summary>The agent stays silent from now on (e.g. one that was already cut off before a master restart).</summary>
    public void KeepDown(string agentId) => _partitioned.Add(agentId);

    /// <summary>The agent is back: it heartbeats, listing every task it still runs.</summary>
    public void Reconnect(string agentId)
    {
        _partitioned.Remove(agentId);
        Heartbeat(agentId);
    }

    /// <summary>Time passes; reachable agents keep heartbeating; the agent monitor runs.</summary>
    public void Advance(TimeSpan by)
    {
        Time.Advance(by);
        foreach (var a in State.ListAgents().Where(a => !_partitioned.Contains(a.Id) && a.Status != "removed"))
        {
            Heartbeat(a.Id);
        }

        State.CheckAgentTimeouts();
    }

    private void Heartbeat(string agentId) => Assert.True(State.Heartbeat(agentId, new AgentHeartbeat
    {
        ActiveTaskIds = [.. State.ListTasks(includeCompleted: false).Where(t => t.AgentId == agentId).Select(t => t.Id)],
    }));

    private IEnumerable<TaskView> Live() => State.ListTasks(includeCompleted: false);

    private void Report(TaskView t, TaskState state, bool? healthy) =>
        State.ApplyUpdates(t.AgentId!, new StatusUpdateBatch { Updates = [Build.Status(t.Id, state) with { Healthy = healthy }] });
}
