using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Client.Marathon;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Network;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary><c>drover master --store etcd://…</c> as a real process on a real 3-member etcd.</summary>
public sealed class EtcdMasterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-etcd-master-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private readonly List<TcpProxy> _proxies = [];
    private readonly System.Collections.Concurrent.ConcurrentBag<string> _acknowledged = [];
    private int _failedWrites;
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private EtcdCluster? _etcd;

    public async Task InitializeAsync() => _etcd = await EtcdCluster.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        foreach (var p in _proxies)
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
    public async Task KillLeader_ThreeMastersTwoAgentsAndAWriter_NewLeaderServesWithin10sWithEveryAcknowledgedWriteAndRunningTasksUntouched()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var masters = Enumerable.Range(1, 3).Select(i => StartMaster($"m{i}", "/it-failover")).ToList();
        var urls = masters.Select(m => m.Url).ToList();
        for (var a = 1; a <= 2; a++)
        {
            StartAgent($"agent{a}", urls);
        }

        // Any master answers; followers redirect (307) to the leader, the clients follow.
        using var client = new DroverClient(urls[2]);
        var marathon = new MarathonClient(urls[1], _http);
        await Wait.UntilAsync(() => client.ListAgentsAsync(), a => a.Count(x => x.Status == "active") == 2, Timeout, "two active agents", retryOn: NotServingYet);
        await marathon.CreateAppAsync(new JsonObject
        {
            ["id"] = "/web", ["cmd"] = "exec sleep 600", ["cpus"] = 0.1, ["mem"] = 32, ["instances"] = 4,
            ["constraints"] = new JsonArray(new JsonArray("hostname", "GROUP_BY")),
        });
        var task = await client.SubmitTaskAsync(new TaskSubmission { Name = "one-off", Cmd = "exec sleep 600", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) });
        var running = await Wait.UntilAsync(() => client.ListTasksAsync(), t => t.Count(x => x.State == TaskState.Running) == 5, Timeout, "5 running tasks", retryOn: NotServingYet);
        var runningIds = running.Where(t => t.State == TaskState.Running).Select(t => t.Id).Order().ToList();
        Assert.Contains(task.Id, runningIds);
        Assert.Equal(2, running.Where(t => t.State == TaskState.Running).Select(t => t.AgentId).Distinct().Count());

        // A client keeps creating apps through every master in turn, before, during and after the failover.
        using var stopWriter = new CancellationTokenSource();
        var writer = Task.Run(() => WriteAppsUntilAsync(urls, stopWriter.Token));
        await Wait.UntilAsync(() => Task.FromResult(writer.IsCompleted || _acknowledged.Count >= 5), ok => ok, Timeout, "writes before the failover");

        var leader = await LeaderAsync(urls[0]);
        var dead = urls.FindIndex(u => u.Authority == leader);
        Assert.True(dead >= 0, $"the leader {leader} is one of the masters");
        var killedAt = TimeProvider.System.GetTimestamp();
        var acknowledgedBeforeKill = _acknowledged.Count;
        await masters[dead].Process.KillAsync(ProcessSignal.Kill);

        var survivor = urls[(dead + 1) % 3];
        var newLeader = await Wait.UntilAsync(() => LeaderAsync(survivor), l => l is not null && l != leader, TimeSpan.FromSeconds(10), "a new leader",
            retryOn: e => e is HttpRequestException);
        using var newClient = new DroverClient(new Uri("http://" + newLeader));
        await Wait.UntilAsync(() => newClient.ListTasksAsync(), _ => true, TimeSpan.FromSeconds(10), "the new leader serves", retryOn: NotServingYet);
        var failover = TimeProvider.System.GetElapsedTime(killedAt);
        Assert.True(failover < TimeSpan.FromSeconds(10), $"failover took {failover}");
        Console.WriteLine($"failover: {failover.TotalSeconds:0.00} s");

        // The writer gets writes acknowledged by the new leader too, then stops.
        var acknowledgedAtFailover = _acknowledged.Count;
        await Wait.UntilAsync(() => Task.FromResult(writer.IsCompleted || _acknowledged.Count >= acknowledgedAtFailover + 5), ok => ok, Timeout, "writes after the failover");
        await stopWriter.CancelAsync();
        await writer;
        Assert.True(acknowledgedBeforeKill > 0 && _acknowledged.Count > acknowledgedAtFailover, "writes were acknowledged before and after the failover");

        // Every acknowledged app (the writer's and /web) and task is there, and the running tasks were not restarted.
        var after = await newClient.ListTasksAsync();
        var apps = await new MarathonClient(urls[(dead + 2) % 3], _http).ListAppsAsync();
        var appIds = apps.Select(a => (string)a!["id"]!).ToHashSet();
        var lost = _acknowledged.Where(id => !appIds.Contains(id)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {_acknowledged.Count} acknowledged apps are missing: {string.Join(", ", lost.Take(10))}");
        Assert.Equal(4, (int)(await new MarathonClient(urls[(dead + 2) % 3], _http).GetAppAsync("/web"))["instances"]!);
        await Wait.UntilAsync(() => newClient.ListAgentsAsync(), a => a.Count(x => x.Status == "active") == 2, Timeout, "both agents re-registered", retryOn: NotServingYet);
        var final = await Wait.UntilAsync(() => newClient.ListTasksAsync(), t => runningIds.All(id => t.Any(x => x.Id == id && x.State == TaskState.Running)), Timeout,
            "the same tasks running", retryOn: NotServingYet);
        Assert.Equal(runningIds, final.Where(t => t.State == TaskState.Running).Select(t => t.Id).Order().ToList());
        Assert.All(runningIds, id => Assert.Contains(after, t => t.Id == id));
        Console.WriteLine($"writer: {_acknowledged.Count} apps acknowledged, {_failedWrites} attempts failed (unacknowledged)");
    }

    [Fact]
    public async Task LeaderCutOffFromEtcd_WritesSentToIt_AreNeverAcknowledgedNorCommittedAndAnotherMasterTakesOver()
    {
        // Each master reaches each etcd member through its own proxy, so one master can be partitioned
        // from etcd while the others (and the test) still reach it.
        var proxies = new List<TcpProxy>[3];
        var masters = new List<(DroverProcess Process, Uri Url)>();
        for (var i = 0; i < 3; i++)
        {
            proxies[i] = [.. _etcd!.ClientUrls.Select(TcpProxy.Start)];
            _proxies.AddRange(proxies[i]);
            masters.Add(StartMaster($"m{i + 1}", "/it-cut", "etcd://" + string.Join(',', proxies[i].Select(p => p.Authority))));
        }

        var urls = masters.Select(m => m.Url).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(urls[0]), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        var old = urls.FindIndex(u => u.Authority == leader);
        using var noRedirect = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
        var oldMarathon = new MarathonClient(urls[old], noRedirect);
        await Wait.UntilAsync(() => oldMarathon.CreateAppAsync(App("/before-cut")), _ => true, Timeout, "a write on the leader", retryOn: NotServingYet);

        foreach (var p in proxies[old])
        {
            p.Cut();
        }

        // Writes sent to the cut-off leader: none may be acknowledged (it cannot make them durable), and
        // none may be committed later, by it or by anyone.
        var attempts = Enumerable.Range(0, 5).Select(async i =>
        {
            try
            {
                await oldMarathon.CreateAppAsync(App($"/to-deposed-{i}"));
                return $"/to-deposed-{i}";
            }
            catch (Exception e) when (e is HttpRequestException or MarathonApiException or TaskCanceledException)
            {
                return null;
            }
        }).ToList();

        Assert.True(await masters[old].Process.WaitForExitAsync(TimeSpan.FromSeconds(10)), "the cut-off leader did not step down");
        Assert.Equal(3, masters[old].Process.ExitCode);
        var acknowledgedByDeposed = (await Task.WhenAll(attempts)).OfType<string>().ToList();
        Assert.Empty(acknowledgedByDeposed);

        var other = urls[(old + 1) % 3];
        var newLeader = await Wait.UntilAsync(() => LeaderAsync(other), l => l is not null && l != leader, TimeSpan.FromSeconds(15), "a new leader",
            retryOn: e => e is HttpRequestException);
        var newMarathon = new MarathonClient(new Uri("http://" + newLeader), _http);
        await Wait.UntilAsync(() => newMarathon.CreateAppAsync(App("/after-cut")), _ => true, Timeout, "a write on the new leader", retryOn: NotServingYet);

        foreach (var p in proxies[old])
        {
            p.Heal();
        }

        // Whatever the deposed master had in flight reached etcd now, if anything could: it must not have committed.
        var ids = (await newMarathon.ListAppsAsync()).Select(a => (string)a!["id"]!).Order().ToList();
        Assert.Equal(["/after-cut", "/before-cut"], ids);
        var stored = await EtcdKeysAsync("/it-cut");
        Assert.DoesNotContain(stored, k => k.Contains("to-deposed", StringComparison.Ordinal));
        Assert.Contains(stored, k => k.Contains("after-cut", StringComparison.Ordinal));
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
    public async Task Follower_RedirectEndpoint_AnswersItselfAndRedirectsTheRestWith307()
    {
        // Both listen on 127.0.0.1 and --advertise localhost: the leader key names the advertised address, not the listen one.
        var masters = Enumerable.Range(1, 2).Select(i => StartMaster($"m{i}", "/it-follower", advertise: true)).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(masters[0].Url), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        await Wait.UntilAsync(() => LeaderAsync(masters[1].Url), l => l == leader, Timeout, "both agree", retryOn: e => e is HttpRequestException);
        Assert.Contains(leader, masters.Select(m => m.Url.Authority));
        var follower = masters.Single(m => m.Url.Authority != leader).Url;
        using var raw = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false });

        // A follower holds no users, so /v2/leader (an authenticated Marathon endpoint) is answered by the leader.
        using var leaderAnswer = await raw.GetAsync(new Uri(follower, "/v2/leader"));
        Assert.Equal(System.Net.HttpStatusCode.TemporaryRedirect, leaderAnswer.StatusCode);
        Assert.Equal(new Uri($"http://{leader}/v2/leader"), leaderAnswer.Headers.Location);
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
    public async Task Follower_MesosSchedulerCalls_RedirectedToTheLeaderWhereTheFrameworkSubscribes()
    {
        var masters = Enumerable.Range(1, 2).Select(i => StartMaster($"m{i}", "/it-mesos-follower")).ToList();
        var leader = await Wait.UntilAsync(() => LeaderAsync(masters[0].Url), l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException);
        await Wait.UntilAsync(() => LeaderAsync(masters[1].Url), l => l == leader, Timeout, "both agree", retryOn: e => e is HttpRequestException);
        var follower = masters.Single(m => m.Url.Authority != leader).Url;
        await Wait.UntilAsync(() => new DroverClient(new Uri("http://" + leader), _http).ListTasksAsync(), _ => true, Timeout, "the leader serves", retryOn: NotServingYet);

        // As a Mesos master: a scheduler call to a non-leader is a 307 to the leader's same endpoint.
        using var raw = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false });
        using (var redirect = await raw.PostAsync(new Uri(follower, "/api/v1/scheduler"),
            new StringContent("""{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x"}}}""", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(System.Net.HttpStatusCode.TemporaryRedirect, redirect.StatusCode);
            Assert.Equal(new Uri($"http://{leader}/api/v1/scheduler"), redirect.Headers.Location);
        }

        // A framework given the follower's address subscribes at the leader, and its later calls follow it there.
        using var scheduler = new Drover.Client.Mesos.MesosSchedulerClient(follower);
        using var cts = new CancellationTokenSource(Timeout);
        await using var events = scheduler.SubscribeAsync(new Drover.Core.Mesos.MFrameworkInfo { User = "root", Name = "via-follower" }, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("SUBSCRIBED", events.Current.Type);
        await scheduler.SuppressAsync(cts.Token);

        var frameworks = await _http.PostAsync(new Uri("http://" + leader + "/api/v1"),
            new StringContent("""{"type":"GET_FRAMEWORKS"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Contains(scheduler.FrameworkId!, await frameworks.Content.ReadAsStringAsync(), StringComparison.Ordinal);
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

    /// <summary>
    /// The leader <paramref name="master"/> knows of, from its own <c>/master/redirect</c> (not followed): a follower now
    /// sends <c>/v2/leader</c> on to the leader, which may be the very process a test has paused.
    /// </summary>
    private async Task<string?> LeaderAsync(Uri master)
    {
        using var noRedirect = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(2) };
        using var response = await noRedirect.GetAsync(new Uri(master, "/master/redirect"));
        if (response.StatusCode != System.Net.HttpStatusCode.TemporaryRedirect || response.Headers.Location?.Authority is not { } leader)
        {
            return null;
        }

        // The leader key names a master before it serves as the leader: only one that answers for itself counts.
        try
        {
            using var own = await noRedirect.GetAsync(new Uri($"http://{leader}/master/redirect"));
            return own.StatusCode == System.Net.HttpStatusCode.TemporaryRedirect && own.Headers.Location?.Authority == leader ? leader : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private static bool NotServingYet(Exception e) => e is HttpRequestException || (e is DroverApiException or MarathonApiException && e.Message.Contains("leader", StringComparison.Ordinal));

    private static JsonObject App(string id) => new() { ["id"] = id, ["cmd"] = "sleep 600", ["cpus"] = 0.01, ["mem"] = 8, ["instances"] = 0 };

    /// <summary>
    /// Creates apps one after another through each master in turn (following redirects) until cancelled,
    /// remembering each one the API acknowledged. A failed attempt may or may not have been committed, so
    /// it is not retried under the same id and never counted.
    /// </summary>
    private async Task WriteAppsUntilAsync(IReadOnlyList<Uri> masters, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        for (var n = 0; !ct.IsCancellationRequested; n++)
        {
            var id = $"/writer/app-{n}";
            try
            {
                await new MarathonClient(masters[n % masters.Count], http).CreateAppAsync(App(id), ct: ct);
                _acknowledged.Add(id);
            }
            catch (Exception e) when (e is HttpRequestException or MarathonApiException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref _failedWrites);
                await Task.Delay(100, CancellationToken.None);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>Every key under the prefix, read from etcd's JSON gateway directly (not through a master).</summary>
    private async Task<List<string>> EtcdKeysAsync(string prefix)
    {
        static string B64(string s) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(s));
        var end = prefix[..^1] + (char)(prefix[^1] + 1);
        using var response = await _http.PostAsync(new Uri(_etcd!.ClientUrls[0], "/v3/kv/range"),
            new StringContent($$"""{"key":"{{B64(prefix)}}","range_end":"{{B64(end)}}","keys_only":true}"""));
        response.EnsureSuccessStatusCode();
        var kvs = JsonNode.Parse(await response.Content.ReadAsStringAsync())?["kvs"]?.AsArray() ?? [];
        return [.. kvs.Select(kv => System.Text.Encoding.UTF8.GetString(Convert.FromBase64String((string)kv!["key"]!)))];
    }

    private void StartAgent(string name, IReadOnlyList<Uri> masters) =>
        _processes.Add(DroverProcess.Start(name,
            ["agent", "--master", string.Join(',', masters.Select(u => u.GetLeftPart(UriPartial.Authority))), "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", Path.Combine(_root, name),
                "--hostname", name, "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024"), "--kill-tasks-on-stop", "--log-level", "information"],
            logFile: Path.Combine(_root, name + ".log")));

    /// <summary>The one key file every master of these tests shares (masters on etcd must share one).</summary>
    private string SecretsKey()
    {
        var path = Path.Combine(_root, "secrets.key");
        return File.Exists(path) ? path : SecretsKeyFiles.Create(path);
    }

    private (DroverProcess Process, Uri Url) StartMaster(string name, string prefix, string? store = null, bool advertise = false)
    {
        var port = DevClusterFixture.FreePort();
        // Plain HTTP without logins (--insecure) is allowed on loopback only: advertise a name other than the listen address instead of listening on every interface.
        string[] listen = advertise ? ["--listen", $"127.0.0.1:{port}", "--advertise", $"localhost:{port}"] : ["--listen", $"127.0.0.1:{port}"];
        var process = DroverProcess.Start(name,
            ["master", "--data-dir", Path.Combine(_root, name), .. listen, "--store", store ?? _etcd!.StoreAddress, "--store-prefix", prefix, "--leader-lease", "3",
                "--secrets-key-file", SecretsKey(), "--insecure", "--log-level", "warning"],
            logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return (process, new Uri(advertise ? $"http://localhost:{port}" : $"http://127.0.0.1:{port}"));
    }
}
