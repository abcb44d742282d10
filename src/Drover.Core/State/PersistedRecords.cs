using System.Collections.Immutable;
using Drover.Core.Protocol;

namespace Drover.Core.State;

// What the master keeps in its state store, one key per record. These are the durable form of the
// master's in-memory records: enough to rebuild them after a restart. Transient data (waiting
// reasons, heartbeat times) is not stored.

/// <summary>Stored under <c>/drover/tasks/{id}</c>.</summary>
public sealed record PersistedTask
{
    public required TaskSpec Spec { get; init; }

    public required TaskState State { get; init; }

    public required DateTimeOffset SubmittedAt { get; init; }

    public string? AgentId { get; init; }

    public ImmutableArray<int> Ports { get; init => field = value.IsDefault ? [] : value; } = [];

    public int? ExitCode { get; init; }

    public string? Message { get; init; }

    public string? Reason { get; init; }

    public bool KillRequested { get; init; }

    public bool? Healthy { get; init; }

    public ImmutableArray<Drover.Core.Health.HealthCheckResult>? HealthResults { get; init; }

    public bool? Ready { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public ImmutableArray<TaskStatus> Statuses { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>Stored under <c>/drover/agents/{id}</c>.</summary>
public sealed record PersistedAgent
{
    public required AgentRegistration Info { get; init; }

    /// <summary><c>active</c>, <c>unreachable</c> or <c>removed</c>.</summary>
    public required string Status { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }

    public DateTimeOffset? UnreachableSince { get; init; }

    /// <summary>When a drain started (null: not draining). Orthogonal to <see cref="Status"/>.</summary>
    public DateTimeOffset? DrainStartedAt { get; init; }

    /// <summary>When whatever still runs on a draining agent is killed.</summary>
    public DateTimeOffset? DrainDeadline { get; init; }
}
