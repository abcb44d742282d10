using System.Diagnostics;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Clusters;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// An agent cut off from the network (its veth down: the agent and its tasks keep running, nothing
/// reaches the master) for longer than the master's timeouts, then reconnected.
/// </summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class PartitionTests
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan UnreachableAfter = TimeSpan.FromSeconds(3);

    [MultiHostFact]
    public async Task CutOff_PastUnreachableTimeout_TasksUnreachableThenRunningAgainOnHeal()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            HeartbeatInterval = Heartbeat,
            AgentUnreachableTimeout = UnreachableAfter,
        });
        await WithDiagnostics(cluster, async () =>
        {
            var isolated = await cluster.SubmitAsync("isolated", "exec sleep 600", 0.1m, 16, "hostname:IS:host2");
            var elsewhere = await cluster.SubmitAsync("elsewhere", "exec sleep 600", 0.1m, 16, "hostname:IS:host1");
            // An app that keeps its instance through a partition (Marathon's "disabled" unreachableStrategy):
            // nothing may replace or kill it, so it must come back as it was.
            await cluster.Marathon.CreateAppAsync(SleepApp("/part/pinned", 1, 0.1m, 16, JsonValue.Create("disabled"), ["hostname", "IS", "host2"]));
            var instance = Assert.Single(await Wait.UntilAsync(
                () => cluster.AppTasksAsync("/part/pinned"),
                t => t.Length == 1 && t[0].State == TaskState.Running,
                StateTimeout,
                "the pinned app's instance to run",
                describe: Describe));
            await cluster.WaitForStateAsync(isolated.Id, TaskState.Running);
            await cluster.WaitForStateAsync(elsewhere.Id, TaskState.Running);
            var onHost2 = new[] { isolated.Id, instance.Id };
            var agentBefore = await cluster.FindAgentAsync(2);
            Assert.NotNull(agentBefore);
            var processes = new Dictionary<string, IReadOnlyList<Drover.Testing.Processes.ProcessIdentity>>();
            foreach (var id in onHost2)
            {
                processes[id] = await cluster.ProcessesOfAsync(id);
            }

            var cut = Stopwatch.StartNew();
            await cluster.CutOffAsync(2);

            var unreachable = await Wait.UntilAsync(
                async () => (Agent: await cluster.FindAgentAsync(2), Tasks: await Task.WhenAll(onHost2.Select(id => cluster.Client.GetTaskAsync(id)))),
                x => x.Agent?.Status == "unreachable" && x.Tasks.All(t => t.State == TaskState.Unreachable),
                UnreachableAfter + TimeSpan.FromSeconds(15),
                "host2 and its tasks to be unreachable",
                describe: x => $"host2 {x.Agent?.Status}\n{string.Join("\n", x.Tasks.Select(Describe))}");
            var unreachableAfter = cut.Elapsed;

            // Not before the timeout: the last heartbeat may have been up to one interval before the cut.
            Assert.True(unreachableAfter >= UnreachableAfter - Heartbeat - TimeSpan.FromMilliseconds(100),
                $"host2 was unreachable {Seconds(unreachableAfter)} after the cut, before the {Seconds(UnreachableAfter)} timeout");
            Assert.All(unreachable.Tasks, t => Assert.Equal(TaskReasons.AgentDisconnected, t.Reason));
            Assert.Equal(agentBefore.Id, unreachable.Agent!.Id);
            var appTask = Assert.Single((await cluster.Marathon.ListAppTasksAsync("/part/pinned")).Select(t => t!.AsObject()));
            Assert.Equal("TASK_UNREACHABLE", appTask["state"]?.GetValue<string>());

            // Only host2 is affected; and on host2 nothing was killed.
            Assert.All(await cluster.Client.ListAgentsAsync(), a => Assert.Equal(a.Hostname == "host2" ? "unreachable" : "active", a.Status));
            Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync(elsewhere.Id)).State);
            Assert.All(onHost2, id => Assert.Equal(processes[id], cluster.TaskProcesses(id)));

            await cluster.HealAsync(2);

            var back = await Wait.UntilAsync(
                async () => (Agent: await cluster.FindAgentAsync(2), Tasks: await Task.WhenAll(onHost2.Select(id => cluster.Client.GetTaskAsync(id)))),
                x => x.Agent?.Status == "active" && x.Tasks.All(t => t.State != TaskState.Unreachable),
                StateTimeout,
                "host2 to reconnect and its tasks to be reconciled",
                describe: x => $"host2 {x.Agent?.Status}\n{string.Join("\n", x.Tasks.Select(Describe))}");

            Assert.Equal(agentBefore.Id, back.Agent!.Id);
            Assert.All(back.Tasks, t =>
            {
                Assert.True(t.State == TaskState.Running, Describe(t));
                Assert.Equal(agentBefore.Id, t.AgentId);
                Assert.Equal(TaskReasons.Reconciliation, t.Statuses[^1].Reason);
            });
            Assert.All(onHost2, id => Assert.Equal(processes[id], cluster.TaskProcesses(id)));
            Assert.Equal(1, (await cluster.Marathon.GetAppAsync("/part/pinned"))["tasksRunning"]!.GetValue<int>());
            Assert.Equal(
                new[] { instance.Id },
                (await cluster.Client.ListTasksAsync()).Where(t => t.AppId == "/part/pinned").Select(t => t.Id));
        });
    }

    [MultiHostFact]
    public async Task CutOff_PastRemovalTimeout_TasksGoneAndKilledWhenTheAgentComesBack()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            HeartbeatInterval = Heartbeat,
            AgentUnreachableTimeout = TimeSpan.FromSeconds(2),
            AgentRemovalTimeout = TimeSpan.FromSeconds(2),
        });
        await WithDiagnostics(cluster, async () =>
        {
            var task = await cluster.SubmitAsync("isolated", "exec sleep 600", 0.5m, 64, "hostname:IS:host3");
            await cluster.WaitForStateAsync(task.Id, TaskState.Running);
            var processes = await cluster.ProcessesOfAsync(task.Id);
            var agentId = (await cluster.FindAgentAsync(3))!.Id;

            await cluster.CutOffAsync(3);

            var gone = await Wait.UntilAsync(
                async () => (Agent: await cluster.FindAgentAsync(3), Task: await cluster.Client.GetTaskAsync(task.Id)),
                x => x.Agent?.Status == "removed" && x.Task.State.IsTerminal(),
                TimeSpan.FromSeconds(30),
                "host3 to be removed and its task to end",
                describe: x => $"host3 {x.Agent?.Status}; {Describe(x.Task)}");
            Assert.Equal(TaskState.Gone, gone.Task.State);
            Assert.Equal(TaskReasons.AgentRemoved, gone.Task.Reason);
            Assert.Contains(gone.Task.Statuses, s => s.State == TaskState.Unreachable);
            Assert.All(processes, p => Assert.True(p.IsAlive, $"process {p} died while its agent was only cut off"));

            await cluster.HealAsync(3);

            // The agent registers again under its id; the master does not know its task any more and
            // has it killed, so nothing runs that the master says is gone.
            var agent = await Wait.UntilAsync(
                () => cluster.FindAgentAsync(3),
                a => a?.Status == "active",
                StateTimeout,
                "host3 to register again after the partition");
            Assert.Equal(agentId, agent!.Id);
            await Wait.UntilAsync(
                () => Task.FromResult(processes.Where(p => p.IsAlive).ToList()),
                alive => alive.Count == 0,
                StateTimeout,
                $"the processes of the gone task {task.Id} to be killed",
                describe: alive => string.Join(", ", alive));
            Assert.Equal(TaskState.Gone, (await cluster.Client.GetTaskAsync(task.Id)).State);
            var freed = await Wait.UntilAsync(
                () => cluster.FindAgentAsync(3),
                a => a!.Used.Cpus == 0 && a.ActiveTasks == 0,
                StateTimeout,
                "host3's resources to be free again",
                describe: a => $"used {a!.Used.Cpus} cpus, {a.ActiveTasks} tasks");
            Assert.Equal(2m, freed!.Free.Cpus);
        });
    }

    /// <summary>
    /// Marathon's unreachableStrategy: an instance unreachable for <c>inactiveAfterSeconds</c> is replaced
    /// on another agent; when its agent comes back, the old copy is killed.
    /// </summary>
    [MultiHostFact]
    public async Task CutOff_AppInstanceWithUnreachableStrategy_ReplacedElsewhereAndOldCopyKilledOnHeal()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            HeartbeatInterval = Heartbeat,
            AgentUnreachableTimeout = UnreachableAfter,
        });
        await WithDiagnostics(cluster, async () =>
        {
            const string appId = "/part/replaced";
            var strategy = new JsonObject { ["inactiveAfterSeconds"] = 1, ["expungeAfterSeconds"] = 600 };
            await cluster.Marathon.CreateAppAsync(SleepApp(appId, 2, 0.1m, 16, strategy, ["hostname", "UNIQUE"]));
            var instances = await Wait.UntilAsync(
                () => cluster.AppTasksAsync(appId),
                t => t.Length == 2 && t.All(i => i.State == TaskState.Running),
                StateTimeout,
                "2 instances running on 2 hosts",
                describe: Describe);
            var victim = instances[0];
            var survivor = instances[1];
            var n = MultiHostCluster.IndexOf(victim.Hostname!);
            var victimProcesses = await cluster.ProcessesOfAsync(victim.Id);

            await cluster.CutOffAsync(n);

            // Past unreachable + inactiveAfterSeconds, a replacement runs on the host that had none.
            var replaced = await Wait.UntilAsync(
                () => cluster.AppTasksAsync(appId),
                t => t.Any(i => i.Id != victim.Id && i.Id != survivor.Id && i.State == TaskState.Running),
                UnreachableAfter + TimeSpan.FromSeconds(25),
                $"a replacement for {victim.Id} on {victim.Hostname}",
                describe: Describe);
            var replacement = replaced.Single(i => i.Id != victim.Id && i.Id != survivor.Id);
            Assert.NotEqual(victim.Hostname, replacement.Hostname);
            Assert.NotEqual(survivor.Hostname, replacement.Hostname);
            Assert.Equal(TaskState.Unreachable, (await cluster.Client.GetTaskAsync(victim.Id)).State);

            await cluster.HealAsync(n);

            // Back on the network, the old copy is one instance too many: it is killed, the replacement stays.
            var ended = await Wait.UntilAsync(
                () => cluster.Client.GetTaskAsync(victim.Id),
                t => t.State.IsTerminal(),
                StateTimeout,
                $"the old copy {victim.Id} to be killed after the heal",
                describe: Describe);
            Assert.Equal(TaskState.Killed, ended.State);
            await Wait.UntilAsync(
                () => Task.FromResult(victimProcesses.Where(p => p.IsAlive).ToList()),
                alive => alive.Count == 0,
                StateTimeout,
                $"the processes of the old copy {victim.Id} to end",
                describe: alive => string.Join(", ", alive));
            var final = await cluster.AppTasksAsync(appId);
            Assert.Equal(new[] { survivor.Id, replacement.Id }.Order(), final.Select(t => t.Id).Order());
            Assert.All(final, t => Assert.Equal(TaskState.Running, t.State));
        });
    }
}
