using Drover.Master.Security;
using Drover.Core.Security;
using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Drover.Core;
using Drover.Core.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Drover.Master.State;

namespace Drover.Master.Http;

/// <summary>
/// <c>GET /master/state</c> and <c>/state.json</c> in the shape of Apache Mesos' master state JSON
/// (snake_case; <c>slaves</c>, <c>frameworks[].tasks</c>, <c>completed_tasks</c>…) so dashboards and
/// scripts written for Mesos read Drover unchanged. Drover's own tasks (one-off and services) belong to a
/// built-in framework named "drover"; Mesos frameworks' tasks are listed under their framework.
/// </summary>
internal static class MesosStateEndpoints
{
    public const string BuiltInFrameworkId = "drover-builtin-0000";

    public static void Map(IEndpointRouteBuilder app, string version)
    {
        IResult Handler(ClusterState state, Mesos.FrameworkManager frameworks, HttpContext http)
        {
            var (agents, active, completed) = state.StateDump();
            static MesosResources Used(IEnumerable<TaskView> tasks) => MesosResources.From(tasks.Where(t => t.State.HoldsResources())
                .Aggregate(Resources.Zero, (acc, t) => acc.Add(Resources.Of(t.Cpus, t.Mem, t.Disk, t.Gpus))), "");
            var builtIn = new MesosFramework
            {
                Id = BuiltInFrameworkId,
                Name = "drover",
                Active = true,
                Role = "*",
                UsedResources = Used(active.Where(t => t.FrameworkId is null)),
                Tasks = active.Where(t => t.FrameworkId is null).Select(t => MesosTask.From(t)),
                CompletedTasks = completed.Where(t => t.FrameworkId is null).Select(t => MesosTask.From(t)),
            };
            // Mesos frameworks (the scheduler API) each with their own tasks, as in Mesos' state.json.
            var (live, _, _, _) = frameworks.OperatorView(System.Collections.Immutable.ImmutableDictionary<string, Resources>.Empty);
            var others = live.Select(f =>
            {
                var id = f.FrameworkInfo.Id?.Value ?? "";
                return new MesosFramework
                {
                    Id = id,
                    Name = f.FrameworkInfo.Name ?? "",
                    Active = f.Connected,
                    Role = f.FrameworkInfo.Roles is { Count: > 0 } roles ? roles[0] : f.FrameworkInfo.Role ?? "*",
                    UsedResources = Used(active.Where(t => t.FrameworkId == id)),
                    Tasks = active.Where(t => t.FrameworkId == id).Select(t => MesosTask.From(t)),
                    CompletedTasks = completed.Where(t => t.FrameworkId == id).Select(t => MesosTask.From(t)),
                };
            });
            var dto = new MesosState
            {
                Version = version,
                Hostname = Environment.MachineName,
                Leader = $"master@{http.Request.Host}",
                StartTime = state.StartedAt.ToUnixTimeMilliseconds() / 1000.0,
                ActivatedSlaves = agents.Count(a => a.Status == "active"),
                DeactivatedSlaves = agents.Count(a => a.Status != "active"),
                Slaves = [.. agents.Select(MesosSlave.From)],
                Frameworks = [builtIn, .. others],
            };
            return Results.Json(dto, MesosJsonContext.Default.MesosState);
        }

        var access = RouteAccess.Permission(Rids.MesosOps, PermissionAction.Read);
        app.MapGet("/master/state", Handler).Access(access);
        app.MapGet("/state.json", Handler).Access(access);
        app.MapGet("/master/state.json", Handler).Access(access);
    }
}

internal sealed record MesosState
{
    public required string Version { get; init; }

    public required string Hostname { get; init; }

    public required string Leader { get; init; }

    public required double StartTime { get; init; }

    public int ActivatedSlaves { get; init; }

    public int DeactivatedSlaves { get; init; }

    public required ImmutableArray<MesosSlave> Slaves { get; init; }

    public required ImmutableArray<MesosFramework> Frameworks { get; init; }

    public ImmutableArray<MesosFramework> CompletedFrameworks { get; init; } = [];
}

internal sealed record MesosResources
{
    public decimal Cpus { get; init; }

    public long Mem { get; init; }

    public long Disk { get; init; }

    public int Gpus { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Ports { get; init; }

    public static MesosResources From(Resources r, string? ports) => new()
    {
        Cpus = r.Cpus,
        Mem = r.MemMiB,
        Disk = r.DiskMiB,
        Gpus = r.Gpus,
        Ports = string.IsNullOrEmpty(ports) || ports == "[]" ? null : ports,
    };

    public static MesosResources From(ResourcesView r) => new()
    {
        Cpus = r.Cpus,
        Mem = r.Mem,
        Disk = r.Disk,
        Gpus = r.Gpus,
        Ports = r.Ports == "[]" ? null : r.Ports,
    };
}

internal sealed record MesosSlave
{
    public required string Id { get; init; }

    public required string Hostname { get; init; }

    public required string Pid { get; init; }

    public required double RegisteredTime { get; init; }

    public required bool Active { get; init; }

    public required MesosResources Resources { get; init; }

    public required MesosResources UsedResources { get; init; }

    public required MesosResources UnreservedResources { get; init; }

    public required ImmutableSortedDictionary<string, string> Attributes { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public MesosDomain? Domain { get; init; }

    public static MesosSlave From(AgentView a) => new()
    {
        Id = a.Id,
        Hostname = a.Hostname,
        Pid = $"slave(1)@{new Uri(a.Address).Authority}",
        RegisteredTime = a.RegisteredAt.ToUnixTimeMilliseconds() / 1000.0,
        Active = a.Status == "active",
        Resources = MesosResources.From(a.Total),
        UsedResources = MesosResources.From(a.Used),
        UnreservedResources = MesosResources.From(a.Total),
        Attributes = a.Attributes,
        Domain = a.Region is null ? null : new MesosDomain { FaultDomain = new MesosFaultDomain { Region = new(a.Region), Zone = new(a.Zone ?? "") } },
    };
}

internal sealed record MesosDomain
{
    public required MesosFaultDomain FaultDomain { get; init; }
}

internal sealed record MesosFaultDomain
{
    public required MesosNamed Region { get; init; }

    public required MesosNamed Zone { get; init; }
}

internal sealed record MesosNamed(string Name);

internal sealed record MesosFramework
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public required bool Active { get; init; }

    public required string Role { get; init; }

    public required MesosResources UsedResources { get; init; }

    /// <summary>Lazy: each task's record is made while the serializer writes it, and the answer is flushed in chunks (streamed, not built whole).</summary>
    public required IEnumerable<MesosTask> Tasks { get; init; }

    /// <summary>Lazy, as <see cref="Tasks"/>.</summary>
    public required IEnumerable<MesosTask> CompletedTasks { get; init; }
}

internal sealed record MesosTask
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public required string FrameworkId { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? SlaveId { get; init; }

    public required string State { get; init; }

    public required MesosResources Resources { get; init; }

    public required ImmutableArray<MesosTaskStatus> Statuses { get; init; }

    public static MesosTask From(TaskView t) => new()
    {
        Id = Drover.Core.Mesos.MesosTaskIds.FromDroverId(t.FrameworkId, t.Id),
        Name = t.Name,
        FrameworkId = t.FrameworkId ?? MesosStateEndpoints.BuiltInFrameworkId,
        SlaveId = t.AgentId,
        State = t.State.WireName(),
        Resources = MesosResources.From(Drover.Core.Resources.Of(t.Cpus, t.Mem, t.Disk, t.Gpus), t.Ports.IsEmpty ? null : PortRanges.Of([.. t.Ports]).ToString()),
        Statuses = [.. t.Statuses.Select(s => new MesosTaskStatus
        {
            State = s.State.WireName(),
            Timestamp = s.Timestamp,
            Message = s.Message,
            Reason = s.Reason,
            Source = s.Source,
        })],
    };
}

internal sealed record MesosTaskStatus
{
    public required string State { get; init; }

    public required double Timestamp { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Message { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reason { get; init; }

    public required string Source { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(MesosState))]
internal sealed partial class MesosJsonContext : JsonSerializerContext;
