using System.Diagnostics;
using System.Globalization;
using Drover.Store;
using Drover.Store.Etcd;
using Drover.Store.Sqlite;

namespace Drover.Bench;

/// <summary>
/// Latency and throughput of single-key transactions (compare the key's mod revision, put 256 bytes:
/// what a master does per task change) against one store: first one writer after another, then 16
/// writers at once, each on its own key. Every transaction must succeed, so a broken store or a lost
/// update fails the run (exit 1) instead of looking fast.
/// </summary>
internal static class StoreBenchmark
{
    private const int Writers = 16;
    private const int WarmUp = 50;
    private static readonly byte[] Value = new byte[256];

    public static async Task<int> RunAsync(string kind, string target, int ops)
    {
        await using IStateStore store = kind switch
        {
            "sqlite" => SqliteStateStore.Open(Path.Combine(target, "state.db")),
            "etcd" => Etcd(target),
            _ => throw new ArgumentException($"unknown store '{kind}' (sqlite DIR | etcd etcd://HOST:PORT,…)", nameof(kind)),
        };
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"store: {kind} {target}{(kind == "etcd" && BenchEtcdTls.MasterFlags().Length > 0 ? " over TLS (client certificate)" : "")}; machine: {Environment.ProcessorCount} cores, .NET {Environment.Version}"));

        await MeasureAsync(store, "warm-up", 1, WarmUp, quiet: true);
        var sequential = await MeasureAsync(store, "sequential (1 writer)", 1, ops);
        var concurrent = await MeasureAsync(store, $"concurrent ({Writers} writers)", Writers, ops);
        return sequential && concurrent ? 0 : 1;
    }

    private static EtcdStateStore Etcd(string address)
    {
        var (endpoints, tls) = BenchEtcdTls.Apply(EtcdEndpoints.Parse(address));
        return new EtcdStateStore(endpoints.Uris, new EtcdStoreOptions { Prefix = endpoints.Prefix ?? "/drover-bench/" + Guid.NewGuid().ToString("N"), Tls = tls });
    }

    private static async Task<bool> MeasureAsync(IStateStore store, string label, int writers, int ops, bool quiet = false)
    {
        var perWriter = ops / writers;
        var latencies = new double[perWriter * writers];
        var failures = 0;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var key = $"/bench/{label}/{w}";
            var modRevision = (await store.GetAsync(key))?.ModRevision ?? 0;
            for (var i = 0; i < perWriter; i++)
            {
                var started = Stopwatch.GetTimestamp();
                var result = await store.CommitAsync(new Transaction { Compares = [Compare.Version(key, modRevision)], Writes = [WriteOp.Put(key, Value)] });
                latencies[(w * perWriter) + i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (!result.Succeeded)
                {
                    Interlocked.Increment(ref failures);
                    modRevision = (await store.GetAsync(key))?.ModRevision ?? 0;
                    continue;
                }

                modRevision = result.Revision;
            }
        })));
        var seconds = wall.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        if (!quiet)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{label}: {latencies.Length} txns in {seconds:F2} s = {latencies.Length / seconds:F0} txn/s; latency p50 {Percentile(latencies, 0.50):F2} ms, p99 {Percentile(latencies, 0.99):F2} ms, max {latencies[^1]:F2} ms"));
        }

        if (failures > 0)
        {
            Console.Error.WriteLine($"bench: {failures} of {latencies.Length} compare-and-swaps failed on keys only their writer touches");
            return false;
        }

        return true;
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
