using System.Collections.Immutable;

namespace Drover.Core.Protocol;

// The agent <-> master protocol. Agents always dial the master (so agents behind NAT at edge sites
// work): they register, heartbeat, hold one long-lived command stream open and post status updates.
// The master dials an agent only to read sandbox files.
//
//   agent                                     master
//     | POST /internal/v1/agents/register  ---> |   AgentRegistration → AgentRegistered
//     | GET  /internal/v1/agents/{id}/commands  |   NDJSON stream of AgentCommand (launch/launch group/kill/ping)
//     | <--------------------------------------- |
//     | POST /internal/v1/agents/{id}/heartbeat  |   AgentHeartbeat → 200 | 404 (re-register)
//     | POST /internal/v1/agents/{id}/updates    |   StatusUpdateBatch (task updates + executor exits) → StatusUpdateAck
//     | POST /internal/v1/agents/{id}/messages   |   FrameworkMessage from an executor → 202
//
// Launch and kill are idempotent on the agent; the master re-sends them when a heartbeat shows the
// agent did not act on them, so a command lost with a dropped stream is recovered, not forgotten.

/// <summary>HTTP headers of the agent protocol.</summary>
public static class AgentProtocolHeaders
{
    /// <summary>
    /// On every master answer to an agent (registration, command stream, status update acks): the master's cluster
    /// id, so an agent checks each stream and ack against the cluster it belongs to before it acts on any of it.
    /// </summary>
    public const string ClusterId = "Drover-Cluster-Id";
}

/// <summary>Sent by an agent when it starts (or when the master forgot it).</summary>
public sealed record AgentRegistration
{
    /// <summary>Set when re-registering after a master restart or a lost registration.</summary>
    public string? AgentId { get; init; }

    public required string Hostname { get; init; }

    /// <summary>Base URL of the agent's own HTTP endpoint (sandbox files), e.g. http://10.0.0.2:5051.</summary>
    public required string Address { get; init; }

    public required Resources Resources { get; init; }

    public Attributes Attributes { get; init => field = value ?? Attributes.Empty; } = Attributes.Empty;

    public FaultDomain? Domain { get; init; }

    /// <summary>Tasks the agent is running now, so a master that lost its state can reconcile them.</summary>
    public ImmutableArray<TaskStatus> Tasks { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Custom executors running on the agent now (see <see cref="AgentHeartbeat.Executors"/>).</summary>
    public ImmutableArray<LiveExecutor> Executors { get; init => field = value.IsDefault ? [] : value; } = [];
}

public sealed record AgentRegistered
{
    public required string AgentId { get; init; }

    /// <summary>
    /// The cluster the master serves (its store's cluster id). An agent keeps the first one it registered with and
    /// refuses a master of another cluster; null from a master that does not tell (then the agent does not check).
    /// </summary>
    public string? ClusterId { get; init; }

    public required double HeartbeatIntervalSeconds { get; init; }
}

public sealed record AgentHeartbeat
{
    /// <summary>Ids of every task the agent holds and has not seen acknowledged as terminal.</summary>
    public ImmutableArray<string> ActiveTaskIds { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>
    /// Custom executors whose process runs (or is being shut down) on the agent. The master reconciles its
    /// executor ledger with it: it learns executors it lost in a restart, and forgets ones the agent does not have.
    /// </summary>
    public ImmutableArray<LiveExecutor> Executors { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>A custom executor running on an agent: its spec (resources included) and the container running it.</summary>
public sealed record LiveExecutor
{
    public required ExecutorSpec Executor { get; init; }

    public required string ContainerId { get; init; }
}

/// <summary>
/// A custom executor's process ended (by itself, crash, OOM, kill, shutdown, registration timeout, or no
/// re-subscription after an agent restart). Delivered like status updates: on disk on the agent first, in
/// <see cref="StatusUpdateBatch.ExecutorExits"/>, kept until the master acknowledges <see cref="Uuid"/>.
/// </summary>
public sealed record ExecutorExit
{
    public required string FrameworkId { get; init; }

    public required string ExecutorId { get; init; }

    /// <summary>The container that ran it, so a late duplicate cannot end a newer run of the same executor id.</summary>
    public string? ContainerId { get; init; }

    /// <summary>The process' wait status as <c>waitpid</c> gives it (Mesos' <c>Event.Failure.status</c>); null when unknown.</summary>
    public int? Status { get; init; }

    public string? Message { get; init; }

    public required string Uuid { get; init; }

    /// <summary>Seconds since the Unix epoch.</summary>
    public double Timestamp { get; init; }

    /// <summary>
    /// Mesos' wait status from a Drover exit code (shell convention: 128 + n for a death by signal n): the
    /// code shifted left by 8 for an exit, the signal number for a signal. Null stays null.
    /// </summary>
    public static int? WaitStatus(int? exitCode) => exitCode switch
    {
        null => null,
        > 128 and <= 128 + 64 => exitCode.Value - 128,
        _ => (exitCode.Value & 0xff) << 8,
    };
}

public enum AgentCommandType
{
    Ping,
    Launch,
    Kill,

    /// <summary>A scheduler's MESSAGE for one of its executors on this agent (<see cref="AgentCommand.Message"/>).</summary>
    FrameworkMessage,

    /// <summary>Shut an executor down (<see cref="AgentCommand.Message"/> names it; <c>Data</c> unused).</summary>
    ShutdownExecutor,

    /// <summary>
    /// The tasks of one Mesos task group (<see cref="AgentCommand.LaunchGroup"/>), in one line so the agent gets all
    /// of them or none: launched together, and handed to a custom executor as one <c>LAUNCH_GROUP</c> event.
    /// </summary>
    LaunchGroup,
}

/// <summary>One line of the command stream.</summary>
public sealed record AgentCommand
{
    public required AgentCommandType Type { get; init; }

    public LaunchTask? Launch { get; init; }

    public KillTask? Kill { get; init; }

    public FrameworkMessage? Message { get; init; }

    public LaunchTaskGroup? LaunchGroup { get; init; }

    /// <summary>
    /// The values of the secrets the launched tasks use (<see cref="TaskSpec.Secrets"/>), resolved by the master as
    /// it sends this command to the one agent that runs them. Beside the launch, not inside it: the agent
    /// checkpoints <see cref="LaunchTask"/>s, and keeps these in memory only until each task has started.
    /// </summary>
    public ImmutableArray<SecretValue>? Secrets { get; init; }
}

/// <summary>The value of secret <see cref="Index"/> of <see cref="TaskSpec.Secrets"/> of task <see cref="TaskId"/>.</summary>
public sealed record SecretValue
{
    public required string TaskId { get; init; }

    public required int Index { get; init; }

    /// <summary>The value's bytes (base64 in JSON).</summary>
    public required byte[] Data { get; init; }
}

/// <summary>
/// Opaque bytes between a Mesos scheduler and one of its executors, in either direction: master → agent
/// on the command stream, agent → master with <c>POST /internal/v1/agents/{id}/messages</c>. Best effort
/// (Mesos' framework messages are not reliable either).
/// </summary>
public sealed record FrameworkMessage
{
    public required string FrameworkId { get; init; }

    public required string ExecutorId { get; init; }

    /// <summary>Base64, as Mesos' JSON encodes <c>bytes</c>.</summary>
    public string Data { get; init => field = value ?? ""; } = "";
}

public sealed record LaunchTask
{
    public required TaskSpec Task { get; init; }

    /// <summary>Host ports assigned by the master, in PORT0…PORTn order.</summary>
    public ImmutableArray<int> Ports { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>
    /// On the agent, in memory only: the values of <see cref="TaskSpec.Secrets"/> that came with the launch command
    /// (<see cref="AgentCommand.Secrets"/>). Never serialized, so never on the wire inside a launch nor in the agent's
    /// checkpoint of it.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ImmutableArray<SecretValue> SecretValues { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>
/// The tasks of one task group (Mesos' LAUNCH_GROUP), each with its own ports. Every task carries the same
/// <see cref="TaskSpec.TaskGroupId"/>. Idempotent on the agent like a launch: tasks it already knows are skipped.
/// </summary>
public sealed record LaunchTaskGroup
{
    public ImmutableArray<LaunchTask> Tasks { get; init => field = value.IsDefault ? [] : value; } = [];
}

public sealed record KillTask
{
    public required string TaskId { get; init; }

    /// <summary>Overrides the task's own grace period when set.</summary>
    public double? GracePeriodSeconds { get; init; }
}

public sealed record StatusUpdateBatch
{
    public required ImmutableArray<TaskStatus> Updates { get; init; }

    /// <summary>Executor exits, applied after <see cref="Updates"/> and acknowledged by uuid like them.</summary>
    public ImmutableArray<ExecutorExit> ExecutorExits { get; init => field = value.IsDefault ? [] : value; } = [];
}

public sealed record StatusUpdateAck
{
    /// <summary>Uuids (of updates and executor exits) the master has recorded; the agent may forget them.</summary>
    public required ImmutableArray<string> Acknowledged { get; init; }
}

/// <summary>A slice of a sandbox file, as Mesos' <c>/files/read</c> returns it.</summary>
public sealed record FileChunk
{
    public required string Data { get; init; }

    public required long Offset { get; init; }

    /// <summary>Total size of the file when read.</summary>
    public long Size { get; init; }
}
