using Drover.Core.Mesos;
using Drover.Core;
using Drover.Core.Api;
using Drover.Master.Http;
using Drover.Master.State;

namespace Drover.Master.Mesos.Operator;

// Shapes of Mesos' v1 operator API (include/mesos/v1/master/master.proto: Call, Response, Event), the part Drover serves.

internal sealed record OCall(string? Type);

internal sealed record OGetHealth(bool Healthy);

internal sealed record OVersionInfo(string Version, string? BuildUser = null);

internal sealed record OGetVersion(OVersionInfo VersionInfo);

internal sealed record OAgentInfo
{
    public required string Hostname { get; init; }

    public required MId Id { get; init; }

    public int Port { get; init; }

    public required IReadOnlyList<MResource> Resources { get; init; }

    public IReadOnlyList<MAttribute>? Attributes { get; init; }

    public MDomainInfo? Domain { get; init; }
}

internal sealed record ODrainInfo(string State, MDurationInfo? MaxGracePeriod);

internal sealed record OAgent
{
    public required OAgentInfo AgentInfo { get; init; }

    public bool Active { get; init; }

    public bool Deactivated { get; init; }

    public required string Version { get; init; }

    public string? Pid { get; init; }

    public MTimeInfo? RegisteredTime { get; init; }

    public required IReadOnlyList<MResource> TotalResources { get; init; }

    public required IReadOnlyList<MResource> AllocatedResources { get; init; }

    public required IReadOnlyList<MResource> OfferedResources { get; init; }

    public ODrainInfo? DrainInfo { get; init; }
}

internal sealed record OGetAgents(IReadOnlyList<OAgent> Agents, IReadOnlyList<OAgentInfo> RecoveredAgents);

internal sealed record OFramework
{
    public required MFrameworkInfo FrameworkInfo { get; init; }

    public bool Active { get; init; }

    public bool Connected { get; init; }

    public bool Recovered { get; init; }

    public MTimeInfo? RegisteredTime { get; init; }

    public MTimeInfo? ReregisteredTime { get; init; }

    public MTimeInfo? UnregisteredTime { get; init; }

    public IReadOnlyList<MOffer>? Offers { get; init; }

    public IReadOnlyList<MInverseOffer>? InverseOffers { get; init; }

    public IReadOnlyList<MResource>? AllocatedResources { get; init; }

    public IReadOnlyList<MResource>? OfferedResources { get; init; }
}

internal sealed record OGetFrameworks(IReadOnlyList<OFramework> Frameworks, IReadOnlyList<OFramework> CompletedFrameworks, IReadOnlyList<MFrameworkInfo> RecoveredFrameworks);

internal sealed record OTask
{
    public required string Name { get; init; }

    public required MId TaskId { get; init; }

    public required MId FrameworkId { get; init; }

    public MId? ExecutorId { get; init; }

    public required MId AgentId { get; init; }

    public required string State { get; init; }

    public required IReadOnlyList<MResource> Resources { get; init; }

    public required IReadOnlyList<MTaskStatus> Statuses { get; init; }

    public string? StatusUpdateState { get; init; }
}

internal sealed record OGetTasks(
    IReadOnlyList<OTask> PendingTasks,
    IReadOnlyList<OTask> Tasks,
    IReadOnlyList<OTask> UnreachableTasks,
    IReadOnlyList<OTask> CompletedTasks,
    IReadOnlyList<OTask> OrphanTasks);

/// <summary>Mesos' <c>Response.GetExecutors</c>: live executors with their agent; Drover has no orphan executors.</summary>
internal sealed record OGetExecutors(IReadOnlyList<OExecutor> Executors, IReadOnlyList<OExecutor> OrphanExecutors);

internal sealed record OExecutor(MExecutorInfo ExecutorInfo, MId AgentId);

internal sealed record ORole
{
    public required string Name { get; init; }

    public double Weight { get; init; }

    public required IReadOnlyList<MId> Frameworks { get; init; }

    public required IReadOnlyList<MResource> Resources { get; init; }

    public required IReadOnlyList<MResource> Allocated { get; init; }

    public required IReadOnlyList<MResource> Offered { get; init; }
}

internal sealed record OGetRoles(IReadOnlyList<ORole> Roles);

internal sealed record OGetState(OGetTasks GetTasks, OGetExecutors GetExecutors, OGetFrameworks GetFrameworks, OGetAgents GetAgents);

internal sealed record OResponse
{
    public required string Type { get; init; }

    public OGetHealth? GetHealth { get; init; }

    public OGetVersion? GetVersion { get; init; }

    public OGetState? GetState { get; init; }

    public OGetAgents? GetAgents { get; init; }

    public OGetFrameworks? GetFrameworks { get; init; }

    public OGetTasks? GetTasks { get; init; }

    public OGetExecutors? GetExecutors { get; init; }

    public OGetRoles? GetRoles { get; init; }
}

internal sealed record OSubscribed(OGetState GetState, double HeartbeatIntervalSeconds);

internal sealed record OTaskAdded(OTask Task);

internal sealed record OTaskUpdated(MId FrameworkId, MTaskStatus Status, string State);

internal sealed record OAgentAdded(OAgent Agent);

internal sealed record OAgentRemoved(MId AgentId);

internal sealed record OFrameworkEvent(OFramework Framework);

internal sealed record OFrameworkRemoved(MFrameworkInfo FrameworkInfo);

internal sealed record OEvent
{
    public required string Type { get; init; }

    public OSubscribed? Subscribed { get; init; }

    public OTaskAdded? TaskAdded { get; init; }

    public OTaskUpdated? TaskUpdated { get; init; }

    public OAgentAdded? AgentAdded { get; init; }

    public OAgentRemoved? AgentRemoved { get; init; }

    public OFrameworkEvent? FrameworkAdded { get; init; }

    public OFrameworkEvent? FrameworkUpdated { get; init; }

    public OFrameworkRemoved? FrameworkRemoved { get; init; }
}

/// <summary>Drover views in operator API shapes.</summary>
internal static class OperatorShapes
{
    public static MTimeInfo Time(DateTimeOffset t) => new(t.ToUnixTimeMilliseconds() * 1_000_000);

    /// <summary>A live executor as Mesos' <c>ExecutorInfo</c> (CUSTOM, its command and own resources) with its agent.</summary>
    public static OExecutor Executor(ExecutorView e) => new(new MExecutorInfo
    {
        Type = "CUSTOM",
        ExecutorId = new MId(e.Spec.ExecutorId),
        FrameworkId = new MId(e.Spec.FrameworkId),
        Name = e.Spec.Name,
        Command = new MCommandInfo
        {
            Shell = e.Spec.Shell is not null,
            Value = e.Spec.Shell ?? e.Spec.Args.FirstOrDefault(),
            Arguments = e.Spec.Shell is null && !e.Spec.Args.IsEmpty ? e.Spec.Args : null,
            Environment = e.Spec.Env.IsEmpty ? null : new MEnvironment([.. e.Spec.Env.Select(kv => new MEnvVariable(kv.Key, kv.Value, "VALUE"))]),
        },
        Resources = MesosResources.ToMesos(e.Spec.Resources, null),
        Data = e.Spec.Data,
    }, new MId(e.AgentId));

    public static Resources FromView(ResourcesView v) =>
        Resources.Of(v.Cpus, v.Mem, v.Disk, v.Gpus, PortRanges.TryParse(v.Ports, out var p, out _) ? p : PortRanges.Empty);

    public static OAgentInfo AgentInfo(AgentView a)
    {
        var port = Uri.TryCreate(a.Address, UriKind.Absolute, out var u) ? u.Port : 5051;
        return new OAgentInfo
        {
            Hostname = a.Hostname,
            Id = new MId(a.Id),
            Port = port,
            Resources = MesosResources.ToMesos(FromView(a.Total), null),
            Attributes = [.. a.Attributes.Select(kv => double.TryParse(kv.Value, System.Globalization.CultureInfo.InvariantCulture, out var d)
                ? new MAttribute { Name = kv.Key, Type = "SCALAR", Scalar = new MScalar(d) }
                : new MAttribute { Name = kv.Key, Type = "TEXT", Text = new MText(kv.Value) })],
            Domain = a.Region is { } r && a.Zone is { } z ? new MDomainInfo(new MFaultDomain(new MName(r), new MName(z))) : null,
        };
    }

    public static OAgent Agent(AgentView a, Resources offered) => new()
    {
        AgentInfo = AgentInfo(a),
        Active = a.Status is "active" or "draining" or "drained",
        Deactivated = a.Status is "draining" or "drained",
        Version = MasterHost.Version,
        Pid = $"slave(1)@{a.Address}",
        RegisteredTime = Time(a.RegisteredAt),
        TotalResources = MesosResources.ToMesos(FromView(a.Total), null),
        AllocatedResources = MesosResources.ToMesos(FromView(a.Used), null),
        OfferedResources = MesosResources.ToMesos(offered, null),
        DrainInfo = a.DrainStartedAt is { } start
            ? new ODrainInfo(a.Status == "drained" ? "DRAINED" : "DRAINING", a.DrainDeadline is { } d ? new MDurationInfo((d - start).Ticks * 100) : null)
            : null,
    };

    public static OTask Task(TaskView t)
    {
        var fw = t.FrameworkId ?? MesosStateEndpoints.BuiltInFrameworkId;
        var last = t.Statuses.IsDefaultOrEmpty ? null : t.Statuses[^1];
        return new OTask
        {
            Name = t.Name,
            TaskId = new MId(t.FrameworkId is null ? t.Id : FrameworkManager.MesosTaskId(fw, t.Id)),
            FrameworkId = new MId(fw),
            ExecutorId = MId.Of(last?.ExecutorId),
            AgentId = new MId(t.AgentId ?? ""),
            State = t.State.WireName(),
            Resources = MesosResources.ToMesos(Resources.Of(t.Cpus, t.Mem, t.Disk, t.Gpus, PortRanges.Of([.. t.Ports])), null),
            Statuses = [.. (t.Statuses.IsDefault ? [] : t.Statuses).Select(s => Status(t, fw, s))],
            StatusUpdateState = last?.State.WireName(),
        };
    }

    public static MTaskStatus Status(TaskView t, string fw, TaskStatus s) => new()
    {
        TaskId = new MId(t.FrameworkId is null ? t.Id : FrameworkManager.MesosTaskId(fw, t.Id)),
        State = s.State.WireName(),
        Message = s.Message,
        Source = s.Source,
        Reason = s.Reason,
        AgentId = MId.Of(s.AgentId ?? t.AgentId),
        ExecutorId = MId.Of(s.ExecutorId),
        Timestamp = s.Timestamp,
        Healthy = s.Healthy,
    };
}
