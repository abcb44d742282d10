using System.Security.Cryptography;
using System.Text;
using Drover.Agent.Execution.Cgroups;

namespace Drover.Agent.Execution;

/// <summary>Settings of <see cref="ProcessTaskExecutor"/>.</summary>
public sealed record ProcessExecutorOptions
{
    /// <summary>The agent's work directory; sandboxes live at <c>{WorkDir}/sandboxes/{taskId}</c>.</summary>
    public required string WorkDir { get; init; }

    /// <summary>
    /// This agent's cgroup, relative to each hierarchy's root; task cgroups are its children. Distinct
    /// per agent so several agents on one machine never touch each other's tasks.
    /// </summary>
    public string CgroupName { get; init; } = "drover/agent";

    /// <summary>Exported to tasks as <c>HOST</c>.</summary>
    public string Hostname { get; init; } = Environment.MachineName;

    /// <summary>Where cgroup filesystems are mounted (tests point this elsewhere).</summary>
    public string CgroupRoot { get; init; } = CgroupDriver.DefaultRoot;

    /// <summary>
    /// When true (the default) the executor refuses to start without usable cgroups. When false it
    /// falls back to process-group-only isolation (no limits, no OOM detection): for unprivileged dev use.
    /// </summary>
    public bool RequireCgroups { get; init; } = true;

    /// <summary>
    /// Whether disposing the executor kills its tasks (the default). When false they keep running,
    /// supervised by their shims, for the next executor on the same work dir to recover.
    /// </summary>
    public bool KillTasksOnDispose { get; init; } = true;

    /// <summary>Grace period given to tasks still running when the executor is disposed.</summary>
    public TimeSpan ShutdownGracePeriod { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary><c>drover/agent-{hash of the work dir}</c>: stable across restarts of one agent, distinct between agents.</summary>
    public static string DefaultCgroupName(string workDir)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(workDir)));
        return $"drover/agent-{Convert.ToHexStringLower(hash.AsSpan(0, 6))}";
    }
}
