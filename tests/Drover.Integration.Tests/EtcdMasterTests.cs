using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Client.Marathon;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary><c>drover master --store etcd://…</c> as a real process on a real 3-member etcd.</summary>
public sealed class EtcdMasterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-etcd-master-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private EtcdCluster? _etcd;

    public async Task InitializeAsync() => _etcd = await EtcdCluster.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        if (_etcd is not null)
        {
            await _etcd.DisposeAsync();
        }

        _http.Dispose();
        try
        {
            if (Environment.GetEnvironmentVariable("DROVER_KEEP_TEST_DIRS") is null) { Directory.Delete(_root, recursive: true); }
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Master_EtcdStore_StateSurvivesAMasterKilledAndStartedOnAnotherDataDir()
    {
        var (first, url) = StartMaster("m1", "/it-restart");
        using var client = new DroverClient(url);
        var marathon = new MarathonClient(url, _http);
        await Wait.UntilAsync(() => client.ListAgentsAsync(), _ => true, Timeout, "the master serves", retryOn: NotServingYet);
        var task = await client.SubmitTaskAsync(new TaskSubmission { Name = "pending", Cmd = "sleep 1", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) });
        await marathon.CreateAppAsync(new JsonObject { ["id"] = "/web", ["cmd"] = "sleep 600", ["cpus"] = 0.1, ["mem"] = 32, ["instances"] = 2 });

        await first.KillAsync(ProcessSignal.Kill);
        var (_, url2) = StartMaster("m2", "/it-restart");
        using var client2 = new DroverClient(url2);
        var marathon2 = new MarathonClient(url2, _http);

        var restored = await Wait.UntilAsync(() => client2.GetTaskAsync(task.Id), _ => true, Timeout, "the task after the restart", retryOn: NotServingYet);
        Assert.Equal("pending", restored.Name);
        var app = await marathon2.GetAppAsync("/web");
        Assert.Equal(2, (int)app["instances"]!);
        Assert.False(File.Exists(Path.Combine(_root, "m1", "state.db")), "the embedded store was not used");
    }

    [Fact]
    public async Task KillLeader_ThreeMastersOneAgent_NewLeaderServesWithin10sWithEveryAppAndTaskAndRunningTasksUntouched()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var masters = Enumerable.Range(1, 3).Select(i => StartMaster($"m{i}", "/it-failover")).ToList();
        var urls = masters.Select(m => m.Url).ToList();
        var agent = DroverProcess.Start("agent",
            ["agent", "--master", string.Join(',', urls.Select(u => u.Authority)), "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", Path.Combine(_root, "agent"),
                "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024"), "--kill-tasks-on-stop", "--log-level", "information"],
            logFile: Path.Combine(_root, "agent.log"));
        _processes.Add(agent);

        // Any master answers; followers redirect (307) to the leader, the clients follow.
        using var client = new DroverClient(urls[2]);
        var marathon = new MarathonClient(urls[1], _http);
        await Wait.UntilAsync(() => client.ListAgentsAsync(), a => a.Any(x => x.Status == "active"), Timeout, "an active agent", retryOn: NotServingYet);
        await marathon.CreateAppAsync(new JsonObject { ["id"] = "/web", ["cmd"] = "exec sleep 600", ["cpus"] = 0.1, ["mem"] = 32, ["instances"] = 2 });
        var task = await client.SubmitTaskAsync(new TaskSubmission { Name = "one-off", Cmd = "exec sleep 600", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) });
        var running = await Wait.UntilAsync(() => client.ListTasksAsync(), t => t.Count(x => x.State == TaskState.Running) == 3, Timeout, "3 running tasks", retryOn: NotServingYet);
        var runningIds = running.Where(t => t.State == TaskState.Running).Select(t => t.Id).Order().ToList();
        Assert.Contains(task.Id, runningIds);

        var leader = await LeaderAsync(urls[0]);
        var dead = urls.FindIndex(u => u.Authority == leader);
        Assert.True(dead >= 0, $"the leader {leader} is one of the masters");
        var killedAt = TimeProvider.System.GetTimestamp();
        await masters[dead].Process.KillAsync(ProcessSignal.Kill);

        var survivor = urls[(dead + 1) % 3];
        var newLeader = await Wait.UntilAsync(() => LeaderAsync(survivor), l => l is not null && l != leader, TimeSpan.FromSeconds(10), "a new leader",
            retryOn: e => e is HttpRequestException);
        using var newClient = new DroverClient(new Uri("http://" + newLeader));
        await Wait.UntilAsync(() => newClient.ListTasksAsync(), _ => true, TimeSpan.FromSeconds(10), "the new leader serves", retryOn: NotServingYet);
        var failover = TimeProvider.System.GetElapsedTime(killedAt);
        Assert.True(failover < TimeSpan.FromSeconds(10), $"failover took {failover}");
        Console.WriteLine($"failover: {failover.TotalSeconds:0.00} s");

        // Every acknowledged app and task is there, and the running tasks were not restarted.
        var after = await newClient.ListTasksAsync();
        Assert.Equal(2, (int)(await new MarathonClient(urls[(dead + 2) % 3], _http).GetAppAsync("/web"))["instances"]!);
        await Wait.UntilAsync(() => newClient.ListAgentsAsync(), a => a.Any(x => x.Status == "active"), Timeout, "the agent re-registered", retryOn: NotServingYet);
        var final = await Wait.UntilAsync(() => newClient.ListTasksAsync(), t => runningIds.All(id => t.Any(x => x.Id == id && x.State == TaskState.Running)), Timeout,
            "the same tasks running", retryOn: NotServingYet);
        Assert.Equal(runningIds, final.Where(t => t.State == TaskState.Running).Select(t => t.Id).Order().ToList());
        Assert.All(runningIds, id => Assert.Contains(after, t => t.Id == id));
    }

    [Fact]
    public async Task LeaderLosesEtcd_AllMembersPaused_StepsDownAndExitsBeforeItsLeaseCouldExpire()
    {
        var masters = Enumerable.Range(1, 2).Select(i => StartMaster($"m{i}", "/it-etcd-lost")).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(masters[0].Url), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        var leaderProcess = masters.Single(m => m.Url.Authority == leader).Process;
        await Wait.UntilAsync(() => new DroverClient(new Uri("http://" + leader), _http).ListTasksAsync(), _ => true, Timeout, "the leader serves", retryOn: NotServingYet);

        var pausedAt = TimeProvider.System.GetTimestamp();
        for (var i = 0; i < _etcd!.Members.Count; i++)
        {
            _etcd.Pause(i);
        }

        try
        {
            // Lease 3 s: the leader must have stopped leading before the lease (last renewed ≤ 1 s before the pause) could expire.
            Assert.True(await leaderProcess.WaitForExitAsync(TimeSpan.FromSeconds(3)), "the leader did not step down within the lease");
            var steppedDown = TimeProvider.System.GetElapsedTime(pausedAt);
            Assert.Equal(3, leaderProcess.ExitCode);
            Console.WriteLine($"stepped down {steppedDown.TotalSeconds:0.00} s after etcd was paused");
        }
        finally
        {
            for (var i = 0; i < _etcd.Members.Count; i++)
            {
                _etcd.Resume(i);
            }
        }
    }

    [Fact]
    public async Task Follower_LeaderAndRedirectEndpoints_AnswerItselfAndRedirectTheRestWith307()
    {
        var masters = Enumerable.Range(1, 2).Select(i => StartMaster($"m{i}", "/it-follower")).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(masters[0].Url), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        await Wait.UntilAsync(() => LeaderAsync(masters[1].Url), l => l == leader, Timeout, "both agree", retryOn: e => e is HttpRequestException);
        var follower = masters.Single(m => m.Url.Authority != leader).Url;
        using var raw = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false });

        using var leaderAnswer = await raw.GetAsync(new Uri(follower, "/v2/leader"));
        Assert.Equal(System.Net.HttpStatusCode.OK, leaderAnswer.StatusCode);
        Assert.Equal(leader, JsonNode.Parse(await leaderAnswer.Content.ReadAsStringAsync())!["leader"]!.GetValue<string>());
        using var redirect = await raw.GetAsync(new Uri(follower, "/master/redirect"));
        Assert.Equal(System.Net.HttpStatusCode.TemporaryRedirect, redirect.StatusCode);
        Assert.Equal(new Uri("http://" + leader), redirect.Headers.Location);
        using var api = await raw.GetAsync(new Uri(follower, "/drover/v1/tasks/app.x-1?y=1"));
        Assert.Equal(System.Net.HttpStatusCode.TemporaryRedirect, api.StatusCode);
        Assert.Equal(new Uri($"http://{leader}/drover/v1/tasks/app.x-1?y=1"), api.Headers.Location);

        // POST through a follower: the client follows the 307 and re-sends the body.
        using var client = new DroverClient(follower, _http);
        var task = await client.SubmitTaskAsync(new TaskSubmission { Name = "via-follower", Cmd = "sleep 1", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) });
        Assert.Equal("via-follower", (await new DroverClient(new Uri("http://" + leader), _http).GetTaskAsync(task.Id)).Name);
    }

    [Fact]
    public async Task LeaderProcessPaused_PastItsLease_IsReplacedAndExitsOnResume()
    {
        var masters = Enumerable.Range(1, 2).Select(i => StartMaster($"m{i}", "/it-paused-leader")).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(masters[0].Url), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        var old = masters.Single(m => m.Url.Authority == leader);
        var other = masters.Single(m => m.Url.Authority != leader);

        old.Process.Signal(ProcessSignal.Stop);
        await Wait.UntilAsync(() => LeaderAsync(other.Url), l => l == other.Url.Authority, TimeSpan.FromSeconds(10), "the other master leads",
            retryOn: e => e is HttpRequestException);
        using var client = new DroverClient(other.Url, _http);
        var task = await Wait.UntilAsync(() => client.SubmitTaskAsync(new TaskSubmission { Name = "after", Cmd = "sleep 1", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) }),
            _ => true, Timeout, "a write on the new leader", retryOn: NotServingYet);

        old.Process.Signal(ProcessSignal.Continue);

        Assert.True(await old.Process.WaitForExitAsync(TimeSpan.FromSeconds(10)), "the deposed leader kept running");
        Assert.Equal(3, old.Process.ExitCode);
        Assert.Equal(other.Url.Authority, await LeaderAsync(other.Url));
        Assert.Equal("after", (await client.GetTaskAsync(task.Id)).Name);
    }

    private async Task<string?> LeaderAsync(Uri master)
    {
        using var response = await _http.GetAsync(new Uri(master, "/v2/leader"));
        if (!response.IsSuccessStatusCode)
        {
            return null;
        }

        return JsonNode.Parse(await response.Content.ReadAsStringAsync())?["leader"]?.GetValue<string>();
    }

    private static bool NotServingYet(Exception e) => e is HttpRequestException || (e is DroverApiException or MarathonApiException && e.Message.Contains("leader", StringComparison.Ordinal));

    private (DroverProcess Process, Uri Url) StartMaster(string name, string prefix)
    {
        var port = DevClusterFixture.FreePort();
        var process = DroverProcess.Start(name,
            ["master", "--data-dir", Path.Combine(_root, name), "--listen", $"127.0.0.1:{port}", "--store", _etcd!.StoreAddress, "--store-prefix", prefix, "--leader-lease", "3", "--log-level", "warning"],
            logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return (process, new Uri($"http://127.0.0.1:{port}"));
    }
}
