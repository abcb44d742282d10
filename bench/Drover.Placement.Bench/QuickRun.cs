using System.Diagnostics;
using System.Globalization;

namespace Drover.Placement.Bench;

/// <summary>
/// A quick run of the same scenarios as <see cref="PlacementBenchmarks"/>: each case is verified,
/// warmed up (JIT tiering), then timed <c>runs</c> times; prints the median placements per second by wall clock and by the thread's
/// CPU time (what one core can do, whatever the neighbours are doing), and bytes allocated per placement.
/// </summary>
internal static class QuickRun
{
    public static int Run(int[] sizes, int runs)
    {
        Console.WriteLine("agents | strategy | constrained | placements/s wall (median, min–max) | placements/s CPU time (median) | bytes/placement");
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

                    // Warm-up: let the JIT finish tiering (30 calls and half a second, or 3 s of slow calls).
                    var warm = Stopwatch.StartNew();
                    for (var w = 0; (w < 30 || warm.Elapsed < TimeSpan.FromMilliseconds(500)) && (w < 2 || warm.Elapsed < TimeSpan.FromSeconds(3)); w++)
                    {
                        engine.Place(cluster, requests);
                    }

                    var wall = new double[runs];
                    var cpu = new double[runs];
                    long bytes = 0;
                    for (var r = 0; r < runs; r++)
                    {
                        var before = GC.GetAllocatedBytesForCurrentThread();
                        var cpuStart = ThreadCpuTime.Seconds();
                        var watch = Stopwatch.StartNew();
                        var plan = engine.Place(cluster, requests);
                        var seconds = watch.Elapsed.TotalSeconds;
                        cpu[r] = plan.Placed.Length / (ThreadCpuTime.Seconds() - cpuStart);
                        bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                        wall[r] = plan.Placed.Length / seconds;
                    }

                    Array.Sort(wall);
                    Array.Sort(cpu);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{agents:N0} | {strategy} | {constrained} | {wall[runs / 2]:N0} ({wall[0]:N0}–{wall[^1]:N0}) | {cpu[runs / 2]:N0} | {bytes / requests.Length:N0}"));
                }
            }
        }

        return 0;
    }
}
