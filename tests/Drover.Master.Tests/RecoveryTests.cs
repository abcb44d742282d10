using System.Text.Json;
using Drover.Core;
using Drover.Core.Api;
using Drover.Master.State;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests;

/// <summary>The master keeps every acknowledged record in its store and picks up where it left off after a restart.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class RecoveryTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Restore_FromJournal_SameTasksAgentsAndLedger()
    {
        var dir = Directory.CreateTempSubdirectory("drover-journal-").FullName;
        try
        {
            var time = new ManualTimeProvider();
            var options = new MasterOptions();
            string agentId, running, pending, finished;
            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var state = new ClusterState(options, time, NullLogger<ClusterState>.Instance, new MasterJournal(store));
                agentId = state.Register(Build.Agent(resources: "cpus:4;mem:4096;ports:[31000-31010]")).Registered.AgentId;
                running = state.Submit(Build.Task(cpus: 1, ports: 2)).View.Id;
                finished = state.Submit(Build.Task(cpus: 1)).View.Id;
                pending = state.Submit(Build.Task(cpus: 64)).View.Id;
                state.Apply(new Placement.PlacementEngine(new()).Place(state.TakeSnapshot(100).Snapshot, state.TakeSnapshot(100).Pending));
                var (_, durable) = state.ApplyUpdates(agentId, new() { Updates = [Build.Status(running, TaskState.Running), Build.Status(finished, TaskState.Failed, exitCode: 3)] });
                await durable;
            }

            await using var reopened = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time);
            var journal = new MasterJournal(reopened);
            var restored = new ClusterState(options, time, NullLogger<ClusterState>.Instance, journal);
            var (tasks, agents) = await journal.LoadAsync(CancellationToken.None);
            restored.Restore(tasks, agents);

            Assert.Equal(TaskState.Running, restored.GetTask(running)!.State);
            Assert.Equal(agentId, restored.GetTask(running)!.AgentId);
            Assert.Equal(2, restored.GetTask(running)!.Ports.Length);
            Assert.Equal(TaskState.Pending, restored.GetTask(pending)!.State);
            Assert.Equal(3, restored.GetTask(finished)!.ExitCode);
            var agent = restored.GetAgent(agentId)!;
            Assert.Equal(1m, agent.Used.Cpus);
            Assert.Equal(1, agent.ActiveTasks);
            Assert.Equal("[31000-31001]", agent.Used.Ports);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task MasterRestart_RunningTask_KeepsRecordAndProcess()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("recovery-host");
        var task = await cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "echo up; sleep 1000" });
        var running = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(task.Id), t => t.State == TaskState.Running, Timeout, "running");
        var waiting = await cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "true", Cpus = JsonSerializer.SerializeToElement(64) });
        var done = await cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "exit 4" });
        await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(done.Id), t => t.State.IsTerminal(), Timeout, "the short task to end");

        await cluster.RestartMasterAsync();

        var after = await cluster.Client.GetTaskAsync(task.Id);
        Assert.Equal(TaskState.Running, after.State);
        Assert.Equal(running.AgentId, after.AgentId);
        Assert.Equal(TaskState.Pending, (await cluster.Client.GetTaskAsync(waiting.Id)).State);
        Assert.Equal(4, (await cluster.Client.GetTaskAsync(done.Id)).ExitCode);

        // The agent reconnects and reconciles: the task is still running well past the resend window…
        await Wait.UntilAsync(async () => (await cluster.Client.ListAgentsAsync()).Single().LastHeartbeatAt > DateTimeOffset.UtcNow.AddSeconds(-1), Timeout, "a heartbeat to the new master");
        Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync(task.Id)).State);

        // …and commands reach it: a kill works.
        await cluster.Client.KillTaskAsync(task.Id);
        var killed = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(task.Id), t => t.State.IsTerminal(), Timeout, "killed");
        Assert.Equal(TaskState.Killed, killed.State);
    }

    [Fact]
    public async Task MasterRestart_TaskEndsWhileMasterDown_RealExitCodeDelivered()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("recovery-host2");
        var task = await cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "while [ ! -f go ]; do sleep 0.1; done; echo ended; exit 3" });
        await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(task.Id), t => t.State == TaskState.Running, Timeout, "running");

        await cluster.RestartMasterAsync(whileDown: async () =>
        {
            // End the task while no master is listening: its agent must hold the update and deliver it later.
            var sandbox = Directory.GetDirectories(Path.Combine(cluster.Root, "recovery-host2", "sandboxes"), task.Id).Single();
            await File.WriteAllTextAsync(Path.Combine(sandbox, "go"), "x");
            await Wait.UntilAsync(() => Task.FromResult(File.ReadAllText(Path.Combine(sandbox, "stdout")).Contains("ended", StringComparison.Ordinal)),
                Timeout, "the task to end while the master is down");
        });

        var ended = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(task.Id), t => t.State.IsTerminal(), Timeout, "the held update");
        Assert.Equal(TaskState.Failed, ended.State);
        Assert.Equal(3, ended.ExitCode);
    }

    [Fact]
    public async Task Register_RecoverFromAgents_AdoptedRecordsAreSavedAndSurviveARestart()
    {
        var dir = Directory.CreateTempSubdirectory("drover-journal-").FullName;
        try
        {
            var time = new ManualTimeProvider();
            var options = new MasterOptions { RecoverFromAgents = true };
            var job = Build.Task(id: "job.1", cpus: 1, ports: 1);
            var registration = Build.Agent(id: "agent-a") with { Tasks = [new Core.TaskStatus { TaskId = job.Id, State = TaskState.Running }] };
            await using (var store = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time))
            {
                var state = new ClusterState(options, time, NullLogger<ClusterState>.Instance, new MasterJournal(store));
                Assert.True(state.Register(registration).Registered.SendLaunches);
                var (_, durable) = state.Register(registration with { Launches = [new Core.Protocol.LaunchTask { Task = job, Ports = [31007] }] });
                await durable;
            }

            await using var reopened = SqliteStateStore.Open(Path.Combine(dir, "state.db"), time);
            var journal = new MasterJournal(reopened);
            var restored = new ClusterState(new MasterOptions(), time, NullLogger<ClusterState>.Instance, journal);
            var (tasks, agents) = await journal.LoadAsync(CancellationToken.None);
            restored.Restore(tasks, agents);

            var adopted = restored.GetTask(job.Id)!;
            Assert.Equal((TaskState.Running, "agent-a"), (adopted.State, adopted.AgentId));
            Assert.Equal([31007], adopted.Ports.ToArray());
            Assert.Equal((1m, "[31007-31007]"), (restored.GetAgent("agent-a")!.Used.Cpus, restored.GetAgent("agent-a")!.Used.Ports));
            Assert.Null(agents.Single().Info.Launches); // the launches came for adoption; the agent's record does not keep them
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task MasterRestart_EmptyStoreWithRecoverFromAgents_RebuildsTheTaskListFromTheAgentAndKillsNothing()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("recover-host");
        var marker = Random.Shared.Next(100_000, 999_999);
        var submitted = new List<TaskView>();
        foreach (var n in new[] { 1, 2 })
        {
            submitted.Add(await cluster.Client.SubmitTaskAsync(new TaskSubmission
            {
                Cmd = $"exec sleep 1000.{marker}{n}",
                Ports = JsonSerializer.SerializeToElement(n),
            }));
        }

        var before = new List<TaskView>();
        foreach (var t in submitted)
        {
            before.Add(await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(t.Id), x => x.State == TaskState.Running, Timeout, "running"));
        }

        var pids = new List<int>();
        foreach (var n in new[] { 1, 2 })
        {
            pids.Add((await Wait.UntilAsync(() => Task.FromResult(PidOf($"1000.{marker}{n}")), p => p is not null, Timeout, "the task's process"))!.Value);
        }

        // The store is lost (the data dir keeps its cluster id): the master comes back with --recover-from-agents.
        await cluster.RestartMasterAsync(
            whileDown: () =>
            {
                foreach (var file in Directory.GetFiles(Path.Combine(cluster.Root, "master"), MasterHost.StoreFileName + "*"))
                {
                    File.Delete(file);
                }

                return Task.CompletedTask;
            },
            recoverFromAgents: true);

        var listed = await Wait.UntilAsync(
            () => cluster.Client.ListTasksAsync(),
            ts => ts.Count(t => t.State == TaskState.Running) == 2,
            Timeout,
            "the agent's tasks to be adopted");
        foreach (var b in before)
        {
            var a = listed.Single(t => t.Id == b.Id);
            Assert.Equal((TaskState.Running, b.AgentId, b.Cmd), (a.State, a.AgentId, a.Cmd));
            Assert.Equal(b.Ports.ToArray(), a.Ports.ToArray());
        }

        // Nothing was killed, nothing waits as unknown, and the ledger holds them.
        await Wait.UntilAsync(async () => (await cluster.Client.ListAgentsAsync()).Single().LastHeartbeatAt > DateTimeOffset.UtcNow.AddSeconds(-1), Timeout, "a heartbeat to the new master");
        var agent = (await cluster.Client.ListAgentsAsync()).Single();
        Assert.Equal((2, 0), (agent.ActiveTasks, agent.UnknownTasks.Length));
        Assert.Equal(before.Sum(b => b.Cpus), agent.Used.Cpus);
        Assert.All(pids, pid => Assert.True(Directory.Exists($"/proc/{pid}"), $"process {pid} was killed"));
        Assert.All(listed, t => Assert.DoesNotContain(t.Statuses, s => s.State == TaskState.Killing));
    }

    /// <summary>The pid of the process whose command line contains <paramref name="marker"/>, or null.</summary>
    private static int? PidOf(string marker)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(marker, StringComparison.Ordinal))
                    {
                        return pid;
                    }
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }

        return null;
    }
}
