using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using Drover.Core.Mesos;

namespace Drover.Agent.Executors;

// The JSON shapes of Mesos' v1 executor API (include/mesos/v1/executor/executor.proto), as the protobuf
// JSON mapping writes them: snake_case field names, enums as their names, bytes as base64, ids as
// {"value": "..."}. Only the executor-specific Call/Event messages live here; the mesos.proto messages
// they carry (TaskInfo, TaskStatus, ExecutorInfo, ...) are the master's records in Drover.Core.Mesos,
// so both sides speak one definition. Only the fields Drover reads or writes are declared; unknown
// fields in calls are ignored, as protobuf parsers do.

/// <summary><c>executor.proto</c> Call.</summary>
public sealed record ExecutorCall
{
    public string? Type { get; init; }

    public MId? ExecutorId { get; init; }

    public MId? FrameworkId { get; init; }

    public ExecutorSubscribe? Subscribe { get; init; }

    public ExecutorUpdate? Update { get; init; }

    public ExecutorMessage? Message { get; init; }
}

public sealed record ExecutorSubscribe
{
    public ImmutableArray<MTaskInfo>? UnacknowledgedTasks { get; init; }

    public ImmutableArray<ExecutorUpdate>? UnacknowledgedUpdates { get; init; }
}

public sealed record ExecutorUpdate
{
    public MTaskStatus? Status { get; init; }
}

public sealed record ExecutorMessage
{
    /// <summary>Base64.</summary>
    public string? Data { get; init; }
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
    public required MExecutorInfo ExecutorInfo { get; init; }

    public required MFrameworkInfo FrameworkInfo { get; init; }

    public required MAgentInfo AgentInfo { get; init; }

    public MId? ContainerId { get; init; }
}

public sealed record ExecutorLaunch
{
    public required MTaskInfo Task { get; init; }
}

public sealed record ExecutorLaunchGroup
{
    public required MTaskGroupInfo TaskGroup { get; init; }
}

public sealed record ExecutorKill
{
    public required MId TaskId { get; init; }

    public MKillPolicy? KillPolicy { get; init; }
}

public sealed record ExecutorAcknowledged
{
    public required MId TaskId { get; init; }

    /// <summary>The update's uuid as the executor sent it (base64).</summary>
    public required string Uuid { get; init; }
}

public sealed record ExecutorError
{
    public required string Message { get; init; }
}

/// <summary>
/// Source-generated JSON for the executor API: protobuf's JSON mapping (snake_case, no nulls) — the same
/// options as the master's Mesos contexts, so the shared Drover.Core.Mesos records read and write alike on both sides.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    PropertyNameCaseInsensitive = false,
    NumberHandling = JsonNumberHandling.AllowReadingFromString)]
[JsonSerializable(typeof(ExecutorCall))]
[JsonSerializable(typeof(ExecutorEvent))]
[JsonSerializable(typeof(MTaskInfo))]
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
