using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Drover.Core.Health;

namespace Drover.Core;

/// <summary>
/// What a task should be (desired spec). Observed state lives in <see cref="TaskStatus"/> and the
/// master's task record; the spec never changes after submission.
/// </summary>
public sealed record TaskSpec
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    /// <summary>Shell form: run with <c>/bin/sh -c</c>. Exactly one of <see cref="Shell"/> and <see cref="Args"/> is set.</summary>
    public string? Shell { get; init; }

    /// <summary>Exec form: argv, no shell.</summary>
    public ImmutableArray<string> Args { get; init => field = value.IsDefault ? [] : value; } = [];

    public ImmutableSortedDictionary<string, string> Env { get; init => field = value ?? ImmutableSortedDictionary<string, string>.Empty; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Scalar resources requested (ports empty; see <see cref="PortCount"/>).</summary>
    public required Resources Resources { get; init; }

    /// <summary>How many host ports to assign from the agent's range (exposed as PORT0…PORTn).</summary>
    public int PortCount { get; init; }

    public ImmutableArray<Constraint> Constraints { get; init => field = value.IsDefault ? [] : value; } = [];

    public static readonly TimeSpan DefaultKillGracePeriod = TimeSpan.FromSeconds(3);

    /// <summary>Between SIGTERM and SIGKILL when the task is killed.</summary>
    [JsonIgnore]
    public TimeSpan KillGracePeriod { get; init; } = DefaultKillGracePeriod;

    /// <summary>
    /// The wire form of <see cref="KillGracePeriod"/>, in seconds. Nullable so that a message without
    /// the field means "the default", not "kill at once" (the serializer would otherwise pass 0).
    /// </summary>
    [JsonInclude]
    [JsonPropertyName("killGracePeriod")]
    internal double? KillGracePeriodSeconds
    {
        get => KillGracePeriod.TotalSeconds;
        init => KillGracePeriod = value is { } s && s >= 0 ? TimeSpan.FromSeconds(s) : DefaultKillGracePeriod;
    }

    /// <summary>Placement group for UNIQUE/MAX_PER/GROUP_BY accounting (the app id for services; the task id for one-off tasks).</summary>
    public string? Group { get; init; }

    /// <summary>Maximum number of processes/threads in the task's cgroup.</summary>
    public int PidsLimit { get; init => field = value > 0 ? value : DefaultPidsLimit; } = DefaultPidsLimit;

    public const int DefaultPidsLimit = 4096;

    /// <summary>
    /// Run by the agent while the task runs, each on its own schedule: the task is healthy when all of them
    /// pass and is killed when any fails its <see cref="HealthCheck.MaxConsecutiveFailures"/>. Empty = none.
    /// </summary>
    [JsonIgnore]
    public ImmutableArray<HealthCheck> HealthChecks { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>
    /// Run by the agent from the task's start until each has succeeded once; then the agent reports the task
    /// ready (<see cref="TaskStatus.Ready"/>). Empty = none (the task never reports readiness).
    /// </summary>
    [JsonIgnore]
    public ImmutableArray<TaskReadinessCheck> ReadinessChecks { get; init => field = value.IsDefault ? [] : value; } = [];

    // Wire forms. Nullable, so an absent field leaves the list alone (the source generator would otherwise
    // pass default values), and empty lists are not written.
    [JsonInclude]
    [JsonPropertyName("healthChecks")]
    internal ImmutableArray<HealthCheck>? HealthChecksWire
    {
        get => HealthChecks.IsEmpty ? null : HealthChecks;
        init
        {
            if (value is { IsDefault: false } checks)
            {
                HealthChecks = checks;
            }
        }
    }

    /// <summary>The single <c>healthCheck</c> of earlier versions, read for compatibility (never written); <c>healthChecks</c> wins.</summary>
    [JsonInclude]
    [JsonPropertyName("healthCheck")]
    internal HealthCheck? LegacyHealthCheck
    {
        get => null;
        init
        {
            if (value is not null && HealthChecks.IsEmpty)
            {
                HealthChecks = [value];
            }
        }
    }

    [JsonInclude]
    [JsonPropertyName("readinessChecks")]
    internal ImmutableArray<TaskReadinessCheck>? ReadinessChecksWire
    {
        get => ReadinessChecks.IsEmpty ? null : ReadinessChecks;
        init
        {
            if (value is { IsDefault: false } checks)
            {
                ReadinessChecks = checks;
            }
        }
    }

    /// <summary>
    /// Secrets the task receives, as environment variables or files in its sandbox: references only (a stored
    /// secret's path, or an index under which the master keeps a Mesos VALUE secret encrypted), never values. The
    /// master resolves them into the launch command it sends to the task's agent (<see cref="Protocol.AgentCommand.Secrets"/>).
    /// </summary>
    [JsonIgnore]
    public ImmutableArray<TaskSecret> Secrets { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Wire form of <see cref="Secrets"/>: absent when empty, so tasks without secrets serialize as before.</summary>
    [JsonInclude]
    [JsonPropertyName("secrets")]
    internal ImmutableArray<TaskSecret>? SecretsWire
    {
        get => Secrets.IsEmpty ? null : Secrets;
        init
        {
            if (value is { IsDefault: false } secrets)
            {
                Secrets = secrets;
            }
        }
    }

    /// <summary>The Unix user the task runs as (Marathon's <c>user</c>); null runs it as the agent's user.</summary>
    public string? User { get; init; }

    /// <summary>The service (Marathon app id) this task is an instance of; null for one-off tasks.</summary>
    public string? AppId { get; init; }

    /// <summary>The app version this instance runs.</summary>
    public string? AppVersion { get; init; }

    /// <summary>Names of the assigned ports, in PORT0… order (empty entries for unnamed ones); exported as <c>PORT_&lt;NAME&gt;</c>.</summary>
    public ImmutableArray<string> PortNames { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>The Mesos framework that launched this task (null for built-in services and one-off tasks).</summary>
    public string? FrameworkId { get; init; }

    /// <summary>
    /// The custom executor that runs this task (Mesos' <c>TaskInfo.executor</c>). Null: the agent runs
    /// <see cref="Shell"/>/<see cref="Args"/> itself, as Mesos' command executor does.
    /// </summary>
    public ExecutorSpec? Executor { get; init; }

    /// <summary>Opaque bytes for the executor (Mesos' <c>TaskInfo.data</c>), base64.</summary>
    public string? Data { get; init; }

    /// <summary>
    /// Set on the tasks of one Mesos task group (a LAUNCH_GROUP), the same on each: the Drover id of the group's
    /// first task. Such tasks reach their agent together in one <see cref="Protocol.AgentCommandType.LaunchGroup"/>
    /// command. Null for tasks launched on their own.
    /// </summary>
    public string? TaskGroupId { get; init; }

    /// <summary>
    /// Who submitted a one-off task through <c>/drover/v1/tasks</c>: the uid of the user or service account, or
    /// <c>anonymous</c> on a dev cluster without logins. Set by the master from the authenticated caller, never from
    /// the request. Only the owner, or a holder of <c>drover:admin:tasks</c>, may see, read or kill the task. Null
    /// for apps' instances and frameworks' tasks (their app or framework decides), and for one-off tasks submitted
    /// before owners were recorded (then only holders of <c>drover:admin:tasks</c> may).
    /// </summary>
    public string? Owner { get; init; }
}

/// <summary>Where a task receives a secret.</summary>
public enum SecretTarget
{
    /// <summary>An environment variable of the task's process (<see cref="TaskSecret.Name"/> is its name).</summary>
    Env,

    /// <summary>A read-only file in the task's sandbox (<see cref="TaskSecret.Name"/> is its path relative to the sandbox).</summary>
    File,
}

/// <summary>
/// One secret a task receives: where (<see cref="Target"/>, <see cref="Name"/>) and which (<see cref="Path"/>).
/// A reference, never a value: specs are stored, shown by the APIs and checkpointed by agents.
/// </summary>
public sealed record TaskSecret
{
    public required SecretTarget Target { get; init; }

    /// <summary>The environment variable's name, or the file's path relative to the sandbox.</summary>
    public required string Name { get; init; }

    /// <summary>
    /// The stored secret's canonical path (<c>team-a/db</c>). Null for a Mesos VALUE secret: the master keeps that
    /// value encrypted under the task (by the secret's index in <see cref="TaskSpec.Secrets"/>) until the task ends.
    /// </summary>
    public string? Path { get; init; }
}

/// <summary>
/// A custom executor (Mesos' ExecutorInfo with a command): a process the agent starts once per
/// (framework, executor id) on an agent, which then runs that framework's tasks itself and speaks
/// <c>/api/v1/executor</c> to the agent.
/// </summary>
public sealed record ExecutorSpec
{
    public required string ExecutorId { get; init; }

    public required string FrameworkId { get; init; }

    public string? Name { get; init; }

    /// <summary>Shell form of the executor's command; exactly one of <see cref="Shell"/> and <see cref="Args"/> is set.</summary>
    public string? Shell { get; init; }

    public ImmutableArray<string> Args { get; init => field = value.IsDefault ? [] : value; } = [];

    public ImmutableSortedDictionary<string, string> Env { get; init => field = value ?? ImmutableSortedDictionary<string, string>.Empty; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>The executor's own resources (on top of its tasks').</summary>
    public Resources Resources { get; init; } = Resources.Zero;

    /// <summary>Opaque bytes for the executor (Mesos' <c>ExecutorInfo.data</c>), base64.</summary>
    public string? Data { get; init; }
}

/// <summary>One observed status of a task, as Mesos' TaskStatus.</summary>
public sealed record TaskStatus
{
    public required string TaskId { get; init; }

    public required TaskState State { get; init; }

    public string? Message { get; init; }

    public string? Reason { get; init; }

    public string Source { get; init => field = value ?? TaskSources.Agent; } = TaskSources.Agent;

    public string? AgentId { get; init; }

    /// <summary>Seconds since the Unix epoch, as Mesos sends it.</summary>
    public double Timestamp { get; init; }

    /// <summary>The process exit code, when the task's process exited.</summary>
    public int? ExitCode { get; init; }

    /// <summary>
    /// The task's health by its health check, as Mesos' <c>healthy</c>: set on the TASK_RUNNING updates the
    /// agent sends when health changes (reason <see cref="TaskReasons.TaskHealthCheckStatusUpdated"/>) and
    /// false on the TASK_KILLED of a task killed for failing it. Null when unknown or not checked.
    /// </summary>
    public bool? Healthy { get; init; }

    /// <summary>
    /// With <see cref="Healthy"/> on health updates: the state of each of the task's health checks, in
    /// <see cref="TaskSpec.HealthChecks"/> order. Null when not a health update.
    /// </summary>
    public ImmutableArray<HealthCheckResult>? HealthResults { get; init; }

    /// <summary>
    /// True on the one TASK_RUNNING update the agent sends when all the task's readiness checks have succeeded
    /// (reason <see cref="TaskReadinessCheck.ReadyReason"/>). Null otherwise.
    /// </summary>
    public bool? Ready { get; init; }

    /// <summary>Set by the agent; the master acknowledges updates by this id.</summary>
    public string? Uuid { get; init; }

    /// <summary>The custom executor that sent this update, if any.</summary>
    public string? ExecutorId { get; init; }

    /// <summary>Opaque bytes from the executor (Mesos' <c>TaskStatus.data</c>), base64.</summary>
    public string? Data { get; init; }
}
