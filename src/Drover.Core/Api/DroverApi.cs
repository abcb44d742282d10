using System.Collections.Immutable;
using System.Text.Json;

namespace Drover.Core.Api;

// Drover's own client API under /drover/v1, used by the CLI and tests. Wire names are camelCase.

/// <summary>
/// Body of <c>POST /drover/v1/tasks</c>. Fields are nullable so validation can tell "missing" from
/// "zero" and name the field; defaults are applied by <see cref="TaskSubmissionValidator"/>.
/// </summary>
public sealed record TaskSubmission
{
    public string? Name { get; init; }

    /// <summary>Shell command, run with /bin/sh -c.</summary>
    public string? Cmd { get; init; }

    /// <summary>Exec form, used when <see cref="Cmd"/> is absent.</summary>
    public ImmutableArray<string>? Args { get; init; }

    public ImmutableDictionary<string, string>? Env { get; init; }

    /// <summary>
    /// The Unix user to run as; absent: the agent's <c>--default-task-user</c>. Naming a user needs the
    /// permission to run tasks as that user (<c>dcos:mesos:master:task:user:{user}</c>, create).
    /// </summary>
    public string? User { get; init; }

    public JsonElement? Cpus { get; init; }

    public JsonElement? Mem { get; init; }

    public JsonElement? Disk { get; init; }

    public JsonElement? Gpus { get; init; }

    /// <summary>Number of host ports to assign.</summary>
    public JsonElement? Ports { get; init; }

    /// <summary>Constraints as <c>"field:OP:value"</c> strings or Marathon's <c>["field","OP","value"]</c> arrays.</summary>
    public ImmutableArray<JsonElement>? Constraints { get; init; }

    public JsonElement? KillGracePeriodSeconds { get; init; }

    /// <summary>
    /// Run the task in this custom executor (Mesos' <c>TaskInfo.executor</c>) instead of as a command of its
    /// own; <see cref="Cmd"/>/<see cref="Args"/> are then optional and only passed on to the executor.
    /// </summary>
    public ExecutorSubmission? Executor { get; init; }

    /// <summary>Opaque bytes for the executor (Mesos' <c>TaskInfo.data</c>), base64. Only with <see cref="Executor"/>.</summary>
    public string? Data { get; init; }
}

/// <summary>The <c>executor</c> of a <see cref="TaskSubmission"/>: a process the agent starts once per (framework, executor id).</summary>
public sealed record ExecutorSubmission
{
    public string? ExecutorId { get; init; }

    public string? FrameworkId { get; init; }

    public string? Name { get; init; }

    /// <summary>Shell command of the executor.</summary>
    public string? Cmd { get; init; }

    /// <summary>Exec form, when <see cref="Cmd"/> is absent.</summary>
    public ImmutableArray<string>? Args { get; init; }

    public ImmutableDictionary<string, string>? Env { get; init; }

    /// <summary>The executor's own CPUs (default 0), on top of its tasks'.</summary>
    public JsonElement? Cpus { get; init; }

    /// <summary>The executor's own memory in MiB (default 0), on top of its tasks'.</summary>
    public JsonElement? Mem { get; init; }

    /// <summary>Opaque bytes for the executor (Mesos' <c>ExecutorInfo.data</c>), base64.</summary>
    public string? Data { get; init; }
}

/// <summary>A task as the API shows it: spec, where it runs, and what happened to it.</summary>
public sealed record TaskView
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public required TaskState State { get; init; }

    public string? Cmd { get; init; }

    public ImmutableArray<string> Args { get; init => field = value.IsDefault ? [] : value; } = [];

    public required decimal Cpus { get; init; }

    public required long Mem { get; init; }

    public required long Disk { get; init; }

    public int Gpus { get; init; }

    public ImmutableArray<int> Ports { get; init => field = value.IsDefault ? [] : value; } = [];

    public ImmutableArray<string> Constraints { get; init => field = value.IsDefault ? [] : value; } = [];

    public string? AgentId { get; init; }

    public string? Hostname { get; init; }

    /// <summary>Why a pending task has not been placed yet, in words.</summary>
    public string? WaitingReason { get; init; }

    public int? ExitCode { get; init; }

    public string? Message { get; init; }

    public string? Reason { get; init; }

    public required DateTimeOffset SubmittedAt { get; init; }

    public ImmutableArray<TaskStatus> Statuses { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>The last health check result reported by the agent; null when the task has no health check or none has run yet.</summary>
    public bool? Healthy { get; init; }

    public bool HasHealthCheck { get; init; }

    /// <summary>Each health check's state at the last health report, in the spec's order; empty when none was reported.</summary>
    public ImmutableArray<Drover.Core.Health.HealthCheckResult> HealthResults { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>True once the agent reported all the task's readiness checks passed; null before (or without readiness checks).</summary>
    public bool? Ready { get; init; }

    public bool HasReadinessCheck { get; init; }

    /// <summary>When the task first reached TASK_RUNNING.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    public string? AppId { get; init; }

    public string? AppVersion { get; init; }

    /// <summary>
    /// While the task is TASK_UNREACHABLE: since when (its last TASK_UNREACHABLE status, so it survives a
    /// master restart). Null otherwise.
    /// </summary>
    public DateTimeOffset? UnreachableSince { get; init; }

    /// <summary>
    /// True once a kill was asked for. A kill of a task on an unreachable agent stays pending (the task
    /// still shows TASK_UNREACHABLE) until the agent is back or removed.
    /// </summary>
    public bool KillRequested { get; init; }

    /// <summary>The Mesos framework that launched the task (null for built-in services and one-off tasks).</summary>
    public string? FrameworkId { get; init; }

    /// <summary>Who submitted a one-off task (<see cref="TaskSpec.Owner"/>); null for apps' instances and frameworks' tasks.</summary>
    public string? Owner { get; init; }
}

public sealed record TaskList
{
    public required ImmutableArray<TaskView> Tasks { get; init; }

    /// <summary>
    /// On a page of <c>GET /drover/v1/tasks?limit=N</c> that has more after it: the <c>after</c> value that asks for the
    /// next page. Absent on the last page and on the whole list.
    /// </summary>
    public string? Next { get; init; }
}

public sealed record AgentView
{
    public required string Id { get; init; }

    public required string Hostname { get; init; }

    public required string Address { get; init; }

    /// <summary>
    /// <c>active</c>, <c>draining</c> (drain in progress: no new work), <c>drained</c> (draining and no
    /// task left), <c>unreachable</c> (whether draining or not: see <see cref="DrainDeadline"/>) or <c>removed</c>.
    /// </summary>
    public required string Status { get; init; }

    /// <summary>When the agent's drain started; null when it is not being drained.</summary>
    public DateTimeOffset? DrainStartedAt { get; init; }

    /// <summary>When whatever still runs on the draining agent is killed; null when it is not being drained.</summary>
    public DateTimeOffset? DrainDeadline { get; init; }

    public required ResourcesView Total { get; init; }

    public required ResourcesView Used { get; init; }

    public required ResourcesView Free { get; init; }

    public ImmutableSortedDictionary<string, string> Attributes { get; init => field = value ?? ImmutableSortedDictionary<string, string>.Empty; } = ImmutableSortedDictionary<string, string>.Empty;

    public string? Region { get; init; }

    public string? Zone { get; init; }

    public int ActiveTasks { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }

    public required DateTimeOffset LastHeartbeatAt { get; init; }

    /// <summary>
    /// Tasks the agent runs that the master has no record of (e.g. after a lost store): kept running until
    /// <see cref="UnknownTaskView.KillAt"/> (<c>--unknown-task-grace</c>), then killed. Empty normally.
    /// </summary>
    public ImmutableArray<UnknownTaskView> UnknownTasks { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>A task an agent reports that the master has no record of.</summary>
public sealed record UnknownTaskView
{
    public required string Id { get; init; }

    /// <summary>When the master first saw the agent report it.</summary>
    public required DateTimeOffset FirstSeenAt { get; init; }

    /// <summary>When the master kills it unless it becomes known (adopted) before.</summary>
    public required DateTimeOffset KillAt { get; init; }

    /// <summary>Whether the kill has been sent (the grace is over).</summary>
    public bool KillSent { get; init; }
}

/// <summary>
/// Body of <c>POST /drover/v1/agents/{id}/drain</c> (optional). The deadline counts from when the
/// drain started, so repeating a drain changes nothing and a new value moves the deadline.
/// </summary>
public sealed record DrainRequest
{
    /// <summary>Default deadline, as Nomad's: one hour.</summary>
    public const double DefaultDeadlineSeconds = 3600;

    /// <summary>Longest deadline accepted: one year.</summary>
    public const double MaxDeadlineSeconds = 365 * 24 * 3600;

    /// <summary>Seconds from the start of the drain until everything left on the agent is killed; 0 kills at once.</summary>
    public double? DeadlineSeconds { get; init; }
}

public sealed record AgentList
{
    public required ImmutableArray<AgentView> Agents { get; init; }
}

public sealed record ResourcesView
{
    public required decimal Cpus { get; init; }

    public required long Mem { get; init; }

    public required long Disk { get; init; }

    public int Gpus { get; init; }

    public string Ports { get; init => field = value ?? "[]"; } = "[]";

    public static ResourcesView From(Resources r) => new()
    {
        Cpus = r.Cpus,
        Mem = r.MemMiB,
        Disk = r.DiskMiB,
        Gpus = r.Gpus,
        Ports = r.Ports.ToString(),
    };
}

/// <summary>
/// The one error shape of /drover/v1: a stable machine-readable <see cref="Code"/>, a sentence, and
/// for validation failures every offending field with its reason.
/// </summary>
public sealed record ApiError
{
    public required string Code { get; init; }

    public required string Message { get; init; }

    public ImmutableArray<FieldError> Details { get; init => field = value.IsDefault ? [] : value; } = [];
}

public sealed record FieldError(string Field, string Reason);

/// <summary>Stable error codes of <see cref="ApiError"/>.</summary>
public static class ErrorCodes
{
    public const string InvalidJson = "invalid_json";
    public const string ValidationFailed = "validation_failed";
    public const string NotFound = "not_found";
    public const string Conflict = "conflict";
    public const string AgentUnreachable = "agent_unreachable";
    public const string Internal = "internal_error";
    public const string NoLeader = "no_leader";

    /// <summary>The call needs credentials it did not present (or presented invalid ones).</summary>
    public const string Unauthorized = "unauthorized";

    /// <summary>The caller is known but may not do this (e.g. an agent speaking for another agent).</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The master could not make the change durable (its store is unreachable, or it is no longer the leader); it may or may not have been applied.</summary>
    public const string StoreUnavailable = "store_unavailable";
}
