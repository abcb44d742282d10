using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Drover.Master.Services;
using Drover.Master.State;
using Drover.Store.Sqlite;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>
/// Draining an agent, with the test playing the agents and the clock: app instances move elsewhere
/// before the old ones go, plain tasks run until the deadline, and the drain survives a restart.
/// </summary>
public sealed class DrainTests
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private readonly ControllerHarness _h = new();
    private readonly string _a;

    // Work first lands on A (the only agent); B joins later as the place to move to.
    public DrainTests() => _a = _h.AddAgent("host-a");

    private string DeployOnA(int instances)
    {
        var app = _h.Deploy(ControllerHarness.App("/web", instances));
        _h.Settle();
        Assert.Equal(instances, _h.OnAgent(app, _a).Count(ServiceController.IsHealthy));
        return app;
    }

    private TaskView RunPlainTaskOnA()
    {
        var task = _h.State.Submit(Build.Task(cpus: 0.5m)).View;
        _h.Loop.RunPass();
        _h.StartPlaced();
        var running = _h.State.GetTask(task.Id)!;
        Assert.Equal((TaskState.Running, _a), (running.State, running.AgentId));
        return running;
    }

    /// <summary>Healthy instances of the app, wherever they run.</summary>
    private int Healthy(string app) => _h.LiveInstances(app).Count(ServiceController.IsHealthy);

    [Fact]
    public void Drain_AppInstances_ReplacementsFirstOldKilledOnlyAsReplacementsTurnHealthy()
    {
        var app = DeployOnA(2);
        var b = _h.AddAgent("host-b");

        _h.State.Drain(_a, Hour);
        _h.Step();
        _h.StartPlaced(healthy: false); // replacements run but are not healthy yet
        _h.Step();

        var replacements = _h.OnAgent(app, b);
        Assert.Equal(2, replacements.Count);
        Assert.Equal(2, _h.OnAgent(app, _a).Count(t => t.State == TaskState.Running && !t.KillRequested));
        Assert.Equal(2, Healthy(app));

        _h.ReportHealthy(replacements[0].Id);
        _h.Step();

        Assert.Single(_h.OnAgent(app, _a), t => t.State == TaskState.Killing);
        Assert.Equal(2, Healthy(app)); // one healthy replacement in, one old instance out

        _h.ReportHealthy(replacements[1].Id);
        _h.Step();
        _h.ConfirmKills();
        _h.Settle();

        Assert.Empty(_h.OnAgent(app, _a));
        Assert.Equal(2, Healthy(app));
        Assert.Equal(replacements.Select(t => t.Id).Order(), _h.LiveInstances(app).Select(t => t.Id).Order());
        Assert.Equal("drained", _h.State.GetAgent(_a)!.Status);
        Assert.Null(_h.Registry.Get(app)!.DelayedUntil);
    }

    [Fact]
    public void Drain_DuringRollingRestart_FinishesOnOtherAgentAboveFloor()
    {
        var app = DeployOnA(4); // upgradeStrategy defaults: minimumHealthCapacity 1, maximumOverCapacity 1
        var b = _h.AddAgent("host-b");
        Assert.Equal(AppChangeError.None, _h.Registry.Restart(app, force: false).Error);
        var version = ServiceRegistry.ConfigVersion(_h.Registry.Get(app)!.Current);

        _h.State.Drain(_a, Hour);
        var minHealthy = int.MaxValue;
        for (var i = 0; i < 10; i++)
        {
            _h.Step();
            minHealthy = Math.Min(minHealthy, Healthy(app));
            _h.StartPlaced();
            _h.ConfirmKills();
            minHealthy = Math.Min(minHealthy, Healthy(app));
        }

        Assert.Null(_h.Registry.Get(app)!.Deployment);
        Assert.True(minHealthy >= 4, $"healthy instances dropped to {minHealthy}");
        var live = _h.LiveInstances(app);
        Assert.Equal(4, live.Count);
        Assert.All(live, t => Assert.Equal((b, version), (t.AgentId!, t.AppVersion!)));
    }

    [Fact]
    public void Drain_NoRoomElsewhere_InstanceKeptUntilDeadlineThenKilled()
    {
        var app = DeployOnA(1);
        var original = Assert.Single(_h.Instances(app)).Id;

        _h.State.Drain(_a, TimeSpan.FromMinutes(10));
        _h.Step();
        _h.Advance(TimeSpan.FromMinutes(9));
        _h.Step();

        Assert.Equal(TaskState.Running, _h.State.GetTask(original)!.State);
        Assert.Contains(_h.Instances(app), t => t.State == TaskState.Pending); // the replacement waits for room
        Assert.Equal("draining", _h.State.GetAgent(_a)!.Status);

        _h.Advance(TimeSpan.FromMinutes(1));

        var killed = _h.State.GetTask(original)!;
        Assert.Equal(TaskState.Killing, killed.State);
        Assert.Equal(TaskReasons.AgentDraining, killed.Reason);
    }

    [Fact]
    public void Drain_PlainTask_RunsUntilDeadlineThenKilled()
    {
        var task = RunPlainTaskOnA();
        _h.AddAgent("host-b");

        var (result, view, _) = _h.State.Drain(_a, TimeSpan.FromSeconds(60));
        _h.Step();
        _h.Advance(TimeSpan.FromSeconds(59));

        Assert.Equal(AgentChangeResult.Accepted, result);
        Assert.Equal("draining", view!.Status);
        Assert.Equal(_h.Time.GetUtcNow() + TimeSpan.FromSeconds(1), view.DrainDeadline);
        Assert.Equal(TaskState.Running, _h.State.GetTask(task.Id)!.State); // not moved: it is not a service

        _h.Advance(TimeSpan.FromSeconds(1));

        var killing = _h.State.GetTask(task.Id)!;
        Assert.Equal(TaskState.Killing, killing.State);
        Assert.Equal(TaskReasons.AgentDraining, killing.Reason);
        Assert.Contains(Commands(_a), c => c.Type == AgentCommandType.Kill && c.Kill!.TaskId == task.Id);
        _h.ConfirmKills();
        Assert.Equal("drained", _h.State.GetAgent(_a)!.Status);
    }

    [Fact]
    public void Drain_ZeroDeadline_KillsAtOnce()
    {
        var task = RunPlainTaskOnA();

        _h.State.Drain(_a, TimeSpan.Zero);

        Assert.Equal(TaskState.Killing, _h.State.GetTask(task.Id)!.State);
    }

    [Fact]
    public void Drain_NewWork_NotPlacedThereUntilUndrained()
    {
        _h.State.Drain(_a, Hour);
        var task = _h.State.Submit(Build.Task()).View;
        _h.Loop.RunPass();

        var waiting = _h.State.GetTask(task.Id)!;
        Assert.Equal(TaskState.Pending, waiting.State);
        Assert.Contains("not schedulable", waiting.WaitingReason, StringComparison.Ordinal);
        Assert.False(_h.State.TakeSnapshot(10).Snapshot.Agents.Single().Schedulable);

        var (result, view, _) = _h.State.Undrain(_a);
        _h.Loop.RunPass();

        Assert.Equal(AgentChangeResult.Accepted, result);
        Assert.Equal("active", view!.Status);
        Assert.Null(view.DrainDeadline);
        Assert.Equal((TaskState.Staging, _a), (_h.State.GetTask(task.Id)!.State, _h.State.GetTask(task.Id)!.AgentId));
    }

    [Fact]
    public void Drain_Repeated_DeadlineCountsFromFirstRequest()
    {
        var started = _h.Time.GetUtcNow();
        _h.State.Drain(_a, Hour);
        _h.Advance(TimeSpan.FromMinutes(10));

        var again = _h.State.Drain(_a, Hour).View!;
        var longer = _h.State.Drain(_a, 2 * Hour).View!;

        Assert.Equal(started, again.DrainStartedAt);
        Assert.Equal(started + Hour, again.DrainDeadline);
        Assert.Equal(started + (2 * Hour), longer.DrainDeadline);
    }

    [Fact]
    public void DrainAndUndrain_UnknownAgent_NotFound()
    {
        Assert.Equal(AgentChangeResult.NotFound, _h.State.Drain("no-such-agent", Hour).Result);
        Assert.Equal(AgentChangeResult.NotFound, _h.State.Undrain("no-such-agent").Result);
    }

    [Fact]
    public void Undrain_NotDraining_NoChange()
    {
        var (result, view, _) = _h.State.Undrain(_a);

        Assert.Equal(AgentChangeResult.Accepted, result);
        Assert.Equal("active", view!.Status);
        Assert.Null(view.DrainStartedAt);
    }

    [Fact]
    public async Task Drain_AfterMasterRestart_StillDrainingWithSameDeadlineThenUndrainKept()
    {
        var dir = Directory.CreateTempSubdirectory("drover-drain-").FullName;
        try
        {
            var time = new ManualTimeProvider();
            string agentId;
            DateTimeOffset? deadline;
            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var before = new ControllerHarness(time, store);
                agentId = before.AddAgent("host-a");
                deadline = before.State.Drain(agentId, Hour).View!.DrainDeadline;
                await before.FlushAsync();
            }

            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var after = new ControllerHarness(time, store);
                await after.RestoreAsync();

                var agent = after.State.GetAgent(agentId)!;
                Assert.Equal(("drained", deadline), (agent.Status, agent.DrainDeadline));
                Assert.False(after.State.TakeSnapshot(10).Snapshot.Agents.Single().Schedulable);
                Assert.Contains(agentId, after.State.DrainingAgentIds());

                after.State.Undrain(agentId);
                await after.FlushAsync();
            }

            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var again = new ControllerHarness(time, store);
                await again.RestoreAsync();

                Assert.Equal("active", again.State.GetAgent(agentId)!.Status);
                Assert.True(again.State.TakeSnapshot(10).Snapshot.Agents.Single().Schedulable);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private List<AgentCommand> Commands(string agentId)
    {
        var agent = _h.State.FindAgent(agentId)!;
        var list = new List<AgentCommand>();
        while (agent.Commands.Reader.TryRead(out var c))
        {
            list.Add(c.Command);
        }

        return list;
    }
}
