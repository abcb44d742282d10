using System.Net;
using System.Text.Json.Nodes;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>Draining an agent of a real in-process cluster (needs root: instances are real processes).</summary>
[Collection(RealClusterCollection.Name)]
public sealed class DrainClusterTests() : ServiceClusterTest("drain-a", "cpus:4;mem:2048;disk:1024", 100)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private const string WebApp = """
        {"id": "/moving", "cmd": "python3 -m http.server $PORT0", "cpus": 0.05, "mem": 48, "instances": 3,
         "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 3, "maxConsecutiveFailures": 3, "delaySeconds": 0}]}
        """;

    private static IEnumerable<JsonNode> Tasks(JsonObject app) => app["tasks"]!.AsArray().Select(t => t!);

    private static bool Healthy(JsonNode t) => t["state"]!.GetValue<string>() == "TASK_RUNNING"
        && t["healthCheckResults"]!.AsArray().Any(r => r!["alive"]!.GetValue<bool>());

    [Fact]
    public async Task DrainAgent_AppInstancesMoveToOtherAgent_NeverBelowInstanceCountHealthy()
    {
        if (Cluster is null)
        {
            return;
        }

        var (created, _) = await Send(HttpMethod.Post, "/v2/apps", WebApp);
        Assert.Equal(HttpStatusCode.Created, created);
        await Wait.UntilAsync(() => App("/moving"), a => Tasks(a).Count(Healthy) == 3 && a["deployments"]!.AsArray().Count == 0, Timeout, "3 healthy instances on drain-a");
        await Cluster.AddAgentAsync("drain-b", TestPorts.Resources("cpus:4;mem:2048;disk:1024", 100));
        var agents = await Cluster.Client.ListAgentsAsync();
        var a = agents.Single(x => x.Hostname == "drain-a").Id;

        var drained = await Cluster.Client.DrainAgentAsync(a, TimeSpan.FromMinutes(10));
        Assert.Equal("draining", drained.Status);

        // Sample throughout the move: the app never has fewer than 3 healthy instances, and the
        // drained agent gets nothing new.
        var minHealthy = int.MaxValue;
        var maxOnA = 0;
        var moved = await Wait.UntilAsync(async () =>
        {
            var app = await App("/moving");
            minHealthy = Math.Min(minHealthy, Tasks(app).Count(Healthy));
            maxOnA = Math.Max(maxOnA, Tasks(app).Count(t => t["host"]!.GetValue<string>() == "drain-a"));
            return app;
        }, app => Tasks(app).Count() == 3 && Tasks(app).All(t => Healthy(t) && t["host"]!.GetValue<string>() == "drain-b"), Timeout,
        "all 3 instances healthy on drain-b", interval: TimeSpan.FromMilliseconds(50));

        Assert.True(minHealthy >= 3, $"healthy instances dropped to {minHealthy} during the drain");
        Assert.True(maxOnA <= 3, $"{maxOnA} instances on the draining agent");
        Assert.Equal(3, Tasks(moved).Count());
        var after = await Wait.UntilAsync(() => Cluster.Client.GetAgentAsync(a), x => x.Status == "drained", Timeout, "drain-a drained");
        Assert.Equal(0, after.ActiveTasks);
        Assert.Equal(drained.DrainDeadline, after.DrainDeadline);
    }
}
