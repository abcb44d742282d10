using System.Collections.Immutable;
using System.Text;
using Drover.Agent.Execution;
using Drover.Agent.Executors;
using Drover.Cli.Hosting;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Drover.Master.State;
using Drover.Testing;
using Drover.Testing.Executors;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Executors;

/// <summary>
/// Custom executors end to end: a real master and agent in this process, the agent starting a real
/// Python executor (tests/Drover.Testing/Executors/echo_executor.py) in its own cgroup, which speaks
/// <c>/api/v1/executor</c> to the agent. Needs root (cgroups) and python3.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed partial class CustomExecutorTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const string FrameworkId = "fw-test-0001";
    private InProcessCluster? _cluster;
    private RunningHost? _agent;

    private ClusterState State => _cluster!.Master.Services.GetRequiredService<ClusterState>();

    private ExecutorManager Executors => (ExecutorManager)_agent!.Services.GetRequiredService<ITaskExecutor>();

    private string AgentId => _agent!.Agent!.AgentId!;

    private async Task<bool> StartAsync(ExecutorManagerOptions? options = null, bool killTasksOnStop = true)
    {
        if (!Requirements.RootAvailable())
        {
            return false;
        }

        _cluster = await InProcessCluster.StartAsync();
        _agent = await _cluster.AddAgentAsync("exec-host", TestPorts.Resources(), executors: options ?? new ExecutorManagerOptions(),
            killTasksOnStop: killTasksOnStop);
        return true;
    }

    // Each test starts its own cluster (with its own executor settings) in StartAsync.
    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    private static ExecutorSpec Echo(string executorId = "echo") => new()
    {
        ExecutorId = executorId,
        FrameworkId = FrameworkId,
        Name = "echo executor",
        Args = TestExecutors.EchoExecutorArgs,
        Resources = Resources.Of(cpus: 0.1m, memMiB: 64),
    };

    private string Submit(string data, ExecutorSpec? executor = null, TimeSpan? killGrace = null)
    {
        var id = Ids.NewTaskId("exec-task");
        State.Submit(new TaskSpec
        {
            Id = id,
            Name = "exec-task",
            Resources = Resources.Of(cpus: 0.1m, memMiB: 32),
            Group = id,
            FrameworkId = FrameworkId,
            Executor = executor ?? Echo(),
            Data = Convert.ToBase64String(Encoding.UTF8.GetBytes(data)),
            KillGracePeriod = killGrace ?? TaskSpec.DefaultKillGracePeriod,
        });
        return id;
    }

    private Task<TaskView> WaitForState(string id, TaskState state) =>
        Wait.UntilAsync(() => _cluster!.Client.GetTaskAsync(id), t => t.State == state || (t.State.IsTerminal() && !state.IsTerminal()),
            Timeout, $"task {id} to be {state.WireName()}", describe: t => $"{t.State.WireName()} {t.Reason} {t.Message}");

    private async Task<string[]> WaitForEvents(string taskId, Func<string[], bool> done, string what) =>
        await Wait.UntilAsync(() => Task.FromResult(ReadEvents(taskId)), done, Timeout, what, describe: e => string.Join(" | ", e));

    /// <summary>Speaks for the executor of <paramref name="taskId"/> (one running <see cref="RawExecutor.SilentArgs"/>), with the token the agent gave it.</summary>
    private async Task<RawExecutor> RawAsync(string taskId, string executorId = "manual") =>
        new(_agent!.Url, FrameworkId, executorId, await RawExecutor.ReadTokenAsync(() => Executors.SandboxPath(taskId)));

    private string[] ReadEvents(string taskId)
    {
        var sandbox = Executors.SandboxPath(taskId);
        var path = sandbox is null ? null : Path.Combine(sandbox, "events.log");
        return path is not null && File.Exists(path) ? File.ReadAllLines(path) : [];
    }

    [Fact]
    public async Task Launch_ExecutorFinishesTask_RunningThenFinishedAndBothAcknowledged()
    {
        if (!await StartAsync())
        {
            return;
        }

        var id = Submit("finish");

        var done = await WaitForState(id, TaskState.Finished);

        Assert.Equal(TaskState.Finished, done.State);
        var fromExecutor = done.Statuses.Where(s => s.Source == TaskSources.Executor).ToList();
        Assert.Equal([TaskState.Running, TaskState.Finished], fromExecutor.Select(s => s.State));
        Assert.All(fromExecutor, s => Assert.Equal("echo", s.ExecutorId));
        Assert.Equal("done", done.Message);
        // The executor was started with the Mesos environment, subscribed, got LAUNCH with the task's data,
        // and both its updates were acknowledged (each with the uuid it sent, now the update's uuid at the master).
        var events = await WaitForEvents(id, e => e.Count(l => l.StartsWith("ACKNOWLEDGED", StringComparison.Ordinal)) == 2, "both updates acknowledged");
        Assert.StartsWith("SUBSCRIBED echo ", events[0], StringComparison.Ordinal);
        Assert.Contains($"LAUNCH {id} finish", events);
        foreach (var status in fromExecutor)
        {
            Assert.Contains($"ACKNOWLEDGED {id} {status.Uuid}", events);
        }
    }

    [Fact]
    public async Task SubmitTask_ApiWithExecutor_FinishedByTheExecutor()
    {
        if (!await StartAsync())
        {
            return;
        }

        var submitted = await _cluster!.Client.SubmitTaskAsync(new TaskSubmission
        {
            Name = "via-api",
            Data = Convert.ToBase64String(Encoding.UTF8.GetBytes("finish")),
            Executor = new ExecutorSubmission
            {
                ExecutorId = "api-echo",
                FrameworkId = FrameworkId,
                Args = TestExecutors.EchoExecutorArgs,
            },
        });

        var done = await WaitForState(submitted.Id, TaskState.Finished);
        Assert.Equal("api-echo", done.Statuses[^1].ExecutorId);
        Assert.Contains($"LAUNCH {submitted.Id} finish", ReadEvents(submitted.Id));
    }

    [Fact]
    public async Task SendToExecutor_RunningExecutor_MessageEchoedToMasterThenKillEndsTaskKilled()
    {
        if (!await StartAsync())
        {
            return;
        }

        var echoed = new TaskCompletionSource<(string Agent, FrameworkMessage Message)>(TaskCreationOptions.RunContinuationsAsynchronously);
        State.FrameworkMessageReceived += (agent, message) => echoed.TrySetResult((agent, message));
        var id = Submit("run");
        await WaitForState(id, TaskState.Running);

        var payload = Convert.ToBase64String(Encoding.UTF8.GetBytes("ping from the scheduler"));
        Assert.True(State.SendToExecutor(AgentId, new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "echo", Data = payload }));
        var (agentId, message) = await echoed.Task.WaitAsync(Timeout);

        Assert.Equal(AgentId, agentId);
        Assert.Equal(new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "echo", Data = payload }, message);
        Assert.Contains("MESSAGE ping from the scheduler", ReadEvents(id));

        await _cluster!.Client.KillTaskAsync(id);
        var killed = await WaitForState(id, TaskState.Killed);
        Assert.Equal("killed by the executor", killed.Message);
        Assert.Equal(TaskSources.Executor, killed.Statuses[^1].Source);
        Assert.Contains($"KILL {id}", ReadEvents(id));
    }

    [Fact]
    public async Task Launch_TwoTasksOneExecutor_ExecutorCrash_BothFailedExecutorTerminated()
    {
        if (!await StartAsync())
        {
            return;
        }

        var first = Submit("run");
        await WaitForState(first, TaskState.Running);
        var container = Executors.ContainerOf(FrameworkId, "echo");
        Assert.NotNull(container);

        var second = Submit("crash");

        var a = await WaitForState(first, TaskState.Failed);
        var b = await WaitForState(second, TaskState.Failed);
        Assert.Equal(TaskReasons.ExecutorTerminated, a.Reason);
        Assert.Equal(TaskReasons.ExecutorTerminated, b.Reason);
        Assert.Contains("Command exited with status 3", a.Message, StringComparison.Ordinal);
        // One executor ran both: a single subscription, two launches.
        var events = ReadEvents(first);
        Assert.Single(events, l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal));
        Assert.Contains($"LAUNCH {second} crash", events);
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "echo")), c => c is null, Timeout, "the executor to be gone");
    }

    [Fact]
    public async Task Launch_ExecutorNeverSubscribes_TaskFailsWithRegistrationTimeoutAndExecutorKilled()
    {
        if (!await StartAsync(new ExecutorManagerOptions { RegistrationTimeout = TimeSpan.FromSeconds(1) }))
        {
            return;
        }

        var silent = Echo("silent") with { Args = ["sleep", "600"] };
        var id = Submit("finish", silent);

        var failed = await WaitForState(id, TaskState.Failed);

        Assert.Equal(ExecutorManager.ReasonRegistrationTimeout, failed.Reason);
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "silent")), c => c is null, Timeout, "the silent executor to be killed");
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerIds), c => c.Count == 0, Timeout, "the container to be cleaned up");
    }

    [Fact]
    public async Task Kill_ExecutorIgnoresKill_AgentKillsExecutorAndTaskEndsKilled()
    {
        if (!await StartAsync(new ExecutorManagerOptions { KillMargin = TimeSpan.FromMilliseconds(500) }))
        {
            return;
        }

        var id = Submit("run ignore-kill", killGrace: TimeSpan.FromMilliseconds(500));
        await WaitForState(id, TaskState.Running);

        await _cluster!.Client.KillTaskAsync(id);
        var killed = await WaitForState(id, TaskState.Killed);

        Assert.Equal(TaskReasons.ExecutorTerminated, killed.Reason);
        Assert.Equal(TaskSources.Agent, killed.Statuses[^1].Source);
        Assert.Contains($"KILL {id}", ReadEvents(id));
    }

    [Fact]
    public async Task ShutdownExecutor_Subscribed_ShutdownEventTasksKilledExecutorExits()
    {
        if (!await StartAsync())
        {
            return;
        }

        var id = Submit("run");
        await WaitForState(id, TaskState.Running);

        Assert.True(State.SendToExecutor(AgentId, new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "echo" }, AgentCommandType.ShutdownExecutor));

        var killed = await WaitForState(id, TaskState.Killed);
        Assert.Equal("executor shut down", killed.Message);
        Assert.Contains("SHUTDOWN", ReadEvents(id));
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "echo")), c => c is null, Timeout, "the executor to exit");
    }

    [Fact]
    public async Task ExecutorCalls_Invalid_AnsweredAsMesos()
    {
        if (!await StartAsync())
        {
            return;
        }

        // An executor that never subscribes by itself: the test speaks for it, with its token.
        var id = Submit("run", Echo("manual") with { Args = RawExecutor.SilentArgs });
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "manual")), c => c is not null, Timeout, "the executor to start");
        using var raw = await RawAsync(id);

        Assert.Equal((415, "Expecting 'Content-Type' of application/json or application/x-protobuf"),
            await raw.PostAsync("{}", "text/plain"));
        Assert.Equal((400, "Failed to validate Executor::Call: Expecting 'type' to be present"),
            await raw.PostAsync("""{"framework_id":{"value":"x"},"executor_id":{"value":"y"}}"""));
        Assert.Equal(400, (await raw.PostAsync("{not json")).Status);
        // Ids other than the token's are refused whether or not such an executor exists (Mesos looks first, then answers
        // the same 403 for an existing one); "cannot be found" is left for a token whose own executor is gone.
        Assert.Equal((403, "Authenticated principal does not contain an 'fid' claim with the framework ID other, which is set in the call"),
            await raw.PostAsync("""{"type":"MESSAGE","framework_id":{"value":"other"},"executor_id":{"value":"manual"},"message":{"data":""}}"""));
        Assert.Equal((403, "Authenticated principal does not contain an 'eid' claim with the executor ID nope, which is set in the call"),
            await raw.PostAsync("""{"type":"MESSAGE","framework_id":{"value":"fw-test-0001"},"executor_id":{"value":"nope"},"message":{"data":""}}"""));
        Assert.Equal((403, "Executor is not subscribed"), await raw.CallAsync("UPDATE", raw.Update(id, "TASK_RUNNING", RawExecutor.NewUuid())));
        Assert.Equal((400, "Failed to validate Executor::Call: Expecting 'uuid' to be present"),
            await raw.CallAsync("UPDATE", "{\"status\":{\"task_id\":{\"value\":\"" + id + "\"},\"state\":\"TASK_RUNNING\",\"source\":\"SOURCE_EXECUTOR\"}}"));
        Assert.Equal((400, "Failed to validate Executor::Call: Received TASK_STAGING from executor manual which is not allowed"),
            await raw.CallAsync("UPDATE", raw.Update(id, "TASK_STAGING", RawExecutor.NewUuid())));
        Assert.Equal((202, ""), await raw.CallAsync("HEARTBEAT", null));
    }

    [Fact]
    public async Task Subscribe_IdleStream_HeartbeatEventsAtTheInterval()
    {
        if (!await StartAsync(new ExecutorManagerOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(200) }))
        {
            return;
        }

        var id = Submit("one", Echo("manual") with { Args = RawExecutor.SilentArgs });
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "manual")), c => c is not null, Timeout, "the executor to start");
        using var raw = await RawAsync(id);
        await using var stream = await raw.SubscribeAsync("{}");

        Assert.Equal("SUBSCRIBED", (await stream.NextAsync(skipHeartbeats: false)).Type);
        Assert.Equal("LAUNCH", (await stream.NextAsync(skipHeartbeats: false)).Type);
        Assert.Equal("HEARTBEAT", (await stream.NextAsync(skipHeartbeats: false)).Type);
        Assert.Equal("HEARTBEAT", (await stream.NextAsync(skipHeartbeats: false)).Type);
    }

    [Fact]
    public async Task Subscribe_AgainWithUnacknowledgedUpdate_ReacknowledgedNotReappliedAndQueuedTaskLaunched()
    {
        if (!await StartAsync())
        {
            return;
        }

        var first = Submit("one", Echo("manual") with { Args = RawExecutor.SilentArgs });
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "manual")), c => c is not null, Timeout, "the executor to start");
        using var raw = await RawAsync(first);
        var uuid = RawExecutor.NewUuid();

        await using (var stream = await raw.SubscribeAsync("{}"))
        {
            var subscribed = await stream.NextAsync();
            Assert.Equal("SUBSCRIBED", subscribed.Type);
            Assert.Equal("manual", subscribed.Json.GetProperty("subscribed").GetProperty("executor_info").GetProperty("executor_id").GetProperty("value").GetString());
            Assert.Equal(AgentId, subscribed.Json.GetProperty("subscribed").GetProperty("agent_info").GetProperty("id").GetProperty("value").GetString());
            var launch = await stream.NextAsync();
            Assert.Equal("LAUNCH", launch.Type);
            var task = launch.Json.GetProperty("launch").GetProperty("task");
            Assert.Equal(first, task.GetProperty("task_id").GetProperty("value").GetString());
            Assert.Equal("b25l", task.GetProperty("data").GetString()); // "one"

            Assert.Equal(202, (await raw.CallAsync("UPDATE", raw.Update(first, "TASK_RUNNING", uuid))).Status);
            var ack = await stream.NextAsync();
            Assert.Equal("ACKNOWLEDGED", ack.Type);
            Assert.Equal(uuid, ack.Json.GetProperty("acknowledged").GetProperty("uuid").GetString());
            await WaitForState(first, TaskState.Running);
        }

        // The executor "missed" that ACKNOWLEDGED: it disconnected, and re-sends the update when it subscribes
        // again. Meanwhile a second task arrived for it; it waits in the agent's queue.
        var second = Submit("two", Echo("manual") with { Args = RawExecutor.SilentArgs });
        await Wait.UntilAsync(() => _cluster!.Client.GetTaskAsync(second), t => t.State == TaskState.Staging, Timeout, "the second task to reach the agent");
        var resent = uuid;
        var resubscribe = "{\"unacknowledged_tasks\":[{\"name\":\"exec-task\",\"task_id\":{\"value\":\"" + first + "\"}}],"
            + "\"unacknowledged_updates\":[" + raw.Update(first, "TASK_RUNNING", resent) + "]}";
        await using (var stream = await raw.SubscribeAsync(resubscribe))
        {
            Assert.Equal("SUBSCRIBED", (await stream.NextAsync()).Type);
            var ack = await stream.NextAsync();
            Assert.Equal("ACKNOWLEDGED", ack.Type);
            Assert.Equal(resent, ack.Json.GetProperty("acknowledged").GetProperty("uuid").GetString());
            var launch = await stream.NextAsync();
            Assert.Equal("LAUNCH", launch.Type);
            Assert.Equal(second, launch.Json.GetProperty("launch").GetProperty("task").GetProperty("task_id").GetProperty("value").GetString());

            Assert.Equal(202, (await raw.CallAsync("UPDATE", raw.Update(first, "TASK_FINISHED", RawExecutor.NewUuid()))).Status);
            var done = await WaitForState(first, TaskState.Finished);
            Assert.Single(done.Statuses, s => s.State == TaskState.Running && s.Source == TaskSources.Executor);
        }
    }

    private static string Text(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    [Fact]
    public async Task AgentRestart_ExecutorWithRunningTask_SameProcessResubscribesTaskKeepsRunningMessageAndKillWork()
    {
        // The agent stops without killing anything (as `drover agent` does); the executor (MESOS_CHECKPOINT=1) retries.
        if (!await StartAsync(new ExecutorManagerOptions { ReregistrationTimeout = TimeSpan.FromSeconds(5), SubscriptionBackoffMax = TimeSpan.FromMilliseconds(500) },
            killTasksOnStop: false))
        {
            return;
        }

        var id = Submit("run");
        await WaitForState(id, TaskState.Running);
        var container = Executors.ContainerOf(FrameworkId, "echo");
        var before = await WaitForEvents(id, e => e.Any(l => l.StartsWith($"ACKNOWLEDGED {id} ", StringComparison.Ordinal)), "TASK_RUNNING to be acknowledged");
        var firstSubscription = Assert.Single(before, l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal));
        Assert.Contains($" {container} pid=", firstSubscription, StringComparison.Ordinal);

        _agent = await _cluster!.RestartAgentAsync(_agent!);

        // The same executor process (same container, same pid) subscribed to the new agent process.
        var after = await WaitForEvents(id, e => e.Count(l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal)) == 2, "the executor to subscribe again");
        Assert.Equal([firstSubscription, firstSubscription], after.Where(l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal)));
        Assert.Equal(container, Executors.ContainerOf(FrameworkId, "echo"));
        Assert.Contains(Executors.LiveExecutors, e => e.ContainerId == container && e.Executor.ExecutorId == "echo");
        Assert.Equal(TaskState.Running, (await _cluster.Client.GetTaskAsync(id)).State);
        Assert.Equal($"LAUNCH {id} run", Assert.Single(after, l => l.StartsWith("LAUNCH", StringComparison.Ordinal))); // not launched again

        // A scheduler message still round-trips through the new agent process.
        var echoed = new TaskCompletionSource<FrameworkMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        State.FrameworkMessageReceived += (_, message) => echoed.TrySetResult(message);
        Assert.True(State.SendToExecutor(AgentId, new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "echo", Data = Text("after the restart") }));
        Assert.Equal(Text("after the restart"), (await echoed.Task.WaitAsync(Timeout)).Data);

        // And a kill reaches the executor, which ends the task itself.
        await _cluster.Client.KillTaskAsync(id);
        var killed = await WaitForState(id, TaskState.Killed);
        Assert.Equal("killed by the executor", killed.Message);
        Assert.Equal(TaskSources.Executor, killed.Statuses[^1].Source);
        Assert.DoesNotContain(killed.Statuses, s => s.State is TaskState.Failed or TaskState.Lost or TaskState.Dropped);
        Assert.Single(killed.Statuses, s => s.State == TaskState.Running && s.Source == TaskSources.Executor);
        Assert.Equal(container, Executors.ContainerOf(FrameworkId, "echo")); // the executor itself keeps running
    }

    [Fact]
    public async Task AgentRestart_ExecutorDoesNotResubscribe_KilledAfterTimeoutTaskFailsWithReregistrationTimeout()
    {
        if (!await StartAsync(new ExecutorManagerOptions { ReregistrationTimeout = TimeSpan.FromSeconds(1) }, killTasksOnStop: false))
        {
            return;
        }

        var id = Submit("run");
        await WaitForState(id, TaskState.Running);
        Assert.True(State.SendToExecutor(AgentId, new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "echo", Data = Text("no-reconnect") }));
        await WaitForEvents(id, e => e.Contains("MESSAGE no-reconnect"), "the executor to be told not to reconnect");

        _agent = await _cluster!.RestartAgentAsync(_agent!);

        var failed = await WaitForState(id, TaskState.Failed);
        Assert.Equal(ExecutorManager.ReasonReregistrationTimeout, failed.Reason);
        Assert.Contains("did not re-subscribe within 1 s", failed.Message, StringComparison.Ordinal);
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerIds), c => c.Count == 0, Timeout, "the silent executor to be killed");
        Assert.Null(Executors.ContainerOf(FrameworkId, "echo"));
        // Its exit was reported (the master acknowledged it, so it is no longer listed), and it never subscribed again.
        await Wait.UntilAsync(() => Task.FromResult(Executors.LiveExecutors), l => l.Count == 0, Timeout, "the executor's exit to be acknowledged");
        var events = ReadEvents(id);
        Assert.Contains("STAYING-SILENT", events);
        Assert.Single(events, l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal));
    }

    /// <summary>Launches a task group on the agent through the master's offer path (as an ACCEPT with LAUNCH_GROUP does).</summary>
    private string[] LaunchGroup(ExecutorSpec executor, params string[] data)
    {
        var ids = data.Select(_ => Ids.NewTaskId("group-task")).ToArray();
        var launches = ids.Select((id, i) => new OfferLaunch(new TaskSpec
        {
            Id = id,
            Name = "group-task",
            Resources = Resources.Of(cpus: 0.1m, memMiB: 32),
            FrameworkId = FrameworkId,
            Executor = executor,
            Data = Convert.ToBase64String(Encoding.UTF8.GetBytes(data[i])),
            TaskGroupId = ids[0],
        }, [])).ToList();
        _ = State.LaunchFromOffer(AgentId, Resources.Zero, launches, TaskState.Lost);
        return ids;
    }

    private static string[] GroupTaskIds((string Type, System.Text.Json.JsonElement Json) e)
    {
        Assert.Equal("LAUNCH_GROUP", e.Type);
        return [.. e.Json.GetProperty("launch_group").GetProperty("task_group").GetProperty("tasks").EnumerateArray()
            .Select(t => t.GetProperty("task_id").GetProperty("value").GetString()!)];
    }

    [Fact]
    public async Task LaunchGroup_ExecutorSubscribesAndResubscribes_WholeGroupInOneLaunchGroupEachTime()
    {
        if (!await StartAsync())
        {
            return;
        }

        var ids = LaunchGroup(Echo("manual") with { Args = RawExecutor.SilentArgs }, "one", "two");
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "manual")), c => c is not null, Timeout, "the executor to start");
        using var raw = await RawAsync(ids[0]);
        await using (var stream = await raw.SubscribeAsync("{}"))
        {
            Assert.Equal("SUBSCRIBED", (await stream.NextAsync()).Type);
            var group = await stream.NextAsync();
            Assert.Equal(ids, GroupTaskIds(group));
            Assert.Equal(["b25l", "dHdv"], group.Json.GetProperty("launch_group").GetProperty("task_group").GetProperty("tasks").EnumerateArray()
                .Select(t => t.GetProperty("data").GetString()!).ToArray()); // "one", "two"
        }

        // Lost on the broken stream (the executor knows neither): the group again, whole, as one event.
        await using (var stream = await raw.SubscribeAsync("{}"))
        {
            Assert.Equal("SUBSCRIBED", (await stream.NextAsync()).Type);
            Assert.Equal(ids, GroupTaskIds(await stream.NextAsync()));
        }

        // The executor knows the first: only the second is launched again, still as a LAUNCH_GROUP.
        var resubscribe = "{\"unacknowledged_tasks\":[{\"name\":\"group-task\",\"task_id\":{\"value\":\"" + ids[0] + "\"}}]}";
        await using (var stream = await raw.SubscribeAsync(resubscribe))
        {
            Assert.Equal("SUBSCRIBED", (await stream.NextAsync()).Type);
            Assert.Equal([ids[1]], GroupTaskIds(await stream.NextAsync()));
            foreach (var id in ids)
            {
                Assert.Equal(202, (await raw.CallAsync("UPDATE", raw.Update(id, "TASK_RUNNING", RawExecutor.NewUuid()))).Status);
            }

            foreach (var id in ids)
            {
                await WaitForState(id, TaskState.Running);
            }
        }
    }

    [Fact]
    public async Task LaunchGroup_KillOfAQueuedTask_WholeGroupKilledBeforeDelivery()
    {
        if (!await StartAsync())
        {
            return;
        }

        var ids = LaunchGroup(Echo("silent") with { Args = ["sleep", "600"] }, "one", "two");
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "silent")), c => c is not null, Timeout, "the executor to start");
        await WaitForState(ids[1], TaskState.Staging);

        State.Kill(ids[0], "test", TaskReasons.TaskKilledDuringLaunch);

        var sibling = await WaitForState(ids[1], TaskState.Killed);
        Assert.Equal(TaskReasons.TaskKilledDuringLaunch, sibling.Reason);
        Assert.Equal(TaskState.Killed, (await WaitForState(ids[0], TaskState.Killed)).State);
    }
}
