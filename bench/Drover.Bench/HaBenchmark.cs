using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using static Drover.Bench.BenchProcesses;

namespace Drover.Bench;

/// <summary>
/// Highly available masters (issue 5), against an etcd the caller started (bench/ha.sh):
/// <list type="bullet">
/// <item><c>failover</c>: RUNS times, three <c>drover master --store etcd://… --leader-lease 3</c>
/// processes on a fresh key prefix; once one leads and serves, SIGKILL it and time until a survivor's
/// <c>GET /v2/leader</c> names another master and that master answers <c>GET /drover/v1/tasks</c>.</item>
/// <item><c>api-write</c>: one master on the embedded store, then one on etcd; OPS <c>POST /v2/apps</c>
/// (an app of 0 instances: the write path without placement) from 1 client, then from 16, each
/// answered only once durable. Latency per request as the client sees it.</item>
/// </list>
/// </summary>
internal static class HaBenchmark
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static async Task<int> FailoverAsync(string droverDll, string etcd, int runs)
    {
        var data = Directory.CreateTempSubdirectory("drover-failover-bench-").FullName;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };
        var times = new List<double>();
        try
        {
            for (var run = 0; run < runs; run++)
            {
                var prefix = $"/bench-failover-{Environment.ProcessId}-{run}";
                var masters = new List<(Process Process, Uri Url)>();
                try
                {
                    for (var i = 0; i < 3; i++)
                    {
                        var port = FreePort();
                        var dir = Path.Combine(data, $"run{run}-m{i}");
                        masters.Add((Start(droverDll, ["master", "--data-dir", dir, "--listen", $"127.0.0.1:{port}", "--store", etcd, "--store-prefix", prefix,
                            .. BenchEtcdTls.MasterFlags(), "--leader-lease", "3", "--secrets-key-file", SecretsKeyFile(data), "--insecure", "--log-level", "warning"], dir + ".log"), new Uri($"http://127.0.0.1:{port}/")));
                    }

                    var leader = await UntilAsync(() => LeaderAsync(http, masters[0].Url), l => l is not null, Timeout, "a leader", masters[0].Process);
                    var dead = masters.FindIndex(m => m.Url.Authority == leader);
                    await UntilAsync(() => ServesAsync(http, masters[dead].Url), Timeout, "the leader to serve", masters[dead].Process);

                    // Let the lease be renewed a few times, as it would be in a cluster that has run a while.
                    await Task.Delay(TimeSpan.FromSeconds(2));
                    var clock = Stopwatch.StartNew();
                    masters[dead].Process.Kill();
                    var survivor = masters[(dead + 1) % 3];
                    var next = await UntilAsync(() => LeaderAsync(http, survivor.Url), l => l is not null && l != leader, Timeout, "a new leader", survivor.Process);
                    var nextUrl = new Uri($"http://{next}/");
                    var nextProcess = masters.Single(m => m.Url.Authority == next).Process;
                    await UntilAsync(() => ServesAsync(http, nextUrl), Timeout, "the new leader to serve", nextProcess);
                    times.Add(clock.Elapsed.TotalSeconds);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {run + 1}: {clock.Elapsed.TotalSeconds:F2} s (load {LoadAverage()})"));
                }
                finally
                {
                    foreach (var (p, _) in masters)
                    {
                        await StopAsync(p, kill: true);
                    }
                }
            }

            var sorted = times.Order().ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"failover: median {Median(sorted):F2} s, min {sorted[0]:F2} s, max {sorted[^1]:F2} s over {runs} runs (lease 3 s)"));
            return 0;
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    public static async Task<int> ApiWriteAsync(string droverDll, string store, int ops)
    {
        var data = Directory.CreateTempSubdirectory("drover-api-write-bench-").FullName;
        var port = FreePort();
        var url = new Uri($"http://127.0.0.1:{port}/");
        string[] storeArgs = store == "embedded" ? [] : ["--store", store, "--store-prefix", $"/bench-api-{Environment.ProcessId}", .. BenchEtcdTls.MasterFlags(), "--leader-lease", "3", "--secrets-key-file", SecretsKeyFile(data)];
        var master = Start(droverDll, ["master", "--data-dir", Path.Combine(data, "m"), "--listen", $"127.0.0.1:{port}", .. storeArgs, "--insecure", "--log-level", "warning"],
            Path.Combine(data, "master.log"));
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 64 }) { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            await UntilAsync(() => ServesAsync(http, url), Timeout, "the master to serve", master);
            await WritesAsync(http, url, "warmup", Math.Min(200, ops), 4); // JIT, connections
            foreach (var writers in new[] { 1, 16 })
            {
                var (latencies, seconds) = await WritesAsync(http, url, $"w{writers}", ops, writers);
                latencies.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{store.Split(',')[0]}{(store.Contains(',', StringComparison.Ordinal) ? ",…" : "")}: {writers} writer(s): {ops / seconds:F0} writes/s, p50 {Percentile(latencies, 0.5) * 1000:F1} ms, p99 {Percentile(latencies, 0.99) * 1000:F1} ms (load {LoadAverage()})"));
            }

            return 0;
        }
        finally
        {
            await StopAsync(master, kill: false);
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<(List<double> Latencies, double Seconds)> WritesAsync(HttpClient http, Uri master, string tag, int ops, int writers)
    {
        var latencies = new List<double>(ops);
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < ops)
            {
                var app = new JsonObject { ["id"] = $"/bench/{tag}/app-{i}", ["cmd"] = "sleep 600", ["cpus"] = 0.01, ["mem"] = 8, ["instances"] = 0 };
                var started = Stopwatch.GetTimestamp();
                using var response = await http.PostAsync(new Uri(master, "v2/apps"), new StringContent(app.ToJsonString(), Encoding.UTF8, "application/json"));
                if (response.StatusCode != HttpStatusCode.Created)
                {
                    throw new InvalidOperationException($"bench: POST /v2/apps answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }

                var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
                lock (latencies)
                {
                    latencies.Add(elapsed);
                }
            }
        }));
        return (latencies, clock.Elapsed.TotalSeconds);
    }

    private static async Task<string?> LeaderAsync(HttpClient http, Uri master)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(master, "v2/leader"));
            return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync())?["leader"]?.GetValue<string>() : null;
        }
        catch (TaskCanceledException)
        {
            return null;
        }
    }

    private static async Task<bool> ServesAsync(HttpClient http, Uri master)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(master, "drover/v1/tasks"));
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>One key file (0600) for every master of a run: masters on etcd must share their --secrets-key-file.</summary>
    private static string SecretsKeyFile(string data)
    {
        var path = Path.Combine(data, "secrets.key");
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(data);
            using var f = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite });
            f.Write(System.Text.Encoding.ASCII.GetBytes(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n"));
        }

        return path;
    }

    private static double Median(List<double> sorted) =>
        sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
