using System.Collections.Immutable;
using Drover.Core;

namespace Drover.Placement.Tests;

public class ConstraintTests
{
    /// <summary>Three racks: r1 (a1, a2), r2 (a3), and a4 with no rack attribute, which is the fullest agent.</summary>
    private static ClusterSnapshot Racks(
        ImmutableDictionary<string, int>? a1Groups = null,
        ImmutableDictionary<string, int>? a2Groups = null,
        ImmutableDictionary<string, int>? a3Groups = null) => Build.Cluster(
        Build.Agent("a1", attributes: "rack:r1", groups: a1Groups),
        Build.Agent("a2", attributes: "rack:r1", groups: a2Groups),
        Build.Agent("a3", attributes: "rack:r2", groups: a3Groups),
        Build.Agent("a4", cpus: 2, total: Resources.Of(8, 8192)));

    [Theory]
    [InlineData("rack:UNIQUE")]
    [InlineData("rack:CLUSTER")]
    [InlineData("rack:CLUSTER:r1")]
    [InlineData("rack:GROUP_BY")]
    [InlineData("rack:LIKE:.*")]
    [InlineData("rack:UNLIKE:nope")]
    [InlineData("rack:IS:r1")]
    [InlineData("rack:MAX_PER:5")]
    public void Place_AgentLacksField_InfeasibleForEveryOperator(string constraint)
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 2, total: Resources.Of(8, 8192)), // fullest, but no rack
            Build.Agent("a2", attributes: "rack:r1"));

        var plan = Build.Place(cluster, Build.Request(constraints: constraint));

        Assert.Equal("a2", Assert.Single(plan.Placed).AgentId);
        Assert.Equal("a1", Build.Place(cluster, Build.Request()).Placed[0].AgentId);
    }

    [Fact]
    public void Place_HostnameUnique_OneTaskPerHostname()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", hostname: "h1"),
            Build.Agent("a2", hostname: "h1"),
            Build.Agent("a3", hostname: "h2"));

        var plan = Build.Place(cluster, Build.Requests(3, constraints: "hostname:UNIQUE"));

        Assert.Equal(2, plan.Placed.Length);
        var hosts = plan.Placed.Select(d => cluster.Agents.Single(a => a.Id == d.AgentId).Hostname);
        Assert.Equal(["h1", "h2"], hosts.Order());
        var failure = plan.SingleFailure();
        Assert.Equal("0 of 3 agents fit: 3 rejected by constraint hostname:UNIQUE", failure.Reason);
        Assert.Equal(3, failure.RejectedBy["constraints"]);
    }

    [Fact]
    public void Place_UniqueWithExistingTasks_CountsGroupOnAnyAgentIncludingUnschedulable()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", hostname: "h1", groups: Build.Groups(("app", 1))),
            Build.Agent("a2", hostname: "h2", groups: Build.Groups(("other", 3))),
            Build.Agent("a3", hostname: "h2", schedulable: false, groups: Build.Groups(("app", 1))),
            Build.Agent("a4", hostname: "h3", groups: Build.Groups(("other", 1))));

        var plan = Build.Place(cluster, Build.Requests(2, constraints: "hostname:UNIQUE"));

        // h1 and h2 already hold a task of "app"; "other" does not count.
        Assert.Equal("a4", Assert.Single(plan.Placed).AgentId);
        Assert.Equal("task-2", plan.SingleFailure().TaskId);
    }

    [Fact]
    public void Place_MaxPer_AtMostNPerValue()
    {
        var plan = Build.Place(Racks(), Build.Requests(5, constraints: "rack:MAX_PER:2"));

        Assert.Equal(4, plan.Placed.Length);
        var perRack = plan.Placed.GroupBy(d => d.AgentId == "a3" ? "r2" : "r1").ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["r1"] = 2, ["r2"] = 2 }, perRack);
        Assert.DoesNotContain(plan.Placed, d => d.AgentId == "a4");
    }

    [Fact]
    public void Place_MaxPerWithExistingTasks_CountsSnapshotGroupCounts()
    {
        var plan = Build.Place(Racks(a1Groups: Build.Groups(("app", 1)), a2Groups: Build.Groups(("app", 1))), Build.Requests(3, constraints: "rack:MAX_PER:2"));

        // r1 already holds 2 tasks of the group; r2 takes two more.
        Assert.Equal(["a3", "a3"], plan.Placed.Select(d => d.AgentId));
        Assert.Equal("task-3", plan.SingleFailure().TaskId);
    }

    [Fact]
    public void Place_ClusterWithValue_OnlyThatValue()
    {
        var plan = Build.Place(Racks(), Build.Requests(3, constraints: "rack:CLUSTER:r2"));

        Assert.Equal(3, plan.Placed.Length);
        Assert.All(plan.Placed, d => Assert.Equal("a3", d.AgentId));
    }

    [Fact]
    public void Place_ClusterWithoutValueNoTasksYet_FirstAnywhereRestFollow()
    {
        // Spread would alternate a1/a2/a3; CLUSTER keeps the group on the first task's rack.
        var plan = Build.Place(PlacementStrategy.Spread, Racks(), Build.Requests(4, constraints: "rack:CLUSTER"));

        Assert.Equal(["a1", "a2", "a1", "a2"], plan.Placed.Select(d => d.AgentId));
    }

    [Fact]
    public void Place_ClusterWithoutValueExistingTasks_FollowsThem()
    {
        var plan = Build.Place(PlacementStrategy.Spread, Racks(a3Groups: Build.Groups(("app", 1))),
            Build.Requests(2, constraints: "rack:CLUSTER"));

        Assert.All(plan.Placed, d => Assert.Equal("a3", d.AgentId));
        Assert.Equal(2, plan.Placed.Length);
    }

    [Theory]
    [InlineData("rack:LIKE:r[12]", new[] { "a1", "a3" })]
    [InlineData("rack:LIKE:r1", new[] { "a1" })] // full match: "r1" does not match "r10"
    [InlineData("rack:LIKE:r1.*", new[] { "a1", "a2" })]
    [InlineData("rack:LIKE:1", new string[0])] // not a substring search
    [InlineData("rack:UNLIKE:r1", new[] { "a2", "a3" })] // "r10" is not a full match of r1
    [InlineData("rack:UNLIKE:r1|r2", new[] { "a2" })] // alternation stays inside the anchors
    [InlineData("rack:IS:r10", new[] { "a2" })]
    [InlineData("rack:CLUSTER:r2", new[] { "a3" })]
    [InlineData("cores:IS:8", new[] { "a1", "a2" })] // scalar attributes compare as invariant text
    [InlineData("cores:LIKE:8|16", new[] { "a1", "a2", "a3" })]
    public void Place_ValueConstraints_OnlyMatchingAgentsFeasible(string constraint, string[] feasible)
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", attributes: "rack:r1;cores:8"),
            Build.Agent("a2", attributes: "rack:r10;cores:8.0"),
            Build.Agent("a3", attributes: "rack:r2;cores:16"));

        // One task per agent at most (spread never stacks while an empty feasible agent remains), 3 tasks.
        var plan = Build.Place(PlacementStrategy.Spread, cluster, Build.Requests(3, cpus: 4, constraints: constraint));

        Assert.Equal(feasible, plan.Placed.Select(d => d.AgentId).Order());
        Assert.Equal(3 - feasible.Length, plan.Unplaced.Length);
    }

    [Fact]
    public void Place_InvalidRegex_NoAgentFeasibleReasonNamesConstraint()
    {
        var request = Build.Request() with { Constraints = [new Constraint("rack", ConstraintOperator.Like, "r[")] };

        var plan = Build.Place(Racks(), request);

        Assert.Equal("0 of 4 agents fit: 4 rejected by constraint rack:LIKE:r[", plan.SingleFailure().Reason);
    }

    [Theory]
    [InlineData("@zone:IS:z2", new[] { "a2" })]
    [InlineData("@zone:UNLIKE:z2", new[] { "a1", "a3" })]
    [InlineData("@region:IS:eu-west", new[] { "a1", "a2" })]
    [InlineData("@region:LIKE:us-.*", new[] { "a3" })]
    [InlineData("hostname:IS:host-3", new[] { "a3" })]
    [InlineData("@hostname:LIKE:host-[12]", new[] { "a1", "a2" })]
    public void Place_DomainAndHostnameFields_MatchAgentValues(string constraint, string[] feasible)
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", hostname: "host-1", region: "eu-west", zone: "z1"),
            Build.Agent("a2", hostname: "host-2", region: "eu-west", zone: "z2"),
            Build.Agent("a3", hostname: "host-3", region: "us-east", zone: "z3"),
            Build.Agent("a4", hostname: "host-4"));

        var plan = Build.Place(PlacementStrategy.Spread, cluster, Build.Requests(4, cpus: 4, constraints: constraint));

        Assert.Equal(feasible, plan.Placed.Select(d => d.AgentId).Order());
    }

    [Fact]
    public void Place_GroupByZone_SpreadsEvenlyOverThreeZones()
    {
        var agents = Enumerable.Range(1, 6).Select(i => Build.Agent($"a{i}", cpus: 8, zone: $"z{(i + 1) / 2}")).ToArray();

        // Bin-packing alone would stack all six on a1.
        var plan = Build.Place(PlacementStrategy.BinPack, Build.Cluster(agents), Build.Requests(6, constraints: "@zone:GROUP_BY"));

        Assert.Empty(plan.Unplaced);
        var zoneOf = agents.ToDictionary(a => a.Id, a => a.Domain!.Zone);
        var perZone = plan.Placed.GroupBy(d => zoneOf[d.AgentId]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["z1"] = 2, ["z2"] = 2, ["z3"] = 2 }, perZone);
        // Evenness holds after every placement, not just at the end.
        Assert.Equal(["z1", "z2", "z3", "z1", "z2", "z3"], plan.Placed.Select(d => zoneOf[d.AgentId]));
    }

    [Fact]
    public void Place_GroupByWithExistingTasks_FillsLeastUsedValuesFirst()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", zone: "z1", groups: Build.Groups(("app", 1))),
            Build.Agent("a2", zone: "z1", schedulable: false, groups: Build.Groups(("app", 1))),
            Build.Agent("a3", zone: "z2"),
            Build.Agent("a4", zone: "z3", groups: Build.Groups(("app", 1), ("other", 5))));

        var plan = Build.Place(cluster, Build.Requests(4, constraints: "@zone:GROUP_BY"));

        // z1 has 2 (one on an unschedulable agent), z3 has 1, z2 has 0.
        Assert.Equal(["a3", "a3", "a4", "a3"], plan.Placed.Select(d => d.AgentId));
    }

    [Fact]
    public void Place_GroupByMoreValuesThanExist_StillSpreadsOverExisting()
    {
        var cluster = Build.Cluster(Build.Agent("a1", zone: "z1"), Build.Agent("a2", zone: "z2"));

        var plan = Build.Place(cluster, Build.Requests(4, constraints: "@zone:GROUP_BY:3"));

        Assert.Equal(["a1", "a2", "a1", "a2"], plan.Placed.Select(d => d.AgentId));
    }

    [Fact]
    public void Place_GroupByValueOnlyOnUnschedulableAgent_IgnoredForMinimum()
    {
        // z2 exists only on a draining agent, so it must not hold the group back from z1.
        var cluster = Build.Cluster(
            Build.Agent("a1", zone: "z1", groups: Build.Groups(("app", 1))),
            Build.Agent("a2", zone: "z2", schedulable: false));

        var plan = Build.Place(cluster, Build.Request(constraints: "@zone:GROUP_BY"));

        Assert.Equal("a1", Assert.Single(plan.Placed).AgentId);
    }

    [Fact]
    public void Place_EarlierUnconstrainedTaskOfGroupInBatch_CountsForLaterUnique()
    {
        var cluster = Build.Cluster(Build.Agent("a1", hostname: "h1"), Build.Agent("a2", hostname: "h2", cpus: 8));

        var plan = Build.Place(cluster, Build.Request("t1"), Build.Request("t2", constraints: "hostname:UNIQUE"));

        Assert.Equal("a1", plan.Where()["t1"]);
        Assert.Equal("a2", plan.Where()["t2"]);
    }

    [Fact]
    public void Place_LikeOnValueWithTrailingNewline_NotAFullMatch()
    {
        var cluster = Build.Cluster(Build.Agent("a1", hostname: "host-1\n"), Build.Agent("a2", hostname: "host-1"));

        var plan = Build.Place(PlacementStrategy.Spread, cluster, Build.Requests(2, cpus: 4, constraints: "hostname:LIKE:host-1"));

        Assert.Equal("a2", Assert.Single(plan.Placed).AgentId);
    }

    [Fact]
    public void Place_GroupByLeastUsedValueFull_Unplaced()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", zone: "z1", groups: Build.Groups(("app", 1))),
            Build.Agent("a2", cpus: 0.5m, zone: "z2"));

        var plan = Build.Place(cluster, Build.Request(constraints: "@zone:GROUP_BY"));

        Assert.Equal("0 of 2 agents fit: 1 without 1 cpus free, 1 rejected by constraint @zone:GROUP_BY", plan.SingleFailure().Reason);
    }

    [Fact]
    public void Place_ConstraintsOfOtherGroups_DoNotInteract()
    {
        var cluster = Build.Cluster(Build.Agent("a1", hostname: "h1"));

        var plan = Build.Place(cluster,
            Build.Request("t1", group: "web", constraints: "hostname:UNIQUE"),
            Build.Request("t2", group: "db", constraints: "hostname:UNIQUE"),
            Build.Request("t3", group: "web", constraints: "hostname:UNIQUE"));

        Assert.Equal(["t1", "t2"], plan.Placed.Select(d => d.TaskId));
        Assert.Equal("t3", plan.SingleFailure().TaskId);
    }
}
