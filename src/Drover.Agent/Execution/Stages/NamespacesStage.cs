using System.Collections.Concurrent;
using System.Collections.Immutable;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Execution.Spawn;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// The task's own mount, PID and IPC namespaces (Mesos' <c>filesystem/linux</c> and <c>namespaces/pid</c>
/// isolators): it plans the mount namespace (<see cref="MountPlan"/>), which the runtime's
/// <see cref="NamespaceSpawner"/> creates when it starts the task, so the plan costs no process of its own.
/// </summary>
/// <remarks>
/// In the task's namespaces: <c>/tmp</c> and <c>/dev/shm</c> are fresh tmpfs (private, and their pages are charged to
/// the task's memory cgroup, since the task writes them); the agent's work dir is an empty read-only tmpfs holding only
/// the task's own sandbox, mounted at its own path (so <c>MESOS_SANDBOX</c> is the same path inside and out, and no
/// task sees another's sandbox, even one of the same user); when the task's user may not enter an ancestor of the work
/// dir (a 0700 home or temp dir), that ancestor is what is hidden instead, so the sandbox is still reachable;
/// <c>/sys/fs/cgroup</c> shows only the task's own cgroup, and <c>/sys</c> and <c>/proc/sys</c> are read-only; <c>/proc</c>
/// is that of the task's PID namespace, in which the shim is PID 1 and the task sees only its own processes.
/// The state checkpointed is only that the task is isolated: its COMMAND checks enter its namespaces after a restart.
/// </remarks>
internal sealed class NamespacesStage(bool enabled, string agentRoot, CgroupVersion? cgroupVersion) : ILaunchStage
{
    /// <summary>The private tmp directories this machine has (a minimal root may lack /dev/shm).</summary>
    private static readonly ImmutableArray<string> Tmp = [.. MountPlan.PrivateTmp.Where(Directory.Exists)];

    /// <summary>/sys, when it is a mount of its own (read-only for tasks; never / by mistake).</summary>
    private static readonly ImmutableArray<string> ReadOnly =
        Native.TryStat("/sys", out var sys) && Native.TryStat("/", out var root) && sys.Device != root.Device ? ["/sys"] : [];

    /// <summary>Per user (uid, gid): the highest ancestor of the agent's work dir they may not enter, or "" when none.</summary>
    private readonly ConcurrentDictionary<(uint Uid, uint Gid), string> _blocked = new();

    public string Name => "namespaces";

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (!enabled)
        {
            return null;
        }

        var sandbox = run.Sandbox!;
        var tmp = Tmp.FirstOrDefault(t => sandbox.StartsWith(t + "/", StringComparison.Ordinal));
        var mask = tmp is null ? BlockedAncestor(run.RunAs) ?? agentRoot : null;
        var fresh = tmp ?? mask!;
        var points = new List<string>();
        for (var dir = sandbox; dir.Length > fresh.Length; dir = Path.GetDirectoryName(dir)!)
        {
            points.Add(dir);
        }

        points.Reverse();
        run.Mounts = new MountPlan
        {
            Sandbox = sandbox,
            Tmp = Tmp,
            ReadOnly = ReadOnly,
            Mask = mask,
            MountPoints = [.. points],
            Cgroups = CgroupMounts(run.Cgroup),
        };
        run.Isolated = true;
        run.SaveStageState(Name, "isolated");
        return null;
    }

    public void AfterStart(TaskRun run)
    {
    }

    /// <remarks>Nothing: the namespaces (and the tmpfs in them) go when the task's last process does.</remarks>
    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken) => Task.CompletedTask;

    public void Recover(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        run.Isolated = run.StageState?.ContainsKey(Name) == true;
    }

    /// <summary>The task's cgroup directories as they appear under <c>/sys/fs/cgroup</c> in its namespace.</summary>
    private ImmutableArray<(string Directory, string? Name)> CgroupMounts(Cgroup? cgroup)
    {
        if (cgroup is null)
        {
            return [];
        }

        if (cgroupVersion == CgroupVersion.V2)
        {
            return [(cgroup.Directories[0], null)];
        }

        // v1: {hierarchy mount}/{cgroup name}, shown as /sys/fs/cgroup/{hierarchy's directory name}.
        return [.. cgroup.Directories.Select(d => (d, (string?)Path.GetFileName(d[..^(cgroup.Name.Length + 1)])))];
    }

    /// <summary>The highest ancestor of the agent's work dir that <paramref name="user"/> may not enter, or null.</summary>
    private string? BlockedAncestor(RunAsUser? user)
    {
        if (user is null || user.Uid == 0)
        {
            return null;
        }

        var blocked = _blocked.GetOrAdd((user.Uid, user.Gid), key =>
        {
            var dir = "";
            foreach (var part in agentRoot.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                dir += "/" + part;
                if (dir.Length < agentRoot.Length && Directory.Exists(dir) && !UserStage.CanEnter(dir, key.Uid, key.Gid, ancestors: false))
                {
                    return dir;
                }
            }

            return "";
        });
        return blocked.Length == 0 ? null : blocked;
    }
}
