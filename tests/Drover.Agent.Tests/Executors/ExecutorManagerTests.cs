using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Drover.Agent.Execution;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Executors;
using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Mesos;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Executors;

/// <summary>
/// The executor manager without a master: executor processes in real cgroups, their limits, and what an
/// agent restart does to them. The executors here never subscribe by themselves (<c>sleep</c>), which keeps their
/// tasks queued; tests that need a subscribed executor subscribe and update on its behalf through the manager's calls.
/// </summary>
public sealed class ExecutorManagerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Framework = "fw-1";
    private readonly string _workDir = Path.Combine(Path.GetTempPath(), "drover-agent-tests", Guid.NewGuid().ToString("N"));
    private readonly string _cgroupName = $"drover-test/execmgr-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
    private readonly List<TaskStatus> _updates = [];
    private readonly List<(ExecutorManager Manager, Task Pump)> _managers = [];

    private ExecutorManager Start(bool killOnDispose = true, TimeSpan? reregistrationTimeout = null)
    {
        var options = new ProcessExecutorOptions
        {
            WorkDir = _workDir,
            CgroupName = _cgroupName,
            Hostname = "test-host.example",
            RequireCgroups = Privileges.UseCgroups,
            KillTasksOnDispose = killOnDispose,
        };
        var tasks = new ProcessTaskExecutor(options, NullLogger<ProcessTaskExecutor>.Instance, TimeProvider.System);
        var manager = new ExecutorManager(tasks, options, new ExecutorManagerOptions
        {
            RegistrationTimeout = TimeSpan.FromMinutes(10),
            ReregistrationTimeout = reregistrationTimeout ?? TimeSpan.FromMinutes(10),
        },
            NullLoggerFactory.Instance, TimeProvider.System);
        manager.AttachAgent(new Uri("http://127.0.0.1:5051"), () => "agent-1", "test-host.example"); // as the agent does once it serves
        _managers.Add((manager, Pump(manager)));
        return manager;
    }

    private async Task Pump(ExecutorManager manager)
    {
        await foreach (var u in manager.Updates.ReadAllAsync())
        {
            lock (_updates)
            {
                _updates.Add(u);
            }
        }
    }

    private async Task<TaskStatus> WaitForUpdate(string taskId, Func<TaskStatus, bool> match, string what)
    {
        TaskStatus? found = null;
        await Eventually.TrueAsync(() =>
        {
            lock (_updates)
            {
                return (found = _updates.FirstOrDefault(u => u.TaskId == taskId && match(u))) is not null;
            }
        }, what);
        return found!;
    }

    private static LaunchTask ExecutorTask(string executorId, long memMiB) => new()
    {
        Task = new TaskSpec
        {
            Id = Ids.NewTaskId("t"),
            Name = "t",
            Resources = Resources.Of(cpus: 0.1m, memMiB: memMiB),
            FrameworkId = Framework,
            Executor = new ExecutorSpec
            {
                ExecutorId = executorId,
                FrameworkId = Framework,
                Args = ["sleep", "600"],
                Resources = Resources.Of(cpus: 0.1m, memMiB: 64),
            },
        },
    };

    private Cgroup ContainerCgroup(string containerId) => CgroupDriver.Detect().Open($"{_cgroupName}-executors/{containerId}");

    private static long MemoryLimitMiB(Cgroup cgroup)
    {
        var file = cgroup.Directories.Select(d => Path.Combine(d, "memory.limit_in_bytes")).FirstOrDefault(File.Exists)
            ?? cgroup.Directories.Select(d => Path.Combine(d, "memory.max")).First(File.Exists);
        return long.Parse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture) / (1024 * 1024);
    }

    [Fact]
    public async Task Launch_TasksComeAndGo_ExecutorCgroupLimitIsExecutorPlusUnfinishedTasks()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        var first = ExecutorTask("sized", memMiB: 32);
        manager.Launch(first);
        var container = manager.ContainerOf(Framework, "sized")!;
        var cgroup = ContainerCgroup(container);
        Assert.Equal(64 + 32, MemoryLimitMiB(cgroup));

        var second = ExecutorTask("sized", memMiB: 100);
        manager.Launch(second);
        Assert.Equal(container, manager.ContainerOf(Framework, "sized")); // one executor for both
        Assert.Equal(64 + 32 + 100, MemoryLimitMiB(cgroup));

        // Killed while queued (the executor never subscribed): ends at once, and its share goes.
        manager.Kill(second.Task.Id);
        var killed = await WaitForUpdate(second.Task.Id, u => u.State.IsTerminal(), "the queued task to end");
        Assert.Equal(TaskState.Killed, killed.State);
        Assert.Equal(TaskReasons.TaskKilledDuringLaunch, killed.Reason);
        Assert.Equal(64 + 32, MemoryLimitMiB(cgroup));
    }

    private static LaunchTaskGroup Group(params LaunchTask[] tasks) =>
        new() { Tasks = [.. tasks.Select(t => t with { Task = t.Task with { TaskGroupId = tasks[0].Task.Id } })] };

    [Fact]
    public async Task LaunchGroup_OneExecutor_AdmittedTogetherReSendIgnoredQueuedKillEndsTheGroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        var group = Group(ExecutorTask("grouped", memMiB: 32), ExecutorTask("grouped", memMiB: 50));
        manager.LaunchGroup(group);
        var container = manager.ContainerOf(Framework, "grouped")!;
        Assert.Equal(64 + 32 + 50, MemoryLimitMiB(ContainerCgroup(container)));
        Assert.All(group.Tasks, t => Assert.Contains(t.Task.Id, manager.KnownTaskIds));

        manager.LaunchGroup(group); // re-sent by the master: nothing new
        Assert.Equal(container, manager.ContainerOf(Framework, "grouped"));

        // Not delivered yet (the executor never subscribed): a group is delivered whole, so it is killed whole.
        manager.Kill(group.Tasks[1].Task.Id);
        foreach (var t in group.Tasks)
        {
            var killed = await WaitForUpdate(t.Task.Id, u => u.State.IsTerminal(), "the queued group to end");
            Assert.Equal(TaskState.Killed, killed.State);
            Assert.Equal(TaskReasons.TaskKilledDuringLaunch, killed.Reason);
        }
    }

    [Fact]
    public async Task LaunchGroup_TasksOfDifferentExecutors_EveryTaskFailsNoExecutorStarted()
    {
        var manager = Start();
        var group = Group(ExecutorTask("one", memMiB: 32), ExecutorTask("other", memMiB: 32));

        manager.LaunchGroup(group);

        foreach (var t in group.Tasks)
        {
            var failed = await WaitForUpdate(t.Task.Id, u => u.State.IsTerminal(), "the group to fail");
            Assert.Equal(TaskState.Failed, failed.State);
            Assert.Equal(TaskReasons.TaskInvalid, failed.Reason);
        }

        Assert.Null(manager.ContainerOf(Framework, "one"));
        Assert.Null(manager.ContainerOf(Framework, "other"));
    }

    [Fact]
    public async Task Restart_ExecutorNeverSubscribed_KeptWithItsQueuedTaskAndEndedTaskNotReportedAgain()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var before = Start(killOnDispose: false);
        var launch = ExecutorTask("survivor", memMiB: 32);
        before.Launch(launch);
        var container = before.ContainerOf(Framework, "survivor")!;
        var cgroup = ContainerCgroup(container);
        var driver = CgroupDriver.Detect();
        // The shim joins the cgroup before it starts the command: wait for the command, or the snapshot may miss it.
        await Eventually.TrueAsync(() => driver.ListPids(cgroup).Any(IsSleep), "the executor process to run");
        var pids = driver.ListPids(cgroup);
        // A second task ended before the restart, its terminal update safely on disk (the agent's update log).
        var ended = ExecutorTask("survivor", memMiB: 32);
        before.Launch(ended);
        before.Kill(ended.Task.Id);
        var endedUpdate = await WaitForUpdate(ended.Task.Id, u => u.State.IsTerminal(), "the second task to end");
        before.OnDurable([endedUpdate]);
        await before.DisposeAsync(); // an agent stopped without killing: the executor keeps running

        var after = Start();

        // The same executor process, still waiting for its first SUBSCRIBE, and listed to the master.
        Assert.Equal(container, after.ContainerOf(Framework, "survivor"));
        Assert.Equal(pids, driver.ListPids(cgroup));
        Assert.Contains(after.LiveExecutors, e => e.ContainerId == container);
        Assert.Equal(64 + 32, MemoryLimitMiB(cgroup)); // its own share plus the unfinished task's
        Assert.Contains(launch.Task.Id, after.KnownTaskIds);
        Assert.Contains(ended.Task.Id, after.KnownTaskIds); // until the master acknowledges its logged update
        // The task is still queued (never sent, as the executor never subscribed): a kill ends it as such.
        after.Kill(launch.Task.Id);
        var killed = await WaitForUpdate(launch.Task.Id, u => u.State.IsTerminal(), "the queued task to be killed");
        Assert.Equal(TaskReasons.TaskKilledDuringLaunch, killed.Reason);
        lock (_updates)
        {
            Assert.Single(_updates, u => u.TaskId == launch.Task.Id);
            Assert.Single(_updates, u => u.TaskId == ended.Task.Id);
        }

        after.Forget(launch.Task.Id);
        after.Forget(ended.Task.Id);
        Assert.DoesNotContain(launch.Task.Id, after.KnownTaskIds);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_workDir, "meta", "executor-tasks")));
    }

    /// <summary>Subscribes on the executor's behalf (with its token), acknowledges nothing; returns the subscription.</summary>
    private static ExecutorSubscription Subscribe(ExecutorManager manager, ExecutorPrincipal caller, params string[] unacknowledgedTasks)
    {
        var (outcome, sub) = manager.Subscribe(caller, new ExecutorSubscribe
        {
            UnacknowledgedTasks = [.. unacknowledgedTasks.Select(id => new MTaskInfo { Name = "t", TaskId = new MId(id) })],
        });
        Assert.Equal(200, outcome.StatusCode);
        return sub!;
    }

    /// <summary>
    /// Who the executor's calls come from: the token the agent put in the executor process's environment, read there
    /// (as the executor itself does) and checked by the manager as <c>/api/v1/executor</c> checks it.
    /// </summary>
    private async Task<ExecutorPrincipal> CallerOf(ExecutorManager manager, string executorId)
    {
        var token = await EnvironmentToken(manager.ContainerOf(Framework, executorId)!);
        var authentication = await manager.Tokens.AuthenticateAsync("Bearer " + token);
        Assert.Null(authentication.Error);
        return authentication.Principal!;
    }

    private async Task<string> EnvironmentToken(string containerId)
    {
        var driver = CgroupDriver.Detect();
        var cgroup = ContainerCgroup(containerId);
        string? token = null;
        await Eventually.TrueAsync(() => (token = driver.ListPids(cgroup).Select(TokenInEnvironment).FirstOrDefault(t => t is not null)) is not null,
            "the executor process to run with its token");
        return token!;
    }

    private static bool IsSleep(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").StartsWith("sleep\0", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string? TokenInEnvironment(int pid)
    {
        const string name = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN=";
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ").Split('\0').FirstOrDefault(v => v.StartsWith(name, StringComparison.Ordinal))?[name.Length..];
        }
        catch (IOException)
        {
            return null; // the process ended meanwhile
        }
    }

    private static List<string> Drain(ExecutorSubscription sub)
    {
        var events = new List<string>();
        while (sub.Events.TryRead(out var e))
        {
            events.Add(e.Type switch
            {
                "LAUNCH" => "LAUNCH " + e.Launch!.Task!.TaskId!.Value,
                "KILL" => "KILL " + e.Kill!.TaskId!.Value,
                "ACKNOWLEDGED" => "ACKNOWLEDGED " + e.Acknowledged!.TaskId!.Value,
                _ => e.Type!,
            });
        }

        return events;
    }

    [Fact]
    public async Task Subscribe_QueuedTask_EventsKeepMesosJsonShape()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        var task = ExecutorTask("wire", memMiB: 32) with { Ports = [31005] };
        task = task with { Task = task.Task with { Executor = task.Task.Executor! with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("MODE", "fast") } } };
        manager.Launch(task);
        var sub = Subscribe(manager, await CallerOf(manager, "wire"));

        Assert.True(sub.Events.TryRead(out var subscribed));
        Assert.True(sub.Events.TryRead(out var launch));
        using var s = JsonDocument.Parse(JsonSerializer.Serialize(subscribed, ExecutorJsonContext.Default.ExecutorEvent));
        using var l = JsonDocument.Parse(JsonSerializer.Serialize(launch, ExecutorJsonContext.Default.ExecutorEvent));

        // The shapes executors (and Mesos' own JSON parsers) read: snake_case, defaults written out, nulls omitted.
        var info = s.RootElement.GetProperty("subscribed");
        var executor = info.GetProperty("executor_info");
        Assert.Equal("CUSTOM", executor.GetProperty("type").GetString());
        Assert.Equal("wire", executor.GetProperty("executor_id").GetProperty("value").GetString());
        Assert.False(executor.GetProperty("command").GetProperty("shell").GetBoolean());
        Assert.Equal("sleep", executor.GetProperty("command").GetProperty("value").GetString());
        var variable = executor.GetProperty("command").GetProperty("environment").GetProperty("variables")[0];
        Assert.Equal("""{"name":"MODE","value":"fast"}""", variable.GetRawText());
        Assert.True(executor.GetProperty("shutdown_grace_period").GetProperty("nanoseconds").GetInt64() > 0);
        Assert.False(executor.TryGetProperty("container", out _));
        var framework = info.GetProperty("framework_info");
        Assert.Equal("fw-1", framework.GetProperty("id").GetProperty("value").GetString());
        Assert.Equal("", framework.GetProperty("user").GetString()); // required in the proto: written even though unknown
        Assert.Equal("", framework.GetProperty("name").GetString());
        Assert.Equal("test-host.example", info.GetProperty("agent_info").GetProperty("hostname").GetString());
        Assert.Equal(5051, info.GetProperty("agent_info").GetProperty("port").GetInt32());

        var t = l.RootElement.GetProperty("launch").GetProperty("task");
        Assert.Equal(task.Task.Id, t.GetProperty("task_id").GetProperty("value").GetString());
        Assert.Equal("agent-1", t.GetProperty("agent_id").GetProperty("value").GetString());
        var resources = t.GetProperty("resources").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal("""{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}""", resources["cpus"].GetRawText());
        Assert.Equal("""{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31005,"end":31005}]}}""", resources["ports"].GetRawText());
        Assert.True(t.GetProperty("kill_policy").GetProperty("grace_period").GetProperty("nanoseconds").GetInt64() > 0);
        Assert.False(t.TryGetProperty("command", out _)); // the task runs in its executor: no command of its own
    }

    /// <summary>
    /// Before a restart: an executor subscribed and got three tasks; it reported the first RUNNING (durable), the
    /// other two not yet. Returns the stopped manager's executor container and the tasks.
    /// </summary>
    private async Task<(string Container, LaunchTask Running, LaunchTask Silent, LaunchTask Unacknowledged)> SubscribedExecutorLeftRunning()
    {
        var before = Start(killOnDispose: false);
        var running = ExecutorTask("survivor", memMiB: 32);
        var silent = ExecutorTask("survivor", memMiB: 32);
        var unacknowledged = ExecutorTask("survivor", memMiB: 32);
        before.Launch(running);
        before.Launch(silent);
        before.Launch(unacknowledged);
        var container = before.ContainerOf(Framework, "survivor")!;
        var caller = await CallerOf(before, "survivor");
        var sub = Subscribe(before, caller);
        Assert.Equal(["SUBSCRIBED", "LAUNCH " + running.Task.Id, "LAUNCH " + silent.Task.Id, "LAUNCH " + unacknowledged.Task.Id], Drain(sub));
        Assert.Equal(202, before.Update(caller, ExecutorStatus(running, "TASK_RUNNING")).StatusCode);
        var update = await WaitForUpdate(running.Task.Id, u => u.State == TaskState.Running, "the RUNNING update");
        before.OnDurable([update]);
        Assert.Equal(["ACKNOWLEDGED " + running.Task.Id], Drain(sub));

        // The test, not the container's process, speaks for the executor: wait until that process runs in its
        // cgroup beside its shim (the spawn returns before it runs), so the agent stops with it really running.
        var driver = CgroupDriver.Detect();
        await Eventually.TrueAsync(() => driver.ListPids(ContainerCgroup(container)).Count >= 2, "the executor process to run in its cgroup");
        await before.DisposeAsync();
        return (container, running, silent, unacknowledged);
    }

    [Fact]
    public async Task Restart_SubscribedExecutorResubscribes_KnownTasksKeptUnknownLaunchedTaskDroppedKillsDelivered()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var (container, running, silent, unacknowledged) = await SubscribedExecutorLeftRunning();
        var after = Start();
        Assert.Equal(container, after.ContainerOf(Framework, "survivor"));
        // A kill while the executor is away waits for it.
        after.Kill(running.Task.Id);

        // It re-subscribes, with the token the previous agent process gave it (the key is the agent's, on disk), listing
        // the task it has no acknowledged update for; the RUNNING one it need not list.
        var caller = await CallerOf(after, "survivor");
        Assert.Equal(container, caller.ContainerId);
        var sub = Subscribe(after, caller, unacknowledged.Task.Id);

        // The one it does not know may never have reached it: dropped, not launched again (as a Mesos agent does).
        var dropped = await WaitForUpdate(silent.Task.Id, u => u.State.IsTerminal(), "the unknown task to be dropped");
        Assert.Equal(TaskState.Dropped, dropped.State);
        Assert.Equal(TaskReasons.AgentRestarted, dropped.Reason);
        Assert.Equal(["SUBSCRIBED", "KILL " + running.Task.Id], Drain(sub));
        lock (_updates)
        {
            Assert.DoesNotContain(_updates, u => u.State.IsTerminal() && u.TaskId != silent.Task.Id);
        }

        Assert.Equal(64 + 32 + 32, MemoryLimitMiB(ContainerCgroup(container))); // the dropped task's share went
        Assert.Equal(202, after.Update(caller, ExecutorStatus(unacknowledged, "TASK_FINISHED")).StatusCode);
        Assert.Equal(TaskState.Finished, (await WaitForUpdate(unacknowledged.Task.Id, u => u.State.IsTerminal(), "the finished update")).State);
    }

    [Fact]
    public async Task Restart_SubscribedExecutorDoesNotResubscribe_TasksFailReregistrationTimeoutExecutorKilledExitReported()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var (container, running, silent, unacknowledged) = await SubscribedExecutorLeftRunning();
        var cgroup = ContainerCgroup(container);
        var driver = CgroupDriver.Detect();
        Assert.NotEmpty(driver.ListPids(cgroup));

        var after = Start(reregistrationTimeout: TimeSpan.FromMilliseconds(500));

        foreach (var task in new[] { running, silent, unacknowledged })
        {
            var failed = await WaitForUpdate(task.Task.Id, u => u.State.IsTerminal(), "the task to fail");
            Assert.Equal(TaskState.Failed, failed.State);
            Assert.Equal(ExecutorManager.ReasonReregistrationTimeout, failed.Reason);
            Assert.Equal("survivor", failed.ExecutorId);
        }

        await Eventually.TrueAsync(() => driver.ListPids(cgroup).Count == 0 && after.ContainerIds.Count == 0, "the executor to be killed");
        ExecutorExit? exit = null;
        await Eventually.TrueAsync(() => after.Exits.TryRead(out exit), "the executor's exit to be reported");
        Assert.Equal(container, exit!.ContainerId);
        Assert.Equal("survivor", exit.ExecutorId);
        Assert.Null(after.ContainerOf(Framework, "survivor"));
    }

    [Fact]
    public async Task Update_AnotherExecutorsTaskOrACommandTask_ForbiddenAndNothingForwarded()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        var mine = ExecutorTask("attacker", memMiB: 32);
        var theirs = ExecutorTask("victim", memMiB: 32);
        // A command task of the same framework: the executor would name it by the framework's own task id.
        var command = new LaunchTask
        {
            Task = new TaskSpec
            {
                Id = MesosTaskIds.ToDroverId(Framework, "plain-1"),
                Name = "plain",
                FrameworkId = Framework,
                Args = ["sleep", "600"],
                Resources = Resources.Of(cpus: 0.1m, memMiB: 32),
            },
        };
        manager.Launch(mine);
        manager.Launch(theirs);
        manager.Launch(command);
        await WaitForUpdate(command.Task.Id, u => u.State == TaskState.Running, "the command task to run");
        var attacker = await CallerOf(manager, "attacker");
        var victim = await CallerOf(manager, "victim");
        var attackerStream = Subscribe(manager, attacker);
        var victimStream = Subscribe(manager, victim);
        Assert.Equal(["SUBSCRIBED", "LAUNCH " + mine.Task.Id], Drain(attackerStream));
        Assert.Equal(["SUBSCRIBED", "LAUNCH " + theirs.Task.Id], Drain(victimStream));

        // With its own (valid) token and ids, the attacker reports on tasks that are not its own.
        var forgedVictim = manager.Update(attacker, ExecutorStatus(theirs, "TASK_FAILED"));
        var forgedCommand = manager.Update(attacker, ExecutorStatus(command, "TASK_FINISHED") with { TaskId = new MId("plain-1") });
        var (resubscribed, stream) = manager.Subscribe(attacker, new ExecutorSubscribe
        {
            UnacknowledgedUpdates = [new ExecutorUpdate { Status = ExecutorStatus(theirs, "TASK_FINISHED") }],
        });

        Assert.Equal(new CallOutcome(403, $"Task {theirs.Task.Id} is not a task of executor 'attacker'"), forgedVictim);
        Assert.Equal(new CallOutcome(403, "Task plain-1 is not a task of executor 'attacker'"), forgedCommand);
        Assert.Equal(403, resubscribed.StatusCode);
        Assert.Null(stream);
        Assert.False(attackerStream.Events.Completion.IsCompleted); // its subscription was not replaced
        // Nothing reached the agent's update path: the victim's own update, sent after, is the first of its task.
        Assert.Equal(202, manager.Update(victim, ExecutorStatus(theirs, "TASK_RUNNING")).StatusCode);
        await WaitForUpdate(theirs.Task.Id, u => u.State == TaskState.Running, "the victim's own update");
        lock (_updates)
        {
            Assert.Equal([TaskState.Running], _updates.Where(u => u.TaskId == theirs.Task.Id).Select(u => u.State));
            Assert.Equal([TaskState.Starting, TaskState.Running], _updates.Where(u => u.TaskId == command.Task.Id).Select(u => u.State));
        }
    }

    [Fact]
    public async Task Launch_Executor_NoOtherUserCanReadItsTokenOrTheAgentsKeyOnDisk()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        manager.Launch(ExecutorTask("secretive", memMiB: 32));
        var token = System.Text.Encoding.UTF8.GetBytes(await EnvironmentToken(manager.ContainerOf(Framework, "secretive")!));
        var key = Path.Combine(_workDir, "meta", ExecutorTokens.KeyFileName);
        var holders = Directory.EnumerateFiles(_workDir, "*", SearchOption.AllDirectories)
            .Where(f => File.ReadAllBytes(f).AsSpan().IndexOf(token) >= 0).Append(key).ToList();

        Assert.Contains(holders, f => f.StartsWith(Path.Combine(_workDir, "executors", "meta"), StringComparison.Ordinal)); // the launch checkpoint
        foreach (var file in holders)
        {
            // A task's user (nobody) tries to read it.
            using var cat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat", file])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var stolen = await cat.StandardOutput.ReadToEndAsync();
            await cat.WaitForExitAsync();
            Assert.True(cat.ExitCode != 0 && stolen.Length == 0, $"nobody read {file}");
        }
    }

    [Fact]
    public async Task Subscribe_TokenOfAnEarlierContainerOfTheExecutor_RefusedNewContainersTokenAccepted()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var manager = Start();
        manager.Launch(ExecutorTask("reused", memMiB: 32));
        var first = manager.ContainerOf(Framework, "reused")!;
        var earlier = await CallerOf(manager, "reused");
        manager.Shutdown(Framework, "reused");
        await Eventually.TrueAsync(() => manager.ContainerOf(Framework, "reused") is null, "the first container to end");

        var gone = manager.Subscribe(earlier, new ExecutorSubscribe()).Outcome;
        manager.Launch(ExecutorTask("reused", memMiB: 32)); // the same executor id, in a new container
        Assert.NotEqual(first, manager.ContainerOf(Framework, "reused"));
        var stale = manager.Subscribe(earlier, new ExecutorSubscribe()).Outcome;
        var current = await CallerOf(manager, "reused");

        Assert.Equal(new CallOutcome(400, "Framework cannot be found"), gone);
        Assert.Equal(new CallOutcome(403, "Authenticated principal does not contain a 'cid' claim with the correct active ContainerID"), stale);
        Assert.Equal(earlier with { ContainerId = current.ContainerId }, current);
        Assert.Equal(200, manager.Subscribe(current, new ExecutorSubscribe()).Outcome.StatusCode);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var (manager, pump) in _managers)
        {
            await manager.DisposeAsync();
            await pump;
        }

        try
        {
            Directory.Delete(_workDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>An UPDATE's status as the executor sends it, with a fresh uuid.</summary>
    private static MTaskStatus ExecutorStatus(LaunchTask task, string state) => new()
    {
        TaskId = new MId(task.Task.Id),
        State = state,
        Source = TaskSources.Executor,
        Uuid = Convert.ToBase64String(Guid.NewGuid().ToByteArray()),
    };
}
