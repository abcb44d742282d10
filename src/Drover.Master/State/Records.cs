using System.Collections.Immutable;
using System.Threading.Channels;
using Drover.Core;
using Drover.Core.Protocol;

namespace Drover.Master.State;

/// <summary>
/// The master's record of one task: the immutable spec plus observed state. Mutable, and only ever
/// touched under <see cref="ClusterState"/>'s lock; readers get immutable views.
/// </summary>
internal sealed class TaskRecord(TaskSpec spec, DateTimeOffset submittedAt)
{
    /// <summary>Statuses kept per task for the API; older ones are dropped.</summary>
    public const int MaxStatuses = 16;

    public TaskSpec Spec { get; } = spec;

    public DateTimeOffset SubmittedAt { get; } = submittedAt;

    public TaskState State { get; set; } = TaskState.Pending;

    public string? AgentId { get; set; }

    public ImmutableArray<int> Ports { get; set; } = [];

    /// <summary>Resources held on the agent (scalars plus the assigned ports).</summary>
    public Resources Allocated { get; set; } = Resources.Zero;

    public string? WaitingReason { get; set; }

    public int? ExitCode { get; set; }

    public string? Message { get; set; }

    public string? Reason { get; set; }

    public List<TaskStatus> Statuses { get; } = [];

    /// <summary>When the launch (or kill) command was last sent, for re-sending.</summary>
    public DateTimeOffset? CommandSentAt { get; set; }

    public bool KillRequested { get; set; }

    /// <summary>Last health result from the agent (null: no check, or none yet).</summary>
    public bool? Healthy { get; set; }

    /// <summary>Per-check results of the last health report (empty: none yet).</summary>
    public ImmutableArray<Drover.Core.Health.HealthCheckResult> HealthResults { get; set; } = [];

    /// <summary>True once the agent reported the task ready (its readiness checks passed).</summary>
    public bool? Ready { get; set; }

    public DateTimeOffset? StartedAt { get; set; }

    /// <summary>When this master recorded the task's end, by its own clock (not persisted: null for restored records).</summary>
    public DateTimeOffset? EndedAt { get; set; }

    public void AddStatus(TaskStatus status)
    {
        if (Statuses.Count == MaxStatuses)
        {
            Statuses.RemoveAt(1); // keep the first (staging) status and the most recent ones
        }

        Statuses.Add(status);
    }
}

/// <summary>
/// Counts over a placement group's active tasks (<see cref="ClusterState.SummarizeGroup"/>). <c>Settled</c>: alive
/// (not killing, not asked to be killed, not unreachable), of the given version and not on a leaving agent;
/// <c>Ready</c>: settled, running, healthy (if checked) and ready (if readiness-checked).
/// </summary>
internal readonly record struct GroupSummary(int Active, int Staged, int Running, int Healthy, int Unhealthy, int Settled, int Ready);

/// <summary>A command for an agent, to be sent only once the state change behind it is durable.</summary>
internal readonly record struct PendingCommand(Task Durable, AgentCommand Command);

internal enum AgentStatus
{
    Active,
    Unreachable,
    Removed,
}

/// <summary>The master's record of one agent. Guarded by <see cref="ClusterState"/>'s lock except <see cref="Commands"/>, which is thread-safe.</summary>
internal sealed class AgentRecord(string id, AgentRegistration info, DateTimeOffset now)
{
    public string Id { get; } = id;

    public AgentRegistration Info { get; set; } = info;

    public Resources Total => Info.Resources;

    public Resources Used { get; set; } = Resources.Zero;

    public AgentStatus Status { get; set; } = AgentStatus.Active;

    public DateTimeOffset RegisteredAt { get; set; } = now;

    public DateTimeOffset LastHeartbeatAt { get; set; } = now;

    public DateTimeOffset? UnreachableSince { get; set; }

    /// <summary>
    /// When a drain started; null when the agent is not being drained. Draining is orthogonal to
    /// <see cref="Status"/>: a draining agent may also be unreachable, and stays draining until undrained.
    /// </summary>
    public DateTimeOffset? DrainStartedAt { get; set; }

    /// <summary>When whatever still runs on the draining agent is killed.</summary>
    public DateTimeOffset? DrainDeadline { get; set; }

    public bool IsDraining => DrainStartedAt is not null;

    /// <summary>Active and not draining: placement may put new work here.</summary>
    public bool Schedulable => Status == AgentStatus.Active && !IsDraining;

    public HashSet<string> TaskIds { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, int> GroupCounts { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Commands waiting for the agent's command stream. Unbounded: commands are small and bounded by
    /// the tasks placed on the agent; a command lost with a dropped stream is re-sent after a heartbeat.
    /// </summary>
    public Channel<PendingCommand> Commands { get; } = Channel.CreateUnbounded<PendingCommand>();

    /// <summary>Cancels the agent's current command stream when a newer one connects (one reader at a time).</summary>
    public CancellationTokenSource? CurrentStream;

    /// <summary>
    /// Resources held by outstanding Mesos offers (not persisted: offers do not survive a master restart).
    /// Placement sees them as taken, so built-in tasks never double-book what a framework was offered.
    /// </summary>
    public Resources Offered { get; set; } = Resources.Zero;

    public Resources Free => Total.SubtractClamped(Used).SubtractClamped(Offered);

    /// <summary>Custom executors of Mesos frameworks running here; their resources are part of <see cref="Used"/>.</summary>
    public Dictionary<(string Framework, string Executor), ExecutorRecord> Executors { get; } = [];

    /// <summary>
    /// Executors that ended recently (exit reported, or forgotten because the agent no longer listed them), so a
    /// late or repeated report is recognised: a late exit still gets its FAILURE, a repeated one nothing.
    /// </summary>
    public Dictionary<(string Framework, string Executor), EndedExecutor> EndedExecutors { get; } = [];

    /// <summary>
    /// Tasks this agent reports that the master has no record of, by id: kept running for
    /// <see cref="MasterOptions.UnknownTaskGrace"/>, then killed (ClusterState.Reconcile.cs). Bounded by what the
    /// agent reports (ids it stops reporting are dropped) and by <c>ClusterState.MaxUnknownTasksPerAgent</c>.
    /// </summary>
    public Dictionary<string, UnknownTask> UnknownTasks { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Tasks this agent runs that the master records as ended or placed on another agent, by id: when the kill
    /// was last sent, so it is re-sent at most every <see cref="MasterOptions.CommandResendAfter"/>. Bounded like
    /// <see cref="UnknownTasks"/>.
    /// </summary>
    public Dictionary<string, DateTimeOffset> StrayKills { get; } = new(StringComparer.Ordinal);
}

/// <summary>A task an agent runs that the master has no record of: when it was first reported, and when a kill was last sent.</summary>
internal readonly record struct UnknownTask(DateTimeOffset FirstSeen, DateTimeOffset? KillSentAt);

/// <summary>The master's record of a live custom executor on an agent. Guarded by <see cref="ClusterState"/>'s lock.</summary>
internal sealed class ExecutorRecord(ExecutorSpec spec, DateTimeOffset since)
{
    public ExecutorSpec Spec { get; } = spec;

    /// <summary>When the master started counting it (its first task accepted, or learned from the agent).</summary>
    public DateTimeOffset Since { get; } = since;

    /// <summary>The agent's container running it, once the agent listed it.</summary>
    public string? ContainerId { get; set; }
}

/// <summary>An executor the master stopped counting: when, which container, and whether its FAILURE went out.</summary>
internal readonly record struct EndedExecutor(DateTimeOffset At, string? ContainerId, bool FailureSent);
