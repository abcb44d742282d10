using System.Net;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// A malformed ACCEPT is refused before any offer is touched, and no ACCEPT, however malformed, answers 500 or leaves
/// an agent's resources held by offers nobody has (issue 14: an empty env name used to answer 500 and keep the agent at 0
/// free until the master restarted). Real master and agent (needs root).
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class AcceptLimitsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static JsonObject Info(string name) => new() { ["user"] = "root", ["name"] = name, ["failover_timeout"] = 60 };

    private static string AgentOf(JsonObject offer) => (string)offer["agent_id"]!["value"]!;

    private static async Task<JsonObject> NextOfferAsync(RawScheduler s) =>
        (await s.NextAsync("OFFERS", Timeout))["offers"]!["offers"]!.AsArray()[0]!.AsObject();

    private static JsonObject WithEnv(JsonObject task, JsonNode variable)
    {
        task["command"]!["environment"] = new JsonObject { ["variables"] = new JsonArray(variable) };
        return task;
    }

    private static AgentRecordView Ledger(InProcessCluster cluster, string agentId)
    {
        var a = cluster.Master.Services.GetRequiredService<ClusterState>().OfferView(0, includeTasks: false).Agents.Single(x => x.Id == agentId);
        return new AgentRecordView(a.Total, a.Free, a.Offered);
    }

    private sealed record AgentRecordView(Resources Total, Resources Free, Resources Offered);

    [Fact]
    public async Task Accept_BadEnvironmentOrCommand_400NamingTheFieldAndTheOfferStaysUsable()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("accept-limits", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("accept-limits"));
        s.AutoAcknowledge = true;
        var offer = await NextOfferAsync(s);
        var agent = AgentOf(offer);
        var offered = Ledger(cluster, agent).Offered;
        Assert.True(offered.MilliCpus > 0);

        JsonObject Task() => RawScheduler.CommandTask("t", agent, "true");
        var bad = new (string Field, JsonObject Task)[]
        {
            ("variables[0].name", WithEnv(Task(), new JsonObject { ["name"] = "", ["value"] = "v" })),
            ("variables[0].name", WithEnv(Task(), new JsonObject { ["name"] = "A=B", ["value"] = "v" })),
            ("variables[0].name", WithEnv(Task(), new JsonObject { ["name"] = "A\0B", ["value"] = "v" })),
            ("variables[0].name", WithEnv(Task(), new JsonObject { ["value"] = "no name" })),
            ("variables[0].value", WithEnv(Task(), new JsonObject { ["name"] = "A", ["value"] = "x\0y" })),
            ("variables[0]", WithEnv(Task(), null!)),
            ("command.value", RawScheduler.CommandTask("t", agent, "tr\0ue")),
            ("command.value", RawScheduler.CommandTask("t", agent, new string('x', InputLimits.MaxArgStringBytes))),
        };

        foreach (var (field, task) in bad)
        {
            using var refused = await s.CallAsync("ACCEPT", RawScheduler.Launch(offer, 0, task));
            var text = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"{field}: {(int)refused.StatusCode} {text}");
            Assert.Contains(field, text, StringComparison.Ordinal);
            Assert.Contains("offers are still outstanding", text, StringComparison.Ordinal);
        }

        // Nothing was consumed: the offer still holds exactly what it held, nothing is used, no task exists.
        var ledger = Ledger(cluster, agent);
        Assert.Equal(offered, ledger.Offered);
        Assert.Equal(ledger.Total, ledger.Free.Add(ledger.Offered));
        Assert.Empty(cluster.Master.Services.GetRequiredService<ClusterState>().ListTasks());

        // Declined, the whole agent is free again and offered again; a valid call then launches on it.
        await s.CallOkAsync("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()), ["filters"] = new JsonObject { ["refuse_seconds"] = 0 } });
        var again = await NextOfferAsync(s);
        Assert.Equal(2.0, RawScheduler.ScalarOf(again, "cpus"));
        Assert.Equal(1024.0, RawScheduler.ScalarOf(again, "mem"));
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(again, 0, RawScheduler.CommandTask("valid", agent, "sleep 600", cpus: 2, mem: 1024)));
        await s.UpdateAsync("valid", "TASK_RUNNING", Timeout);
        ledger = Ledger(cluster, agent);
        Assert.True(ledger.Free.MilliCpus == 0 && ledger.Offered.IsZero, $"free {ledger.Free}, offered {ledger.Offered}");
    }

    [Fact]
    public async Task Accept_FuzzedMalformedOperations_NeverA500AndNoResourcesLeak()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("accept-fuzz", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        await using var s = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("accept-fuzz")); // no acknowledgements: some updates name no task

        var shapes = new Func<string, JsonObject>[]
        {
            _ => new JsonObject { ["type"] = "LAUNCH" },
            _ => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(new JsonObject()) } },
            _ => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray((JsonNode?)null) } },
            a => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(new JsonObject { ["task_id"] = new JsonObject(), ["agent_id"] = new JsonObject { ["value"] = a }, ["command"] = new JsonObject() }) } },
            a => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(new JsonObject { ["task_id"] = new JsonObject { ["value"] = "r" }, ["agent_id"] = new JsonObject { ["value"] = a }, ["resources"] = new JsonArray(new JsonObject { ["name"] = "cpus" }), ["command"] = new JsonObject { ["value"] = "true" } }) } },
            a => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(WithEnv(RawScheduler.CommandTask("e", a, "true"), new JsonObject { ["name"] = "X", ["type"] = "SECRET" })) } },
            a => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(NullArgument(RawScheduler.CommandTask("args", a, "true"))) } },
            _ => new JsonObject { ["type"] = "LAUNCH_GROUP" },
            _ => new JsonObject { ["type"] = "LAUNCH_GROUP", ["launch_group"] = new JsonObject { ["executor"] = new JsonObject { ["type"] = "DEFAULT" }, ["task_group"] = new JsonObject { ["tasks"] = new JsonArray((JsonNode?)null) } } },
            a => new JsonObject { ["type"] = "LAUNCH_GROUP", ["launch_group"] = new JsonObject { ["executor"] = new JsonObject { ["type"] = "DEFAULT", ["executor_id"] = new JsonObject { ["value"] = "x" }, ["command"] = new JsonObject { ["value"] = "run", ["environment"] = new JsonObject { ["variables"] = new JsonArray(new JsonObject { ["name"] = "" }) } } }, ["task_group"] = new JsonObject { ["tasks"] = new JsonArray(RawScheduler.CommandTask("g", a, "true")) } } },
            a => new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray(RawScheduler.CommandTask("big", a, "true", cpus: 1e12, mem: -5)) } },
        };

        JsonObject? held = null;
        foreach (var shape in shapes)
        {
            var offer = held ?? await NextOfferAsync(s);
            var call = RawScheduler.Launch(offer, 0);
            call["operations"] = new JsonArray(shape(AgentOf(offer)));
            using var answer = await s.CallAsync("ACCEPT", call);
            var text = await answer.Content.ReadAsStringAsync();
            Assert.True(answer.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.BadRequest, $"{call.ToJsonString()} → {(int)answer.StatusCode} {text}");
            held = answer.StatusCode == HttpStatusCode.BadRequest ? offer : null; // a refused call leaves the offer outstanding
        }

        if (held is not null)
        {
            await s.CallOkAsync("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(held["id"]!.DeepClone()), ["filters"] = new JsonObject { ["refuse_seconds"] = 0 } });
        }

        // Everything comes back: an offer of the whole agent (leftovers are declined until it comes), which a task can use.
        JsonObject whole;
        while (RawScheduler.ScalarOf(whole = await NextOfferAsync(s), "cpus") < 2.0)
        {
            await s.CallOkAsync("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(whole["id"]!.DeepClone()), ["filters"] = new JsonObject { ["refuse_seconds"] = 0 } });
        }

        Assert.Equal(1024.0, RawScheduler.ScalarOf(whole, "mem"));
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(whole, 0, RawScheduler.CommandTask("after", AgentOf(whole), "sleep 600", cpus: 2, mem: 1024)));
        await s.UpdateAsync("after", "TASK_RUNNING", Timeout);
    }

    private static JsonObject NullArgument(JsonObject task)
    {
        task["command"]!["shell"] = false;
        task["command"]!["arguments"] = new JsonArray("true", null);
        return task;
    }
}
