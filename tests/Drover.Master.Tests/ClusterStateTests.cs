using Drover.Core;
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
    public void ApplyUpdates_UnknownRunningTask_AcknowledgedAndKilled()
    {
        var agentId = _state.Register(Build.Agent()).Registered.AgentId;
        var orphan = Build.Status("orphan.1", TaskState.Running);

        var acks = _state.ApplyUpdates(agentId, new StatusUpdateBatch { Updates = [orphan] }).Acks;

        Assert.Equal([orphan.Uuid!], acks.ToArray());
        var kill = Assert.Single(Drain(_state.FindAgent(agentId)!));
        Assert.Equal("orphan.1", kill.Kill!.TaskId);
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
}
