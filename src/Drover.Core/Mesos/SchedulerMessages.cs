using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Core.Mesos;

// The subset of Mesos' v1 protobuf messages (include/mesos/v1/mesos.proto, scheduler/scheduler.proto,
// master/master.proto, executor/executor.proto) Drover reads and writes, in Mesos' JSON mapping: proto field names (snake_case),
// enums as their names, bytes as base64, unknown fields ignored. Field semantics follow the protos; only
// what Drover acts on is modelled, so a call with fields Drover does not know still parses.

/// <summary>FrameworkID, AgentID, OfferID, TaskID, ExecutorID: <c>{"value": "..."}</c>.</summary>
public sealed record MId(string Value)
{
    public static MId? Of(string? value) => value is null ? null : new MId(value);
}

public sealed record MScalar(double Value);

public sealed record MRange(long Begin, long End);

public sealed record MRanges(IReadOnlyList<MRange>? Range);

public sealed record MAllocationInfo(string? Role);

public sealed record MResource
{
    public required string Name { get; init; }

    /// <summary>SCALAR, RANGES or SET.</summary>
    public string? Type { get; init; }

    public MScalar? Scalar { get; init; }

    public MRanges? Ranges { get; init; }

    /// <summary>Pre-MULTI_ROLE reservation role; Drover has no reservations, so only "*" (or absent) is accepted.</summary>
    public string? Role { get; init; }

    public MAllocationInfo? AllocationInfo { get; init; }

    /// <summary>Reservations, disk info, shared...: present means a feature Drover refuses.</summary>
    public JsonElement? Reservations { get; init; }

    public JsonElement? Disk { get; init; }
}

public sealed record MCapability(string? Type);

public sealed record MLabel(string Key, string? Value);

public sealed record MLabels(IReadOnlyList<MLabel>? Labels);

public sealed record MFrameworkInfo
{
    public string? User { get; init; }

    public string? Name { get; init; }

    public MId? Id { get; init; }

    /// <summary>Seconds; Mesos' default is 0 (tasks are killed as soon as the scheduler disconnects).</summary>
    public double? FailoverTimeout { get; init; }

    public bool? Checkpoint { get; init; }

    /// <summary>Legacy single role (deprecated in Mesos; used when <see cref="Roles"/> is absent).</summary>
    public string? Role { get; init; }

    public IReadOnlyList<string>? Roles { get; init; }

    public string? Hostname { get; init; }

    public string? Principal { get; init; }

    public string? WebuiUrl { get; init; }

    public IReadOnlyList<MCapability>? Capabilities { get; init; }

    public MLabels? Labels { get; init; }
}

/// <summary>Mesos' <c>Environment.Variable</c>: <c>type</c> VALUE (default) with <c>value</c>, or SECRET with <c>secret</c>.</summary>
public sealed record MEnvVariable(string Name, string? Value, string? Type, MSecret? Secret = null);

/// <summary>
/// Mesos' <c>Secret</c>: <c>type</c> REFERENCE with <c>reference</c> (a secret in the store, by name) or VALUE with
/// <c>value</c> (the bytes themselves, base64 in JSON).
/// </summary>
public sealed record MSecret(string? Type, MSecretReference? Reference = null, MSecretValue? Value = null);

/// <summary>A stored secret by <c>name</c> (Drover: its path); <c>key</c> picks a field of a key-value secret (Drover's secrets have none).</summary>
public sealed record MSecretReference(string? Name, string? Key = null);

/// <summary>The secret's bytes, base64 in JSON.</summary>
public sealed record MSecretValue(string? Data);

/// <summary>Mesos' <c>Volume</c>: Drover supports only <c>source.type</c> SECRET (a file in the sandbox).</summary>
public sealed record MVolume
{
    /// <summary>RW or RO; a secret volume is read-only whatever is asked.</summary>
    public string? Mode { get; init; }

    public string? ContainerPath { get; init; }

    /// <summary>Host-path volumes: not supported, refused.</summary>
    public string? HostPath { get; init; }

    /// <summary>Image volumes: not supported, refused.</summary>
    public JsonElement? Image { get; init; }

    public MVolumeSource? Source { get; init; }
}

public sealed record MVolumeSource
{
    /// <summary>SECRET is supported; DOCKER_VOLUME, HOST_PATH, SANDBOX_PATH, CSI_VOLUME are refused.</summary>
    public string? Type { get; init; }

    public MSecret? Secret { get; init; }
}

public sealed record MEnvironment(IReadOnlyList<MEnvVariable>? Variables);

public sealed record MCommandInfo
{
    public string? Value { get; init; }

    /// <summary>Default true: run <see cref="Value"/> with <c>/bin/sh -c</c>; false: exec <see cref="Value"/> with <see cref="Arguments"/>.</summary>
    public bool? Shell { get; init; }

    public IReadOnlyList<string>? Arguments { get; init; }

    public MEnvironment? Environment { get; init; }

    public string? User { get; init; }

    /// <summary>URIs to fetch into the sandbox: not supported (Drover has no fetcher), refused.</summary>
    public JsonElement? Uris { get; init; }
}

public sealed record MContainerInfo(string? Type, JsonElement? Docker, JsonElement? Mesos, IReadOnlyList<MVolume>? Volumes = null);

public sealed record MExecutorInfo
{
    /// <summary>DEFAULT or CUSTOM (absent: CUSTOM, as Mesos infers from a command).</summary>
    public string? Type { get; init; }

    public MId? ExecutorId { get; init; }

    public MId? FrameworkId { get; init; }

    public MCommandInfo? Command { get; init; }

    public MContainerInfo? Container { get; init; }

    public IReadOnlyList<MResource>? Resources { get; init; }

    public string? Name { get; init; }

    /// <summary>base64.</summary>
    public string? Data { get; init; }

    /// <summary>How long the agent waits after SHUTDOWN before killing the executor (mesos.proto ExecutorInfo.shutdown_grace_period).</summary>
    public MDurationInfo? ShutdownGracePeriod { get; init; }
}

public sealed record MDurationInfo(long Nanoseconds)
{
    public static MDurationInfo Of(TimeSpan span) => new(span.Ticks * 100);
}

public sealed record MTimeInfo(long Nanoseconds);

public sealed record MKillPolicy(MDurationInfo? GracePeriod);

public sealed record MTaskInfo
{
    public string? Name { get; init; }

    public MId? TaskId { get; init; }

    public MId? AgentId { get; init; }

    public IReadOnlyList<MResource>? Resources { get; init; }

    public MExecutorInfo? Executor { get; init; }

    public MCommandInfo? Command { get; init; }

    public MContainerInfo? Container { get; init; }

    public JsonElement? HealthCheck { get; init; }

    public JsonElement? Check { get; init; }

    public MKillPolicy? KillPolicy { get; init; }

    /// <summary>base64.</summary>
    public string? Data { get; init; }

    public MLabels? Labels { get; init; }
}

public sealed record MTaskGroupInfo(IReadOnlyList<MTaskInfo>? Tasks);

public sealed record MLaunch(IReadOnlyList<MTaskInfo>? TaskInfos);

public sealed record MLaunchGroup(MExecutorInfo? Executor, MTaskGroupInfo? TaskGroup);

public sealed record MOperation
{
    public string? Type { get; init; }

    public MId? Id { get; init; }

    public MLaunch? Launch { get; init; }

    public MLaunchGroup? LaunchGroup { get; init; }
}

public sealed record MFilters(double? RefuseSeconds);

public sealed record MTaskStatus
{
    public required MId TaskId { get; init; }

    public required string State { get; init; }

    public string? Message { get; init; }

    public string? Source { get; init; }

    public string? Reason { get; init; }

    /// <summary>base64.</summary>
    public string? Data { get; init; }

    public MId? AgentId { get; init; }

    public MId? ExecutorId { get; init; }

    public double? Timestamp { get; init; }

    /// <summary>base64 of 16 bytes; set when the scheduler must acknowledge the update.</summary>
    public string? Uuid { get; init; }

    public bool? Healthy { get; init; }
}

/// <summary>mesos.proto AgentInfo (the fields the agent tells its executors).</summary>
public sealed record MAgentInfo
{
    public required string Hostname { get; init; }

    public int? Port { get; init; }

    public MId? Id { get; init; }
}

// ---------------------------------------------------------------- scheduler calls

public sealed record MSubscribe(MFrameworkInfo? FrameworkInfo, IReadOnlyList<string>? SuppressedRoles);

public sealed record MAccept(IReadOnlyList<MId>? OfferIds, IReadOnlyList<MOperation>? Operations, MFilters? Filters);

public sealed record MDecline(IReadOnlyList<MId>? OfferIds, MFilters? Filters);

public sealed record MRoles(IReadOnlyList<string>? Roles);

public sealed record MKill(MId? TaskId, MId? AgentId, MKillPolicy? KillPolicy);

public sealed record MShutdown(MId? ExecutorId, MId? AgentId);

public sealed record MAcknowledge(MId? AgentId, MId? TaskId, string? Uuid);

public sealed record MReconcileTask(MId? TaskId, MId? AgentId);

public sealed record MReconcile(IReadOnlyList<MReconcileTask>? Tasks);

public sealed record MMessage(MId? AgentId, MId? ExecutorId, string? Data);

public sealed record MAcceptInverseOffers(IReadOnlyList<MId>? InverseOfferIds, MFilters? Filters);

public sealed record MCall
{
    public MId? FrameworkId { get; init; }

    public string? Type { get; init; }

    public MSubscribe? Subscribe { get; init; }

    public MAccept? Accept { get; init; }

    public MDecline? Decline { get; init; }

    public MAcceptInverseOffers? AcceptInverseOffers { get; init; }

    public MAcceptInverseOffers? DeclineInverseOffers { get; init; }

    public MRoles? Revive { get; init; }

    public MRoles? Suppress { get; init; }

    public MKill? Kill { get; init; }

    public MShutdown? Shutdown { get; init; }

    public MAcknowledge? Acknowledge { get; init; }

    public MReconcile? Reconcile { get; init; }

    public MMessage? Message { get; init; }

    public JsonElement? Request { get; init; }
}

// ---------------------------------------------------------------- scheduler events

public sealed record MAddress(string? Hostname, string? Ip, int Port);

public sealed record MMasterInfo
{
    public required string Id { get; init; }

    public long Ip { get; init; }

    public int Port { get; init; }

    public string? Hostname { get; init; }

    public string? Version { get; init; }

    public MAddress? Address { get; init; }
}

public sealed record MAttribute
{
    public required string Name { get; init; }

    public required string Type { get; init; }

    public MScalar? Scalar { get; init; }

    public MText? Text { get; init; }
}

public sealed record MText(string Value);

public sealed record MDomainInfo(MFaultDomain? FaultDomain);

public sealed record MFaultDomain(MName Region, MName Zone);

public sealed record MName(string Name);

public sealed record MOffer
{
    public required MId Id { get; init; }

    public required MId FrameworkId { get; init; }

    public required MId AgentId { get; init; }

    public required string Hostname { get; init; }

    public required IReadOnlyList<MResource> Resources { get; init; }

    public IReadOnlyList<MAttribute>? Attributes { get; init; }

    public MDomainInfo? Domain { get; init; }

    public MAllocationInfo? AllocationInfo { get; init; }
}

public sealed record MUnavailability(MTimeInfo Start, MDurationInfo? Duration);

public sealed record MInverseOffer
{
    public required MId Id { get; init; }

    public required MId FrameworkId { get; init; }

    public MId? AgentId { get; init; }

    public required MUnavailability Unavailability { get; init; }
}

public sealed record MSubscribed(MId FrameworkId, double HeartbeatIntervalSeconds, MMasterInfo MasterInfo);

public sealed record MOffers(IReadOnlyList<MOffer> Offers);

public sealed record MInverseOffers(IReadOnlyList<MInverseOffer> InverseOffers);

public sealed record MRescind(MId OfferId);

public sealed record MRescindInverseOffer(MId InverseOfferId);

public sealed record MUpdate(MTaskStatus Status);

public sealed record MFailure(MId? AgentId, MId? ExecutorId, int? Status);

public sealed record MError(string Message);

public sealed record MEvent
{
    public required string Type { get; init; }

    public MSubscribed? Subscribed { get; init; }

    public MOffers? Offers { get; init; }

    public MInverseOffers? InverseOffers { get; init; }

    public MRescind? Rescind { get; init; }

    public MRescindInverseOffer? RescindInverseOffer { get; init; }

    public MUpdate? Update { get; init; }

    public MMessage? Message { get; init; }

    public MFailure? Failure { get; init; }

    public MError? Error { get; init; }
}

/// <summary>Source-generated JSON for the scheduler API messages, in Mesos' JSON mapping (for clients; the master has its own context).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString)]
[JsonSerializable(typeof(MCall))]
[JsonSerializable(typeof(MEvent))]
public sealed partial class MesosSchedulerJsonContext : JsonSerializerContext;
