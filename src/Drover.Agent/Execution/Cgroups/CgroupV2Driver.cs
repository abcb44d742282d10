using System.Collections.Concurrent;
using System.Globalization;

namespace Drover.Agent.Execution.Cgroups;

/// <summary>
/// cgroup v2 (unified hierarchy mounted at the root). A task's cgroup is one directory; the
/// controllers it needs are enabled in every ancestor's <c>cgroup.subtree_control</c>. Works against
/// a plain directory tree too (files the kernel would provide are created), which the tests use.
/// </summary>
public sealed class CgroupV2Driver : CgroupDriver
{
    /// <summary>Controllers Drover enables for task cgroups.</summary>
    public static readonly IReadOnlyList<string> Controllers = ["cpu", "memory", "pids"];

    // Ancestors whose subtree_control already holds our controllers, so a launch costs one mkdir
    // plus the limit writes rather than a walk up the tree.
    private readonly ConcurrentDictionary<string, bool> _enabled = new(StringComparer.Ordinal);

    public CgroupV2Driver(string root = DefaultRoot)
        : base(root)
    {
    }

    public override CgroupVersion Version => CgroupVersion.V2;

    public override Cgroup Open(string name)
    {
        name = Normalize(name);
        return new Cgroup(name, [Path.Combine(Root, name)]);
    }

    public override Cgroup Create(string name, CgroupLimits limits)
    {
        var cgroup = Open(name);
        var dir = cgroup.Directories[0];
        var parent = Path.GetDirectoryName(cgroup.Name) ?? "";
        EnableControllers(parent);
        Directory.CreateDirectory(dir);

        if (limits.MemoryMiB > 0)
        {
            WriteOrCreate(Path.Combine(dir, "memory.max"), limits.MemoryBytes.ToString(CultureInfo.InvariantCulture));
            WriteIfExists(Path.Combine(dir, "memory.swap.max"), "0");
            // On OOM kill the whole task, not one arbitrary process of it.
            WriteIfExists(Path.Combine(dir, "memory.oom.group"), "1");
        }

        if (limits.MilliCpus is not null)
        {
            WriteOrCreate(Path.Combine(dir, "cpu.weight"), limits.CpuWeight.ToString(CultureInfo.InvariantCulture));
            if (limits.CpuQuotaMicros is { } quota)
            {
                WriteOrCreate(
                    Path.Combine(dir, "cpu.max"),
                    string.Create(CultureInfo.InvariantCulture, $"{quota} {CgroupLimits.CpuPeriodMicros}"));
            }
        }

        if (limits.PidsLimit > 0)
        {
            WriteOrCreate(Path.Combine(dir, "pids.max"), limits.PidsLimit.ToString(CultureInfo.InvariantCulture));
        }

        return cgroup;
    }

    public override bool WasOomKilled(Cgroup cgroup, bool diedBySigkill) =>
        ReadKeyedValue(Path.Combine(cgroup.Directories[0], "memory.events"), "oom_kill") > 0;

    protected override bool TryKernelKill(Cgroup cgroup)
    {
        var kill = Path.Combine(cgroup.Directories[0], "cgroup.kill");
        if (!File.Exists(kill))
        {
            return false;
        }

        try
        {
            WriteFile(kill, "1");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    protected override async Task<bool> FreezeAsync(Cgroup cgroup, CancellationToken cancellationToken)
    {
        var dir = cgroup.Directories[0];
        var freeze = Path.Combine(dir, "cgroup.freeze");
        if (!File.Exists(freeze))
        {
            return false;
        }

        try
        {
            WriteFile(freeze, "1");
        }
        catch (IOException)
        {
            return false;
        }

        var events = Path.Combine(dir, "cgroup.events");
        await WaitFrozenAsync(() => ReadKeyedValue(events, "frozen") is 1 or null, cancellationToken).ConfigureAwait(false);
        return true;
    }

    protected override void Thaw(Cgroup cgroup)
    {
        try
        {
            WriteIfExists(Path.Combine(cgroup.Directories[0], "cgroup.freeze"), "0");
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Enables our controllers in the root and every ancestor down to <paramref name="name"/>, so its children get them.</summary>
    private void EnableControllers(string name)
    {
        if (_enabled.ContainsKey(name))
        {
            return;
        }

        var available = ReadControllers(Path.Combine(Root, "cgroup.controllers"));
        var path = Root;
        var relative = "";
        var segments = name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i <= segments.Length; i++)
        {
            if (i > 0)
            {
                relative = relative.Length == 0 ? segments[i - 1] : $"{relative}/{segments[i - 1]}";
                path = Path.Combine(path, segments[i - 1]);
                Directory.CreateDirectory(path);
                // A child can only enable what its parent passed down; a fake tree has no such file.
                available = ReadControllers(Path.Combine(path, "cgroup.controllers")) ?? available;
            }

            if (_enabled.ContainsKey(relative))
            {
                continue;
            }

            var wanted = Controllers.Where(c => available is null || available.Contains(c)).ToList();
            if (wanted.Count > 0)
            {
                var control = Path.Combine(path, "cgroup.subtree_control");
                var enabled = ReadControllers(control) ?? [];
                var missing = wanted.Where(c => !enabled.Contains(c)).ToList();
                if (missing.Count > 0)
                {
                    WriteOrCreate(control, string.Join(' ', missing.Select(c => "+" + c)));
                }
            }

            _enabled[relative] = true;
        }
    }

    private static HashSet<string>? ReadControllers(string path)
    {
        var text = ReadFile(path);
        return text?.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
    }
}
