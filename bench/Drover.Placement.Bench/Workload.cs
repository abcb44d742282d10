using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;

namespace Drover.Placement.Bench;

/// <summary>
/// Seeded, reproducible clusters and request batches for the placement benchmarks. The same seed and
/// size always give the same snapshot and requests (System.Random with a seed is deterministic).
/// </summary>
internal static class Workload
{
    /// <summary>Machine types: cpus, memory (MiB), gpus, weight. Memory gets a per-machine jitter below it, as discovery leaves.</summary>
    private static readonly (int Cpus, long MemMiB, int Gpus, int Weight)[] _machineTypes =
    [
        (8, 32_768, 0, 3),
        (16, 65_536, 0, 4),
        (32, 131_072, 0, 2),
        (64, 262_144, 0, 1),
        (32, 196_608, 2, 1),
    ];

    private static readonly decimal[] _cpuSizes = [0.1m, 0.25m, 0.5m, 1m, 2m];

    private static readonly long[] _memSizes = [128, 256, 512, 1024, 2048, 4096];

    /// <summary>The constraint sets apps cycle through in the constrained workload.</summary>
    public static readonly string[][] ConstraintMix =
    [
        [],
        ["hostname:UNIQUE"],
        ["rack:MAX_PER:3"],
        ["@zone:GROUP_BY"],
        ["@zone:GROUP_BY", "hostname:UNIQUE"],
    ];

    /// <summary>
    /// <paramref name="agents"/> agents of mixed machine types in 3 zones and racks of 20, each already
    /// 0–70% used (cpu and memory drawn apart), 1% not schedulable, some ports taken, and tasks of 200
    /// existing groups (some of which the request batch adds to). Positions are shuffled relative to ids.
    /// </summary>
    public static ClusterSnapshot Cluster(int agents, int seed = 42, bool empty = false)
    {
        var random = new Random(seed);
        var totalWeight = _machineTypes.Sum(t => t.Weight);
        var racks = Math.Max(10, agents / 20);
        var list = new List<AgentSnapshot>(agents);
        for (var i = 0; i < agents; i++)
        {
            var pick = random.Next(totalWeight);
            var type = _machineTypes[0];
            foreach (var t in _machineTypes)
            {
                if (pick < t.Weight)
                {
                    type = t;
                    break;
                }

                pick -= t.Weight;
            }

            var totalMem = type.MemMiB - random.Next(0, 1024);
            var total = Resources.Of(type.Cpus, totalMem, 500_000, type.Gpus, PortRanges.Range(31000, 32000));
            var usedCpu = empty ? 0 : (long)(type.Cpus * 1000 * random.NextDouble() * 0.7);
            var usedMem = empty ? 0 : (long)(totalMem * random.NextDouble() * 0.7);
            var usedPorts = empty ? 0 : random.Next(0, 50);
            var groups = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
            if (!empty)
            {
                for (var g = random.Next(0, 4); g > 0; g--)
                {
                    groups[Invariant($"svc-{random.Next(200)}")] = random.Next(1, 3);
                }
            }

            var id = Invariant($"agent-{i:D6}");
            list.Add(new AgentSnapshot
            {
                Id = id,
                Hostname = id + ".dc1",
                Total = total,
                Free = new Resources
                {
                    MilliCpus = total.MilliCpus - usedCpu,
                    MemMiB = totalMem - usedMem,
                    DiskMiB = total.DiskMiB,
                    Gpus = total.Gpus,
                    Ports = usedPorts == 0 ? total.Ports : PortRanges.Range(31000 + usedPorts, 32000),
                },
                Attributes = Attributes.From([new("rack", Invariant($"r{random.Next(racks)}")), new("kernel", "6.1")]),
                Domain = new FaultDomain("dc1", Invariant($"dc1-{"abc"[random.Next(3)]}")),
                Schedulable = empty || random.Next(100) != 0,
                GroupCounts = groups.ToImmutable(),
            });
        }

        // The master's snapshot comes out of a dictionary: agent order is not id order.
        var shuffled = list.ToArray();
        random.Shuffle(shuffled);
        return new ClusterSnapshot { Agents = [.. shuffled] };
    }

    /// <summary>
    /// <paramref name="count"/> requests: apps of 10 instances each (group svc-N, overlapping the cluster's
    /// existing groups), each app one size (0.1–2 cpus, 128–4096 MiB, 0–2 ports); with
    /// <paramref name="constrained"/> the apps cycle through <see cref="ConstraintMix"/>.
    /// </summary>
    public static PlacementRequest[] Requests(int count, bool constrained, int seed = 7)
    {
        var random = new Random(seed);
        var requests = new PlacementRequest[count];
        PlacementRequest? app = null;
        for (var i = 0; i < count; i++)
        {
            if (i % 10 == 0)
            {
                var appIndex = i / 10;
                ImmutableArray<Constraint> constraints = constrained
                    ? [.. ConstraintMix[appIndex % ConstraintMix.Length].Select(Parse)]
                    : [];
                app = new PlacementRequest
                {
                    TaskId = "",
                    Group = Invariant($"svc-{(appIndex * 7) % 400}"),
                    Resources = Resources.Of(_cpuSizes[random.Next(_cpuSizes.Length)], _memSizes[random.Next(_memSizes.Length)]),
                    PortCount = random.Next(3),
                    Constraints = constraints,
                };
            }

            requests[i] = app! with { TaskId = Invariant($"task-{i:D6}") };
        }

        return requests;
    }

    /// <summary>A stream of single tasks of mixed shape for the packing-quality run (no constraints).</summary>
    public static IEnumerable<PlacementRequest> MixedTasks(int seed)
    {
        var random = new Random(seed);
        for (var i = 0; ; i++)
        {
            // Mostly small, some medium, a few large; memory per cpu between 1 and 8 GiB.
            var roll = random.Next(100);
            var milli = roll < 60 ? random.Next(1, 11) * 100 : roll < 90 ? random.Next(1, 5) * 1000 : random.Next(4, 9) * 1000;
            var memPerCpu = 1024L << random.Next(4);
            var mem = Math.Max(128, milli * memPerCpu / 1000);
            yield return new PlacementRequest
            {
                TaskId = Invariant($"task-{i:D7}"),
                Group = Invariant($"job-{i / 20}"),
                Resources = new Resources { MilliCpus = milli, MemMiB = mem },
                PortCount = random.Next(2),
            };
        }
    }

    public static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static Constraint Parse(string text) =>
        Constraint.TryParse(text, out var c, out var error) ? c! : throw new InvalidOperationException(error);
}
