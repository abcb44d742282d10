using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Protocol;

namespace Drover.Testing;

/// <summary>Builders that return complete, valid objects; tests change only what they are about.</summary>
public static class Build
{
    public static TaskSpec Task(string? id = null, decimal cpus = 0.1m, long memMiB = 32, int ports = 0, string shell = "true",
        ImmutableArray<Constraint> constraints = default)
    {
        var taskId = id ?? Ids.NewTaskId("test");
        return new TaskSpec
        {
            Id = taskId,
            Name = taskId,
            Shell = shell,
            Resources = Resources.Of(cpus, memMiB),
            PortCount = ports,
            Constraints = constraints.IsDefault ? [] : constraints,
            Group = taskId,
        };
    }

    public static AgentRegistration Agent(string hostname = "host1", string resources = "cpus:4;mem:4096;disk:1000;ports:[31000-31010]",
        string? attributes = null, FaultDomain? domain = null, string? id = null) => new()
    {
        AgentId = id,
        Hostname = hostname,
        Address = $"http://{hostname}:5051",
        Resources = Resources.Parse(resources),
        Attributes = attributes is null ? Attributes.Empty : Attributes.TryParse(attributes, out var a, out _) ? a : throw new ArgumentException(attributes),
        Domain = domain,
    };

    public static TaskStatus Status(string taskId, TaskState state, int? exitCode = null, string? reason = null) => new()
    {
        TaskId = taskId,
        State = state,
        ExitCode = exitCode,
        Reason = reason,
        Uuid = Ids.NewUuid(),
        Timestamp = 1,
    };
}
