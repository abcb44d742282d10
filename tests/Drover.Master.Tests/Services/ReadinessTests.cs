using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>Marathon readiness checks gating rolling updates, on a real in-process cluster (needs root).</summary>
[Collection(RealClusterCollection.Name)]
public sealed class ReadinessTests() : ServiceClusterTest("ready-host", "cpus:8;mem:4096;disk:1024", 100)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static bool Settled(JsonObject app, int n) =>
        app["tasksHealthy"]!.GetValue<int>() == n && app["deployments"]!.AsArray().Count == 0 && app["tasks"]!.AsArray().Count == n;

    /// <summary>
    /// Every instance answers HTTP (and so passes its health check) at once, but its readiness endpoint
    /// (<c>/ready</c>, a file python serves from the sandbox) only appears 5 s after it started.
    /// </summary>
    private static string App(string id, int instances) => $$"""
        {"id": "{{id}}", "cmd": "(sleep 5; touch ready) & exec python3 -m http.server $PORT0", "cpus": 0.25, "mem": 48, "instances": {{instances}},
         "portDefinitions": [{"port": 0, "name": "http"}],
         "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
         "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "path": "/", "gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 3, "maxConsecutiveFailures": 3, "delaySeconds": 0},
                          {"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 3, "delaySeconds": 0}],
         "readinessChecks": [{"name": "warm", "portName": "http", "path": "/ready", "intervalSeconds": 2, "timeoutSeconds": 1, "httpStatusCodesForReady": [200]}]}
        """;

    [Fact]
    public async Task RollingRestart_NewInstancesReadyLate_NoOldInstanceKilledBeforeANewOneIsReady()
    {
        if (Cluster is null)
        {
            return;
        }

        const int N = 2;
        var (created, _) = await Send(HttpMethod.Post, "/v2/apps", App("/warm", N));
        Assert.Equal(HttpStatusCode.Created, created);

        // A deployment only finishes once its instances are ready too.
        var started = await Wait.UntilAsync(() => App("/warm"), a => Settled(a, N), Timeout, "2 healthy instances, deployment done");
        var firstTasks = await Cluster.Client.ListTasksAsync(TaskState.Running);
        Assert.All(firstTasks.Where(t => t.AppId == "/warm"), t => Assert.True(t.Ready, $"{t.Id} finished the deployment without being ready"));
        Assert.All(started["tasks"]!.AsArray(), t => Assert.Equal(2, t!["healthCheckResults"]!.AsArray().Count));
        var oldVersion = firstTasks.First(t => t.AppId == "/warm").AppVersion;

        var (status, _) = await Send(HttpMethod.Post, "/v2/apps/warm/restart");
        Assert.Equal(HttpStatusCode.OK, status);

        // Sample the cluster throughout the rollout. With minimumHealthCapacity 1 the floor is N: at every
        // moment, running old instances + new instances that are healthy AND ready must be at least N, so
        // an old instance may only go once a new one is ready.
        var minCapacity = int.MaxValue;
        var sawHealthyButNotReady = false;
        var sawReadinessResult = false;
        var samples = 0;
        var done = await Wait.UntilAsync(async () =>
        {
            var tasks = (await Cluster.Client.ListTasksAsync()).Where(t => t.AppId == "/warm" && !t.State.IsTerminal()).ToList();
            var oldRunning = tasks.Count(t => t.AppVersion == oldVersion && t.State == TaskState.Running);
            var fresh = tasks.Where(t => t.AppVersion != oldVersion && t.State == TaskState.Running && t.Healthy == true).ToList();
            var freshReady = fresh.Count(t => t.Ready == true);
            minCapacity = Math.Min(minCapacity, oldRunning + freshReady);
            sawHealthyButNotReady |= fresh.Count > freshReady && oldRunning == N;
            if (!sawReadinessResult)
            {
                var (_, deployments) = await Send(HttpMethod.Get, "/v2/deployments");
                sawReadinessResult = deployments!.AsArray().Any(d => d!["currentActions"]!.AsArray()
                    .Any(a => a!["readinessCheckResults"]!.AsArray().Any(r => r!["name"]!.GetValue<string>() == "warm" && !r["ready"]!.GetValue<bool>())));
            }

            samples++;
            return (Tasks: tasks, App: await App("/warm"));
        }, s => Settled(s.App, N) && s.Tasks.Count == N && s.Tasks.All(t => t.AppVersion != oldVersion), Timeout,
        "the rolling restart to complete with every instance on the new version", interval: TimeSpan.FromMilliseconds(50));

        Assert.True(minCapacity >= N, $"running old + ready new instances dropped to {minCapacity} (floor {N}) over {samples} samples");
        Assert.True(sawHealthyButNotReady, "never saw a healthy new instance waiting for readiness while the old ones ran: the test did not exercise the gate");
        Assert.True(sawReadinessResult, "/v2/deployments never showed a not-yet-ready readiness check result");
        Assert.All(done.Tasks, t => Assert.True(t.Ready == true && t.Healthy == true, $"{t.Id}: ready={t.Ready}, healthy={t.Healthy}"));
    }
}
