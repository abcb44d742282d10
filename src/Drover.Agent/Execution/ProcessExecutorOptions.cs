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

    /// <summary>
    /// Whether tasks run isolated (Execution/README.md, "Isolation contract"): as <see cref="DefaultTaskUser"/> unless
    /// their spec names a user, capabilities dropped, in mount, PID and IPC namespaces of their own. Null (the default):
    /// when the agent runs as root, which isolation needs. True on an agent that is not root fails its start.
    /// </summary>
    public bool? Isolate { get; init; }

    /// <summary>The user a task without <see cref="Drover.Core.TaskSpec.User"/> runs as (isolated tasks only; <c>drover agent --default-task-user</c>).</summary>
    public string DefaultTaskUser { get; init; } = "nobody";

    /// <summary>
    /// The directory hidden from tasks, all but their own sandbox (isolated tasks only): the agent's whole work dir. Null:
    /// <see cref="WorkDir"/>. The custom executors' executor runs under <c>{WorkDir}/executors</c> and hides the agent's.
    /// </summary>
    public string? AgentRoot { get; init; }

    /// <summary>
    /// <c>pids.max</c> of the agent's cgroup: the processes and threads all its tasks may have together, so no task
    /// (nor all of them) can exhaust the machine's pids. 0: no cap. Default: three quarters of <c>kernel.pid_max</c>.
    /// </summary>
    public int AgentPidsLimit { get; init; } = DefaultAgentPidsLimit();

    /// <summary>How often the sandboxes of tasks with a <c>disk</c> resource are measured (Mesos' <c>--container_disk_watch_interval</c>).</summary>
    public TimeSpan DiskWatchInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Three quarters of <c>/proc/sys/kernel/pid_max</c> (32768 when it cannot be read): the rest stays for the machine itself.</summary>
    public static int DefaultAgentPidsLimit()
    {
        try
        {
            return int.TryParse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var max) && max > 0 ? max / 4 * 3 : 24_576;
        }
        catch (IOException)
        {
            return 24_576;
        }
    }

    /// <summary><c>drover/agent-{hash of the work dir}</c>: stable across restarts of one agent, distinct between agents.</summary>
    public static string DefaultCgroupName(string workDir)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(workDir)));
        return $"drover/agent-{Convert.ToHexStringLower(hash.AsSpan(0, 6))}";
    }
}
