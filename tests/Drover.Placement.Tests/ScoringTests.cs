using Drover.Core;

namespace Drover.Placement.Tests;

public class ScoringTests
{
    // a-busy: 6 of 8 cpus and half the memory in use; a-idle: nothing in use.
    private static ClusterSnapshot BusyAndIdle() => Build.Cluster(
        Build.Agent("a-idle", cpus: 8, mem: 8192),
        Build.Agent("a-busy", cpus: 2, mem: 4096, total: Resources.Of(8, 8192)));

    [Theory]
    [InlineData(PlacementStrategy.BinPack, "a-busy")]
    [InlineData(PlacementStrategy.Spread, "a-idle")]
    public void Place_Strategy_ChoosesFullestOrEmptiest(PlacementStrategy strategy, string expected)
    {
        var plan = Build.Place(strategy, BusyAndIdle(), Build.Request());

        Assert.Equal(expected, Assert.Single(plan.Placed).AgentId);
    }

    [Fact]
    public void Place_BinPackBatchOnIdleAgents_FillsOneAgentFirst()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 4), Build.Agent("a2", cpus: 4), Build.Agent("a3", cpus: 4));

        var plan = Build.Place(PlacementStrategy.BinPack, cluster, Build.Requests(5, cpus: 1));

        Assert.Equal(new Dictionary<string, int> { ["a1"] = 4, ["a2"] = 1 }, plan.PerAgent());
    }

    [Fact]
    public void Place_SpreadBatchOnIdleAgents_RoundRobins()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 4), Build.Agent("a2", cpus: 4), Build.Agent("a3", cpus: 4));

        var plan = Build.Place(PlacementStrategy.Spread, cluster, Build.Requests(5, cpus: 1));

        Assert.Equal(["a1", "a2", "a3", "a1", "a2"], plan.Placed.Select(d => d.AgentId));
    }

    [Fact]
    public void Place_MemoryCountsInScore_BinPackPrefersMemoryFullerAgent()
    {
        // Same cpu use; a2 has less memory free, so it is fuller after placement.
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 4, mem: 8192, total: Resources.Of(8, 8192)),
            Build.Agent("a2", cpus: 4, mem: 1024, total: Resources.Of(8, 8192)));

        var binPack = Build.Place(PlacementStrategy.BinPack, cluster, Build.Request());
        var spread = Build.Place(PlacementStrategy.Spread, cluster, Build.Request());

        Assert.Equal("a2", Assert.Single(binPack.Placed).AgentId);
        Assert.Equal("a1", Assert.Single(spread.Placed).AgentId);
    }

    [Theory]
    [InlineData(PlacementStrategy.BinPack)]
    [InlineData(PlacementStrategy.Spread)]
    public void Place_TiedScores_LowestAgentIdOrdinalWins(PlacementStrategy strategy)
    {
        // Ordinal: "B" < "a" < "b" (a culture-aware compare would put "a" first).
        var cluster = Build.Cluster(Build.Agent("b"), Build.Agent("a"), Build.Agent("B"));

        var plan = Build.Place(strategy, cluster, Build.Request());

        Assert.Equal("B", Assert.Single(plan.Placed).AgentId);
    }

    [Fact]
    public void Place_SameInputsAnyAgentOrder_SamePlan()
    {
        var agents = Enumerable.Range(0, 20)
            .Select(i => Build.Agent($"agent-{i:D2}", cpus: 2 + (i % 3), mem: 4096, attributes: $"rack:r{i % 4}", zone: $"z{i % 3}"))
            .ToArray();
        var requests = Enumerable.Range(0, 30)
            .Select(i => Build.Request($"t{i}", group: $"g{i % 3}", cpus: 0.5m, ports: 1, constraints: i % 2 == 0 ? ["@zone:GROUP_BY"] : ["rack:MAX_PER:3"]))
            .ToArray();
        var engine = new PlacementEngine(new PlacementOptions());

        var first = engine.Place(Build.Cluster(agents), requests);
        var again = engine.Place(Build.Cluster(agents), requests);
        var reversed = engine.Place(Build.Cluster([.. agents.Reverse()]), requests);

        Assert.Equal(30, first.Placed.Length + first.Unplaced.Length);
        Assert.NotEmpty(first.Placed);
        Assert.Equal(first.Placed, again.Placed, DecisionComparer.Instance);
        Assert.Equal(first.Placed, reversed.Placed, DecisionComparer.Instance);
        Assert.Equal(first.Unplaced.Select(f => f.Reason), again.Unplaced.Select(f => f.Reason));
    }

    private sealed class DecisionComparer : IEqualityComparer<PlacementDecision>
    {
        public static readonly DecisionComparer Instance = new();

        public bool Equals(PlacementDecision? x, PlacementDecision? y) =>
            x!.TaskId == y!.TaskId && x.AgentId == y.AgentId && x.Ports.SequenceEqual(y.Ports);

        public int GetHashCode(PlacementDecision obj) => HashCode.Combine(obj.TaskId, obj.AgentId);
    }
}
