using System.Globalization;
using System.Net;
using Drover.Core;

namespace Drover.Agent.Discovery;

/// <summary>Works out what this machine can offer to tasks, keeping a reserve for the OS and the agent.</summary>
public static class ResourceDiscovery
{
    public const int PortsBegin = 31000;
    public const int PortsEnd = 32000;

    private const long MiB = 1024 * 1024;

    /// <summary>cpus, mem, disk and ports[31000-32000] this agent offers.</summary>
    /// <param name="workDir">Where sandboxes live: disk is measured on its filesystem.</param>
    public static Resources Discover(string workDir) => new()
    {
        MilliCpus = OfferedMilliCpus(DetectMilliCpus()),
        MemMiB = OfferedMemMiB(DetectMemMiB()),
        DiskMiB = OfferedDiskMiB(DetectFreeDiskMiB(workDir)),
        Ports = PortRanges.Range(PortsBegin, PortsEnd),
    };

    /// <summary>The machine's host name as other machines should know it.</summary>
    public static string Hostname()
    {
        try
        {
            var name = Dns.GetHostName();
            return string.IsNullOrWhiteSpace(name) ? Environment.MachineName : name;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return Environment.MachineName;
        }
    }

    /// <summary>No reserve on 1-2 cores (there is nothing to spare); otherwise 10%, at most one CPU. Never below one CPU.</summary>
    public static long OfferedMilliCpus(long milliCpus)
    {
        var reserve = milliCpus <= 2000 ? 0 : Math.Min(1000, milliCpus / 10);
        return Math.Max(Math.Min(1000, milliCpus), milliCpus - reserve);
    }

    /// <summary>Reserve max(256 MiB, 10%), but always offer at least half the memory.</summary>
    public static long OfferedMemMiB(long memMiB) => Math.Max(memMiB / 2, memMiB - Math.Max(256, memMiB / 10));

    /// <summary>Reserve 10% of the free space, at most 5 GiB.</summary>
    public static long OfferedDiskMiB(long freeMiB) => Math.Max(0, freeMiB - Math.Min(5 * 1024, freeMiB / 10));

    /// <summary>Processors (which .NET already bounds by affinity), further bounded by our cgroup's CPU quota.</summary>
    internal static long DetectMilliCpus()
    {
        var milli = Environment.ProcessorCount * 1000L;
        if (ReadCpuQuotaMilli() is { } quota && quota > 0)
        {
            milli = Math.Min(milli, quota);
        }

        return Math.Max(1000, milli);
    }

    internal static long DetectMemMiB()
    {
        long? total = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    var kb = line["MemTotal:".Length..].Trim().Split(' ')[0];
                    total = long.Parse(kb, CultureInfo.InvariantCulture) / 1024;
                    break;
                }
            }
        }
        catch (IOException)
        {
        }

        // The GC knows the container memory limit; use it when /proc/meminfo is unavailable or larger.
        var gcLimit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / MiB;
        return total is { } t && t > 0 ? (gcLimit > 0 ? Math.Min(t, gcLimit) : t) : gcLimit;
    }

    internal static long DetectFreeDiskMiB(string workDir)
    {
        try
        {
            var dir = Path.GetFullPath(workDir);
            while (!Directory.Exists(dir) && Path.GetDirectoryName(dir) is { } parent)
            {
                dir = parent;
            }

            // On Unix DriveInfo statvfs()es the path it is given, so any directory works.
            return new DriveInfo(dir).AvailableFreeSpace / MiB;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return 0;
        }
    }

    /// <summary>The CPU quota of the cgroup we run in, in milli-CPUs (v2 cpu.max or v1 cfs quota/period), or null.</summary>
    private static long? ReadCpuQuotaMilli()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/cgroup"))
            {
                var parts = line.Split(':', 3);
                if (parts.Length != 3)
                {
                    continue;
                }

                var path = parts[2].TrimStart('/');
                if (parts[0] == "0" && parts[1].Length == 0)
                {
                    var max = ReadText(Path.Combine("/sys/fs/cgroup", path, "cpu.max"))?.Split(' ');
                    if (max is [var q, var p] && q != "max" && long.TryParse(q, CultureInfo.InvariantCulture, out var quota)
                        && long.TryParse(p, CultureInfo.InvariantCulture, out var period) && period > 0)
                    {
                        return quota * 1000 / period;
                    }
                }
                else if (parts[1].Split(',').Contains("cpu"))
                {
                    var dir = Directory.Exists("/sys/fs/cgroup/cpu") ? "/sys/fs/cgroup/cpu" : "/sys/fs/cgroup/cpu,cpuacct";
                    var quotaText = ReadText(Path.Combine(dir, path, "cpu.cfs_quota_us"));
                    var periodText = ReadText(Path.Combine(dir, path, "cpu.cfs_period_us"));
                    if (long.TryParse(quotaText, CultureInfo.InvariantCulture, out var quota) && quota > 0
                        && long.TryParse(periodText, CultureInfo.InvariantCulture, out var period) && period > 0)
                    {
                        return quota * 1000 / period;
                    }
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private static string? ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
