using System.Collections.Immutable;
using Drover.Core;

namespace Drover.Placement;

public enum PlacementStrategy
{
    /// <summary>Prefer the fullest agent that fits (packs machines tightly, leaves whole machines free).</summary>
    BinPack,

    /// <summary>Prefer the emptiest agent (spreads load and failure impact).</summary>
    Spread,
}

public sealed record PlacementOptions
{
    public PlacementStrategy Strategy { get; init; } = PlacementStrategy.BinPack;
}

/// <summary>One agent as placement sees it at one instant. Immutable.</summary>
public sealed record AgentSnapshot
{
    public required string Id { get; init; }

    public required string Hostname { get; init; }

    public required Resources Total { get; init; }

    /// <summary>Total minus what tasks hold, including free port ranges.</summary>
    public required Resources Free { get; init; }

    public Attributes Attributes { get; init; } = Attributes.Empty;

    public FaultDomain? Domain { get; init; }

    /// <summary>False for agents that are unreachable or draining: they receive no new work.</summary>
    public bool Schedulable { get; init; } = true;

    /// <summary>Number of tasks of each placement group on this agent (for UNIQUE, MAX_PER, GROUP_BY, CLUSTER).</summary>
    public ImmutableDictionary<string, int> GroupCounts { get; init; } = ImmutableDictionary<string, int>.Empty;
}

/// <summary>The cluster as placement sees it: an immutable snapshot taken by the master.</summary>
public sealed record ClusterSnapshot
{
    public static readonly ClusterSnapshot Empty = new() { Agents = [] };

    public required ImmutableArray<AgentSnapshot> Agents { get; init; }
}

public sealed record PlacementRequest
{
    public required string TaskId { get; init; }

    /// <summary>Placement group: tasks of one app share it; constraints count tasks within it.</summary>
    public required string Group { get; init; }

    /// <summary>Scalar resources (ports are empty here; see <see cref="PortCount"/>).</summary>
    public required Resources Resources { get; init; }

    public int PortCount { get; init; }

    public ImmutableArray<Constraint> Constraints { get; init; } = [];

    public static PlacementRequest For(TaskSpec spec) => new()
    {
        TaskId = spec.Id,
        Group = spec.Group ?? spec.Id,
        Resources = spec.Resources,
        PortCount = spec.PortCount,
        Constraints = spec.Constraints,
    };
}

public sealed record PlacementDecision
{
    public required string TaskId { get; init; }

    public required string AgentId { get; init; }

    /// <summary>Host ports taken from the agent's free ranges, PORT0 first.</summary>
    public ImmutableArray<int> Ports { get; init; } = [];
}

public sealed record PlacementFailure
{
    public required string TaskId { get; init; }

    /// <summary>A sentence for people, e.g. "no agent has 64 cpus free; the largest has 2".</summary>
    public required string Reason { get; init; }

    /// <summary>How many agents each filter rejected (filter name → count), for APIs and metrics.</summary>
    public ImmutableDictionary<string, int> RejectedBy { get; init; } = ImmutableDictionary<string, int>.Empty;
}

/// <summary>The result of one placement pass: what goes where, and why the rest did not fit.</summary>
public sealed record PlacementPlan
{
    public required ImmutableArray<PlacementDecision> Placed { get; init; }

    public required ImmutableArray<PlacementFailure> Unplaced { get; init; }
}
