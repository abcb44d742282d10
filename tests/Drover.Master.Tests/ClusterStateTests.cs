using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Drover.Master.Metrics;
using Drover.Master.Scheduling;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests;

public sealed class ClusterStateTests
{
    private readonly ManualTimeProvider _time = new();
    private readonly MasterOptions _options = new() { CommandResendAfter = TimeSpan.FromSeconds(5), AgentUnreachableTimeout = TimeSpan.FromSeconds(15), MaxCompletedTasks = 3 };
    private readonly ClusterState _state;
    private readonly SchedulingLoop _loop;

    public ClusterStateTests()
    {
        _state = new ClusterState(_options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _loop = new SchedulingLoop(_state, new MasterMetrics(_state), _options, _time, NullLogger<SchedulingLoop>.Instance);
    }

    private static List<AgentCommand> Drain(AgentRecord agent)
    {
        var list = new List<AgentCommand>();
        while (agent.Commands.Reader.TryRead(out var c))
        {
            list.Add(c.Command);
        }

        return list;
    }

    [Fact]
    public void ReceiveFrameworkMessage_FromAnAgentNotRunningThatExecutor_IsDroppedNotForwarded()
    {
        var a = _state.Register(Build.Agent("host1")).Registered.AgentId;
        var b = _state.Register(Build.Agent("host2")).Registered.AgentId;
        Assert.True(Constraint.TryParse("hostname:IS:host2", out var onB, out _));
        var task = Build.Task(constraints: [onB!]) with { Executor = new ExecutorSpec { FrameworkId = "f1", ExecutorId = "e1", Shell = "true" } };
        _state.Submit(task);
        _loop.RunPass();
        Assert.Equal(b, _state.AgentOfTask(task.Id)!.Value.AgentId);
        var forwarded = new List<string>();
        _state.FrameworkMessageReceived += (agent, _) => forwarded.Add(agent);
        var message = new FrameworkMessage { FrameworkId = "f1", ExecutorId = "e1", Data = "aGk=" };

        Assert.False(_state.ReceiveFrameworkMessage(a, message)); // agent A speaking for B's executor
        Assert.False(_state.ReceiveFrameworkMessage(b, message with { ExecutorId = "e2" })); // no such executor on B
        Assert.True(_state.ReceiveFrameworkMessage(b, message));

        Assert.Equal([b], forwarded);
    }

    [Fact]
    public void RunPass_NoAgents_TaskStaysPendingWithReason()
    {
        var task = _state.Submit(Build.Task()).View;

        _loop.RunPass();

        var view = _state.GetTask(task.Id)!;
        Assert.Equal(TaskState.Pending, view.State);
        Assert.Equal("no agents are registered", view.WaitingReason);
    }

    [Fact]
    public void RunPass_TaskTooBig_ReasonNamesLargestFree()
    {
        _state.Register(Build.Agent(resources: "cpus:2;mem:1024"));
        var task = _state.Submit(Build.Task(cpus: 64)).View;

        _loop.RunPass();

        Assert.Equal("no agent has 64 cpus free; the largest has 2", _state.GetTask(task.Id)!.WaitingReason);
    }

    [Fact]
    public void RunPass_AgentFits_TaskStagedAndLaunchQueued()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task(cpus: 1.5m, memMiB: 512, ports: 2)).View;

        Assert.Equal(1, _loop.RunPass());

        var view = _state.GetTask(task.Id)!;
        Assert.Equal(TaskState.Staging, view.State);
        Assert.Equal(agentId, view.AgentId);
        Assert.Equal([31000, 31001], view.Ports.ToArray());
        var launch = Assert.Single(Drain(_state.FindAgent(agentId)!));
        Assert.Equal(AgentCommandType.Launch, launch.Type);
        Assert.Equal([31000, 31001], launch.Launch!.Ports.ToArray());
        var agent = _state.GetAgent(agentId)!;
        Assert.Equal(1.5m, agent.Used.Cpus);
        Assert.Equal(512, agent.Used.Mem);
        Assert.Equal("[31000-31001]", agent.Used.Ports);
    }

    [Fact]
    public void ApplyUpdates_RunningThenFinished_ResourcesReleasedAndExitCodeKept()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task(cpus: 1, ports: 1)).View;
        _loop.RunPass();

        var running = Build.Status(task.Id, TaskState.Running);
        var acks = _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [running] }).Acks;
        Assert.Equal([running.Uuid!], acks.ToArray());
        Assert.Equal(TaskState.Running, _state.GetTask(task.Id)!.State);

        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Failed, exitCode: 7)] });

        var view = _state.GetTask(task.Id)!;
        Assert.Equal(TaskState.Failed, view.State);
        Assert.Equal(7, view.ExitCode);
        var agent = _state.GetAgent(agentId)!;
        Assert.Equal(0m, agent.Used.Cpus);
        Assert.Equal("[]", agent.Used.Ports);
        Assert.Equal(0, agent.ActiveTasks);
    }

    [Fact]
    public void ApplyUpdates_SameUpdateResent_AcknowledgedAndAppliedOnce()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task(cpus: 1)).View;
        _loop.RunPass();
        var running = Build.Status(task.Id, TaskState.Running);
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [running] });
        var changes = 0;
        _state.TaskChanged += _ => changes++;

        // An agent that lost our acknowledgement (or restarted) sends it again.
        var acks = _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [running] }).Acks;

        Assert.Equal([running.Uuid!], acks.ToArray());
        Assert.Equal(0, changes);
        Assert.Single(_state.GetTask(task.Id)!.Statuses, st => st.Uuid == running.Uuid);
    }

    [Fact]
    public void ApplyUpdates_FreedResources_NextPendingTaskPlaced()
    {
        var agentId = _state.Register(Build.Agent(resources: "cpus:1;mem:1024")).Registered.AgentId;
        var first = _state.Submit(Build.Task(cpus: 1)).View;
        var second = _state.Submit(Build.Task(cpus: 1)).View;
        _loop.RunPass();
        Assert.Equal(TaskState.Pending, _state.GetTask(second.Id)!.State);

        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(first.Id, TaskState.Finished, exitCode: 0)] });
        _loop.RunPass();

        Assert.Equal(TaskState.Staging, _state.GetTask(second.Id)!.State);
    }

    [Fact]
    public void Kill_PendingTask_EndsKilledAtOnce()
    {
        var task = _state.Submit(Build.Task()).View;

        Assert.Equal(KillResult.Accepted, _state.Kill(task.Id).Result);

        Assert.Equal(TaskState.Killed, _state.GetTask(task.Id)!.State);
        Assert.Equal(0, _state.PendingCount);
    }

    [Fact]
    public void Kill_RunningTask_KillingAndKillCommandSent()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });
        Drain(_state.FindAgent(agentId)!);

        _state.Kill(task.Id);

        Assert.Equal(TaskState.Killing, _state.GetTask(task.Id)!.State);
        var kill = Assert.Single(Drain(_state.FindAgent(agentId)!));
        Assert.Equal(AgentCommandType.Kill, kill.Type);
        Assert.Equal(task.Id, kill.Kill!.TaskId);
    }

    [Fact]
    public void Kill_UnknownTask_NotFound() => Assert.Equal(KillResult.NotFound, _state.Kill("nope").Result);

    [Fact]
    public void Heartbeat_AgentNeverGotLaunch_LaunchResentAfterTimeout()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        var agent = _state.FindAgent(agentId)!;
        Drain(agent);

        _state.Heartbeat(agentId, new AgentHeartbeat());
        Assert.Empty(Drain(agent)); // too early to resend

        _time.Advance(TimeSpan.FromSeconds(6));
        _state.Heartbeat(agentId, new AgentHeartbeat());

        var resent = Assert.Single(Drain(agent));
        Assert.Equal(task.Id, resent.Launch!.Task.Id);
    }

    [Fact]
    public void Heartbeat_AgentForgotRunningTask_TaskLost()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });

        _time.Advance(TimeSpan.FromSeconds(6));
        _state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [] });

        Assert.Equal(TaskState.Lost, _state.GetTask(task.Id)!.State);
        Assert.Equal(0m, _state.GetAgent(agentId)!.Used.Cpus);
    }

    [Fact]
    public void IsStaleLaunch_LaunchQueuedThenAgentAwayAndBackWithoutTheTask_NotSent()
    {
        // Found by the chaos test: the launch waits in the agent's queue while the agent is down; its
        // re-registration ends the task TASK_LOST; the next stream must not send the launch after all.
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        var launch = Assert.Single(Drain(_state.FindAgent(agentId)!));
        Assert.False(Http.AgentProtocolEndpoints.IsStaleLaunch(launch, _state));

        _time.Advance(TimeSpan.FromSeconds(16));
        _state.CheckAgentTimeouts();
        Assert.False(Http.AgentProtocolEndpoints.IsStaleLaunch(launch, _state)); // unreachable: may still come back with it
        _state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [] });

        Assert.Equal(TaskState.Lost, _state.GetTask(task.Id)!.State);
        Assert.True(Http.AgentProtocolEndpoints.IsStaleLaunch(launch, _state));
    }

    [Fact]
    public void CheckAgentTimeouts_NoHeartbeat_AgentAndTasksUnreachableThenRecovered()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });

        _time.Advance(TimeSpan.FromSeconds(16));
        _state.CheckAgentTimeouts();

        Assert.Equal("unreachable", _state.GetAgent(agentId)!.Status);
        Assert.Equal(TaskState.Unreachable, _state.GetTask(task.Id)!.State);

        // No new work goes to an unreachable agent.
        var other = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        Assert.Equal(TaskState.Pending, _state.GetTask(other.Id)!.State);

        Assert.True(_state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] }));

        Assert.Equal("active", _state.GetAgent(agentId)!.Status);
        Assert.Equal(TaskState.Running, _state.GetTask(task.Id)!.State);
    }

    [Fact]
    public void Heartbeat_KillAskedWhileUnreachable_GoesStraightToKillingAndKillSent()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });
        _time.Advance(TimeSpan.FromSeconds(16));
        _state.CheckAgentTimeouts();
        var unreachableAt = _time.GetUtcNow();

        _time.Advance(TimeSpan.FromSeconds(30));
        _state.Kill(task.Id);
        var waiting = _state.GetTask(task.Id)!;
        Drain(_state.FindAgent(agentId)!);
        _state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] });

        Assert.Equal((TaskState.Unreachable, true, unreachableAt), (waiting.State, waiting.KillRequested, waiting.UnreachableSince));
        var back = _state.GetTask(task.Id)!;
        Assert.Equal(TaskState.Killing, back.State);
        Assert.Null(back.UnreachableSince);
        Assert.Equal(task.Id, Assert.Single(Drain(_state.FindAgent(agentId)!)).Kill!.TaskId);
    }

    [Fact]
    public void Heartbeat_UnknownAgent_ReturnsFalse() => Assert.False(_state.Heartbeat("agent-unknown", new AgentHeartbeat()));

    [Fact]
    public void ApplyUpdates_UnknownRunningTask_AcknowledgedAndTrackedNotKilled()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var orphan = Build.Status("orphan.1", TaskState.Running);

        var acks = _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [orphan] }).Acks;

        Assert.Equal([orphan.Uuid!], acks.ToArray());
        Assert.Empty(Drain(_state.FindAgent(agentId)!));
        Assert.Equal("orphan.1", Assert.Single(_state.GetAgent(agentId)!.UnknownTasks).Id);
    }

    [Fact]
    public void Submit_ManyEnded_CompletedTasksBounded()
    {
        var ids = Enumerable.Range(0, 5).Select(_ => _state.Submit(Build.Task()).View.Id).ToList();
        ids.ForEach(id => _state.Kill(id));

        Assert.Null(_state.GetTask(ids[0]));
        Assert.NotNull(_state.GetTask(ids[4]));
        Assert.Equal(3, _state.TaskCountsByState()[TaskState.Killed]);
    }

    [Fact]
    public void Register_SameIdAgain_KeepsLedger()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        _state.Submit(Build.Task(cpus: 1));
        _loop.RunPass();

        var again = _state.Register(Build.Agent(id: agentId)).Registered;

        Assert.Equal(agentId, again.AgentId);
        Assert.Equal(1m, _state.GetAgent(agentId)!.Used.Cpus);
        Assert.Single(_state.ListAgents());
    }

    private static readonly TimeSpan Grace = TimeSpan.FromMinutes(15);

    private static bool IsKillOf(AgentCommand c, string taskId) => c.Type == AgentCommandType.Kill && c.Kill!.TaskId == taskId;

    private static AgentRegistration Reporting(AgentRegistration agent, params string[] taskIds) =>
        agent with { Tasks = [.. taskIds.Select(id => new TaskStatus { TaskId = id, State = TaskState.Running })] };

    [Fact]
    public void Register_NewAgentWithUnknownTasks_KeptUntilTheGraceThenKilledAndReported()
    {
        var logs = new CapturingLogger<ClusterState>();
        var state = new ClusterState(_options, _time, logs, MasterJournal.None);
        var metrics = new MasterMetrics(state);
        var agentId = state.Register(Reporting(Build.Agent(id: "agent-a"), "web.1", "web.2")).Registered.AgentId;
        var agent = state.FindAgent(agentId)!;
        var firstSeen = _time.GetUtcNow();

        // Reported, not killed: on the agent's view, in the gauge, one warning per task.
        Assert.Empty(Drain(agent));
        var unknown = state.GetAgent(agentId)!.UnknownTasks;
        Assert.Equal(["web.1", "web.2"], unknown.Select(u => u.Id).Order().ToArray());
        Assert.All(unknown, u => Assert.Equal((firstSeen, firstSeen + Grace, false), (u.FirstSeenAt, u.KillAt, u.KillSent)));
        Assert.Contains("drover_unknown_tasks 2\n", metrics.Render(), StringComparison.Ordinal);
        Assert.Equal(2, logs.Lines.Count(l => l.Contains("has no record of", StringComparison.Ordinal)));

        // Heartbeats through the grace change nothing (and warn no more).
        for (var minute = 1; minute < Grace.TotalMinutes; minute++)
        {
            _time.Advance(TimeSpan.FromMinutes(1));
            Assert.True(state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = ["web.1", "web.2"] }));
        }

        Assert.Empty(Drain(agent));
        Assert.Equal(2, logs.Lines.Count(l => l.Contains("has no record of", StringComparison.Ordinal)));

        // Past the grace: killed, one log line per task, counted; re-sent only after CommandResendAfter.
        _time.Advance(TimeSpan.FromMinutes(1));
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = ["web.1", "web.2"] });
        Assert.Equal(["web.1", "web.2"], Drain(agent).Where(c => c.Type == AgentCommandType.Kill).Select(c => c.Kill!.TaskId).Order().ToArray());
        Assert.Equal(2, logs.Lines.Count(l => l.Contains("still unknown to this master", StringComparison.Ordinal)));
        Assert.Contains("drover_reconciliation_kills_total{reason=\"unknown\"} 2\n", metrics.Render(), StringComparison.Ordinal);
        Assert.All(state.GetAgent(agentId)!.UnknownTasks, u => Assert.True(u.KillSent));
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = ["web.1", "web.2"] });
        Assert.Empty(Drain(agent));
        _time.Advance(_options.CommandResendAfter);
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = ["web.1", "web.2"] });
        Assert.Equal(2, Drain(agent).Count);

        // Once the agent no longer lists them, they are forgotten.
        state.Heartbeat(agentId, new AgentHeartbeat());
        Assert.Empty(state.GetAgent(agentId)!.UnknownTasks);
        Assert.Contains("drover_unknown_tasks 0\n", metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Heartbeat_TaskRecordedEndedButStillReported_KilledOnceTheAckWindowPassedAndRateLimited()
    {
        var logs = new CapturingLogger<ClusterState>();
        var state = new ClusterState(_options, _time, logs, MasterJournal.None);
        var loop = new SchedulingLoop(state, new MasterMetrics(state), _options, _time, NullLogger<SchedulingLoop>.Instance);
        var agentId = state.Register(Build.Agent()).Registered.AgentId;
        var agent = state.FindAgent(agentId)!;
        var task = state.Submit(Build.Task()).View;
        loop.RunPass();
        state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });
        Drain(agent);

        // A forged (or mistaken) terminal update: the master records the task ended, the agent still runs it.
        state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Finished, exitCode: 0)] });
        Assert.Equal(TaskState.Finished, state.GetTask(task.Id)!.State);

        // Within the acknowledgement window a listing is no proof it still runs.
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] });
        Assert.Empty(Drain(agent));

        _time.Advance(_options.CommandResendAfter);
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] });
        Assert.True(IsKillOf(Assert.Single(Drain(agent)), task.Id));
        Assert.Single(logs.Lines, l => l.Contains("record says ended TASK_FINISHED", StringComparison.Ordinal));
        Assert.Equal(1, state.ReconciliationCounts().StrayKilled);

        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] });
        Assert.Empty(Drain(agent)); // rate-limited
        _time.Advance(_options.CommandResendAfter);
        state.Heartbeat(agentId, new AgentHeartbeat { ActiveTaskIds = [task.Id] });
        Assert.True(IsKillOf(Assert.Single(Drain(agent)), task.Id)); // re-sent, counted and logged once
        Assert.Equal(1, state.ReconciliationCounts().StrayKilled);
        Assert.Empty(state.GetAgent(agentId)!.UnknownTasks);
    }

    [Fact]
    public void ApplyUpdates_RunningUpdateForTaskRecordedEnded_KilledOnceALateUpdateIsRuledOut()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var agent = _state.FindAgent(agentId)!;
        var task = _state.Submit(Build.Task()).View;
        _loop.RunPass();
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Finished, exitCode: 0)] });
        Drain(agent);

        // Just after the end, a non-terminal update may be one sent before it: no kill yet.
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });
        Assert.Empty(Drain(agent));

        _time.Advance(_options.CommandResendAfter);
        _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });

        Assert.True(IsKillOf(Assert.Single(Drain(agent)), task.Id));
        Assert.Equal(TaskState.Finished, _state.GetTask(task.Id)!.State);
    }

    [Fact]
    public void Heartbeat_TaskTheMasterHasOnAnotherAgent_KilledOnTheReportingAgentOnly()
    {
        Assert.True(Constraint.TryParse("hostname:IS:host1", out var onA, out _));
        var a = _state.Register(Build.Agent("host1")).Registered.AgentId;
        var b = _state.Register(Build.Agent("host2")).Registered.AgentId;
        var task = _state.Submit(Build.Task(constraints: [onA!])).View;
        _loop.RunPass();
        _state.ApplyUpdates(a, new StatusUpdateBatch { Updates = [Build.Status(task.Id, TaskState.Running)] });
        Drain(_state.FindAgent(a)!);

        _state.Heartbeat(b, new AgentHeartbeat { ActiveTaskIds = [task.Id] });

        Assert.True(IsKillOf(Assert.Single(Drain(_state.FindAgent(b)!)), task.Id));
        Assert.Empty(Drain(_state.FindAgent(a)!));
        Assert.Equal((TaskState.Running, a), (_state.GetTask(task.Id)!.State, _state.GetTask(task.Id)!.AgentId));
    }

    [Fact]
    public void Register_RecoverFromAgents_AsksForLaunchesThenAdoptsRecordsChargesTheLedgerAndKillsNothing()
    {
        var options = _options with { RecoverFromAgents = true };
        var state = new ClusterState(options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        var metrics = new MasterMetrics(state);
        var web = Build.Task(id: "web.1", cpus: 1, memMiB: 128, ports: 1) with { AppId = "/web", AppVersion = "2026-01-01T00:00:00.000Z", Group = "/web" };
        var job = Build.Task(id: "job.1", cpus: 0.5m);
        var registration = Reporting(Build.Agent(id: "agent-a"), web.Id, job.Id);
        var views = new List<TaskView>();
        state.TaskChanged += views.Add;

        // An ordinary registration carries ids only: a recovering master asks for the launches.
        var first = state.Register(registration).Registered;
        Assert.True(first.SendLaunches);
        Assert.Empty(Drain(state.FindAgent("agent-a")!));

        var second = state.Register(registration with { Launches = [new LaunchTask { Task = web, Ports = [31005] }, new LaunchTask { Task = job }] }).Registered;

        Assert.False(second.SendLaunches);
        Assert.Empty(Drain(state.FindAgent("agent-a")!));
        var tasks = state.ListTasks();
        Assert.Equal([(job.Id, TaskState.Running, "agent-a"), (web.Id, TaskState.Running, "agent-a")],
            tasks.Select(t => (t.Id, t.State, t.AgentId)).OrderBy(t => t.Id, StringComparer.Ordinal).ToArray());
        var adoptedWeb = state.GetTask(web.Id)!;
        Assert.Equal([31005], adoptedWeb.Ports.ToArray());
        Assert.Equal(("/web", web.AppVersion), (adoptedWeb.AppId, adoptedWeb.AppVersion));
        Assert.Equal(1, state.SummarizeGroup("/web").Running);
        var agentView = state.GetAgent("agent-a")!;
        Assert.Equal((1.5m, 128 + 32L, 2), (agentView.Used.Cpus, agentView.Used.Mem, agentView.ActiveTasks));
        Assert.Empty(agentView.UnknownTasks);
        Assert.Equal(2, views.Count(v => v.State == TaskState.Running));
        Assert.Contains("drover_tasks_adopted_total 2\n", metrics.Render(), StringComparison.Ordinal);

        // Heartbeats now reconcile them as the master's own; a kill goes through the ordinary path.
        _time.Advance(TimeSpan.FromMinutes(30));
        state.Heartbeat("agent-a", new AgentHeartbeat { ActiveTaskIds = [web.Id, job.Id] });
        Assert.Empty(Drain(state.FindAgent("agent-a")!));
        Assert.Equal(TaskState.Running, state.GetTask(job.Id)!.State);
    }

    [Fact]
    public void Register_RecoverFromAgentsAfterTheWindow_UnknownTasksWaitOutTheGrace()
    {
        var state = new ClusterState(_options with { RecoverFromAgents = true }, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _time.Advance(_options.AgentUnreachableTimeout);
        var job = Build.Task(id: "job.1");

        var registered = state.Register(Reporting(Build.Agent(id: "agent-a"), job.Id) with { Launches = [new LaunchTask { Task = job }] }).Registered;

        Assert.False(registered.SendLaunches);
        Assert.Null(state.GetTask(job.Id));
        Assert.Equal(job.Id, Assert.Single(state.GetAgent("agent-a")!.UnknownTasks).Id);
        Assert.Empty(Drain(state.FindAgent("agent-a")!));
    }

    [Fact]
    public void Register_WithoutRecoverFromAgents_LaunchesAreIgnoredAndNotKeptInTheAgentInfo()
    {
        var job = Build.Task(id: "job.1");

        var registered = _state.Register(Reporting(Build.Agent(id: "agent-a"), job.Id) with { Launches = [new LaunchTask { Task = job }] }).Registered;

        Assert.False(registered.SendLaunches);
        Assert.Null(_state.GetTask(job.Id));
        Assert.Null(_state.FindAgent("agent-a")!.Info.Launches);
    }
}

/// <summary>Keeps every formatted log line, for tests that check what is reported.</summary>
internal sealed class CapturingLogger<T> : Microsoft.Extensions.Logging.ILogger<T>
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines)
        {
            _lines.Add(formatter(state, exception));
        }
    }
}
