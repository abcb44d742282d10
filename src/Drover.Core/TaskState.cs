using System.Text.Json.Serialization;

namespace Drover.Core;

/// <summary>Task states with the names Mesos uses on the wire.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TaskState>))]
public enum TaskState
{
    /// <summary>Accepted by the master, waiting for resources (Marathon shows these in the queue).</summary>
    [JsonStringEnumMemberName("TASK_PENDING")] Pending,
    [JsonStringEnumMemberName("TASK_STAGING")] Staging,
    [JsonStringEnumMemberName("TASK_STARTING")] Starting,
    [JsonStringEnumMemberName("TASK_RUNNING")] Running,
    [JsonStringEnumMemberName("TASK_KILLING")] Killing,
    [JsonStringEnumMemberName("TASK_FINISHED")] Finished,
    [JsonStringEnumMemberName("TASK_FAILED")] Failed,
    [JsonStringEnumMemberName("TASK_KILLED")] Killed,
    [JsonStringEnumMemberName("TASK_ERROR")] Error,
    [JsonStringEnumMemberName("TASK_LOST")] Lost,
    [JsonStringEnumMemberName("TASK_DROPPED")] Dropped,
    [JsonStringEnumMemberName("TASK_UNREACHABLE")] Unreachable,
    [JsonStringEnumMemberName("TASK_GONE")] Gone,
    [JsonStringEnumMemberName("TASK_GONE_BY_OPERATOR")] GoneByOperator,
    [JsonStringEnumMemberName("TASK_UNKNOWN")] Unknown,
}

public static class TaskStates
{
    /// <summary>Terminal states never change again (TASK_UNREACHABLE is not terminal: the agent may return).</summary>
    public static bool IsTerminal(this TaskState state) => state is TaskState.Finished or TaskState.Failed
        or TaskState.Killed or TaskState.Error or TaskState.Lost or TaskState.Dropped or TaskState.Gone
        or TaskState.GoneByOperator;

    /// <summary>States in which the task holds resources on an agent.</summary>
    public static bool HoldsResources(this TaskState state) => state is TaskState.Staging or TaskState.Starting
        or TaskState.Running or TaskState.Killing or TaskState.Unreachable;

    private static readonly Dictionary<TaskState, string> Names = Enum.GetValues<TaskState>()
        .ToDictionary(s => s, s => typeof(TaskState).GetField(s.ToString())!
            .GetCustomAttributes(typeof(JsonStringEnumMemberNameAttribute), false)
            .Cast<JsonStringEnumMemberNameAttribute>().Single().Name);

    private static readonly Dictionary<string, TaskState> ByName = Names.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.OrdinalIgnoreCase);

    /// <summary>The wire name, e.g. <c>TASK_RUNNING</c>.</summary>
    public static string WireName(this TaskState state) => Names[state];

    /// <summary>Parses <c>TASK_RUNNING</c> or <c>running</c>.</summary>
    public static bool TryParse(string text, out TaskState state) =>
        ByName.TryGetValue(text, out state) || ByName.TryGetValue("TASK_" + text, out state);
}

/// <summary>Mesos TaskStatus.Reason values Drover emits.</summary>
public static class TaskReasons
{
    public const string CommandExecutorFailed = "REASON_COMMAND_EXECUTOR_FAILED";
    public const string ContainerLimitationMemory = "REASON_CONTAINER_LIMITATION_MEMORY";

    /// <summary>The task's sandbox grew past its <c>disk</c> resource (the agent measures it, as Mesos' <c>disk/du</c>).</summary>
    public const string ContainerLimitationDisk = "REASON_CONTAINER_LIMITATION_DISK";
    public const string ContainerLaunchFailed = "REASON_CONTAINER_LAUNCH_FAILED";
    public const string TaskKilledDuringLaunch = "REASON_TASK_KILLED_DURING_LAUNCH";
    public const string ExecutorTerminated = "REASON_EXECUTOR_TERMINATED";
    public const string AgentDisconnected = "REASON_AGENT_DISCONNECTED";
    public const string AgentRemoved = "REASON_AGENT_REMOVED";
    public const string AgentRestarted = "REASON_AGENT_RESTARTED";

    /// <summary>Killed because its agent is being drained (Mesos' REASON_SLAVE_DRAINING, in v1 naming).</summary>
    public const string AgentDraining = "REASON_AGENT_DRAINING";
    public const string Reconciliation = "REASON_RECONCILIATION";
    public const string TaskInvalid = "REASON_TASK_INVALID";
    public const string TaskHealthCheckStatusUpdated = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";

    /// <summary>A Mesos framework launched the task with offers that were unknown, expired or not its own.</summary>
    public const string InvalidOffers = "REASON_INVALID_OFFERS";

    /// <summary>A task of a LAUNCH_GROUP that failed validation (every task of the group gets it).</summary>
    public const string TaskGroupInvalid = "REASON_TASK_GROUP_INVALID";

    /// <summary>A Mesos framework's principal may not launch the task (its run-as user is not granted).</summary>
    public const string TaskUnauthorized = "REASON_TASK_UNAUTHORIZED";

    /// <summary>A task of a LAUNCH_GROUP the framework's principal may not launch (every task of the group gets it).</summary>
    public const string TaskGroupUnauthorized = "REASON_TASK_GROUP_UNAUTHORIZED";

    /// <summary>Killed because its Mesos framework was torn down or did not come back within its failover timeout.</summary>
    public const string FrameworkRemoved = "REASON_FRAMEWORK_REMOVED";
}

/// <summary>Mesos TaskStatus.Source values.</summary>
public static class TaskSources
{
    public const string Master = "SOURCE_MASTER";
    public const string Agent = "SOURCE_AGENT";
    public const string Executor = "SOURCE_EXECUTOR";
}
