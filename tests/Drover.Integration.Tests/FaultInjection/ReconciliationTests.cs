using System.Net;
using System.Net.Http.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Testing;
using Drover.Testing.Clusters;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// Reconciliation from the agents' side on a real cluster: a task the master records as ended but its agent
/// still runs is killed, and its processes are gone (docs/fault-tolerance.md, "Tasks the master does not hold").
/// </summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class ReconciliationTests
{
    [MultiHostFact]
    public async Task ForgedTerminalUpdate_TaskStillRunningOnItsAgent_IsKilledAndItsProcessesAreGone()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 1 });
        await WithDiagnostics(cluster, async () =>
        {
            var agent = (await cluster.FindAgentAsync(1))!;
            var task = await cluster.SubmitAsync("forged", "sleep 600 & exec sleep 601", 0.5m, 16, "hostname:IS:host1");
            await cluster.WaitForStateAsync(task.Id, TaskState.Running);
            var processes = await Wait.UntilAsync(
                () => Task.FromResult(cluster.TaskProcesses(task.Id)),
                p => p.Count >= 2,
                TimeSpan.FromSeconds(10),
                "the task and its background child in the task's cgroup");

            // A terminal update the agent never sent (its certificate, its own task): the master records the
            // task ended and frees its resources, while the agent goes on running it.
            using var asAgent = cluster.CreateAgentHttpClient(1);
            var forged = new StatusUpdateBatch
            {
                Updates = [new TaskStatus { TaskId = task.Id, State = TaskState.Finished, Uuid = Ids.NewUuid(), ExitCode = 0, AgentId = agent.Id, Message = "forged" }],
            };
            using (var response = await asAgent.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{agent.Id}/updates"), forged, DroverJsonContext.Default.StatusUpdateBatch))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            Assert.Equal(TaskState.Finished, (await cluster.Client.GetTaskAsync(task.Id)).State);

            // The agent's heartbeats still list it: the master kills it, and every process of it goes.
            await Wait.UntilAsync(
                () => Task.FromResult(processes.Where(p => p.IsAlive).ToList()),
                alive => alive.Count == 0,
                StateTimeout,
                $"the processes of task {task.Id}, which the master records as finished, to be killed",
                describe: alive => string.Join(", ", alive));
            Assert.Empty(cluster.TaskProcesses(task.Id));
            var metrics = await cluster.Http.GetStringAsync(new Uri(cluster.MasterUrl, "metrics"));
            Assert.Contains("drover_reconciliation_kills_total{reason=\"stray\"} 1\n", metrics, StringComparison.Ordinal);
            Assert.Equal(TaskState.Finished, (await cluster.Client.GetTaskAsync(task.Id)).State);
            var after = (await cluster.FindAgentAsync(1))!;
            Assert.Equal((0m, 0, 0), (after.Used.Cpus, after.ActiveTasks, after.UnknownTasks.Length));
        });
    }
}
