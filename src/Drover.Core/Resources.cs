using System.Globalization;
using System.Text;

namespace Drover.Core;

/// <summary>
/// A bundle of resources. CPU is held as integer milli-CPUs and memory/disk as MiB so that
/// adding and subtracting thousands of tasks never drifts the way floating point would.
/// Immutable; all operations return new values.
/// </summary>
public sealed record Resources
{
    public static readonly Resources Zero = new();

    /// <summary>Upper bounds that keep every sum far from overflow (a cluster of 100,000 such agents still fits a long).</summary>
    public const decimal MaxCpus = 1_000_000;

    public const long MaxMiB = 1L << 40;

    public long MilliCpus { get; init; }

    public long MemMiB { get; init; }

    public long DiskMiB { get; init; }

    public int Gpus { get; init; }

    public PortRanges Ports { get; init => field = value ?? PortRanges.Empty; } = PortRanges.Empty;

    /// <summary>CPUs as a decimal, exact for any milli value (1500 → 1.5).</summary>
    public decimal Cpus => MilliCpus / 1000m;

    public bool IsZero => MilliCpus == 0 && MemMiB == 0 && DiskMiB == 0 && Gpus == 0 && Ports.IsEmpty;

    public static Resources Of(decimal cpus = 0, long memMiB = 0, long diskMiB = 0, int gpus = 0, PortRanges? ports = null) => new()
    {
        MilliCpus = ToMilli(cpus),
        MemMiB = memMiB,
        DiskMiB = diskMiB,
        Gpus = gpus,
        Ports = ports ?? PortRanges.Empty,
    };

    /// <summary>Converts CPUs to milli-CPUs; fractions below one milli-CPU round up so a request never shrinks to zero.</summary>
    public static long ToMilli(decimal cpus) => (long)Math.Ceiling(cpus * 1000m);

    public Resources Add(Resources other) => new()
    {
        MilliCpus = MilliCpus + other.MilliCpus,
        MemMiB = MemMiB + other.MemMiB,
        DiskMiB = DiskMiB + other.DiskMiB,
        Gpus = Gpus + other.Gpus,
        Ports = Ports.Add(other.Ports),
    };

    /// <summary>
    /// Subtracts <paramref name="other"/>. Callers check <see cref="Contains"/> first: subtracting more
    /// than is present is a bookkeeping bug, so it throws rather than going negative silently.
    /// </summary>
    public Resources Subtract(Resources other)
    {
        if (!Contains(other))
        {
            throw new InvalidOperationException($"cannot subtract {other} from {this}");
        }

        return SubtractUnchecked(other);
    }

    /// <summary>Subtracts, clamping scalars at zero (used for "free = total - used" on display paths).</summary>
    public Resources SubtractClamped(Resources other) => new()
    {
        MilliCpus = Math.Max(0, MilliCpus - other.MilliCpus),
        MemMiB = Math.Max(0, MemMiB - other.MemMiB),
        DiskMiB = Math.Max(0, DiskMiB - other.DiskMiB),
        Gpus = Math.Max(0, Gpus - other.Gpus),
        Ports = Ports.Subtract(other.Ports),
    };

    private Resources SubtractUnchecked(Resources other) => new()
    {
        MilliCpus = MilliCpus - other.MilliCpus,
        MemMiB = MemMiB - other.MemMiB,
        DiskMiB = DiskMiB - other.DiskMiB,
        Gpus = Gpus - other.Gpus,
        Ports = Ports.Subtract(other.Ports),
    };

    /// <summary>True when every scalar of <paramref name="other"/> fits and every port of it is present.</summary>
    public bool Contains(Resources other) =>
        MilliCpus >= other.MilliCpus
        && MemMiB >= other.MemMiB
        && DiskMiB >= other.DiskMiB
        && Gpus >= other.Gpus
        && Ports.Contains(other.Ports);

    /// <summary>Mesos text form, e.g. <c>cpus:4;mem:8192;disk:0;ports:[31000-32000]</c>. Zero gpus and empty ports are omitted.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"cpus:{FormatCpus(MilliCpus)};mem:{MemMiB};disk:{DiskMiB}");
        if (Gpus != 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $";gpus:{Gpus}");
        }

        if (!Ports.IsEmpty)
        {
            sb.Append(";ports:").Append(Ports);
        }

        return sb.ToString();
    }

    public static string FormatCpus(long milliCpus) => (milliCpus / 1000m).ToString("0.###", CultureInfo.InvariantCulture);

    public static Resources Parse(string text) =>
        TryParse(text, out var r, out var error) ? r : throw new FormatException(error);

    /// <summary>
    /// Parses the Mesos text form: <c>name(role):value;…</c> with names cpus, mem, disk, gpus, ports.
    /// The role in parentheses is accepted and ignored (Drover has one role for now).
    /// </summary>
    public static bool TryParse(string text, out Resources resources, out string? error)
    {
        resources = Zero;
        error = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var result = new Resources();
        foreach (var item in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                error = $"'{item}' is not of the form name:value";
                return false;
            }

            var name = item[..colon].Trim();
            var paren = name.IndexOf('(', StringComparison.Ordinal);
            if (paren >= 0)
            {
                name = name[..paren];
            }

            var value = item[(colon + 1)..].Trim();
            if (!seen.Add(name))
            {
                error = $"resource '{name}' is given twice";
                return false;
            }

            switch (name)
            {
                case "cpus":
                    if (!decimal.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cpus))
                    {
                        error = $"cpus: '{value}' is not a non-negative number";
                        return false;
                    }

                    if (cpus > MaxCpus)
                    {
                        error = $"cpus: '{value}' is larger than {MaxCpus}";
                        return false;
                    }

                    result = result with { MilliCpus = ToMilli(cpus) };
                    break;
                case "mem":
                case "disk":
                    if (!decimal.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var mib))
                    {
                        error = $"{name}: '{value}' is not a non-negative number of MiB";
                        return false;
                    }

                    if (mib > MaxMiB)
                    {
                        error = $"{name}: '{value}' is larger than {MaxMiB} MiB";
                        return false;
                    }

                    var whole = (long)Math.Floor(mib);
                    result = name == "mem" ? result with { MemMiB = whole } : result with { DiskMiB = whole };
                    break;
                case "gpus":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var gpus))
                    {
                        error = $"gpus: '{value}' is not a non-negative whole number";
                        return false;
                    }

                    result = result with { Gpus = gpus };
                    break;
                case "ports":
                    if (!PortRanges.TryParse(value, out var ports, out var portError))
                    {
                        error = $"ports: {portError}";
                        return false;
                    }

                    result = result with { Ports = ports };
                    break;
                default:
                    error = $"unknown resource '{name}' (known: cpus, mem, disk, gpus, ports)";
                    return false;
            }
        }

        resources = result;
        return true;
    }
}
