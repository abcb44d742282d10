using System.Collections.Immutable;
using System.Globalization;

namespace Drover.Agent.Execution.Cgroups;

/// <summary>
/// cgroup v1: one hierarchy per controller (<c>{root}/memory</c>, <c>{root}/cpu</c> or
/// <c>{root}/cpu,cpuacct</c>, <c>{root}/pids</c>, <c>{root}/freezer</c>). A task's cgroup is the same
/// relative path in each hierarchy that is mounted; missing hierarchies are skipped.
/// </summary>
public sealed class CgroupV1Driver : CgroupDriver
{
    /// <summary>Controllers Drover uses, in the order a process joins them (freezer last).</summary>
    public static readonly ImmutableArray<string> Controllers = ["memory", "cpu", "pids", "freezer"];

    private readonly ImmutableDictionary<string, string> _mounts;

    public CgroupV1Driver(string root = DefaultRoot)
        : base(root)
    {
        var mounts = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var controller in Controllers)
        {
            var mount = FindMount(Root, controller);
            // cpu and cpuacct are often one hierarchy with symlinks; use each real hierarchy once.
            if (mount is not null && seen.Add(ResolveLinks(mount)))
            {
                mounts[controller] = mount;
            }
        }

        _mounts = mounts.ToImmutable();
    }

    public override CgroupVersion Version => CgroupVersion.V1;

    /// <summary>Controller → hierarchy mount directory, for the controllers that are mounted.</summary>
    public IReadOnlyDictionary<string, string> Mounts => _mounts;

    public override Cgroup Open(string name)
    {
        name = Normalize(name);
        var dirs = Controllers.Where(_mounts.ContainsKey).Select(c => Path.Combine(_mounts[c], name));
        return new Cgroup(name, [.. dirs]);
    }

    public override Cgroup Create(string name, CgroupLimits limits)
    {
        if (_mounts.IsEmpty)
        {
            throw new IOException($"no cgroup v1 hierarchy ({string.Join(", ", Controllers)}) is mounted under {Root}");
        }

        var cgroup = Open(name);
        foreach (var dir in cgroup.Directories)
        {
            Directory.CreateDirectory(dir);
        }

        if (_mounts.TryGetValue("memory", out var memory) && limits.MemoryMiB > 0)
        {
            var dir = Path.Combine(memory, cgroup.Name);
            var bytes = limits.MemoryBytes.ToString(CultureInfo.InvariantCulture);
            WriteFile(Path.Combine(dir, "memory.limit_in_bytes"), bytes);
            try
            {
                // memory+swap = memory: no swapping past the limit. Absent without swap accounting.
                WriteIfExists(Path.Combine(dir, "memory.memsw.limit_in_bytes"), bytes);
            }
            catch (IOException)
            {
            }
        }

        if (_mounts.TryGetValue("cpu", out var cpu) && limits.MilliCpus is not null)
        {
            var dir = Path.Combine(cpu, cgroup.Name);
            WriteFile(Path.Combine(dir, "cpu.shares"), limits.CpuShares.ToString(CultureInfo.InvariantCulture));
            if (limits.CpuQuotaMicros is { } quota)
            {
                // Each write to either file re-validates CFS bandwidth under a kernel-wide mutex
                // (tg_set_cfs_bandwidth: 3.7% of the agent's samples while launching 1,000 tasks), so
                // the period, which a new cgroup already has, is written only when it differs.
                var period = Path.Combine(dir, "cpu.cfs_period_us");
                if (ReadLong(period) != CgroupLimits.CpuPeriodMicros)
                {
                    WriteFile(period, CgroupLimits.CpuPeriodMicros.ToString(CultureInfo.InvariantCulture));
                }

                WriteFile(Path.Combine(dir, "cpu.cfs_quota_us"), quota.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (_mounts.TryGetValue("pids", out var pids) && limits.PidsLimit > 0)
        {
            WriteFile(Path.Combine(pids, cgroup.Name, "pids.max"), limits.PidsLimit.ToString(CultureInfo.InvariantCulture));
        }

        return cgroup;
    }

    /// <remarks>
    /// v1 requires <c>memory.limit_in_bytes</c> ≤ <c>memory.memsw.limit_in_bytes</c> at every step, so a raise
    /// must write memsw first and a lowering must write it last. Writing memsw once up front (allowed to fail
    /// when lowering) and then everything in <see cref="Create"/>'s order satisfies both.
    /// </remarks>
    public override void UpdateLimits(Cgroup cgroup, CgroupLimits limits)
    {
        if (_mounts.TryGetValue("memory", out var memory) && limits.MemoryMiB > 0)
        {
            try
            {
                WriteIfExists(Path.Combine(memory, cgroup.Name, "memory.memsw.limit_in_bytes"), limits.MemoryBytes.ToString(CultureInfo.InvariantCulture));
            }
            catch (IOException)
            {
                // Lowering: memsw may not go below the current memory limit yet; Create writes it after.
            }
        }

        Create(cgroup.Name, limits);
    }

    public override bool WasOomKilled(Cgroup cgroup, bool diedBySigkill)
    {
        if (!_mounts.TryGetValue("memory", out var memory))
        {
            return false;
        }

        var dir = Path.Combine(memory, cgroup.Name);
        // Linux 4.13+ counts OOM kills in memory.oom_control; older kernels only count limit hits.
        var kills = ReadKeyedValue(Path.Combine(dir, "memory.oom_control"), "oom_kill");
        if (kills is not null)
        {
            return kills > 0;
        }

        return diedBySigkill && ReadLong(Path.Combine(dir, "memory.failcnt")) > 0;
    }

    protected override async Task<bool> FreezeAsync(Cgroup cgroup, CancellationToken cancellationToken)
    {
        if (!_mounts.TryGetValue("freezer", out var freezer))
        {
            return false;
        }

        var state = Path.Combine(freezer, cgroup.Name, "freezer.state");
        try
        {
            WriteFile(state, "FROZEN");
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }

        await WaitFrozenAsync(() => ReadFile(state)?.Trim() is "FROZEN" or null, cancellationToken).ConfigureAwait(false);
        return true;
    }

    protected override void Thaw(Cgroup cgroup)
    {
        if (_mounts.TryGetValue("freezer", out var freezer))
        {
            try
            {
                WriteFile(Path.Combine(freezer, cgroup.Name, "freezer.state"), "THAWED");
            }
            catch (IOException)
            {
            }
        }
    }

    private static string? FindMount(string root, string controller)
    {
        var direct = Path.Combine(root, controller);
        if (File.Exists(Path.Combine(direct, "cgroup.procs")))
        {
            return direct;
        }

        // Co-mounted hierarchies such as "cpu,cpuacct" without the convenience symlinks.
        try
        {
            foreach (var dir in Directory.EnumerateDirectories(root))
            {
                var names = Path.GetFileName(dir).Split(',');
                if (names.Length > 1 && names.Contains(controller, StringComparer.Ordinal)
                    && File.Exists(Path.Combine(dir, "cgroup.procs")))
                {
                    return dir;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    private static string ResolveLinks(string dir)
    {
        try
        {
            return Directory.ResolveLinkTarget(dir, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(dir);
        }
        catch (IOException)
        {
            return Path.GetFullPath(dir);
        }
    }
}
