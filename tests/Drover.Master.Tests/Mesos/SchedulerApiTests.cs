using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Testing;
using Drover.Testing.Executors;
using Xunit.Abstractions;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// Frameworks written in the test against the raw Mesos v1 scheduler API, on a real master and real agents
/// running real tasks (needs root).
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class SchedulerApiTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static JsonObject Info(string name, double failoverTimeout = 60, params string[] capabilities) => new()
    {
        ["user"] = "root",
        ["name"] = name,
        ["failover_timeout"] = failoverTimeout,
        ["capabilities"] = new JsonArray([.. capabilities.Select(c => (JsonNode)new JsonObject { ["type"] = c })]),
    };

    private static async Task<InProcessCluster> ClusterAsync(int agents, MasterOptions? options = null)
    {
        var cluster = await InProcessCluster.StartAsync(options);
        for (var i = 0; i < agents; i++)
        {
            await cluster.AddAgentAsync($"mesos-host-{i}", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        }

        return cluster;
    }

    /// <summary>Collects offers until <paramref name="agents"/> distinct agents have offered; returns one offer per agent.</summary>
    private static async Task<List<JsonObject>> OffersFromAsync(RawScheduler s, int agents)
    {
        var byAgent = new Dictionary<string, JsonObject>();
        while (byAgent.Count < agents)
        {
            var e = await s.NextAsync("OFFERS", Timeout);
            foreach (var o in e["offers"]!["offers"]!.AsArray())
            {
                byAgent[(string)o!["agent_id"]!["value"]!] = o.AsObject();
            }
        }

        return [.. byAgent.Values];
    }

    private static string AgentOf(JsonObject offer) => (string)offer["agent_id"]!["value"]!;

    [Fact]
    public async Task Framework_OffersFromSeveralAgents_LaunchesAcknowledgesReconcilesAndTearsDown()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(3, new MasterOptions { SchedulerHeartbeatInterval = TimeSpan.FromSeconds(1) });
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("e2e-framework"));
        s.AutoAcknowledge = true;
        Assert.False(string.IsNullOrEmpty(s.StreamId));
        Assert.Equal(1.0, (double)s.Subscribed["subscribed"]!["heartbeat_interval_seconds"]!);
        Assert.Equal(s.FrameworkId.Split('-')[..^1], ((string)s.Subscribed["subscribed"]!["master_info"]!["id"]!).Split('-'));
        await s.NextAsync("HEARTBEAT", Timeout);

        var offers = await OffersFromAsync(s, 3);
        Assert.Equal(3, offers.Select(AgentOf).Distinct().Count());
        Assert.All(offers, o => Assert.Equal(2.0, RawScheduler.ScalarOf(o, "cpus")));

        // One short task per agent, and a long one on the first.
        var i = 0;
        foreach (var offer in offers)
        {
            var tasks = new List<JsonObject> { RawScheduler.CommandTask($"short-{i}", AgentOf(offer), "sleep 0.5") };
            if (i == 0)
            {
                tasks.Add(RawScheduler.CommandTask("long", AgentOf(offer), "sleep 600"));
            }

            await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, [.. tasks]));
            i++;
        }

        for (var t = 0; t < 3; t++)
        {
            var running = await s.UpdateAsync($"short-{t}", "TASK_RUNNING", Timeout);
            Assert.False(string.IsNullOrEmpty((string?)running["update"]!["status"]!["uuid"]));
            await s.UpdateAsync($"short-{t}", "TASK_FINISHED", Timeout);
        }

        var longRunning = await s.UpdateAsync("long", "TASK_RUNNING", Timeout);
        // (An automatic acknowledgement is sent before the event is handed to the test.)
        var longAgent = (string)longRunning["update"]!["status"]!["agent_id"]!["value"]!;

        // Re-subscribe on a new connection (scheduler failover): same framework id, new stream id.
        var oldStream = s.StreamId;
        await s.SubscribeAsync(Info("e2e-framework"));
        Assert.NotEqual(oldStream, s.StreamId);
        using (var stale = await s.CallAsync("REVIVE", streamId: oldStream))
        {
            Assert.Equal(HttpStatusCode.BadRequest, stale.StatusCode);
        }

        // Everything was acknowledged, so nothing is re-sent; implicit reconciliation reports the live task.
        await s.CallOkAsync("RECONCILE", new JsonObject { ["tasks"] = new JsonArray() });
        var reconciled = await s.UpdateAsync("long", "TASK_RUNNING", Timeout);
        Assert.Equal("REASON_RECONCILIATION", (string?)reconciled["update"]!["status"]!["reason"]);
        Assert.Null(reconciled["update"]!["status"]!["uuid"]);
        Assert.Equal(longAgent, (string)reconciled["update"]!["status"]!["agent_id"]!["value"]!);

        // Explicit reconciliation: a finished task and an unknown one.
        await s.CallOkAsync("RECONCILE", new JsonObject
        {
            ["tasks"] = new JsonArray(
                new JsonObject { ["task_id"] = new JsonObject { ["value"] = "short-1" } },
                new JsonObject { ["task_id"] = new JsonObject { ["value"] = "never-launched" } }),
        });
        await s.UpdateAsync("short-1", "TASK_FINISHED", Timeout);
        await s.UpdateAsync("never-launched", "TASK_LOST", Timeout);
        output.WriteLine(string.Join("\n", s.Log));
        var sinceResubscribe = s.Seen.Skip(s.Seen.FindLastIndex(e => (string?)e["type"] == "SUBSCRIBED") + 1);
        Assert.DoesNotContain(sinceResubscribe, e => (string?)e["type"] == "UPDATE" && e["update"]!["status"]!["uuid"] is not null);

        // TEARDOWN kills the framework's tasks.
        var droverId = $"{s.FrameworkId}.long";
        await s.CallOkAsync("TEARDOWN");
        var killed = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(droverId), t => t.State.IsTerminal(), Timeout, "the long task to be killed by TEARDOWN");
        Assert.Equal(TaskState.Killed, killed.State);
        Assert.Equal("REASON_FRAMEWORK_REMOVED", killed.Reason);
    }

    [Fact]
    public async Task TwoFrameworks_EqualWeight_FullCluster_EachHoldsHalf()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(0);
        await using var a = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("drf-a"));
        await using var b = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("drf-b"));
        using var stop = new CancellationTokenSource();
        var launchedA = new List<string>();
        var launchedB = new List<string>();
        var loops = new[] { Greedy(a, launchedA, stop.Token), Greedy(b, launchedB, stop.Token) };

        // The cluster fills as agents join: each agent's resources go to the framework with the lower share.
        for (var i = 0; i < 4; i++)
        {
            await cluster.AddAgentAsync($"drf-host-{i}", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        }

        var tasks = await Wait.UntilAsync(() => cluster.Client.ListTasksAsync(), ts => ts.Count(t => t.State == TaskState.Running) == 8, Timeout,
            "8 one-cpu framework tasks to run on the 8 cpus of the cluster", describe: ts => string.Join(", ", ts.Select(t => $"{t.Id}:{t.State}")));
        await stop.CancelAsync();
        await Task.WhenAll(loops);

        var running = tasks.Where(t => t.State == TaskState.Running).ToList();
        var split = $"A holds {running.Count(t => t.FrameworkId == a.FrameworkId)} cpus, B {running.Count(t => t.FrameworkId == b.FrameworkId)}; by agent: "
            + string.Join(", ", running.GroupBy(t => t.Hostname).Select(g => $"{g.Key}: {string.Join('+', g.Select(t => t.FrameworkId == a.FrameworkId ? "A" : "B"))}"));
        Assert.True(running.Count(t => t.FrameworkId == a.FrameworkId) == 4, split);
        Assert.True(running.Count(t => t.FrameworkId == b.FrameworkId) == 4, split);
    }

    /// <summary>
    /// A framework that wants everything: fills each offer with tasks of 1 cpu and 512 MiB (two use a whole test
    /// agent, so no leftover is offered: a leftover held by a framework counts in its DRF share until it declines
    /// it, which would make the split depend on timing), and declines what is too small.
    /// </summary>
    private static async Task Greedy(RawScheduler s, List<string> launched, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var e = await s.NextAsync("OFFERS", TimeSpan.FromMinutes(5)).WaitAsync(ct);
                foreach (var node in e["offers"]!["offers"]!.AsArray())
                {
                    var offer = node!.AsObject();
                    var n = (int)Math.Min(Math.Floor(RawScheduler.ScalarOf(offer, "cpus")), Math.Floor(RawScheduler.ScalarOf(offer, "mem") / 512));
                    if (n == 0)
                    {
                        await s.CallOkAsync("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()), ["filters"] = new JsonObject { ["refuse_seconds"] = 60 } });
                        continue;
                    }

                    var tasks = Enumerable.Range(0, n).Select(_ => RawScheduler.CommandTask($"t{launched.Count + 1}-{Guid.NewGuid():N}"[..12], AgentOf(offer), "sleep 600", cpus: 1, mem: 512)).ToArray();
                    launched.AddRange(tasks.Select(t => (string)t["task_id"]!["value"]!));
                    await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, tasks));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [Fact]
    public async Task Framework_Disconnects_KeepsTasksUntilFailoverTimeout_ThenTheyAreKilled()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(1);
        var info = Info("failover", failoverTimeout: 4);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, info);
        var offer = (await OffersFromAsync(s, 1))[0];
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("keeper", AgentOf(offer), "sleep 600")));
        var running = await s.UpdateAsync("keeper", "TASK_RUNNING", Timeout); // not acknowledged on purpose
        var uuid = (string)running["update"]!["status"]!["uuid"]!;
        var droverId = $"{s.FrameworkId}.keeper";

        // Disconnected for less than the failover timeout: the task keeps running, and the framework gets it back.
        s.Drop();
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync(droverId)).State);
        var id = s.FrameworkId;
        await s.SubscribeAsync(info);
        Assert.Equal(id, s.FrameworkId);
        var resent = await s.UpdateAsync("keeper", "TASK_RUNNING", Timeout);
        Assert.Equal(uuid, (string)resent["update"]!["status"]!["uuid"]!); // unacknowledged updates are re-sent on re-subscribe
        await s.AcknowledgeAsync(resent);
        await Task.Delay(TimeSpan.FromSeconds(3)); // past the first disconnect's timeout: re-subscribing reset it
        Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync(droverId)).State);

        // Gone for longer than the timeout: the framework is removed and its task killed.
        s.Drop();
        var killed = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(droverId), t => t.State.IsTerminal(), Timeout, "the task to be killed after the failover timeout");
        Assert.Equal(TaskState.Killed, killed.State);
        Assert.Equal("REASON_FRAMEWORK_REMOVED", killed.Reason);
        await s.SubscribeAsync(info).ContinueWith(_ => { }, TaskScheduler.Default);
        var error = s.Seen.LastOrDefault(e => (string?)e["type"] == "ERROR");
        Assert.NotNull(error);
        Assert.Contains("removed", (string)error!["error"]!["message"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MasterRestart_FrameworkCheckpointed_ReSubscribeGetsItsRunningTaskBack()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(1);
        var info = Info("survivor-framework", failoverTimeout: 120);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, info);
        s.AutoAcknowledge = true;
        var offer = (await OffersFromAsync(s, 1))[0];
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("survivor", AgentOf(offer), "sleep 600")));
        await s.UpdateAsync("survivor", "TASK_RUNNING", Timeout);
        var id = s.FrameworkId;

        s.Drop();
        await cluster.RestartMasterAsync();

        await s.SubscribeAsync(info);
        Assert.Equal(id, s.FrameworkId);
        await s.CallOkAsync("RECONCILE", new JsonObject { ["tasks"] = new JsonArray(new JsonObject { ["task_id"] = new JsonObject { ["value"] = "survivor" } }) });
        await s.UpdateAsync("survivor", "TASK_RUNNING", Timeout);
        var task = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync($"{id}.survivor"), t => t.State == TaskState.Running, Timeout, "the task to stay running once its agent is back");
        Assert.Equal(id, task.FrameworkId);
    }

    [Fact]
    public async Task CustomExecutor_LaunchedFromAnOffer_RunsTaskAndMessagesRoundTrip()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(1);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("executor-framework"));
        s.AutoAcknowledge = true;
        var offer = (await OffersFromAsync(s, 1))[0];
        var task = new JsonObject
        {
            ["name"] = "echo",
            ["task_id"] = new JsonObject { ["value"] = "echo-task" },
            ["agent_id"] = new JsonObject { ["value"] = AgentOf(offer) },
            ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", 0.5), RawScheduler.Scalar("mem", 64)),
            ["executor"] = new JsonObject
            {
                ["type"] = "CUSTOM",
                ["executor_id"] = new JsonObject { ["value"] = "echo-executor" },
                ["command"] = new JsonObject { ["value"] = TestExecutors.EchoExecutorShell },
                ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", 0.1), RawScheduler.Scalar("mem", 32)),
            },
            ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("run")),
        };
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, task));

        var running = await s.UpdateAsync("echo-task", "TASK_RUNNING", Timeout);
        Assert.Equal("echo-executor", (string?)running["update"]!["status"]!["executor_id"]?["value"]);

        // Scheduler → executor → scheduler: the echo executor sends every MESSAGE back.
        await s.CallOkAsync("MESSAGE", new JsonObject
        {
            ["agent_id"] = new JsonObject { ["value"] = AgentOf(offer) },
            ["executor_id"] = new JsonObject { ["value"] = "echo-executor" },
            ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("ping")),
        });
        var echoed = await s.NextAsync("MESSAGE", Timeout);
        Assert.Equal("echo-executor", (string?)echoed["message"]!["executor_id"]!["value"]);
        Assert.Equal("ping", Encoding.UTF8.GetString(Convert.FromBase64String((string)echoed["message"]!["data"]!)));

        // The executor knows the task by the framework's own id (its LAUNCH, and the ids of its UPDATEs and
        // ACKNOWLEDGEDs), not by Drover's framework-qualified one: read from the log it prints to its stdout.
        using var http = new HttpClient();
        var log = await Wait.UntilAsync(
            () => http.GetStringAsync(new Uri(cluster.Master.Url, $"/drover/v1/tasks/{s.FrameworkId}.echo-task/files/read?path=stdout&offset=0&length=65536")),
            l => l.Contains("ACKNOWLEDGED", StringComparison.Ordinal), Timeout, "the executor's log");
        Assert.Contains("LAUNCH echo-task run", log, StringComparison.Ordinal);
        Assert.Contains("ACKNOWLEDGED echo-task ", log, StringComparison.Ordinal);

        await s.CallOkAsync("KILL", new JsonObject { ["task_id"] = new JsonObject { ["value"] = "echo-task" } });
        await s.UpdateAsync("echo-task", "TASK_KILLED", Timeout);
    }

    [Fact]
    public async Task LaunchGroup_CustomAndDefaultExecutors_OneLaunchGroupEventRunningUpdatesAndKillSemantics()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(1);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("group-framework"));
        s.AutoAcknowledge = true;
        var offer = (await OffersFromAsync(s, 1))[0];
        var agentId = AgentOf(offer);
        JsonObject ExecutorTask(string id) => new()
        {
            ["name"] = id,
            ["task_id"] = new JsonObject { ["value"] = id },
            ["agent_id"] = new JsonObject { ["value"] = agentId },
            ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", 0.25), RawScheduler.Scalar("mem", 64)),
            ["data"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("run")),
        };
        JsonObject Group(JsonObject executor, params JsonObject[] tasks) => new()
        {
            ["type"] = "LAUNCH_GROUP",
            ["launch_group"] = new JsonObject { ["executor"] = executor, ["task_group"] = new JsonObject { ["tasks"] = new JsonArray([.. tasks]) } },
        };
        var custom = new JsonObject
        {
            ["type"] = "CUSTOM",
            ["executor_id"] = new JsonObject { ["value"] = "group-executor" },
            ["command"] = new JsonObject { ["value"] = TestExecutors.EchoExecutorShell },
            ["resources"] = new JsonArray(RawScheduler.Scalar("cpus", 0.1), RawScheduler.Scalar("mem", 32)),
        };
        var defaultExecutor = new JsonObject { ["type"] = "DEFAULT", ["executor_id"] = new JsonObject { ["value"] = "default-executor" } };
        await s.CallOkAsync("ACCEPT", new JsonObject
        {
            ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()),
            ["operations"] = new JsonArray(
                Group(custom, ExecutorTask("group-a"), ExecutorTask("group-b")),
                Group(defaultExecutor, RawScheduler.CommandTask("plain-a", agentId, "sleep 100", cpus: 0.2, mem: 32), RawScheduler.CommandTask("plain-b", agentId, "sleep 100", cpus: 0.2, mem: 32))),
            ["filters"] = new JsonObject { ["refuse_seconds"] = 0 },
        });

        foreach (var id in new[] { "group-a", "group-b", "plain-a", "plain-b" })
        {
            var running = await s.UpdateAsync(id, "TASK_RUNNING", Timeout);
            output.WriteLine($"{id}: {running["update"]!["status"]!["executor_id"]?["value"]}");
        }

        // The custom executor got both tasks in one LAUNCH_GROUP event, by the framework's own task ids, and no LAUNCH.
        using var http = new HttpClient();
        var log = await Wait.UntilAsync(
            () => http.GetStringAsync(new Uri(cluster.Master.Url, $"/drover/v1/tasks/{s.FrameworkId}.group-a/files/read?path=stdout&offset=0&length=65536")),
            l => l.Contains("LAUNCH_GROUP", StringComparison.Ordinal), Timeout, "the executor's log");
        var lines = ((string)JsonNode.Parse(log)!["data"]!).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["LAUNCH_GROUP group-a:run group-b:run"], lines.Where(l => l.StartsWith("LAUNCH", StringComparison.Ordinal)).ToArray());

        // A custom executor decides what a kill means (the echo executor kills just that task); the DEFAULT
        // executor's group is killed whole.
        await s.CallOkAsync("KILL", new JsonObject { ["task_id"] = new JsonObject { ["value"] = "group-a" } });
        await s.UpdateAsync("group-a", "TASK_KILLED", Timeout);
        await s.CallOkAsync("KILL", new JsonObject { ["task_id"] = new JsonObject { ["value"] = "plain-a" } });
        await s.UpdateAsync("plain-a", "TASK_KILLED", Timeout);
        await s.UpdateAsync("plain-b", "TASK_KILLED", Timeout);
        Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync($"{s.FrameworkId}.group-b")).State);
    }

    [Fact]
    public async Task Calls_Invalid_AnsweredAsMesos()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await ClusterAsync(1);
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("validation"));

        using (var missing = await s.CallAsync("REVIVE", withStreamId: false))
        {
            Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
            Assert.Contains("Mesos-Stream-Id", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var wrong = await s.CallAsync("REVIVE", streamId: "not-the-stream"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        }

        using (var http = new HttpClient())
        {
            using var protobuf = new ByteArrayContent([1, 2, 3]);
            protobuf.Headers.ContentType = new("application/x-protobuf");
            using var answer = await http.PostAsync(new Uri(cluster.Master.Url, "/api/v1/scheduler"), protobuf);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, answer.StatusCode);
            Assert.Contains("JSON only", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            using var malformed = await http.PostAsync(new Uri(cluster.Master.Url, "/api/v1/scheduler"), new StringContent("{\"type\": 7", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        }

        var offer = (await OffersFromAsync(s, 1))[0];
        var agent = AgentOf(offer);

        // An operation Drover does not support refuses the call; the offer stays usable.
        var reserve = RawScheduler.Launch(offer, 0);
        reserve["operations"] = new JsonArray(new JsonObject { ["type"] = "RESERVE", ["reserve"] = new JsonObject() });
        using (var refused = await s.CallAsync("ACCEPT", reserve))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("RESERVE", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Resources beyond the offer: TASK_ERROR naming the problem; the valid task of the same call runs.
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0,
            RawScheduler.CommandTask("too-big", agent, "true", cpus: 64),
            RawScheduler.CommandTask("fits", agent, "sleep 600")));
        var error = await s.UpdateAsync("too-big", "TASK_ERROR", Timeout);
        Assert.Equal("REASON_TASK_INVALID", (string?)error["update"]!["status"]!["reason"]);
        Assert.Contains("more resources", (string?)error["update"]!["status"]!["message"], StringComparison.Ordinal);
        await s.UpdateAsync("fits", "TASK_RUNNING", Timeout);

        // The same offer again (used up) and an offer that never existed: TASK_LOST, REASON_INVALID_OFFERS.
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("late", agent, "true")));
        var lost = await s.UpdateAsync("late", "TASK_LOST", Timeout);
        Assert.Equal("REASON_INVALID_OFFERS", (string?)lost["update"]!["status"]!["reason"]);
        var bogus = new JsonObject { ["id"] = new JsonObject { ["value"] = "no-such-offer" } };
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(bogus, 0, RawScheduler.CommandTask("bogus", agent, "true")));
        await s.UpdateAsync("bogus", "TASK_LOST", Timeout);

        // A PARTITION_AWARE framework gets TASK_DROPPED instead.
        await using var aware = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("aware", 60, "PARTITION_AWARE"));
        await aware.CallOkAsync("ACCEPT", RawScheduler.Launch(bogus, 0, RawScheduler.CommandTask("dropped", agent, "true")));
        await aware.UpdateAsync("dropped", "TASK_DROPPED", Timeout);
    }
}
