using System.Collections.Immutable;
using Drover.Core;

namespace Drover.Placement.Tests;

/// <summary>Agents, requests and snapshots with valid defaults; tests override only what they are about.</summary>
internal static class Build
{
    /// <summary>
    /// An agent whose free resources are <paramref name="cpus"/>/<paramref name="mem"/>/…; Total defaults to Free
    /// (an idle agent). Attributes in Mesos text form, e.g. <c>rack:r1;cores:8</c>.
    /// </summary>
    public static AgentSnapshot Agent(
        string id,
        decimal cpus = 4,
        long mem = 4096,
        long disk = 10_000,
        int gpus = 0,
        PortRanges? ports = null,
        Resources? total = null,
        string? hostname = null,
        string? attributes = null,
        string? region = null,
        string? zone = null,
        bool schedulable = true,
        ImmutableDictionary<string, int>? groups = null)
    {
        var free = Resources.Of(cpus, mem, disk, gpus, ports ?? PortRanges.Range(31000, 31099));
        Attributes parsed = Attributes.Empty;
        if (attributes is not null)
        {
            Assert.True(Attributes.TryParse(attributes, out parsed, out var error), error);
        }

        return new AgentSnapshot
        {
            Id = id,
            Hostname = hostname ?? id + ".example",
            Total = total ?? free,
            Free = free,
            Attributes = parsed,
            Domain = region is null && zone is null ? null : new FaultDomain(region ?? "region-1", zone ?? "zone-1"),
            Schedulable = schedulable,
            GroupCounts = groups ?? ImmutableDictionary<string, int>.Empty,
        };
    }

    /// <summary>A request; constraints in CLI form, e.g. <c>hostname:UNIQUE</c>.</summary>
    public static PlacementRequest Request(
        string taskId = "task-1",
        string group = "app",
        decimal cpus = 1,
        long mem = 128,
        long disk = 0,
        int gpus = 0,
        int ports = 0,
        params string[] constraints) => new()
        {
            TaskId = taskId,
            Group = group,
            Resources = Resources.Of(cpus, mem, disk, gpus),
            PortCount = ports,
            Constraints = [.. constraints.Select(Constraint)],
        };

    /// <summary><paramref name="count"/> identical requests task-1…task-N of one group.</summary>
    public static PlacementRequest[] Requests(int count, string group = "app", decimal cpus = 1, long mem = 128, int ports = 0, params string[] constraints) =>
        [.. Enumerable.Range(1, count).Select(i => Request($"task-{i}", group, cpus, mem, ports: ports, constraints: constraints))];

    public static Constraint Constraint(string text)
    {
        Assert.True(Core.Constraint.TryParse(text, out var constraint, out var error), error);
        return constraint!;
    }

    public static ImmutableDictionary<string, int> Groups(params (string Group, int Count)[] counts) =>
        counts.ToImmutableDictionary(c => c.Group, c => c.Count);

    public static ClusterSnapshot Cluster(params AgentSnapshot[] agents) => new() { Agents = [.. agents] };

    public static PlacementPlan Place(ClusterSnapshot cluster, params PlacementRequest[] requests) =>
        Place(PlacementStrategy.BinPack, cluster, requests);

    /// <summary>
    /// Places with the index (whatever the cluster's size) and checks the plan is exactly the one a scan of every
    /// agent gives, so every test of the semantics also tests the index.
    /// </summary>
    public static PlacementPlan Place(PlacementStrategy strategy, ClusterSnapshot cluster, params PlacementRequest[] requests) =>
        PlaceBothWays(strategy, cluster, requests, "plan");

    /// <summary>The indexed engine's plan, after asserting it equals the scanning engine's, reasons and RejectedBy included.</summary>
    public static PlacementPlan PlaceBothWays(PlacementStrategy strategy, ClusterSnapshot cluster, IReadOnlyList<PlacementRequest> requests, string what)
    {
        var options = new PlacementOptions { Strategy = strategy };
        var indexed = new PlacementEngine(options, indexFromAgents: 0).Place(cluster, requests);
        var scan = new PlacementEngine(options, indexFromAgents: int.MaxValue).Place(cluster, requests);

        Assert.Equal(scan.Placed.Length, indexed.Placed.Length);
        for (var i = 0; i < scan.Placed.Length; i++)
        {
            var (s, x) = (scan.Placed[i], indexed.Placed[i]);
            Assert.True(s.TaskId == x.TaskId && s.AgentId == x.AgentId, $"{what}: {s.TaskId} → {s.AgentId} by scan, {x.TaskId} → {x.AgentId} indexed");
            Assert.Equal(s.Ports.ToArray(), x.Ports.ToArray());
        }

        Assert.Equal(scan.Unplaced.Length, indexed.Unplaced.Length);
        for (var i = 0; i < scan.Unplaced.Length; i++)
        {
            Assert.Equal(scan.Unplaced[i].TaskId, indexed.Unplaced[i].TaskId);
            Assert.Equal(scan.Unplaced[i].Reason, indexed.Unplaced[i].Reason);
            Assert.Equal(scan.Unplaced[i].RejectedBy, indexed.Unplaced[i].RejectedBy);
        }

        return indexed;
    }

    /// <summary>Task id → agent id for the placed tasks.</summary>
    public static Dictionary<string, string> Where(this PlacementPlan plan) =>
        plan.Placed.ToDictionary(d => d.TaskId, d => d.AgentId);

    /// <summary>Placed tasks per agent id.</summary>
    public static Dictionary<string, int> PerAgent(this PlacementPlan plan) =>
        plan.Placed.GroupBy(d => d.AgentId).ToDictionary(g => g.Key, g => g.Count());

    public static PlacementFailure SingleFailure(this PlacementPlan plan) => Assert.Single(plan.Unplaced);
}
