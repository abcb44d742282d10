using Drover.Core.Mesos;
using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;

namespace Drover.Master.Mesos;

/// <summary>Converts between Drover's exact <see cref="Resources"/> and Mesos' Resource lists.</summary>
internal static class MesosResources
{
    /// <summary>Mesos' resource list for <paramref name="r"/>; zero scalars are left out, as Mesos does.</summary>
    public static IReadOnlyList<MResource> ToMesos(Resources r, string? role)
    {
        var allocation = role is null ? null : new MAllocationInfo(role);
        var list = new List<MResource>(5);
        void Scalar(string name, double value)
        {
            if (value > 0)
            {
                list.Add(new MResource { Name = name, Type = "SCALAR", Scalar = new MScalar(value), Role = "*", AllocationInfo = allocation });
            }
        }

        Scalar("cpus", (double)r.Cpus);
        Scalar("mem", r.MemMiB);
        Scalar("disk", r.DiskMiB);
        Scalar("gpus", r.Gpus);
        if (!r.Ports.IsEmpty)
        {
            list.Add(new MResource
            {
                Name = "ports",
                Type = "RANGES",
                Ranges = new MRanges([.. r.Ports.Ranges.Select(p => new MRange(p.Begin, p.End))]),
                Role = "*",
                AllocationInfo = allocation,
            });
        }

        return list;
    }

    /// <summary>
    /// Sums a Mesos resource list into exact resources. Fails, naming the resource, on a kind Drover agents do
    /// not have, a negative or non-finite amount, a reservation or disk info (not supported), or a role the
    /// framework is not in (the resources of an offer are all unreserved, role "*").
    /// </summary>
    public static bool TryParse(IReadOnlyList<MResource>? list, out Resources resources, out string? error)
    {
        resources = Resources.Zero;
        error = null;
        if (list is null)
        {
            return true;
        }

        decimal cpus = 0;
        long mem = 0, disk = 0;
        var gpus = 0;
        var ports = new List<PortRange>();
        foreach (var r in list)
        {
            if (r.Reservations is not null || r.Disk is not null || (r.Role is { } role && role != "*"))
            {
                error = $"resource '{r.Name}': reservations, persistent volumes and reserved roles are not supported by Drover (only unreserved '*' resources)";
                return false;
            }

            switch (r.Name)
            {
                case "cpus" or "mem" or "disk" or "gpus":
                    if (r.Scalar is not { } s || !double.IsFinite(s.Value) || s.Value < 0)
                    {
                        error = $"resource '{r.Name}': a SCALAR with a non-negative value is required";
                        return false;
                    }

                    switch (r.Name)
                    {
                        case "cpus":
                            cpus += (decimal)s.Value;
                            break;
                        case "mem":
                            mem += (long)Math.Ceiling(s.Value);
                            break;
                        case "disk":
                            disk += (long)Math.Ceiling(s.Value);
                            break;
                        default:
                            gpus += (int)Math.Ceiling(s.Value);
                            break;
                    }

                    break;
                case "ports":
                    if (r.Ranges?.Range is not { } ranges)
                    {
                        error = "resource 'ports': RANGES are required";
                        return false;
                    }

                    foreach (var p in ranges)
                    {
                        if (p.Begin < 1 || p.End > 65535 || p.Begin > p.End)
                        {
                            error = $"resource 'ports': range [{p.Begin}-{p.End}] is not within 1-65535 or is reversed";
                            return false;
                        }

                        ports.Add(new PortRange((int)p.Begin, (int)p.End));
                    }

                    break;
                default:
                    error = $"resource '{r.Name}' is not offered by Drover agents (they offer cpus, mem, disk, gpus and ports)";
                    return false;
            }
        }

        resources = Resources.Of(cpus, mem, disk, gpus, PortRanges.FromRanges(ports));
        return true;
    }

    /// <summary>The individual ports of a range set, lowest first.</summary>
    public static ImmutableArray<int> PortList(PortRanges ports) =>
        [.. ports.Ranges.SelectMany(r => Enumerable.Range(r.Begin, r.Count))];

    public static string Describe(Resources r) => r.IsZero ? "nothing" : r.ToString();

    public static string Seconds(double s) => s.ToString("0.###", CultureInfo.InvariantCulture);
}
