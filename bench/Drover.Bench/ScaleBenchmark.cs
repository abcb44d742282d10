using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Drover.Bench;

/// <summary>
/// End-to-end scale: a real <c>drover master</c> process and a simulator process with AGENTS
/// protocol-faithful agents (bench/Drover.AgentSim); INSTANCES app instances are POSTed through
/// <c>/v2/apps</c> in apps of 1,000, and the clock runs from the first POST until the master counts
/// INSTANCES tasks TASK_RUNNING (polled from <c>/metrics</c>, which is O(1)). Meanwhile a sampler
/// times <c>GET /v2/apps/{id}</c> and <c>POST /v2/apps</c> (apps of 0 instances, so the count stays
/// exact). The master's peak RSS is its VmHWM. Last line: <c>placed=N seconds=S rate=R rss_mb=M</c>.
/// </summary>
internal static partial class ScaleBenchmark
{
    private const int AppSize = 1000;

    public static async Task<int> RunAsync(string droverDll, string simDll, int agents, int instances, TimeSpan timeout)
    {
        var inv = CultureInfo.InvariantCulture;
        var dir = Directory.CreateTempSubdirectory("drover-scale-").FullName;
        var port = BenchProcesses.FreePort();
        var url = new Uri($"http://127.0.0.1:{port}/");

        // At 10,000 agents a 1 s heartbeat would be 10,000 requests/s on two cores; a 5 s interval is
        // 2,000/s (Mesos' default is 15 s, Nomad scales its TTL with the cluster size).
        var heartbeat = Environment.GetEnvironmentVariable("SCALE_HEARTBEAT") ?? "5";
        var master = BenchProcesses.Start(droverDll,
            ["master", "--data-dir", Path.Combine(dir, "master"), "--listen", $"127.0.0.1:{port}", "--insecure", "--log-level", "warning",
             "--heartbeat-interval", heartbeat, "--agent-timeout", "60"],
            Path.Combine(dir, "master.log"),
            Environment.GetEnvironmentVariable("SCALE_MASTER_GEN0SIZE") is { Length: > 0 } gen0 ? new Dictionary<string, string> { ["DOTNET_GCgen0size"] = gen0 } : null);
        Process? sim = null;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 64 }) { BaseAddress = url, Timeout = TimeSpan.FromMinutes(2) };
        try
        {
            await BenchProcesses.UntilAsync(() => BenchProcesses.PingAsync(http, url), TimeSpan.FromSeconds(60), "master /ping", master);

            // Enough room for every instance with a margin (bin-packing fills agents in turn), ports for none.
            var perAgent = Math.Max(10, (int)Math.Ceiling(instances * 1.5 / agents));
            var resources = string.Create(inv, $"cpus:{perAgent * 0.01m + 1};mem:{perAgent * 8 + 1024};disk:100000;ports:[31000-32000]");
            var clock = Stopwatch.StartNew();
            sim = StartSim(simDll, url, agents, resources, Path.Combine(dir, "sim.log"));
            await BenchProcesses.UntilAsync(() => ActiveAgentsAsync(http), n => n >= agents, TimeSpan.FromMinutes(5), $"{agents} agents active", sim,
                TimeSpan.FromMilliseconds(500));
            var registerSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(inv, $"{agents} simulated agents registered in {registerSeconds:F1} s ({resources} each, 3 zones, 10 racks)"));

            var masterRssBefore = PeakRssMiB(master.Id);
            using var sampling = new CancellationTokenSource();
            var sampler = SampleAsync(url, sampling.Token);

            var posts = new List<double>();
            clock.Restart();
            var apps = (instances + AppSize - 1) / AppSize;
            for (var i = 0; i < apps; i++)
            {
                var n = Math.Min(AppSize, instances - (i * AppSize));
                var started = Stopwatch.GetTimestamp();
                using var response = await http.PostAsync("/v2/apps", Json($$"""{"id": "/scale/app-{{i:D5}}", "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": {{n}}}"""));
                posts.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
                if (!response.IsSuccessStatusCode)
                {
                    Console.Error.WriteLine($"bench: POST /v2/apps failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                    return 1;
                }
            }

            var submitSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(inv, $"{apps} apps ({instances} instances) POSTed in {submitSeconds:F1} s; POST p50 {Percentile(posts, 0.5) * 1000:F0} ms, p99 {Percentile(posts, 0.99) * 1000:F0} ms"));

            var lastRunning = 0L;
            var nextReport = TimeSpan.FromSeconds(10);
            await BenchProcesses.UntilAsync(async () =>
            {
                lastRunning = await RunningAsync(http);
                if (clock.Elapsed > nextReport)
                {
                    Console.WriteLine(string.Create(inv, $"  {clock.Elapsed.TotalSeconds:F0} s: {lastRunning} running, master rss {RssMiB(master.Id)} MiB"));
                    nextReport = clock.Elapsed + TimeSpan.FromSeconds(10);
                }

                return lastRunning;
            }, r => r >= instances, timeout, $"{instances} instances TASK_RUNNING", master, TimeSpan.FromMilliseconds(200));
            var seconds = clock.Elapsed.TotalSeconds;
            await sampling.CancelAsync();
            var (gets, samplePosts) = await sampler;
            var peak = PeakRssMiB(master.Id);
            var metrics = await http.GetStringAsync("/metrics");

            Console.WriteLine(string.Create(inv, $"machine: {Environment.ProcessorCount} cores, load average {BenchProcesses.LoadAverage()}, heartbeat interval {heartbeat} s, master gen0 budget {Environment.GetEnvironmentVariable("SCALE_MASTER_GEN0SIZE") ?? "default"}"));
            Console.WriteLine(string.Create(inv, $"master rss before submitting {masterRssBefore} MiB"));
            Console.WriteLine(string.Create(inv, $"master gc: {Metric(metrics, GcPause()):F1} s paused in total, {Metric(metrics, Gen2()):F0} gen2 collections, heap {Metric(metrics, GcHeap()) / (1 << 20):F0} MiB after the last"));
            Console.WriteLine(string.Create(inv, $"api under load: GET /v2/apps/{{id}} n={gets.Count} p50 {Percentile(gets, 0.5) * 1000:F0} ms p99 {Percentile(gets, 0.99) * 1000:F0} ms max {Max(gets) * 1000:F0} ms"));
            Console.WriteLine(string.Create(inv, $"api under load: POST /v2/apps (sampler) n={samplePosts.Count} p50 {Percentile(samplePosts, 0.5) * 1000:F0} ms p99 {Percentile(samplePosts, 0.99) * 1000:F0} ms max {Max(samplePosts) * 1000:F0} ms"));
            Console.WriteLine(string.Create(inv, $"placed={instances} seconds={seconds:F1} rate={instances / seconds:F0} rss_mb={peak}"));
            return 0;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or HttpRequestException)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine($"bench: logs in {dir} (kept)");
            dir = "";
            return 1;
        }
        finally
        {
            if (sim is not null)
            {
                await BenchProcesses.StopAsync(sim, kill: false);
            }

            await BenchProcesses.StopAsync(master, kill: false);
            if (dir.Length > 0 && Environment.GetEnvironmentVariable("SCALE_KEEP") is null)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static Process StartSim(string simDll, Uri master, int agents, string resources, string log)
    {
        // BenchProcesses.Start runs "dotnet DLL args…", whichever the DLL.
        return BenchProcesses.Start(simDll, [master.ToString(), agents.ToString(CultureInfo.InvariantCulture), resources, "3"], log);
    }

    /// <summary>GET an existing app and POST a new empty one, alternately, every 100 ms, until cancelled.</summary>
    private static async Task<(List<double> Gets, List<double> Posts)> SampleAsync(Uri url, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = url, Timeout = TimeSpan.FromMinutes(2) };
        var gets = new List<double>();
        var posts = new List<double>();
        var i = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(100, ct);
                var started = Stopwatch.GetTimestamp();
                if (i % 2 == 0)
                {
                    // The first app exists once the submitter's first POST returned; before, a 404 is timed too (still a real lookup).
                    using var response = await http.GetAsync("/v2/apps/scale/app-00000", ct);
                    await response.Content.ReadAsByteArrayAsync(ct);
                    gets.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
                }
                else
                {
                    using var response = await http.PostAsync("/v2/apps", Json($$"""{"id": "/sampler/app-{{i:D6}}", "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 0}"""), ct);
                    response.EnsureSuccessStatusCode();
                    posts.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
                }

                i++;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
        }

        return (gets, posts);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<long> ActiveAgentsAsync(HttpClient http) => (long)Metric(await http.GetStringAsync("/metrics"), ActiveAgents());

    private static async Task<long> RunningAsync(HttpClient http) => (long)Metric(await http.GetStringAsync("/metrics"), RunningTasks());

    private static double Metric(string text, Regex pattern)
    {
        var m = pattern.Match(text);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    [GeneratedRegex("""^drover_agents\{status="active"\} (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex ActiveAgents();

    [GeneratedRegex("""^drover_tasks\{state="TASK_RUNNING"\} (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex RunningTasks();

    [GeneratedRegex("""^dotnet_gc_pause_seconds_total (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex GcPause();

    [GeneratedRegex("""^dotnet_gc_collections\{generation="2"\} (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex Gen2();

    [GeneratedRegex("""^dotnet_gc_heap_bytes (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex GcHeap();

    private static long PeakRssMiB(int pid) => ProcStatusKiB(pid, "VmHWM:") / 1024;

    private static long RssMiB(int pid) => ProcStatusKiB(pid, "VmRSS:") / 1024;

    private static long ProcStatusKiB(int pid, string field)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    private static double Max(List<double> values) => values.Count == 0 ? double.NaN : values.Max();
}
