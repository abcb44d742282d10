using System.Text;
using System.Text.Json.Nodes;
using Drover.Agent.Execution;
using Drover.Agent.Executors;
using Drover.Core;
using Drover.Testing;
using Drover.Testing.Executors;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// A custom executor's life as a Mesos framework sees it, on a real master and agent running the Python echo
/// executor (needs root): its resources held in the ledger while it lives, FAILURE when it exits, GET_EXECUTORS,
/// its exit reaching the master across a master outage, and the executor surviving an agent restart.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class ExecutorLifecycleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static JsonObject Info(string name) => new() { ["user"] = "root", ["name"] = name, ["failover_timeout"] = 120 };

    private static JsonObject Id(string value) => new() { ["value"] = value };

    private static JsonObject ExecutorTask(string taskId, string agentId, string executorId, double cpus, double executorCpus) => new()
    {
        ["name"] = taskId,
        ["task_id"] = Id(taskId),
        ["agent_id"] = Id(agentId),
        ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", cpus), RawScheduler.Scalar("mem", 64)),
        ["executor"] = new JsonObject
        {
            ["type"] = "CUSTOM",
            ["executor_id"] = Id(executorId),
            ["command"] = new JsonObject { ["value"] = TestExecutors.EchoExecutorShell },
            ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", executorCpus), RawScheduler.Scalar("mem", 32)),
        },
        ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("run")),
    };

    private static string AgentOf(JsonObject offer) => (string)offer["agent_id"]!["value"]!;

    private static async Task<JsonObject> OperatorAsync(Uri master, string type)
    {
        using var http = new HttpClient();
        using var response = await http.PostAsync(new Uri(master, "/api/v1"), new StringContent($"{{\"type\":\"{type}\"}}", Encoding.UTF8, "application/json"));
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
    }

    private static async Task<List<string>> LiveExecutorIdsAsync(Uri master)
    {
        var executors = (await OperatorAsync(master, "GET_EXECUTORS"))["get_executors"]!["executors"]?.AsArray() ?? [];
        return [.. executors.Select(e => (string)e!["executor_info"]!["executor_id"]!["value"]!)];
    }

    /// <summary>Declines offers (refuse 0 s, so the agent is offered again at once) until one satisfies <paramref name="match"/>; every offer seen is checked by <paramref name="each"/>.</summary>
    private static async Task<JsonObject> OfferWhereAsync(RawScheduler s, Func<JsonObject, bool> match, string what, Action<JsonObject>? each = null)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            Assert.True(left > TimeSpan.Zero, $"no offer where {what} within {Timeout.TotalSeconds} s");
            var e = await s.NextAsync("OFFERS", left);
            foreach (var o in e["offers"]!["offers"]!.AsArray())
            {
                var offer = o!.AsObject();
                each?.Invoke(offer);
                if (match(offer))
                {
                    return offer;
                }

                await s.CallOkAsync("DECLINE", new JsonObject
                {
                    ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()),
                    ["filters"] = new JsonObject { ["refuse_seconds"] = 0 },
                });
            }
        }
    }

    [Fact]
    public async Task ExecutorExitsNonZero_FrameworkGetsFailureWithWaitStatus_AndGetExecutorsForgetsIt()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("failure-host", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("failure-framework"));
        s.AutoAcknowledge = true;
        var offer = (await s.NextAsync("OFFERS", Timeout))["offers"]!["offers"]![0]!.AsObject();
        var agentId = AgentOf(offer);
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, ExecutorTask("doomed", agentId, "doomed-executor", 0.5, 0.25)));
        await s.UpdateAsync("doomed", "TASK_RUNNING", Timeout);

        var listed = await OperatorAsync(cluster.Master.Url, "GET_EXECUTORS");
        var executor = Assert.Single(listed["get_executors"]!["executors"]!.AsArray())!;
        Assert.Equal("doomed-executor", (string?)executor["executor_info"]!["executor_id"]!["value"]);
        Assert.Equal(s.FrameworkId, (string?)executor["executor_info"]!["framework_id"]!["value"]);
        Assert.Equal(agentId, (string?)executor["agent_id"]!["value"]);
        Assert.Equal(0.25, executor["executor_info"]!["resources"]!.AsArray().Where(r => (string?)r!["name"] == "cpus").Sum(r => (double)r!["scalar"]!["value"]!));
        var state = await OperatorAsync(cluster.Master.Url, "GET_STATE");
        Assert.Single(state["get_state"]!["get_executors"]!["executors"]!.AsArray());

        // The echo executor exits with the status a MESSAGE names.
        await s.CallOkAsync("MESSAGE", new JsonObject
        {
            ["agent_id"] = Id(agentId),
            ["executor_id"] = Id("doomed-executor"),
            ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("exit 7")),
        });
        var failure = await s.NextAsync(e => (string?)e["type"] == "FAILURE" && e["failure"]?["executor_id"] is not null, Timeout, "FAILURE for the executor");
        output.WriteLine(failure.ToJsonString());
        Assert.Equal("doomed-executor", (string?)failure["failure"]!["executor_id"]!["value"]);
        Assert.Equal(agentId, (string?)failure["failure"]!["agent_id"]!["value"]);
        Assert.Equal(7 << 8, (int)failure["failure"]!["status"]!); // a wait status, as Mesos: exit code 7
        await s.UpdateAsync("doomed", "TASK_FAILED", Timeout);

        Assert.Empty(await LiveExecutorIdsAsync(cluster.Master.Url));
        var agent = await cluster.Client.GetAgentAsync(agentId);
        Assert.Equal(0m, agent.Used.Cpus);
    }

    [Fact]
    public async Task ExecutorResources_HeldWhileItLives_NoOverCommit_ReleasedWhenItExits()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("ledger-host", TestPorts.Resources("cpus:1;mem:1024;disk:1024", 20));
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("ledger-framework"));
        s.AutoAcknowledge = true;
        var offer = await OfferWhereAsync(s, o => RawScheduler.ScalarOf(o, "cpus") == 1, "the whole cpu is offered");
        var agentId = AgentOf(offer);
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, ExecutorTask("worker", agentId, "ledger-executor", 0.5, 0.5)));
        await s.UpdateAsync("worker", "TASK_RUNNING", Timeout);

        // Executor 0.5 + task 0.5 = the agent's one cpu: nothing is left to offer, and nothing to place built-in work on.
        var agent = await cluster.Client.GetAgentAsync(agentId);
        Assert.Equal(1m, agent.Used.Cpus);
        Assert.Equal(0m, agent.Free.Cpus);
        var memOnly = await OfferWhereAsync(s, o => true, "any offer");
        Assert.Equal(0, RawScheduler.ScalarOf(memOnly, "cpus"));
        await s.CallOkAsync("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(memOnly["id"]!.DeepClone()), ["filters"] = new JsonObject { ["refuse_seconds"] = 0 } });

        // The task ends; the idle executor keeps its half.
        await s.CallOkAsync("KILL", new JsonObject { ["task_id"] = Id("worker") });
        await s.UpdateAsync("worker", "TASK_KILLED", Timeout);
        var half = await OfferWhereAsync(s, o => RawScheduler.ScalarOf(o, "cpus") > 0, "the task's cpu is back",
            each: o => Assert.True(RawScheduler.ScalarOf(o, "cpus") <= 0.5, $"offered {RawScheduler.ScalarOf(o, "cpus")} cpus while the executor holds 0.5"));
        Assert.Equal(0.5, RawScheduler.ScalarOf(half, "cpus"));
        Assert.Equal(["ledger-executor"], await LiveExecutorIdsAsync(cluster.Master.Url));

        // A second task for the live executor is not charged the executor's resources again (as Mesos).
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(half, 0, ExecutorTask("worker-2", agentId, "ledger-executor", 0.5, 0.5)));
        await s.UpdateAsync("worker-2", "TASK_RUNNING", Timeout);
        Assert.Equal(1m, (await cluster.Client.GetAgentAsync(agentId)).Used.Cpus);

        // Shut down: FAILURE (status 0, the echo executor exits 0 on SHUTDOWN), and the whole cpu comes back.
        await s.CallOkAsync("SHUTDOWN", new JsonObject { ["agent_id"] = Id(agentId), ["executor_id"] = Id("ledger-executor") });
        var failure = await s.NextAsync(e => (string?)e["type"] == "FAILURE" && e["failure"]?["executor_id"] is not null, Timeout, "FAILURE for the executor");
        Assert.Equal(0, (int)failure["failure"]!["status"]!);
        await s.UpdateAsync("worker-2", "TASK_KILLED", Timeout);
        var whole = await OfferWhereAsync(s, o => RawScheduler.ScalarOf(o, "cpus") == 1, "the executor's cpu is back");
        Assert.Equal(1, RawScheduler.ScalarOf(whole, "cpus"));
        Assert.Empty(await LiveExecutorIdsAsync(cluster.Master.Url));
    }

    private static ExecutorManager Manager(Drover.Cli.Hosting.RunningHost agent) => (ExecutorManager)agent.Services.GetRequiredService<ITaskExecutor>();

    [Fact]
    public async Task AgentRestart_ExecutorResubscribes_StillCountedTaskRunningAndMessagesRoundTrip()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        // Stopping the agent leaves its tasks and executors running (as `drover agent` does).
        var agent = await cluster.AddAgentAsync("restart-host", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20),
            executors: new ExecutorManagerOptions { ReregistrationTimeout = TimeSpan.FromSeconds(5), SubscriptionBackoffMax = TimeSpan.FromMilliseconds(500) },
            killTasksOnStop: false);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("restart-framework"));
        s.AutoAcknowledge = true;
        var offer = (await s.NextAsync("OFFERS", Timeout))["offers"]!["offers"]![0]!.AsObject();
        var agentId = AgentOf(offer);
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, ExecutorTask("survivor", agentId, "survivor-executor", 0.5, 0.25)));
        await s.UpdateAsync("survivor", "TASK_RUNNING", Timeout);
        var container = Manager(agent).ContainerOf(s.FrameworkId, "survivor-executor");
        var events = Path.Combine(Manager(agent).SandboxPath($"{s.FrameworkId}.survivor")!, "events.log");
        await Wait.UntilAsync(() => Task.FromResult(File.ReadAllLines(events)), l => l.Any(x => x.StartsWith("ACKNOWLEDGED survivor ", StringComparison.Ordinal)),
            Timeout, "TASK_RUNNING to be acknowledged to the executor");

        agent = await cluster.RestartAgentAsync(agent);

        Assert.Equal(container, Manager(agent).ContainerOf(s.FrameworkId, "survivor-executor"));
        await Wait.UntilAsync(() => Task.FromResult(File.ReadAllLines(events)), l => l.Count(x => x.StartsWith("SUBSCRIBED", StringComparison.Ordinal)) == 2,
            Timeout, "the executor to subscribe to the restarted agent");
        // Still counted (the restarted agent lists it), its resources still held, its task still running.
        Assert.Equal(["survivor-executor"], await LiveExecutorIdsAsync(cluster.Master.Url));
        Assert.Equal(0.75m, (await cluster.Client.GetAgentAsync(agentId)).Used.Cpus);
        await s.CallOkAsync("RECONCILE", new JsonObject { ["tasks"] = new JsonArray(new JsonObject { ["task_id"] = Id("survivor") }) });
        await s.UpdateAsync("survivor", "TASK_RUNNING", Timeout);
        await s.CallOkAsync("MESSAGE", new JsonObject
        {
            ["agent_id"] = Id(agentId),
            ["executor_id"] = Id("survivor-executor"),
            ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("still there?")),
        });
        var echoed = await s.NextAsync("MESSAGE", Timeout);
        Assert.Equal("still there?", Encoding.UTF8.GetString(Convert.FromBase64String((string)echoed["message"]!["data"]!)));
        lock (s.Seen)
        {
            Assert.DoesNotContain(s.Seen, e => (string?)e["type"] == "FAILURE");
            Assert.DoesNotContain(s.Seen, e => (string?)e["type"] == "UPDATE" && (string?)e["update"]!["status"]!["state"] != "TASK_RUNNING");
        }
    }

    [Fact]
    public async Task ExecutorExit_WhileMasterIsDown_ReachesTheRestartedMaster()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        var host = await cluster.AddAgentAsync("outage-host", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        var executors = (ExecutorManager)host.Services.GetRequiredService<ITaskExecutor>();
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("outage-framework"));
        s.AutoAcknowledge = true;
        var offer = (await s.NextAsync("OFFERS", Timeout))["offers"]!["offers"]![0]!.AsObject();
        var agentId = AgentOf(offer);
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, ExecutorTask("survivor", agentId, "outage-executor", 0.5, 0.25)));
        await s.UpdateAsync("survivor", "TASK_RUNNING", Timeout);
        Assert.Equal(0.75m, (await cluster.Client.GetAgentAsync(agentId)).Used.Cpus);
        var frameworkId = s.FrameworkId;
        s.Drop();

        await cluster.RestartMasterAsync(whileDown: async () =>
        {
            // The executor ends while no master is there to hear it: the agent keeps the exit (and keeps listing
            // the executor as live) until a master acknowledges it.
            executors.Shutdown(frameworkId, "outage-executor");
            await Wait.UntilAsync(() => Task.FromResult(executors.ContainerOf(frameworkId, "outage-executor")), c => c is null, Timeout, "the executor to exit");
            Assert.Contains(executors.LiveExecutors, e => e.Executor.ExecutorId == "outage-executor");
        });

        // Delivered to the restarted master (which had counted the executor again from its restored task) and acknowledged.
        await Wait.UntilAsync(() => Task.FromResult(executors.LiveExecutors.Count), n => n == 0, Timeout, "the master to acknowledge the executor's exit");
        Assert.Empty(await LiveExecutorIdsAsync(cluster.Master.Url));
        var agent = await Wait.UntilAsync(() => cluster.Client.GetAgentAsync(agentId), a => a.Used.Cpus == 0, Timeout, "the executor's and task's cpus to be released");
        Assert.Equal(0m, agent.Used.Cpus);
    }
}
