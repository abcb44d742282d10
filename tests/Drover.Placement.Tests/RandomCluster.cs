using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;

namespace Drover.Placement.Tests;

/// <summary>
/// Seeded random clusters and request batches that hit the corners the index must get right: ties (many
/// identical agents), ids whose ordinal order differs from their position, totals of zero and free above
/// total, unschedulable agents, missing attributes, shared hostnames, fragmented ports, gpus, existing
/// group counts, invalid constraints, and runs of identical requests (the masks).
/// </summary>
internal static class RandomCluster
{
    private static readonly string[] _racks = ["r1", "r2", "r3", "r10"];
    private static readonly string[] _zones = ["z1", "z2", "z3"];

    private static readonly Constraint[] _constraints =
    [
        C("hostname:UNIQUE"), C("rack:UNIQUE"), C("@zone:UNIQUE"),
        C("rack:MAX_PER:2"), C("hostname:MAX_PER:3"), C("@zone:MAX_PER:5"),
        C("rack:GROUP_BY"), C("@zone:GROUP_BY"), C("@zone:GROUP_BY:3"), C("hostname:GROUP_BY"),
        C("rack:CLUSTER"), C("rack:CLUSTER:r2"), C("@zone:CLUSTER"), C("hostname:CLUSTER"),
        C("rack:LIKE:r1.*"), C("rack:UNLIKE:r1"), C("hostname:LIKE:h-1.*"), C("@region:LIKE:eu-.*"),
        C("rack:IS:r3"), C("hostname:IS:h-7"), C("@zone:IS:z2"), C("cores:IS:8"), C("cores:LIKE:8|16"),
        new("rack", ConstraintOperator.Like, "r["), // invalid regex: rejects every agent
        new("rack", ConstraintOperator.MaxPer, null), // no number: rejects every agent
    ];

    public static ClusterSnapshot Cluster(int seed, int maxAgents = 200)
    {
        var random = new Random(seed);
        var count = random.Next(1, maxAgents + 1);
        var ties = random.Next(3) == 0; // a few shapes only, so equal scores are common
        var agents = new List<AgentSnapshot>(count);
        for (var i = 0; i < count; i++)
        {
            long totalCpu = ties ? 4000 * random.Next(1, 3) : random.Next(20) == 0 ? 0 : random.Next(1, 65) * 250;
            long totalMem = ties ? 4096 * random.Next(1, 3) : random.Next(20) == 0 ? 0 : random.Next(1, 65) * 512;
            var freeCpu = ties ? totalCpu - (1000 * random.Next(0, 3)) : random.Next(30) == 0 ? totalCpu + 1000 : (long)(totalCpu * random.NextDouble());
            var freeMem = ties ? totalMem - (1024 * random.Next(0, 3)) : random.Next(30) == 0 ? totalMem + 512 : (long)(totalMem * random.NextDouble());
            var ports = random.Next(5) switch
            {
                0 => PortRanges.Empty,
                1 => PortRanges.FromRanges([new PortRange(31000, 31001), new PortRange(31005, 31005), new PortRange(31010, 31012)]),
                _ => PortRanges.Range(31000, 31000 + random.Next(0, 20)),
            };
            var attributes = new List<KeyValuePair<string, string>>();
            if (random.Next(6) != 0)
            {
                attributes.Add(new("rack", _racks[random.Next(_racks.Length)]));
            }

            if (random.Next(2) == 0)
            {
                attributes.Add(new("cores", random.Next(2) == 0 ? "8" : "16"));
            }

            var groups = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
            for (var g = random.Next(3); g > 0; g--)
            {
                groups[Invariant($"g{random.Next(5)}")] = random.Next(1, 3);
            }

            agents.Add(new AgentSnapshot
            {
                Id = AgentId(random, i),
                Hostname = Invariant($"h-{random.Next(count + 2)}"),
                Total = new Resources { MilliCpus = totalCpu, MemMiB = totalMem, DiskMiB = 1000, Gpus = 2 },
                Free = new Resources
                {
                    MilliCpus = Math.Max(0, freeCpu),
                    MemMiB = Math.Max(0, freeMem),
                    DiskMiB = random.Next(0, 1001),
                    Gpus = random.Next(0, 3),
                    Ports = ports,
                },
                Attributes = Attributes.From(attributes),
                Domain = random.Next(8) == 0 ? null : new FaultDomain(random.Next(2) == 0 ? "eu-west" : "us-east", _zones[random.Next(_zones.Length)]),
                Schedulable = random.Next(10) != 0,
                GroupCounts = groups.ToImmutable(),
            });
        }

        return new ClusterSnapshot { Agents = [.. agents] };
    }

    /// <summary>Requests in runs of 1–12 identical ones (same group, size, constraints), as an app's instances come.</summary>
    public static PlacementRequest[] Requests(int seed, int maxRequests = 150)
    {
        var random = new Random(seed * 7919);
        var count = random.Next(1, maxRequests + 1);
        var requests = new List<PlacementRequest>(count);
        while (requests.Count < count)
        {
            ImmutableArray<Constraint> constraints = random.Next(4) switch
            {
                0 => [],
                1 or 2 => [_constraints[random.Next(_constraints.Length)]],
                _ => [_constraints[random.Next(_constraints.Length)], _constraints[random.Next(_constraints.Length)]],
            };
            var template = new PlacementRequest
            {
                TaskId = "",
                Group = Invariant($"g{random.Next(5)}"),
                Resources = new Resources
                {
                    MilliCpus = random.Next(5) == 0 ? 0 : 250 * random.Next(1, 9),
                    MemMiB = random.Next(5) == 0 ? 0 : 256 * random.Next(1, 9),
                    DiskMiB = random.Next(3) == 0 ? random.Next(0, 400) : 0,
                    Gpus = random.Next(6) == 0 ? 1 : 0,
                },
                PortCount = random.Next(4) == 0 ? random.Next(1, 4) : 0,
                Constraints = constraints,
            };
            for (var run = random.Next(1, 13); run > 0 && requests.Count < count; run--)
            {
                requests.Add(template with { TaskId = Invariant($"t{requests.Count:D4}") });
            }
        }

        return [.. requests];
    }

    /// <summary>Ids with shared prefixes and mixed case (ordinal: "B" &lt; "a"), occasionally a duplicate.</summary>
    private static string AgentId(Random random, int i) => random.Next(4) switch
    {
        0 => Invariant($"agent-{random.Next(1000):D3}-{i}"),
        1 => Invariant($"A{i}"),
        2 when random.Next(10) == 0 => "dup",
        _ => Invariant($"a{(char)('a' + random.Next(26))}{i}"),
    };

    private static Constraint C(string text) =>
        Constraint.TryParse(text, out var c, out var error) ? c! : throw new InvalidOperationException(error);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
