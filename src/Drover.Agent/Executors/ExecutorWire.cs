using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Agent.Executors;

// The JSON shapes of Mesos' v1 executor API (include/mesos/v1/executor/executor.proto and the
// messages it uses from mesos.proto), as the protobuf JSON mapping writes them: snake_case field
// names, enums as their names, bytes as base64, ids as {"value": "..."}. Only the fields Drover reads
// or writes are declared; unknown fields in calls are ignored, as protobuf parsers do.

/// <summary>Mesos' TaskID, FrameworkID, ExecutorID, AgentID, ContainerID: <c>{"value": "..."}</c>.</summary>
public sealed record MesosId
{
    public string? Value { get; init; }

    public static MesosId Of(string value) => new() { Value = value };
}

/// <summary><c>executor.proto</c> Call.</summary>
public sealed record ExecutorCall
{
    public string? Type { get; init; }

    public MesosId? ExecutorId { get; init; }

    public MesosId? FrameworkId { get; init; }

    public ExecutorSubscribe? Subscribe { get; init; }

    public ExecutorUpdate? Update { get; init; }

    public ExecutorMessage? Message { get; init; }
}

public sealed record ExecutorSubscribe
{
    public ImmutableArray<MesosTaskInfo>? UnacknowledgedTasks { get; init; }

    public ImmutableArray<ExecutorUpdate>? UnacknowledgedUpdates { get; init; }
}

public sealed record ExecutorUpdate
{
    public MesosTaskStatus? Status { get; init; }
}

public sealed record ExecutorMessage
{
    /// <summary>Base64.</summary>
    public string? Data { get; init; }
}

/// <summary><c>mesos.proto</c> TaskStatus (the fields executors send).</summary>
public sealed record MesosTaskStatus
{
    public MesosId? TaskId { get; init; }

    public string? State { get; init; }

    public string? Message { get; init; }

    public string? Source { get; init; }

    public string? Reason { get; init; }

    /// <summary>Base64.</summary>
    public string? Data { get; init; }

    public MesosId? AgentId { get; init; }

    public MesosId? ExecutorId { get; init; }

    public double? Timestamp { get; init; }

    /// <summary>Base64 of the 16 bytes of a UUID.</summary>
    public string? Uuid { get; init; }

    public bool? Healthy { get; init; }
}

/// <summary><c>mesos.proto</c> TaskInfo.</summary>
public sealed record MesosTaskInfo
{
    public string? Name { get; init; }

    public MesosId? TaskId { get; init; }

    public MesosId? AgentId { get; init; }

    public ImmutableArray<MesosResource>? Resources { get; init; }

    public MesosExecutorInfo? Executor { get; init; }

    public MesosCommandInfo? Command { get; init; }

    /// <summary>Base64.</summary>
    public string? Data { get; init; }

    public MesosKillPolicy? KillPolicy { get; init; }
}

public sealed record MesosExecutorInfo
{
    public string Type { get; init; } = "CUSTOM";

    public MesosId? ExecutorId { get; init; }

    public MesosId? FrameworkId { get; init; }

    public MesosCommandInfo? Command { get; init; }

    public ImmutableArray<MesosResource>? Resources { get; init; }

    public string? Name { get; init; }

    /// <summary>Base64.</summary>
    public string? Data { get; init; }

    public MesosDuration? ShutdownGracePeriod { get; init; }
}

public sealed record MesosCommandInfo
{
    public bool Shell { get; init; }

    public string? Value { get; init; }

    public ImmutableArray<string>? Arguments { get; init; }

    public MesosEnvironment? Environment { get; init; }
}

public sealed record MesosEnvironment
{
    public ImmutableArray<MesosVariable> Variables { get; init; } = [];
}

public sealed record MesosVariable
{
    public required string Name { get; init; }

    public required string Value { get; init; }
}

public sealed record MesosResource
{
    public required string Name { get; init; }

    public required string Type { get; init; }

    public MesosScalar? Scalar { get; init; }

    public MesosRanges? Ranges { get; init; }
}

public sealed record MesosScalar
{
    public double Value { get; init; }
}

public sealed record MesosRanges
{
    public ImmutableArray<MesosRange> Range { get; init; } = [];
}

public sealed record MesosRange
{
    public long Begin { get; init; }

    public long End { get; init; }
}

public sealed record MesosKillPolicy
{
    public MesosDuration? GracePeriod { get; init; }
}

public sealed record MesosDuration
{
    public long Nanoseconds { get; init; }

    public static MesosDuration Of(TimeSpan span) => new() { Nanoseconds = span.Ticks * 100 };
}

/// <summary><c>executor.proto</c> Event.</summary>
public sealed record ExecutorEvent
{
    public required string Type { get; init; }

    public ExecutorSubscribed? Subscribed { get; init; }

    public ExecutorLaunch? Launch { get; init; }

    public ExecutorLaunchGroup? LaunchGroup { get; init; }

    public ExecutorKill? Kill { get; init; }

    public ExecutorAcknowledged? Acknowledged { get; init; }

    public ExecutorMessage? Message { get; init; }

    public ExecutorError? Error { get; init; }
}

public sealed record ExecutorSubscribed
{
    public required MesosExecutorInfo ExecutorInfo { get; init; }

    public required MesosFrameworkInfo FrameworkInfo { get; init; }

    public required MesosAgentInfo AgentInfo { get; init; }

    public MesosId? ContainerId { get; init; }
}

/// <summary>What the agent knows of the framework: its id (Drover's command protocol carries no name or user).</summary>
public sealed record MesosFrameworkInfo
{
    public MesosId? Id { get; init; }

    public string User { get; init; } = "";

    public string Name { get; init; } = "";
}

public sealed record MesosAgentInfo
{
    public required string Hostname { get; init; }

    public int? Port { get; init; }

    public MesosId? Id { get; init; }
}

public sealed record ExecutorLaunch
{
    public required MesosTaskInfo Task { get; init; }
}

public sealed record ExecutorLaunchGroup
{
    public required MesosTaskGroup TaskGroup { get; init; }
}

public sealed record MesosTaskGroup
{
    public ImmutableArray<MesosTaskInfo> Tasks { get; init; } = [];
}

public sealed record ExecutorKill
{
    public required MesosId TaskId { get; init; }

    public MesosKillPolicy? KillPolicy { get; init; }
}

public sealed record ExecutorAcknowledged
{
    public required MesosId TaskId { get; init; }

    /// <summary>The update's uuid as the executor sent it (base64).</summary>
    public required string Uuid { get; init; }
}

public sealed record ExecutorError
{
    public required string Message { get; init; }
}

/// <summary>Source-generated JSON for the executor API: protobuf's JSON mapping (snake_case, no nulls).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    PropertyNameCaseInsensitive = false,
    NumberHandling = JsonNumberHandling.AllowReadingFromString)]
[JsonSerializable(typeof(ExecutorCall))]
[JsonSerializable(typeof(ExecutorEvent))]
[JsonSerializable(typeof(MesosTaskInfo))]
public sealed partial class ExecutorJsonContext : JsonSerializerContext
{
    /// <summary>One event in RecordIO framing: the decimal byte length of the JSON, a newline, the JSON.</summary>
    public static byte[] RecordIo(ExecutorEvent e)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(e, Default.ExecutorEvent);
        var prefix = System.Text.Encoding.ASCII.GetBytes(json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
        return [.. prefix, .. json];
    }
}
