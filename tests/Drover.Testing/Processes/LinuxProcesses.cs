using System.Globalization;
using System.Runtime.InteropServices;

namespace Drover.Testing.Processes;

/// <summary>
/// A process told apart from a later one that reuses its pid: the pid and its start time (field 22 of
/// <c>/proc/PID/stat</c>, clock ticks since boot).
/// </summary>
public sealed record ProcessIdentity(int Pid, string StartTime)
{
    /// <summary>The process as it is now, or null when no process has that pid.</summary>
    public static ProcessIdentity? Of(int pid) => LinuxProcesses.StartTimeOf(pid) is { } start ? new ProcessIdentity(pid, start) : null;

    /// <summary>True while this very process exists and has not exited (a zombie has exited).</summary>
    public bool IsAlive => LinuxProcesses.StartTimeOf(Pid) == StartTime && !LinuxProcesses.IsZombie(Pid);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Pid}@{StartTime}");
}

/// <summary>What tests need from <c>/proc</c> and the cgroup filesystems, without a process of their own.</summary>
public static class LinuxProcesses
{
    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null when the process is gone.</summary>
    public static string? StartTimeOf(int pid)
    {
        if (ReadStatFields(pid) is not { } fields)
        {
            return null;
        }

        // Fields after "pid (comm) ": index 0 is the state (field 3), so field 22 is index 19.
        return fields.Length > 19 ? fields[19] : null;
    }

    /// <summary>True when the process has exited but was not reaped yet.</summary>
    public static bool IsZombie(int pid) => ReadStatFields(pid) is [var state, ..] && state is "Z" or "X";

    /// <summary>The parent's pid (field 4 of /proc/PID/stat), or null when the process is gone.</summary>
    public static int? ParentOf(int pid) =>
        ReadStatFields(pid) is [_, var ppid, ..] && int.TryParse(ppid, NumberStyles.None, CultureInfo.InvariantCulture, out var parent) ? parent : null;

    /// <summary>The kernel's name of the process (/proc/PID/comm: the base name of what it exec'd), or null when it is gone.</summary>
    public static string? NameOf(int pid)
    {
        try
        {
            return File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/comm")).TrimEnd('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>SIGKILLs the process if it is still this very one and alive; false otherwise.</summary>
    public static bool Kill(ProcessIdentity process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.IsAlive && process.Pid > 1 && SysKill(process.Pid, 9) == 0;
    }

    /// <summary>SIGKILLs every process of the process group led by <paramref name="leader"/> at once, if the leader is still this very one and alive.</summary>
    public static bool KillGroup(ProcessIdentity leader)
    {
        ArgumentNullException.ThrowIfNull(leader);
        return leader.IsAlive && leader.Pid > 1 && SysKill(-leader.Pid, 9) == 0;
    }

    /// <summary>Mount points of cgroup (v1) and cgroup2 filesystems, from /proc/self/mountinfo.</summary>
    public static IReadOnlyList<string> CgroupMounts()
    {
        var mounts = new List<string>();

        // "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var separator = line.IndexOf(" - ", StringComparison.Ordinal);
            var fields = line.Split(' ');
            if (separator > 0 && fields.Length > 4 && line[(separator + 3)..].Split(' ')[0] is "cgroup" or "cgroup2")
            {
                mounts.Add(fields[4].Replace("\\040", " ", StringComparison.Ordinal));
            }
        }

        return mounts;
    }

    /// <summary>
    /// Every process in the cgroup <paramref name="relativeName"/> (relative to each hierarchy's root,
    /// e.g. <c>drover/agent-…/TASK</c>) and its descendants, in any mounted hierarchy.
    /// </summary>
    public static IReadOnlyList<ProcessIdentity> InCgroupTree(string relativeName)
    {
        var name = CheckedName(relativeName);
        var pids = new SortedSet<int>();
        foreach (var mount in CgroupMounts())
        {
            var root = Path.Combine(mount, name);
            if (!Directory.Exists(root))
            {
                continue;
            }

            IEnumerable<string> dirs;
            try
            {
                dirs = [root, .. Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories)];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // removed meanwhile
            }

            foreach (var dir in dirs)
            {
                try
                {
                    foreach (var line in File.ReadLines(Path.Combine(dir, "cgroup.procs")))
                    {
                        if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                        {
                            pids.Add(pid);
                        }
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Removed meanwhile.
                }
            }
        }

        return [.. pids.Select(ProcessIdentity.Of).OfType<ProcessIdentity>().Where(p => !IsZombie(p.Pid))];
    }

    /// <summary>
    /// SIGKILLs every process in the cgroup tree <paramref name="relativeName"/> until none is left (a
    /// process may fork while its siblings die) or <paramref name="timeout"/> passes. Returns what was
    /// still there at the end (empty on success).
    /// </summary>
    public static async Task<IReadOnlyList<ProcessIdentity>> KillCgroupTreeAsync(string relativeName, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = InCgroupTree(relativeName);
            if (left.Count == 0 || DateTime.UtcNow >= deadline)
            {
                return left;
            }

            foreach (var p in left)
            {
                if (p.IsAlive && p.Pid > 1)
                {
                    _ = SysKill(p.Pid, 9);
                }
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private static string CheckedName(string relativeName)
    {
        var name = relativeName.Trim('/');
        return name.Length == 0 || name.Split('/').Contains("..")
            ? throw new ArgumentException($"'{relativeName}' is not a cgroup below a hierarchy's root", nameof(relativeName))
            : name;
    }

    private static string[]? ReadStatFields(int pid)
    {
        try
        {
            var stat = File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"));
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 > stat.Length ? null : stat[(close + 2)..].Split(' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // DllImport, not LibraryImport: the generated marshalling would need AllowUnsafeBlocks in this project.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
