using Drover.Core;
using Drover.Placement.Index;

namespace Drover.Placement.Tests;

/// <summary>
/// The indexed engine against references on seeded random clusters: an independent brute force
/// (<see cref="BruteForce"/>) for every decision, and the engine's own scan-everything mode for whole plans,
/// failure reasons and RejectedBy included.
/// </summary>
public class DifferentialTests
{
    public static TheoryData<PlacementStrategy, int> Seeds()
    {
        var data = new TheoryData<PlacementStrategy, int>();
        foreach (var strategy in new[] { PlacementStrategy.BinPack, PlacementStrategy.Spread })
        {
            for (var block = 0; block < 10; block++)
            {
                data.Add(strategy, block);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Place_RandomClusters_SameDecisionsAsBruteForce(PlacementStrategy strategy, int block)
    {
        for (var seed = block * 40; seed < (block + 1) * 40; seed++)
        {
            var cluster = RandomCluster.Cluster(seed);
            var requests = RandomCluster.Requests(seed);

            var plan = new PlacementEngine(new PlacementOptions { Strategy = strategy }, indexFromAgents: 0).Place(cluster, requests);
            var expected = BruteForce.Place(strategy, cluster, requests);

            var placed = plan.Placed.ToDictionary(d => d.TaskId);
            Assert.Equal(requests.Length, plan.Placed.Length + plan.Unplaced.Length);
            foreach (var (taskId, agentId, ports) in expected)
            {
                if (agentId is null)
                {
                    Assert.False(placed.ContainsKey(taskId), $"seed {seed}: {taskId} placed on {(placed.TryGetValue(taskId, out var d) ? d.AgentId : "")}, brute force: unplaced");
                    continue;
                }

                Assert.True(placed.TryGetValue(taskId, out var decision), $"seed {seed}: {taskId} unplaced, brute force: {agentId}");
                Assert.True(agentId == decision.AgentId, $"seed {seed}: {taskId} on {decision.AgentId}, brute force: {agentId}");
                Assert.Equal(ports, decision.Ports.ToArray());
            }
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Place_RandomClusters_SamePlanAsScanningEveryAgent(PlacementStrategy strategy, int block)
    {
        for (var seed = 1000 + (block * 40); seed < 1000 + ((block + 1) * 40); seed++)
        {
            var cluster = RandomCluster.Cluster(seed);
            var requests = RandomCluster.Requests(seed);

            Build.PlaceBothWays(strategy, cluster, requests, $"seed {seed}");
        }
    }

    [Theory]
    [InlineData(PlacementStrategy.BinPack, true)]
    [InlineData(PlacementStrategy.BinPack, false)]
    [InlineData(PlacementStrategy.Spread, true)]
    [InlineData(PlacementStrategy.Spread, false)]
    public void Place_LargeMixedCluster_SamePlanAsScanningEveryAgent(PlacementStrategy strategy, bool constrained)
    {
        // Deep trees, rebuilds after many placements, a batch that fills the cluster until requests fail.
        var cluster = LargeCluster(400, seed: 11);
        var requests = LargeBatch(5000, constrained, seed: 12);

        var plan = Build.PlaceBothWays(strategy, cluster, requests, "large");

        Assert.NotEmpty(plan.Unplaced);
        Assert.True(plan.Placed.Length > 1000, $"placed {plan.Placed.Length}");
    }

    [Theory]
    [InlineData(PlacementStrategy.BinPack)]
    [InlineData(PlacementStrategy.Spread)]
    public void Place_ManyHostnames_SamePlanAsScanningAndBruteForce(PlacementStrategy strategy)
    {
        // More hostnames than GroupValueCounts.DenseUpTo: per-group counts are kept sparse.
        var cluster = LargeCluster(GroupValueCounts.DenseUpTo + 500, seed: 21);
        string[][] mix = [["hostname:UNIQUE"], ["hostname:MAX_PER:2"], ["hostname:GROUP_BY"], ["hostname:CLUSTER"], ["hostname:GROUP_BY", "@zone:GROUP_BY"]];
        var requests = Enumerable.Range(0, 3000)
            .Select(i => Build.Request($"t{i}", $"app{i / 30 % 7}", cpus: 0.5m, mem: 512, constraints: mix[i / 30 % mix.Length]))
            .ToArray();

        var plan = Build.PlaceBothWays(strategy, cluster, requests, "hostnames");
        var expected = BruteForce.Place(strategy, cluster, requests);

        Assert.Equal(expected.Where(e => e.AgentId is not null).Select(e => (e.TaskId, e.AgentId!)), plan.Placed.Select(d => (d.TaskId, d.AgentId)));
        Assert.True(plan.Placed.Length > 1000, $"placed {plan.Placed.Length}");
    }

    [Theory]
    [InlineData(PlacementStrategy.BinPack)]
    [InlineData(PlacementStrategy.Spread)]
    public void FindBest_TenThousandAgents_VisitsFarFewerThanAllAgents(PlacementStrategy strategy)
    {
        var cluster = LargeCluster(10_000, seed: 5);
        var state = new PlacementState(cluster.Agents);
        var tree = new AgentTree(state, strategy);
        var requests = LargeBatch(500, constrained: false, seed: 6);

        foreach (var request in requests)
        {
            var need = new Need(request);
            var best = tree.FindBest(need, [], maskRejected: false);
            Assert.True(best >= 0);
            state.Place(best, request, need);
            tree.Update(best);
        }

        // A scan would visit 10,000 agents per request; the index must stay well clear of that.
        var perRequest = tree.Visits / (double)requests.Length;
        Assert.True(perRequest < 500, $"{perRequest:F0} nodes and agents visited per request");
    }

    [Fact]
    public void Place_UniqueOnBinPack_RejectedAgentsMaskedNotRevisited()
    {
        // Bin-packing prefers the agents that already took an instance; UNIQUE rejects them. Without masks
        // every later instance would walk past all of them again.
        var cluster = LargeCluster(4000, seed: 8);
        var state = new PlacementState(cluster.Agents);
        var tree = new AgentTree(state, PlacementStrategy.BinPack);
        var request = Build.Request(cpus: 0.1m, mem: 64, constraints: "hostname:UNIQUE");
        var field = state.Field("hostname");

        for (var i = 0; i < 1000; i++)
        {
            var constraint = Filters.CompiledConstraint.CountBelow(field, state.GroupCounts(request.Group, field), 1);
            var need = new Need(request);
            var best = tree.FindBest(need, [constraint], maskRejected: true);
            Assert.True(best >= 0);
            state.Place(best, request with { TaskId = $"t{i}" }, need);
            tree.Update(best);
        }

        Assert.True(tree.Visits / 1000.0 < 400, $"{tree.Visits / 1000.0:F0} visits per request");
    }

    /// <summary>Mixed machine sizes (memory varying per machine), 0–80% used, racks, zones, existing groups.</summary>
    private static ClusterSnapshot LargeCluster(int count, int seed)
    {
        var random = new Random(seed);
        var agents = new AgentSnapshot[count];
        for (var i = 0; i < count; i++)
        {
            var cpus = 8 << random.Next(4);
            var mem = (cpus * 4096L) - random.Next(1024);
            var total = new Resources { MilliCpus = cpus * 1000L, MemMiB = mem, DiskMiB = 100_000, Ports = PortRanges.Range(31000, 31100) };
            agents[i] = Build.Agent(
                $"agent-{i:D5}",
                cpus: cpus * (decimal)(1 - (random.NextDouble() * 0.8)),
                mem: (long)(mem * (1 - (random.NextDouble() * 0.8))),
                disk: 100_000,
                ports: PortRanges.Range(31000 + random.Next(50), 31100),
                total: total,
                attributes: $"rack:r{random.Next(count / 20)}",
                zone: $"z{random.Next(3)}",
                schedulable: random.Next(100) != 0,
                groups: Build.Groups(($"app{random.Next(50)}", 1)));
        }

        random.Shuffle(agents);
        return Build.Cluster(agents);
    }

    private static PlacementRequest[] LargeBatch(int count, bool constrained, int seed)
    {
        var random = new Random(seed);
        string[][] mix = [[], ["hostname:UNIQUE"], ["rack:MAX_PER:2"], ["@zone:GROUP_BY"], ["@zone:GROUP_BY", "hostname:UNIQUE"], ["rack:CLUSTER"], ["rack:IS:r3"]];
        var requests = new List<PlacementRequest>(count);
        for (var app = 0; requests.Count < count; app++)
        {
            var cpus = new[] { 0.1m, 0.5m, 1m, 2m, 4m }[random.Next(5)];
            var mem = new[] { 128L, 512, 1024, 4096, 8192 }[random.Next(5)];
            var ports = random.Next(3);
            var constraints = constrained ? mix[app % mix.Length] : [];
            for (var i = 0; i < 20 && requests.Count < count; i++)
            {
                requests.Add(Build.Request($"app{app}-{i}", $"app{app % 60}", cpus, mem, ports: ports, constraints: constraints));
            }
        }

        return [.. requests];
    }
}
