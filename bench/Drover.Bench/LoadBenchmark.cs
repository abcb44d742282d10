using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using static Drover.Bench.BenchProcesses;

namespace Drover.Bench;

/// <summary>
/// Bounded memory under load (issue 14): starts <c>drover dev</c> as its own process (fresh data dir, spare loopback port)
/// and, all at once: SUBSCRIBERS clients hold <c>GET /v2/events</c> open and read every event; READERS clients loop
/// <c>GET /v2/apps</c>; one client times <c>GET /ping</c> every 20 ms; and APPS apps are POSTed to <c>/v2/apps</c>, 64 in
/// flight (<c>instances: 0</c>, so each is a real deployment with its events but the agent starts nothing: the master is
/// what is measured). A 429 is retried after its Retry-After (and counted). When every app is in, the readers go on for
/// <see cref="SteadyPhase"/> at APPS apps. Reports subscribers dropped (a stream that ended, or said it was dropped, before
/// the bench closed it), <c>/ping</c> p50/p99, the master's peak RSS (VmHWM), POST and read throughput, and checks them
/// against the issue's targets: 0 dropped, p99 &lt; 100 ms, peak RSS &lt; 1 GiB.
/// </summary>
internal static class LoadBenchmark
{
    private const int PostsInFlight = 64;
    private static readonly TimeSpan SteadyPhase = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan PingEvery = TimeSpan.FromMilliseconds(20);

    public static async Task<int> RunAsync(string droverDll, string label, int apps, int subscribers, int readers, TimeSpan timeout)
    {
        var data = Directory.CreateTempSubdirectory("drover-load-bench-").FullName;
        var port = FreePort();
        var master = new Uri($"http://127.0.0.1:{port}/");
        var process = Start(droverDll, ["dev", "--listen", $"127.0.0.1:{port}", "--data-dir", data, "--log-level", "warning",
            "--resources", "cpus:64;mem:49152;disk:10000;ports:[31000-32000]"], Path.Combine(data, "dev.log"));
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = Timeout.InfiniteTimeSpan }) { BaseAddress = master, Timeout = Timeout.InfiniteTimeSpan };
        using var pingHttp = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = master, Timeout = TimeSpan.FromSeconds(30) };
        using var stop = new CancellationTokenSource(timeout);
        try
        {
            await UntilAsync(async () => (await http.GetStringAsync("drover/v1/agents", stop.Token)).Contains("\"active\"", StringComparison.Ordinal),
                TimeSpan.FromSeconds(120), "drover dev's agent to be active", process);
            var pid = process.Id;
            var baseRss = Status(pid, "VmRSS:");

            // Subscribers first: each counts the events it reads; a stream that ends before we close it was dropped.
            using var closing = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            var events = new long[subscribers];
            var dropped = 0;
            var refused = 0;
            var streams = new List<Task>();
            for (var i = 0; i < subscribers; i++)
            {
                var n = i;
                var response = await http.GetAsync("v2/events", HttpCompletionOption.ResponseHeadersRead, stop.Token);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    refused++;
                    response.Dispose();
                    continue;
                }

                streams.Add(Task.Run(async () =>
                {
                    using (response)
                    {
                        try
                        {
                            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(closing.Token), Encoding.UTF8);
                            while (await reader.ReadLineAsync(closing.Token) is { } line)
                            {
                                if (line.StartsWith("event: ", StringComparison.Ordinal))
                                {
                                    Interlocked.Increment(ref events[n]);
                                }
                                else if (line.StartsWith(": dropped", StringComparison.Ordinal))
                                {
                                    break;
                                }
                            }

                            Interlocked.Increment(ref dropped); // ended by the master
                        }
                        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException && closing.IsCancellationRequested)
                        {
                        }
                        catch (Exception e) when (e is IOException or HttpRequestException)
                        {
                            Interlocked.Increment(ref dropped); // cut by the master
                        }
                    }
                }));
            }

            // The pinger, for the whole run, on its own thread with synchronous sends: it measures how long the master
            // takes to answer, not how long this process's busy thread pool (200 streams, 8 readers, 64 posters) takes
            // to get round to reading the answer, as an outside probe (a load balancer's health check) would see it.
            var pings = new ConcurrentBag<double>();
            var steadyPings = new ConcurrentBag<double>();
            var steady = 0;
            var pingDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var pingThread = new Thread(() =>
            {
                try
                {
                    while (!closing.IsCancellationRequested)
                    {
                        var clock = Stopwatch.StartNew();
                        var inSteady = Volatile.Read(ref steady) == 1;
                        try
                        {
                            using var request = new HttpRequestMessage(HttpMethod.Get, "ping");
                            using var pong = pingHttp.Send(request, closing.Token);
                            if (pong.StatusCode == HttpStatusCode.OK)
                            {
                                pings.Add(clock.Elapsed.TotalMilliseconds);
                                if (inSteady)
                                {
                                    steadyPings.Add(clock.Elapsed.TotalMilliseconds);
                                }
                            }
                        }
                        catch (OperationCanceledException) when (closing.IsCancellationRequested)
                        {
                            return;
                        }

                        closing.Token.WaitHandle.WaitOne(PingEvery);
                    }
                }
                finally
                {
                    pingDone.TrySetResult();
                }
            }) { IsBackground = true, Name = "pinger" };
            pingThread.Start();
            var pinging = pingDone.Task;

            // Readers of the whole app list, from the first POST to the end of the steady phase.
            long reads = 0, readBytes = 0, steadyReads = 0, steadyBytes = 0, readRefused = 0;
            var reading = Enumerable.Range(0, readers).Select(_ => Task.Run(async () =>
            {
                while (!closing.IsCancellationRequested)
                {
                    try
                    {
                        using var response = await http.GetAsync("v2/apps", closing.Token);
                        if (response.StatusCode == HttpStatusCode.TooManyRequests)
                        {
                            Interlocked.Increment(ref readRefused);
                            await Task.Delay(RetryAfter(response), closing.Token);
                            continue;
                        }

                        var body = await response.Content.ReadAsByteArrayAsync(closing.Token);
                        Interlocked.Increment(ref reads);
                        Interlocked.Add(ref readBytes, body.Length);
                        if (Volatile.Read(ref steady) == 1)
                        {
                            Interlocked.Increment(ref steadyReads);
                            Interlocked.Add(ref steadyBytes, body.Length);
                        }
                    }
                    catch (OperationCanceledException) when (closing.IsCancellationRequested)
                    {
                        return;
                    }
                }
            })).ToList();

            // The burst: every app submitted, PostsInFlight at a time.
            long created = 0, postRetries = 0, postFailed = 0;
            var posting = Stopwatch.StartNew();
            await Parallel.ForEachAsync(Enumerable.Range(0, apps), new ParallelOptions { MaxDegreeOfParallelism = PostsInFlight, CancellationToken = stop.Token }, async (i, ct) =>
            {
                var body = new JsonObject
                {
                    ["id"] = $"/load/app-{i:D5}",
                    ["cmd"] = "sleep 3600",
                    ["instances"] = 0,
                    ["cpus"] = 0.01,
                    ["mem"] = 8,
                    ["labels"] = new JsonObject { ["bench"] = "load", ["n"] = i.ToString(CultureInfo.InvariantCulture) },
                }.ToJsonString();
                while (true)
                {
                    using var response = await http.PostAsync("v2/apps", new StringContent(body, Encoding.UTF8, "application/json"), ct);
                    if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        Interlocked.Increment(ref postRetries);
                        await Task.Delay(RetryAfter(response), ct);
                        continue;
                    }

                    Interlocked.Increment(ref response.IsSuccessStatusCode ? ref created : ref postFailed);
                    return;
                }
            });
            var postSeconds = posting.Elapsed.TotalSeconds;

            await UntilAsync(async () => JsonNode.Parse(await http.GetStringAsync("v2/apps", stop.Token))!["apps"]!.AsArray().Count,
                count => count >= apps, TimeSpan.FromSeconds(60), $"all {apps} apps listed", process, TimeSpan.FromMilliseconds(500), c => $"{c} apps");
            Volatile.Write(ref steady, 1);
            var steadyClock = Stopwatch.StartNew();
            await Task.Delay(SteadyPhase, stop.Token);
            var steadySeconds = steadyClock.Elapsed.TotalSeconds;
            Volatile.Write(ref steady, 0);
            var droppedBeforeClose = Volatile.Read(ref dropped);
            var peak = Status(pid, "VmHWM:");
            var rss = Status(pid, "VmRSS:");

            await closing.CancelAsync();
            await Task.WhenAll([.. streams, pinging, .. reading]).WaitAsync(TimeSpan.FromSeconds(30));

            var sorted = pings.Order().ToList();
            double P(double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
            var steadySorted = steadyPings.Order().ToList();
            double SteadyP(double q) => steadySorted.Count == 0 ? double.NaN : steadySorted[Math.Min(steadySorted.Count - 1, (int)Math.Ceiling(q * steadySorted.Count) - 1)];
            var minEvents = events.Length == 0 ? 0 : events.Min();
            var ok = droppedBeforeClose == 0 && refused == 0 && P(0.99) < 100 && peak < 1024 && created == apps;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"load: {label}  apps={created}/{apps} (failed {postFailed}, 429-retries {postRetries}) in {postSeconds:F1} s = {created / postSeconds:F0} POST/s"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"load: {label}  subscribers={subscribers} refused={refused} dropped={droppedBeforeClose} min_events_per_subscriber={minEvents}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"load: {label}  ping n={sorted.Count} p50={P(0.5):F1} ms p99={P(0.99):F1} ms max={P(1):F1} ms; while only reading (steady phase) n={steadySorted.Count} p99={SteadyP(0.99):F1} ms"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"load: {label}  GET /v2/apps x{readers}: {reads} reads in all ({readRefused} 429s); at {apps} apps {steadyReads / steadySeconds:F1} reads/s, {steadyBytes / steadySeconds / 1e6:F1} MB/s, {(steadyReads == 0 ? 0 : steadyBytes / steadyReads / 1e6):F2} MB each"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"load: {label}  master rss: start {baseRss} MiB, end {rss} MiB, peak (VmHWM) {peak} MiB; load average {LoadAverage()}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"RESULT {label} dropped={droppedBeforeClose} ping_p99_ms={P(0.99):F1} peak_rss_mib={peak} post_per_s={created / postSeconds:F0} reads_per_s={steadyReads / steadySeconds:F1} {(ok ? "PASS" : "FAIL")}"));
            return ok ? 0 : 1;
        }
        finally
        {
            await StopAsync(process, kill: false);
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static TimeSpan RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter?.Delta is { } delta && delta > TimeSpan.Zero ? delta : TimeSpan.FromSeconds(1);

    /// <summary>A memory line of /proc/PID/status in MiB (VmHWM: the peak resident set; VmRSS: now).</summary>
    private static long Status(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
            }
        }

        throw new InvalidOperationException($"no {field} in /proc/{pid}/status");
    }
}
