using System.Diagnostics;
using System.Globalization;

namespace Drover.Placement.Bench;

/// <summary>
/// A quick Stopwatch run of the same scenarios as <see cref="PlacementBenchmarks"/> (for iterating; the
/// figures in docs/benchmarks.md come from BenchmarkDotNet): each case is verified, warmed up, then timed
/// <c>runs</c> times; prints the median placements per second and bytes allocated per placement.
/// </summary>
internal static class QuickRun
{
    public static int Run(int[] sizes, int runs)
    {
        Console.WriteLine("agents | strategy | constrained | placements/s (median) | min–max | bytes/placement | setup verified");
        foreach (var agents in sizes)
        {
            var cluster = Workload.Cluster(agents);
            foreach (var constrained in new[] { true, false })
            {
                var requests = Workload.Requests(PlacementBenchmarks.Batch, constrained);
                foreach (var strategy in new[] { PlacementStrategy.BinPack, PlacementStrategy.Spread })
                {
                    var engine = new PlacementEngine(new PlacementOptions { Strategy = strategy });
                    Verify.PlacesAll(engine, cluster, requests);
                    var rates = new double[runs];
                    long bytes = 0;
                    for (var r = 0; r < runs; r++)
                    {
                        var before = GC.GetAllocatedBytesForCurrentThread();
                        var watch = Stopwatch.StartNew();
                        var plan = engine.Place(cluster, requests);
                        var seconds = watch.Elapsed.TotalSeconds;
                        bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                        rates[r] = plan.Placed.Length / seconds;
                    }

                    Array.Sort(rates);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{agents} | {strategy} | {constrained} | {rates[runs / 2]:N0} | {rates[0]:N0}–{rates[^1]:N0} | {bytes / requests.Length:N0} | yes"));
                }
            }
        }

        return 0;
    }
}
