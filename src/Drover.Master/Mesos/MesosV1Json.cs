using System.Text.Json.Serialization;
using Drover.Core.Mesos;

namespace Drover.Master.Mesos;

/// <summary>What the master keeps of a framework in its store (key <c>/drover/frameworks/{id}</c>).</summary>
internal sealed record PersistedFramework
{
    public required MFrameworkInfo Info { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }

    /// <summary>When its scheduler's stream dropped; null while connected. The failover timeout counts from here.</summary>
    public DateTimeOffset? DisconnectedAt { get; init; }

    /// <summary>Status updates sent but not yet acknowledged, oldest first; re-sent on re-subscription.</summary>
    public IReadOnlyList<MTaskStatus>? Unacknowledged { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString)]
[JsonSerializable(typeof(MCall))]
[JsonSerializable(typeof(MEvent))]
[JsonSerializable(typeof(PersistedFramework))]
[JsonSerializable(typeof(Operator.OCall))]
[JsonSerializable(typeof(Operator.OResponse))]
[JsonSerializable(typeof(Operator.OEvent))]
internal sealed partial class MesosV1JsonContext : JsonSerializerContext;
