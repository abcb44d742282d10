using System.Collections.Immutable;

namespace Drover.Agent.Execution.Cgroups;

public enum CgroupVersion
{
    V1 = 1,
    V2 = 2,
}

/// <summary>Resource limits for one cgroup. Zero means "no limit" for every field.</summary>
public sealed record CgroupLimits
{
    public static readonly CgroupLimits None = new();

    /// <summary>CFS period for the CPU hard quota, in microseconds.</summary>
    public const long CpuPeriodMicros = 100_000;

    /// <summary>Hard memory limit (no swap on top of it).</summary>
    public long MemoryMiB { get; init; }

    /// <summary>
    /// CPU share in milli-CPUs: a hard CFS quota (when above zero) and a proportional weight (also for
    /// zero, which gets the minimum weight). Null leaves the CPU controller untouched.
    /// </summary>
    public long? MilliCpus { get; init; }

    /// <summary>Maximum processes/threads.</summary>
    public int PidsLimit { get; init; }

    public long MemoryBytes => MemoryMiB * 1024 * 1024;

    /// <summary><c>milliCpus × period / 1000</c> (at least the kernel's 1 ms minimum), or null when unlimited.</summary>
    public long? CpuQuotaMicros => MilliCpus is > 0 and var m ? Math.Max(1_000, m * CpuPeriodMicros / 1000) : null;

    /// <summary>v1 <c>cpu.shares</c>: 1024 per CPU, at least 2.</summary>
    public long CpuShares => Math.Clamp((MilliCpus ?? 0) * 1024 / 1000, 2, 262_144);

    /// <summary>v2 <c>cpu.weight</c> (1..10000), converted from shares the way runc and systemd do.</summary>
    public long CpuWeight => 1 + ((CpuShares - 2) * 9_999 / 262_142);
}

/// <summary>
/// One cgroup: the same relative <see cref="Name"/> (e.g. <c>drover/agent-1a2b/web.0f3e</c>) in every
/// hierarchy the driver uses — one directory on cgroup v2, one per controller on v1.
/// </summary>
public sealed record Cgroup(string Name, ImmutableArray<string> Directories)
{
    /// <summary>The <c>cgroup.procs</c> file of every directory; a process joins the cgroup by writing its pid to each.</summary>
    public IEnumerable<string> ProcsFiles => Directories.Select(d => Path.Combine(d, "cgroup.procs"));
}

/// <summary>
/// The small surface the executor needs from cgroups, implemented for v1 (one hierarchy per controller)
/// and v2 (unified). Names are paths relative to each hierarchy's root. Thread-safe.
/// </summary>
public interface ICgroupDriver
{
    CgroupVersion Version { get; }

    /// <summary>The cgroup mount root, e.g. <c>/sys/fs/cgroup</c>.</summary>
    string Root { get; }

    /// <summary>The cgroup's directories without creating anything (they may not exist).</summary>
    Cgroup Open(string name);

    /// <summary>Creates the cgroup (and its parents) and writes <paramref name="limits"/>. Throws when the hierarchy refuses.</summary>
    Cgroup Create(string name, CgroupLimits limits);

    /// <summary>
    /// Rewrites the limits of an existing cgroup (raising or lowering them). Throws when the kernel refuses,
    /// e.g. a memory limit below what the cgroup already uses.
    /// </summary>
    void UpdateLimits(Cgroup cgroup, CgroupLimits limits);

    /// <summary>Moves <paramref name="pid"/> into the cgroup in every hierarchy.</summary>
    void AddProcess(Cgroup cgroup, int pid);

    /// <summary>Pids in the cgroup (in any of its hierarchies); empty when it does not exist.</summary>
    IReadOnlyList<int> ListPids(Cgroup cgroup);

    /// <summary>
    /// Whether the kernel's OOM killer acted in this cgroup. <paramref name="diedBySigkill"/> lets a
    /// driver without an OOM-kill counter (old v1 kernels) fall back to "hit the limit and got SIGKILL".
    /// </summary>
    bool WasOomKilled(Cgroup cgroup, bool diedBySigkill);

    /// <summary>Names of the direct children of <paramref name="name"/> (e.g. task cgroups left by a crashed agent).</summary>
    IReadOnlyList<string> ListChildren(string name);

    /// <summary>SIGKILLs every process in the cgroup until it is empty (freezing first so forks cannot race).</summary>
    /// <returns>False when processes remained after the deadline (e.g. stuck in uninterruptible sleep).</returns>
    Task<bool> KillAllAsync(Cgroup cgroup, CancellationToken cancellationToken = default);

    /// <summary>Removes the cgroup's directories, retrying briefly while the kernel reports them busy.</summary>
    /// <returns>False when a directory could not be removed.</returns>
    Task<bool> RemoveAsync(Cgroup cgroup, CancellationToken cancellationToken = default);
}
