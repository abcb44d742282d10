using System.Collections.Immutable;
using Drover.Core.Health;

namespace Drover.Agent.Health;

/// <summary>A running task to health check, with what its checks need to know about it.</summary>
internal sealed record HealthCheckTarget
{
    public required string TaskId { get; init; }

    public required HealthCheck Check { get; init; }

    /// <summary>The port HTTP(S)/TCP checks probe on 127.0.0.1 (resolved from the task's assigned ports).</summary>
    public int? Port { get; init; }

    /// <summary>The task's sandbox: the working directory of COMMAND checks.</summary>
    public required string WorkingDirectory { get; init; }

    /// <summary>The task's environment (PORT0…, HOST, MESOS_SANDBOX…), given to COMMAND checks.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>The task cgroup's <c>cgroup.procs</c> files: a COMMAND check joins them, so it runs within the task's limits.</summary>
    public ImmutableArray<string> CgroupProcsFiles { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>What the <see cref="HealthChecker"/> needs from the owner of the tasks (the executor).</summary>
internal interface IHealthReporter
{
    /// <summary>
    /// Reports a change of the task's health (a TASK_RUNNING update with <c>Healthy</c>). Returns false when
    /// the task is no longer running, in which case nothing was reported and checking stops.
    /// </summary>
    bool ReportHealth(string taskId, bool healthy, string message);

    /// <summary>Kills the task because it failed its health check too many times in a row.</summary>
    void KillUnhealthy(string taskId, string message);
}
