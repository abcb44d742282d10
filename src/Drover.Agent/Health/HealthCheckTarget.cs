using System.Collections.Immutable;
using Drover.Agent.Execution;
using Drover.Core.Health;

namespace Drover.Agent.Health;

/// <summary>A running task to check, with its health and readiness checks and what they need to know about it.</summary>
internal sealed record HealthCheckTarget
{
    public required string TaskId { get; init; }

    /// <summary>Run for as long as the task runs; the task is healthy when all of them pass.</summary>
    public ImmutableArray<HealthCheck> HealthChecks { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Run from the start until each has succeeded once; then the task is ready.</summary>
    public ImmutableArray<TaskReadinessCheck> ReadinessChecks { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>The task's assigned host ports (PORT0…): HTTP(S)/TCP checks probe them on 127.0.0.1.</summary>
    public ImmutableArray<int> Ports { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>The task's sandbox: the working directory of COMMAND checks.</summary>
    public required string WorkingDirectory { get; init; }

    /// <summary>The task's environment (PORT0…, HOST, MESOS_SANDBOX…), given to COMMAND checks.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>The task cgroup's <c>cgroup.procs</c> files: a COMMAND check is moved there, so it runs within the task's limits.</summary>
    public ImmutableArray<string> CgroupProcsFiles { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>
    /// A process in the task's namespaces (its shim), when the task has namespaces of its own: a COMMAND check runs in
    /// them, so it sees what the task sees (its <c>/tmp</c>, its processes). Null: the agent's namespaces.
    /// </summary>
    public int? NamespacePid { get; init; }

    /// <summary>The user the task runs as: a COMMAND check runs as that user with the same privileges, never more.</summary>
    public RunAsUser? RunAs { get; init; }
}

/// <summary>What the <see cref="HealthChecker"/> needs from the owner of the tasks (the executor).</summary>
internal interface IHealthReporter
{
    /// <summary>
    /// Reports a change of the task's combined health (a TASK_RUNNING update with <c>Healthy</c> and the
    /// per-check <paramref name="results"/>). Returns false when the task is no longer running, in which case
    /// nothing was reported and checking stops.
    /// </summary>
    bool ReportHealth(string taskId, bool healthy, string message, ImmutableArray<HealthCheckResult> results);

    /// <summary>
    /// Reports that all the task's readiness checks have succeeded (a TASK_RUNNING update with <c>Ready</c>).
    /// Returns false when the task is no longer running.
    /// </summary>
    bool ReportReady(string taskId, string message);

    /// <summary>Kills the task because one of its health checks failed too many times in a row.</summary>
    void KillUnhealthy(string taskId, string message);
}
