using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>Marathon apps on a real in-process cluster (needs root: instances are real processes).</summary>
[Collection(RealClusterCollection.Name)]
public sealed class ServicesTests() : ServiceClusterTest("svc-host", "cpus:8;mem:4096;disk:1024", 200)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static string HttpApp(string id, int instances, string cmd = "python3 -m http.server $PORT0", string extra = "") => $$"""
        {"id": "{{id}}", "cmd": "{{cmd}}", "cpus": 0.05, "mem": 48, "instances": {{instances}}{{extra}},
         "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 3, "maxConsecutiveFailures": 3, "delaySeconds": 0}]}
        """;

    private async Task<JsonObject> WaitForApp(string id, Func<JsonObject, bool> done, string what) =>
        await Wait.UntilAsync(() => App(id), done, Timeout, what);

    private static int Healthy(JsonObject app) => app["tasksHealthy"]!.GetValue<int>();

    private static bool Settled(JsonObject app, int n) => Healthy(app) == n && app["deployments"]!.AsArray().Count == 0 && app["tasks"]!.AsArray().Count == n;

    [Fact]
    public async Task PostApp_ThreeInstances_HealthyAndAnsweringOnTheirPorts()
    {
        if (Cluster is null)
        {
            return;
        }

        var (status, body) = await Send(HttpMethod.Post, "/v2/apps", HttpApp("/web", 3));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("/web", body!["id"]!.GetValue<string>());
        Assert.Single(body["deployments"]!.AsArray());

        var app = await WaitForApp("/web", a => Settled(a, 3), "3 healthy instances");

        using var probe = new HttpClient();
        foreach (var task in app["tasks"]!.AsArray())
        {
            var port = task!["ports"]![0]!.GetValue<int>();
            Assert.Equal(HttpStatusCode.OK, (await probe.GetAsync($"http://127.0.0.1:{port}/")).StatusCode);
            Assert.True(task["healthCheckResults"]![0]!["alive"]!.GetValue<bool>());
        }
    }

    [Fact]
    public async Task KilledInstanceProcess_ReplacedAndFailureRecorded()
    {
        if (Cluster is null)
        {
            return;
        }

        await Send(HttpMethod.Post, "/v2/apps", HttpApp("/heal", 2));
        var app = await WaitForApp("/heal", a => Settled(a, 2), "2 healthy instances");
        var victim = app["tasks"]![0]!["id"]!.GetValue<string>();
        var cgroup = Path.Combine("/sys/fs/cgroup/memory", DroverHosts.CgroupNameFor(Path.Combine(Cluster.Root, "svc-host")), victim, "cgroup.procs");
        // Every process of the instance, killed from outside; one may already be gone when the next is reached
        // (the task's PID namespace ends with its first process).
        foreach (var pid in File.ReadAllLines(cgroup))
        {
            if (Drover.Testing.Processes.ProcessIdentity.Of(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture)) is { } process)
            {
                Drover.Testing.Processes.LinuxProcesses.Kill(process);
            }
        }

        var healed = await WaitForApp("/heal", a => Settled(a, 2) && a["tasks"]!.AsArray().All(t => t!["id"]!.GetValue<string>() != victim), "a healthy replacement");

        Assert.True(victim == healed["lastTaskFailure"]!["taskId"]!.GetValue<string>(), healed["lastTaskFailure"]!.ToJsonString());
        Assert.Equal("TASK_FAILED", healed["lastTaskFailure"]!["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task RollingRestart_TenInstancesHalfCapacity_NeverBelowFiveHealthy()
    {
        if (Cluster is null)
        {
            return;
        }

        var strategy = ""","upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}""";
        await Send(HttpMethod.Post, "/v2/apps", HttpApp("/roll", 10, extra: strategy));
        var before = await WaitForApp("/roll", a => Settled(a, 10), "10 healthy instances");
        var oldVersion = before["version"]!.GetValue<string>();

        var (status, restart) = await Send(HttpMethod.Post, "/v2/apps/roll/restart");
        Assert.Equal(HttpStatusCode.OK, status);
        var newVersion = restart!["version"]!.GetValue<string>();
        Assert.NotEqual(oldVersion, newVersion);

        // Sample the API throughout the rollout: the healthy count never drops below the floor,
        // and never more than 10 instances run at once (maximumOverCapacity 0).
        var minHealthy = int.MaxValue;
        var maxTotal = 0;
        var done = await Wait.UntilAsync(async () =>
        {
            var app = await App("/roll");
            var healthy = app["tasks"]!.AsArray().Count(t => t!["state"]!.GetValue<string>() == "TASK_RUNNING"
                && t["healthCheckResults"]!.AsArray().Any(r => r!["alive"]!.GetValue<bool>()));
            minHealthy = Math.Min(minHealthy, healthy);
            maxTotal = Math.Max(maxTotal, app["tasks"]!.AsArray().Count(t => t!["state"]!.GetValue<string>() != "TASK_KILLING"));
            return app;
        }, a => Settled(a, 10) && a["tasks"]!.AsArray().All(t => t!["version"]!.GetValue<string>() == newVersion), Timeout, "all 10 instances on the new version",
        interval: TimeSpan.FromMilliseconds(50));

        Assert.True(minHealthy >= 5, $"healthy instances dropped to {minHealthy} during the rolling restart");
        Assert.True(maxTotal <= 10, $"{maxTotal} instances ran at once");
        Assert.Equal(10, Healthy(done));
    }

    [Fact]
    public async Task FailingNewVersion_StaysAtFloor_RollbackRestores()
    {
        if (Cluster is null)
        {
            return;
        }

        var strategy = ""","upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}""";
        await Send(HttpMethod.Post, "/v2/apps", HttpApp("/bad", 4, extra: strategy));
        var good = await WaitForApp("/bad", a => Settled(a, 4), "4 healthy instances");

        // A version that never answers its health check.
        var (status, put) = await Send(HttpMethod.Put, "/v2/apps/bad", """{"cmd": "sleep 1000"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var deployment = put!["deploymentId"]!.GetValue<string>();

        var minHealthy = int.MaxValue;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        while (DateTime.UtcNow < deadline)
        {
            minHealthy = Math.Min(minHealthy, Healthy(await App("/bad")));
            await Task.Delay(100);
        }

        Assert.True(minHealthy >= 2, $"healthy instances dropped to {minHealthy}; the floor is 2");
        var (locked, conflict) = await Send(HttpMethod.Put, "/v2/apps/bad", """{"instances": 5}""");
        Assert.Equal(HttpStatusCode.Conflict, locked);
        Assert.Equal(deployment, conflict!["deployments"]![0]!["id"]!.GetValue<string>());

        var (rolledBack, _) = await Send(HttpMethod.Delete, "/v2/deployments/" + deployment);
        Assert.Equal(HttpStatusCode.OK, rolledBack);

        var restored = await WaitForApp("/bad", a => Settled(a, 4), "4 healthy instances after rollback");
        Assert.Equal(good["cmd"]!.GetValue<string>(), restored["cmd"]!.GetValue<string>());
    }

    [Fact]
    public async Task ScaleAndDelete_InstancesFollow()
    {
        if (Cluster is null)
        {
            return;
        }

        await Send(HttpMethod.Post, "/v2/apps", HttpApp("/scale", 1));
        var first = await WaitForApp("/scale", a => Settled(a, 1), "1 instance");
        var firstTask = first["tasks"]![0]!["id"]!.GetValue<string>();

        var (status, _) = await Send(HttpMethod.Put, "/v2/apps/scale", """{"instances": 3}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var scaled = await WaitForApp("/scale", a => Settled(a, 3), "3 instances");

        // As in Marathon: a scale is a new version but the same configuration, so the first instance keeps running.
        Assert.NotEqual(first["version"]!.GetValue<string>(), scaled["version"]!.GetValue<string>());
        Assert.Equal(first["versionInfo"]!["lastConfigChangeAt"]!.GetValue<string>(), scaled["versionInfo"]!["lastConfigChangeAt"]!.GetValue<string>());
        Assert.Contains(scaled["tasks"]!.AsArray(), t => t!["id"]!.GetValue<string>() == firstTask);
        var (_, versions) = await Send(HttpMethod.Get, "/v2/apps/scale/versions");
        var list = versions!["versions"]!.AsArray().Select(v => v!.GetValue<string>()).ToList();
        Assert.Equal(2, list.Count);
        Assert.Equal(list.Count, list.Distinct().Count());

        var one = scaled["tasks"]![0]!["id"]!.GetValue<string>();
        var (killed, _) = await Send(HttpMethod.Delete, $"/v2/apps/scale/tasks/{one}?scale=true");
        Assert.Equal(HttpStatusCode.OK, killed);
        await WaitForApp("/scale", a => a["instances"]!.GetValue<int>() == 2 && Settled(a, 2), "scaled down to 2");

        var (deleted, _) = await Send(HttpMethod.Delete, "/v2/apps/scale");
        Assert.Equal(HttpStatusCode.OK, deleted);
        await Wait.UntilAsync(async () => (await Send(HttpMethod.Get, "/v2/apps/scale")).Status == HttpStatusCode.NotFound, Timeout, "the app to be gone");
        Assert.Empty((await Cluster.Client.ListTasksAsync(Core.TaskState.Running)).Where(t => t.AppId == "/scale"));
    }

    [Fact]
    public async Task BadDefinitions_MarathonErrorShapes()
    {
        if (Cluster is null)
        {
            return;
        }

        var (invalid, body) = await Send(HttpMethod.Post, "/v2/apps", """{"id": "/v", "cmd": "true", "cpus": -1, "instances": -2}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, invalid);
        Assert.Equal("Object is not valid", body!["message"]!.GetValue<string>());
        var paths = body["details"]!.AsArray().Select(d => d!["path"]!.GetValue<string>()).ToList();
        Assert.Contains("/cpus", paths);
        Assert.Contains("/instances", paths);

        var (container, c) = await Send(HttpMethod.Post, "/v2/apps", """{"id": "/c", "container": {"type": "DOCKER", "docker": {"image": "nginx"}}}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, container);
        Assert.Contains(c!["details"]!.AsArray(), d => d!["path"]!.GetValue<string>().StartsWith("/container", StringComparison.Ordinal));

        var (missing, m) = await Send(HttpMethod.Get, "/v2/apps/nope");
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("App '/nope' does not exist", m!["message"]!.GetValue<string>());

        await Send(HttpMethod.Post, "/v2/apps", """{"id": "/dup", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16}""");
        var (dup, d) = await Send(HttpMethod.Post, "/v2/apps", """{"id": "/dup", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16}""");
        Assert.Equal(HttpStatusCode.Conflict, dup);
        Assert.Contains("already exists", d!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Group_WithDependencies_OnePlanDependentsStartAfterDependencies()
    {
        if (Cluster is null)
        {
            return;
        }

        var healthy = """, "healthChecks": [{"gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 3, "delaySeconds": 1}]""";
        var body = $$"""
            {"id": "/shop", "groups": [
              {"id": "database", "apps": [
                {"id": "mongo", "cmd": "python3 -m http.server $PORT0", "cpus": 0.05, "mem": 48 {{healthy}}},
                {"id": "mysql", "cmd": "python3 -m http.server $PORT0", "cpus": 0.05, "mem": 48 {{healthy}}}]},
              {"id": "service", "dependencies": ["/shop/database"], "apps": [
                {"id": "rails", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16, "instances": 2}]}]}
            """;
        var (created, result) = await Send(HttpMethod.Post, "/v2/groups", body);
        Assert.Equal(HttpStatusCode.Created, created);
        var deploymentId = result!["deploymentId"]!.GetValue<string>();

        var (_, deployments) = await Send(HttpMethod.Get, "/v2/deployments");
        var plan = Assert.Single(deployments!.AsArray(), d => d!["id"]!.GetValue<string>() == deploymentId)!;
        Assert.Equal(["/shop/database/mongo", "/shop/database/mysql", "/shop/service/rails"],
            plan["affectedApps"]!.AsArray().Select(a => a!.GetValue<string>()).Order().ToArray());

        var rails = await WaitForApp("/shop/service/rails", a => a["tasksRunning"]!.GetValue<int>() == 2 && a["deployments"]!.AsArray().Count == 0, "the dependent app");
        var databaseStarts = new List<DateTimeOffset>();
        foreach (var db in new[] { "/shop/database/mongo", "/shop/database/mysql" })
        {
            var app = await App(db);
            Assert.Equal(1, Healthy(app));
            databaseStarts.AddRange(app["tasks"]!.AsArray().Select(t => DateTimeOffset.Parse(t!["startedAt"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture)));
        }

        // The dependent app was staged only after its dependencies were running (and healthy: their
        // checks start 1 s after they run, so staging follows their start by at least that).
        var railsStaged = rails["tasks"]!.AsArray().Min(t => DateTimeOffset.Parse(t!["stagedAt"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(railsStaged > databaseStarts.Max() + TimeSpan.FromSeconds(0.9), $"rails staged at {railsStaged:O}, databases started at {databaseStarts.Max():O}");

        var (_, tree) = await Send(HttpMethod.Get, "/v2/groups/shop");
        Assert.Equal(["/shop/database", "/shop/service"], tree!["groups"]!.AsArray().Select(g => g!["id"]!.GetValue<string>()).ToArray());

        var (scaled, _) = await Send(HttpMethod.Put, "/v2/groups/shop/service", """{"scaleBy": 1.5}""");
        Assert.Equal(HttpStatusCode.OK, scaled);
        await WaitForApp("/shop/service/rails", a => a["instances"]!.GetValue<int>() == 3 && a["tasksRunning"]!.GetValue<int>() == 3, "scaled to 3");

        var (deleted, _) = await Send(HttpMethod.Delete, "/v2/groups/shop");
        Assert.Equal(HttpStatusCode.OK, deleted);
        await Wait.UntilAsync(async () => (await Send(HttpMethod.Get, "/v2/groups/shop")).Status == HttpStatusCode.NotFound, Timeout, "the group to be gone");
    }

    [Fact]
    public async Task PutAppsArray_TwoApps_OnePlanBothRunning()
    {
        if (Cluster is null)
        {
            return;
        }

        // Health checks that cannot pass for 2 s keep the plan open long enough to look at it.
        var check = """ "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}, "delaySeconds": 2, "intervalSeconds": 1, "gracePeriodSeconds": 10}]""";
        var (status, body) = await Send(HttpMethod.Put, "/v2/apps",
            $$"""[{"id": "/multi/a", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16, {{check}}}, {"id": "/multi/b", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16, "instances": 2, {{check}}}]""");

        Assert.Equal(HttpStatusCode.OK, status);
        var plan = body!["deploymentId"]!.GetValue<string>();
        var (_, deployments) = await Send(HttpMethod.Get, "/v2/deployments");
        var entry = Assert.Single(deployments!.AsArray(), d => d!["id"]!.GetValue<string>() == plan)!;
        Assert.Equal(["/multi/a", "/multi/b"], entry["affectedApps"]!.AsArray().Select(a => a!.GetValue<string>()).Order().ToArray());

        await WaitForApp("/multi/a", a => Settled(a, 1), "/multi/a healthy");
        await WaitForApp("/multi/b", a => Settled(a, 2), "/multi/b healthy");
    }

    [Fact]
    public async Task GroupPut_VersionRollsBack_PartialBodyKeepsApps()
    {
        if (Cluster is null)
        {
            return;
        }

        await Send(HttpMethod.Post, "/v2/groups", """{"id": "/gv", "apps": [{"id": "a", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16}]}""");
        await WaitForApp("/gv/a", a => a["tasksRunning"]!.GetValue<int>() == 1 && a["deployments"]!.AsArray().Count == 0, "/gv/a");
        var v1 = (await Send(HttpMethod.Get, "/v2/groups/gv")).Body!["version"]!.GetValue<string>();

        var (updated, _) = await Send(HttpMethod.Put, "/v2/groups/gv",
            """{"apps": [{"id": "a", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16, "instances": 2}, {"id": "b", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16}]}""");
        Assert.Equal(HttpStatusCode.OK, updated);
        await WaitForApp("/gv/b", a => a["tasksRunning"]!.GetValue<int>() == 1 && a["deployments"]!.AsArray().Count == 0, "/gv/b");

        // A body that does not list apps changes none of them.
        var (partial, _) = await Send(HttpMethod.Put, "/v2/groups/gv", """{"dependencies": []}""");
        Assert.Equal(HttpStatusCode.OK, partial);
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Get, "/v2/apps/gv/b")).Status);

        // Back to v1: /gv/a with one instance, /gv/b (created later) gone.
        var (rolledBack, _) = await Send(HttpMethod.Put, "/v2/groups/gv", $$"""{"version": "{{v1}}"}""");
        Assert.Equal(HttpStatusCode.OK, rolledBack);
        await WaitForApp("/gv/a", a => a["instances"]!.GetValue<int>() == 1 && a["tasksRunning"]!.GetValue<int>() == 1 && a["deployments"]!.AsArray().Count == 0, "/gv/a back to 1");
        await Wait.UntilAsync(async () => (await Send(HttpMethod.Get, "/v2/apps/gv/b")).Status == HttpStatusCode.NotFound, Timeout, "/gv/b removed");
    }

    [Fact]
    public async Task GroupPost_EmptyGroupsAndDependencies_EchoedAndKeptAcrossMasterRestart()
    {
        if (Cluster is null)
        {
            return;
        }

        Assert.Equal(HttpStatusCode.Created, (await Send(HttpMethod.Post, "/v2/groups", """{"id": "/empty"}""")).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await Send(HttpMethod.Post, "/v2/groups", """{"id": "/empty"}""")).Status);
        var (created, result) = await Send(HttpMethod.Post, "/v2/groups",
            """{"id": "/deps", "dependencies": ["/empty"], "groups": [{"id": "inner", "dependencies": ["/deps/other"]}, {"id": "other"}]}""");
        Assert.Equal(HttpStatusCode.Created, created);
        Assert.False(string.IsNullOrEmpty(result!["version"]?.GetValue<string>()));

        async Task AssertTree()
        {
            var (status, empty) = await Send(HttpMethod.Get, "/v2/groups/empty");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Empty(empty!["apps"]!.AsArray());
            var (_, deps) = await Send(HttpMethod.Get, "/v2/groups/deps");
            Assert.Equal(["/empty"], deps!["dependencies"]!.AsArray().Select(d => d!.GetValue<string>()).ToArray());
            Assert.Equal(["/deps/inner", "/deps/other"], deps["groups"]!.AsArray().Select(g => g!["id"]!.GetValue<string>()).ToArray());
            var inner = deps["groups"]!.AsArray().Single(g => g!["id"]!.GetValue<string>() == "/deps/inner")!;
            Assert.Equal(["/deps/other"], inner["dependencies"]!.AsArray().Select(d => d!.GetValue<string>()).ToArray());
            var (_, root) = await Send(HttpMethod.Get, "/v2/groups");
            Assert.Contains("/empty", root!["groups"]!.AsArray().Select(g => g!["id"]!.GetValue<string>()));
        }

        await AssertTree();
        await Cluster.RestartMasterAsync();
        Reconnect();
        await AssertTree();

        // A partial update keeps the dependencies; deleting a group removes it and its subgroups.
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Patch, "/v2/groups/deps", """{"apps": []}""")).Status);
        Assert.Equal(["/empty"], (await Send(HttpMethod.Get, "/v2/groups/deps")).Body!["dependencies"]!.AsArray().Select(d => d!.GetValue<string>()).ToArray());
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Delete, "/v2/groups/deps")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "/v2/groups/deps/inner")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "/v2/groups/deps")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Get, "/v2/groups/empty")).Status);
    }

    [Fact]
    public async Task MasterRestart_AppsAndInstancesKept()
    {
        if (Cluster is null)
        {
            return;
        }

        await Send(HttpMethod.Post, "/v2/apps", HttpApp("/durable", 2));
        var before = await WaitForApp("/durable", a => Settled(a, 2), "2 healthy instances");
        var ids = before["tasks"]!.AsArray().Select(t => t!["id"]!.GetValue<string>()).Order().ToList();

        await Cluster.RestartMasterAsync();
        Reconnect();

        var after = await WaitForApp("/durable", a => Settled(a, 2), "the app after the restart");
        Assert.Equal(before["version"]!.GetValue<string>(), after["version"]!.GetValue<string>());
        Assert.Equal(ids, after["tasks"]!.AsArray().Select(t => t!["id"]!.GetValue<string>()).Order().ToList());
    }
}
