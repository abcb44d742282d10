using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.Services;
using Drover.Store.Sqlite;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>
/// Marathon's unreachableStrategy on the controller, with the test playing the agents and the clock:
/// when an instance on an unreachable agent stops counting (inactiveAfterSeconds), when it is killed
/// (expungeAfterSeconds), and what happens when it comes back.
/// </summary>
public sealed class UnreachableStrategyTests
{
    private readonly ControllerHarness _h = new();
    private readonly string _a;

    // Instances first land on A (the only agent); B joins later as the place for replacements.
    public UnreachableStrategyTests() => _a = _h.AddAgent("host-a");

    private string DeployOnA(int instances, string strategy)
    {
        var id = _h.Deploy(ControllerHarness.App("/svc", instances, $""", "unreachableStrategy": {strategy}"""));
        _h.Settle();
        Assert.Equal(instances, _h.OnAgent(id, _a).Count(ServiceController.IsHealthy));
        return id;
    }

    private string AddB() => _h.AddAgent("host-b");

    [Fact]
    public void Partition_DefaultStrategy_ReplacedAtOnceExpungedAndNoBackoff()
    {
        var app = DeployOnA(2, """{"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}""");
        var b = AddB();

        _h.Partition(_a);
        _h.Step();

        var onA = _h.OnAgent(app, _a);
        Assert.Equal(2, onA.Count);
        Assert.All(onA, t => Assert.Equal(TaskState.Unreachable, t.State));
        Assert.All(onA, t => Assert.True(t.KillRequested, "expunged at once: its kill waits for the agent"));
        Assert.Equal(2, _h.OnAgent(app, b).Count(t => t.State == TaskState.Staging));
        Assert.Null(_h.Registry.Get(app)!.DelayedUntil); // an unreachable agent is not the app's failure
    }

    [Fact]
    public void Partition_InactiveAfterSixty_CountsUntilThenReplacedThenExpunged()
    {
        var app = DeployOnA(1, """{"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}""");
        var b = AddB();
        var original = Assert.Single(_h.Instances(app)).Id;

        _h.Partition(_a);
        var since = _h.State.GetTask(original)!.UnreachableSince;
        _h.Step();
        _h.Advance(TimeSpan.FromSeconds(40)); // unreachable for 40 s (counted from when the master marked it)
        _h.Step();

        Assert.Equal(_h.Time.GetUtcNow() - TimeSpan.FromSeconds(40), since);
        Assert.Empty(_h.OnAgent(app, b));

        _h.Advance(TimeSpan.FromSeconds(21)); // 61 s
        _h.Step();

        var replacement = Assert.Single(_h.OnAgent(app, b));
        Assert.Equal(TaskState.Staging, replacement.State);
        Assert.False(_h.State.GetTask(original)!.KillRequested, "inactive, not yet expunged");

        _h.Advance(TimeSpan.FromSeconds(60)); // 121 s
        _h.Step();

        Assert.True(_h.State.GetTask(original)!.KillRequested);
        Assert.Equal(TaskState.Unreachable, _h.State.GetTask(original)!.State);
        Assert.Single(_h.OnAgent(app, b)); // the expunge launches nothing more
    }

    [Fact]
    public void Partition_Disabled_NeverReplacedUntilAgentRemoved()
    {
        var app = DeployOnA(1, "\"disabled\"");
        var b = AddB();
        var original = Assert.Single(_h.Instances(app)).Id;

        _h.Partition(_a);
        _h.Step();
        _h.Advance(TimeSpan.FromMinutes(90));
        _h.Step();

        Assert.Empty(_h.OnAgent(app, b));
        Assert.False(_h.State.GetTask(original)!.KillRequested);

        // Removed after AgentRemovalTimeout (2 h here): TASK_GONE, replaced, still no backoff.
        _h.Advance(TimeSpan.FromMinutes(31));
        _h.Step();

        Assert.Equal(TaskState.Gone, _h.State.GetTask(original)!.State);
        Assert.Single(_h.OnAgent(app, b));
        Assert.Null(_h.Registry.Get(app)!.DelayedUntil);
    }

    [Fact]
    public void Reconnect_AfterReplacementRuns_ReturningCopyKilled()
    {
        var app = DeployOnA(1, """{"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600}""");
        var b = AddB();
        var original = Assert.Single(_h.Instances(app)).Id;
        _h.Partition(_a);
        _h.Advance(TimeSpan.FromSeconds(61));
        _h.Settle();
        var replacement = Assert.Single(_h.OnAgent(app, b));
        Assert.True(ServiceController.IsHealthy(replacement));

        _h.Reconnect(_a);
        Assert.Equal(TaskState.Running, _h.State.GetTask(original)!.State); // not expunged: it is back, for now
        _h.Step();

        Assert.Equal(TaskState.Killing, _h.State.GetTask(original)!.State);
        Assert.Equal(TaskState.Running, _h.State.GetTask(replacement.Id)!.State);
        _h.Settle();
        Assert.Equal([replacement.Id], _h.LiveInstances(app).Select(t => t.Id));
    }

    [Fact]
    public void Reconnect_BeforeInactiveAfter_ContinuesWithoutReplacement()
    {
        var app = DeployOnA(1, """{"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600}""");
        AddB();
        var original = Assert.Single(_h.Instances(app)).Id;
        _h.Partition(_a);
        _h.Advance(TimeSpan.FromSeconds(30));
        _h.Settle();

        _h.Reconnect(_a);
        _h.Settle();

        var only = Assert.Single(_h.Instances(app));
        Assert.Equal(original, only.Id);
        Assert.Equal(TaskState.Running, only.State);
        Assert.Null(only.UnreachableSince);
    }

    [Fact]
    public void Reconnect_ThenCrash_CrashStillCountsAsFailure()
    {
        var app = DeployOnA(1, """{"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600}""");
        var original = Assert.Single(_h.Instances(app));
        _h.Partition(_a);
        _h.Reconnect(_a);
        Assert.Null(_h.Registry.Get(app)!.DelayedUntil);

        _h.State.ApplyUpdates(_a, new() { Updates = [Build.Status(original.Id, TaskState.Failed, exitCode: 1)] });

        Assert.NotNull(_h.Registry.Get(app)!.DelayedUntil); // having been unreachable once excuses nothing later
    }

    [Fact]
    public void Reconnect_AfterExpunge_GoesStraightToKillingAndNeverCounts()
    {
        var app = DeployOnA(1, """{"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}""");
        var b = AddB();
        var original = Assert.Single(_h.Instances(app)).Id;
        _h.Partition(_a);
        _h.Settle();
        var replacement = Assert.Single(_h.OnAgent(app, b)).Id;

        _h.Reconnect(_a);

        var back = _h.State.GetTask(original)!;
        Assert.Equal(TaskState.Killing, back.State);
        Assert.DoesNotContain(back.Statuses.SkipWhile(s => s.State != TaskState.Unreachable), s => s.State == TaskState.Running);
        _h.Settle();
        Assert.Equal(TaskState.Killed, _h.State.GetTask(original)!.State);
        Assert.Equal([replacement], _h.LiveInstances(app).Select(t => t.Id));
        Assert.Null(_h.Registry.Get(app)!.DelayedUntil);
    }

    [Fact]
    public void DeleteApp_InstanceUnreachable_DeletionFinishesAndKillWaitsForAgent()
    {
        var app = DeployOnA(1, "\"disabled\"");
        var original = Assert.Single(_h.Instances(app)).Id;
        _h.Partition(_a);

        Assert.Equal(AppChangeError.None, _h.Registry.Delete(app, force: false).Error);
        _h.Step();
        _h.Step();

        Assert.Null(_h.Registry.Get(app));
        var waiting = _h.State.GetTask(original)!;
        Assert.Equal((TaskState.Unreachable, true), (waiting.State, waiting.KillRequested));

        _h.Reconnect(_a);
        _h.ConfirmKills();
        Assert.Equal(TaskState.Killed, _h.State.GetTask(original)!.State);
    }

    [Fact]
    public async Task UnreachableSince_AfterMasterRestart_SameAndInactiveTimingResumes()
    {
        const string Strategy = """, "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600}""";
        var dir = Directory.CreateTempSubdirectory("drover-unreachable-").FullName;
        try
        {
            var time = new ManualTimeProvider();
            string taskId, agentId, app;
            DateTimeOffset? since;
            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var before = new ControllerHarness(time, store);
                agentId = before.AddAgent("host-a");
                app = before.Deploy(ControllerHarness.App("/svc", 1, Strategy));
                before.Settle();
                taskId = Assert.Single(before.Instances(app)).Id;
                before.Partition(agentId);
                since = before.State.GetTask(taskId)!.UnreachableSince;
                Assert.NotNull(since);
                await before.FlushAsync();
            }

            await using var reopened = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time);
            var after = new ControllerHarness(time, reopened);
            await after.RestoreAsync();
            after.KeepDown(agentId);
            var b = after.AddAgent("host-b");

            Assert.Equal(since, after.State.GetTask(taskId)!.UnreachableSince);
            after.Advance(TimeSpan.FromSeconds(30)); // unreachable for 30 s
            after.Step();
            Assert.Empty(after.OnAgent(app, b));

            after.Advance(TimeSpan.FromSeconds(31)); // 61 s
            after.Step();
            Assert.Single(after.OnAgent(app, b));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Choose_Surplus_UnreachableThenNotRunningThenUnhealthyThenReturnedThenDraining()
    {
        var now = DateTimeOffset.UnixEpoch.AddDays(1);
        TaskView Task(string id, TaskState state, bool? healthy = true, bool wasUnreachable = false, string agent = "a") => new()
        {
            Id = id,
            Name = "/svc",
            State = state,
            Cpus = 0.1m,
            Mem = 32,
            Disk = 0,
            SubmittedAt = now,
            StartedAt = now,
            AgentId = agent,
            HasHealthCheck = true,
            Healthy = healthy,
            Statuses = wasUnreachable
                ? [Build.Status(id, TaskState.Running), Build.Status(id, TaskState.Unreachable), Build.Status(id, TaskState.Running)]
                : [Build.Status(id, TaskState.Running)],
        };
        var app = new AppDefinition { Id = "/svc" }.WithDefaults();
        var candidates = new List<TaskView>
        {
            Task("plain", TaskState.Running),
            Task("draining", TaskState.Running, agent: "drained-agent"),
            Task("returned", TaskState.Running, wasUnreachable: true),
            Task("unhealthy", TaskState.Running, healthy: false),
            Task("staging", TaskState.Staging, healthy: null),
            Task("unreachable", TaskState.Unreachable),
        };

        var order = ServiceController.Choose(candidates, candidates.Count, app, t => t.AgentId == "drained-agent").Select(t => t.Id);

        Assert.Equal(["unreachable", "staging", "unhealthy", "returned", "draining", "plain"], order);
    }
}
