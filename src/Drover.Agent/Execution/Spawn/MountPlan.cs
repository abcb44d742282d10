using System.Collections.Immutable;

namespace Drover.Agent.Execution.Spawn;

/// <summary>
/// The mount namespace a task gets (filled by the namespaces stage, carried out by the <see cref="NamespaceSpawner"/>):
/// a copy of the agent's, receiving later host mounts (slave propagation), with fresh <c>/tmp</c> and <c>/dev/shm</c>,
/// the agent's work dir hidden behind an empty read-only tmpfs in which only the task's own sandbox is mounted at its
/// own path, only the task's own cgroup directories under <c>/sys/fs/cgroup</c>, <c>/sys</c> and <c>/proc/sys</c>
/// read-only, and a <c>/proc</c> of the task's own PID namespace.
/// </summary>
internal sealed record MountPlan
{
    /// <summary>The task's private temporary directories, where they exist: each mounted fresh (tmpfs, mode 1777, nosuid, nodev).</summary>
    public static readonly ImmutableArray<string> PrivateTmp = ["/tmp", "/dev/shm"];

    /// <summary>The <see cref="PrivateTmp"/> directories this machine has.</summary>
    public required ImmutableArray<string> Tmp { get; init; }

    /// <summary>Mount points made read-only with everything below them (<c>/sys</c>, when it is a mount of its own).</summary>
    public required ImmutableArray<string> ReadOnly { get; init; }

    /// <summary>The task's sandbox (absolute, no symlinks): mounted at its own path in the task's namespace.</summary>
    public required string Sandbox { get; init; }

    /// <summary>
    /// The directory hidden behind an empty read-only tmpfs (the agent's work dir, or the highest of its ancestors the
    /// task's user may not enter), or null when the sandbox lies under a <see cref="PrivateTmp"/> directory, which
    /// is fresh anyway.
    /// </summary>
    public string? Mask { get; init; }

    /// <summary>The directories created in the fresh filesystem (below <see cref="Mask"/> or the private tmp) down to the sandbox's mount point, in order.</summary>
    public required ImmutableArray<string> MountPoints { get; init; }

    /// <summary>
    /// The task's cgroup directories, each with the name of its hierarchy under <c>/sys/fs/cgroup</c> (cgroup v1:
    /// <c>memory</c>, <c>cpu</c>…); one directory with a null name (v2) is mounted at <c>/sys/fs/cgroup</c> itself.
    /// All read-only: a task cannot leave its cgroup or change its limits, even as root.
    /// </summary>
    public required ImmutableArray<(string Directory, string? Name)> Cgroups { get; init; }

    /// <summary>
    /// The secrets stage's detached tmpfs (a descriptor from <c>fsmount</c>, read-only, holding the task's secret files),
    /// attached at <c>{Sandbox}/.secrets</c> in the task's namespace only; -1 when the task has no secret files. Owned
    /// (closed) by the stage: once attached, the mount lives as long as the namespace.
    /// </summary>
    public int SecretsMount { get; init; } = -1;
}
