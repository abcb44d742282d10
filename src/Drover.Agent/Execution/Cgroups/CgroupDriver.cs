using System.Collections.Immutable;
using System.Globalization;

namespace Drover.Agent.Execution.Cgroups;

/// <summary>Shared plumbing of the v1 and v2 drivers, and detection of which one the machine uses.</summary>
public abstract class CgroupDriver : ICgroupDriver
{
    public const string DefaultRoot = "/sys/fs/cgroup";

    private static readonly TimeSpan KillDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RemoveDeadline = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FreezeDeadline = TimeSpan.FromMilliseconds(200);

    protected CgroupDriver(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public abstract CgroupVersion Version { get; }

    public string Root { get; }

    /// <summary>
    /// v2 when <c>{root}/cgroup.controllers</c> exists (the unified hierarchy is mounted at the root);
    /// otherwise v1 with one hierarchy per controller under the root (a hybrid layout's
    /// <c>{root}/unified</c> is ignored, as it carries no controllers).
    /// </summary>
    public static ICgroupDriver Detect(string root = DefaultRoot) =>
        File.Exists(Path.Combine(root, "cgroup.controllers")) ? new CgroupV2Driver(root) : new CgroupV1Driver(root);

    public abstract Cgroup Open(string name);

    public abstract Cgroup Create(string name, CgroupLimits limits);

    public abstract bool WasOomKilled(Cgroup cgroup, bool diedBySigkill);

    /// <summary>By default the limits are simply written again (creating is idempotent).</summary>
    public virtual void UpdateLimits(Cgroup cgroup, CgroupLimits limits) => Create(cgroup.Name, limits);

    public void AddProcess(Cgroup cgroup, int pid)
    {
        var text = pid.ToString(CultureInfo.InvariantCulture);
        foreach (var procs in cgroup.ProcsFiles)
        {
            WriteFile(procs, text);
        }
    }

    public IReadOnlyList<int> ListPids(Cgroup cgroup)
    {
        if (cgroup.Directories.Length == 1)
        {
            return ReadPids(Path.Combine(cgroup.Directories[0], "cgroup.procs"));
        }

        var all = new SortedSet<int>();
        foreach (var procs in cgroup.ProcsFiles)
        {
            all.UnionWith(ReadPids(procs));
        }

        return [.. all];
    }

    public IReadOnlyList<string> ListChildren(string name)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var dir in Open(name).Directories)
        {
            try
            {
                foreach (var child in Directory.EnumerateDirectories(dir))
                {
                    names.Add(Path.GetFileName(child));
                }
            }
            catch (DirectoryNotFoundException)
            {
            }
        }

        return [.. names];
    }

    public async Task<bool> KillAllAsync(Cgroup cgroup, CancellationToken cancellationToken = default)
    {
        if (TryKernelKill(cgroup))
        {
            return await WaitEmptyAsync(cgroup, KillDeadline, cancellationToken).ConfigureAwait(false);
        }

        var deadline = Environment.TickCount64 + (long)KillDeadline.TotalMilliseconds;
        for (var round = 0; ; round++)
        {
            if (ListPids(cgroup).Count == 0)
            {
                return true;
            }

            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            // Frozen processes cannot fork, so one pass over cgroup.procs catches them all; the
            // SIGKILLs take effect when the cgroup is thawed.
            var frozen = await FreezeAsync(cgroup, cancellationToken).ConfigureAwait(false);
            try
            {
                foreach (var pid in ListPids(cgroup))
                {
                    Native.Kill(pid, Native.SigKill);
                }
            }
            finally
            {
                if (frozen)
                {
                    Thaw(cgroup);
                }
            }

            await Task.Delay(round < 10 ? 2 : 20, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<bool> RemoveAsync(Cgroup cgroup, CancellationToken cancellationToken = default)
    {
        var ok = true;
        // Deepest first is irrelevant for one level; callers remove children before parents.
        foreach (var dir in cgroup.Directories)
        {
            ok &= await RemoveDirectoryAsync(dir, cancellationToken).ConfigureAwait(false);
        }

        return ok;
    }

    /// <summary>Writes <c>cgroup.kill</c> (v2, Linux 5.14+) and returns true, or false when not supported.</summary>
    protected virtual bool TryKernelKill(Cgroup cgroup) => false;

    /// <summary>Freezes the cgroup if a freezer is available and waits briefly for it to settle.</summary>
    protected abstract Task<bool> FreezeAsync(Cgroup cgroup, CancellationToken cancellationToken);

    protected abstract void Thaw(Cgroup cgroup);

    /// <summary>Polls <paramref name="isFrozen"/> until true or a short deadline passes (a task stuck in D state may never freeze).</summary>
    protected static async Task<bool> WaitFrozenAsync(Func<bool> isFrozen, CancellationToken cancellationToken)
    {
        var deadline = Environment.TickCount64 + (long)FreezeDeadline.TotalMilliseconds;
        while (!isFrozen())
        {
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    private async Task<bool> WaitEmptyAsync(Cgroup cgroup, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        for (var round = 0; ListPids(cgroup).Count > 0; round++)
        {
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            await Task.Delay(round < 10 ? 2 : 20, cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    private static async Task<bool> RemoveDirectoryAsync(string dir, CancellationToken cancellationToken)
    {
        var deadline = Environment.TickCount64 + (long)RemoveDeadline.TotalMilliseconds;
        for (var round = 0; ; round++)
        {
            try
            {
                // Non-recursive Directory.Delete is a plain rmdir(2), which is what cgroupfs wants: the
                // control files in the directory cannot (and need not) be unlinked.
                Directory.Delete(dir, recursive: false);
                return true;
            }
            catch (DirectoryNotFoundException)
            {
                return true;
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                // EBUSY: the last process is still exiting or a child cgroup is being removed.
                await Task.Delay(round < 10 ? 5 : 50, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException)
            {
                return false;
            }
        }
    }

    internal static void WriteFile(string path, string text)
    {
        // One write(2) per value: cgroupfs parses each write separately. O_TRUNC as runc does (a no-op
        // on cgroupfs, but it keeps a fake tree in tests exact).
        // A bare handle and one positional write: cheaper than a FileStream, and this runs for every limit of every launch.
        using var handle = File.OpenHandle(path, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite);
        RandomAccess.Write(handle, System.Text.Encoding.ASCII.GetBytes(text), 0);
    }

    /// <summary>Writes a file that a test's fake tree may lack: creates it there, but never creates files in cgroupfs.</summary>
    internal static void WriteOrCreate(string path, string text)
    {
        if (File.Exists(path))
        {
            WriteFile(path, text);
        }
        else
        {
            File.WriteAllText(path, text);
        }
    }

    internal static void WriteIfExists(string path, string text)
    {
        if (File.Exists(path))
        {
            WriteFile(path, text);
        }
    }

    internal static string? ReadFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The value of a <c>key value</c> line (memory.events, memory.oom_control), or null.</summary>
    internal static long? ReadKeyedValue(string path, string key)
    {
        var text = ReadFile(path);
        if (text is null)
        {
            return null;
        }

        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0 && line.AsSpan(0, space).SequenceEqual(key)
                && long.TryParse(line.AsSpan(space + 1).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }

        return null;
    }

    internal static long? ReadLong(string path)
    {
        var text = ReadFile(path);
        return text is not null && long.TryParse(text.AsSpan().Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;
    }

    private static ImmutableArray<int> ReadPids(string procsFile)
    {
        var text = ReadFile(procsFile);
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        var pids = ImmutableArray.CreateBuilder<int>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(line, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) && pid > 1)
            {
                pids.Add(pid);
            }
        }

        return pids.ToImmutable();
    }

    /// <summary>Splits and validates a relative cgroup name (letters, digits, '_', '-', '.'; no '..').</summary>
    internal static string Normalize(string name)
    {
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts.Any(p => !Drover.Core.Ids.IsValidName(p)))
        {
            throw new ArgumentException($"'{name}' is not a valid relative cgroup name", nameof(name));
        }

        return string.Join('/', parts);
    }
}
