using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace Drover.Core;

/// <summary>An inclusive range of TCP/UDP ports, e.g. 31000-32000.</summary>
public readonly record struct PortRange(int Begin, int End)
{
    public int Count => End - Begin + 1;

    public bool Contains(int port) => port >= Begin && port <= End;

    public override string ToString() => Begin == End
        ? Begin.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{Begin}-{End}");
}

/// <summary>
/// An immutable set of ports kept as sorted, non-overlapping, non-adjacent ranges.
/// Set operations are exact and allocate only the result. Value equality.
/// </summary>
public sealed class PortRanges : IEquatable<PortRanges>
{
    public static readonly PortRanges Empty = new(ImmutableArray<PortRange>.Empty);

    private PortRanges(ImmutableArray<PortRange> ranges)
    {
        Ranges = ranges;
        var count = 0;
        foreach (var r in ranges)
        {
            count += r.Count;
        }

        Count = count;
    }

    public ImmutableArray<PortRange> Ranges { get; }

    /// <summary>Number of ports in the set.</summary>
    public int Count { get; }

    public bool IsEmpty => Count == 0;

    public static PortRanges Of(params int[] ports) => FromRanges(ports.Select(p => new PortRange(p, p)));

    public static PortRanges Range(int begin, int end) => FromRanges([new PortRange(begin, end)]);

    /// <summary>Normalises any ranges (unsorted, overlapping) into canonical form.</summary>
    public static PortRanges FromRanges(IEnumerable<PortRange> ranges)
    {
        var sorted = ranges.Where(r => r.End >= r.Begin).OrderBy(r => r.Begin).ToList();
        if (sorted.Count == 0)
        {
            return Empty;
        }

        var merged = ImmutableArray.CreateBuilder<PortRange>(sorted.Count);
        var current = sorted[0];
        for (var i = 1; i < sorted.Count; i++)
        {
            var next = sorted[i];
            if (next.Begin <= current.End + 1)
            {
                current = current with { End = Math.Max(current.End, next.End) };
            }
            else
            {
                merged.Add(current);
                current = next;
            }
        }

        merged.Add(current);
        return new PortRanges(merged.ToImmutable());
    }

    public bool Contains(int port)
    {
        // Binary search: agents can carry thousands of fragmented ranges.
        int lo = 0, hi = Ranges.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var r = Ranges[mid];
            if (port < r.Begin)
            {
                hi = mid - 1;
            }
            else if (port > r.End)
            {
                lo = mid + 1;
            }
            else
            {
                return true;
            }
        }

        return false;
    }

    public bool Contains(PortRanges other)
    {
        foreach (var r in other.Ranges)
        {
            if (!ContainsRange(r))
            {
                return false;
            }
        }

        return true;
    }

    private bool ContainsRange(PortRange range)
    {
        foreach (var r in Ranges)
        {
            if (range.Begin >= r.Begin && range.End <= r.End)
            {
                return true;
            }
        }

        return false;
    }

    public PortRanges Add(PortRanges other) => other.IsEmpty ? this : IsEmpty ? other : FromRanges(Ranges.Concat(other.Ranges));

    /// <summary>Removes every port of <paramref name="other"/> that is in this set.</summary>
    public PortRanges Subtract(PortRanges other)
    {
        if (other.IsEmpty || IsEmpty)
        {
            return this;
        }

        var result = new List<PortRange>(Ranges.Length + other.Ranges.Length);
        foreach (var r in Ranges)
        {
            var pieces = new List<PortRange> { r };
            foreach (var cut in other.Ranges)
            {
                if (cut.End < r.Begin || cut.Begin > r.End)
                {
                    continue;
                }

                var next = new List<PortRange>(pieces.Count + 1);
                foreach (var p in pieces)
                {
                    if (cut.End < p.Begin || cut.Begin > p.End)
                    {
                        next.Add(p);
                        continue;
                    }

                    if (cut.Begin > p.Begin)
                    {
                        next.Add(new PortRange(p.Begin, cut.Begin - 1));
                    }

                    if (cut.End < p.End)
                    {
                        next.Add(new PortRange(cut.End + 1, p.End));
                    }
                }

                pieces = next;
            }

            result.AddRange(pieces);
        }

        return FromRanges(result);
    }

    /// <summary>The lowest <paramref name="count"/> ports of the set, or null when it has fewer.</summary>
    public int[]? TakeLowest(int count)
    {
        if (count > Count)
        {
            return null;
        }

        var ports = new int[count];
        var i = 0;
        foreach (var r in Ranges)
        {
            for (var p = r.Begin; p <= r.End && i < count; p++)
            {
                ports[i++] = p;
            }

            if (i == count)
            {
                break;
            }
        }

        return ports;
    }

    /// <summary>Mesos text form: <c>[31000-32000, 33000-33010]</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("[");
        for (var i = 0; i < Ranges.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            var r = Ranges[i];
            sb.Append(CultureInfo.InvariantCulture, $"{r.Begin}-{r.End}");
        }

        return sb.Append(']').ToString();
    }

    /// <summary>Parses <c>[31000-32000, 8080]</c> or <c>31000-32000</c>.</summary>
    public static bool TryParse(string text, out PortRanges ranges, out string? error)
    {
        ranges = Empty;
        error = null;
        var body = text.Trim();
        if (body.StartsWith('[') && body.EndsWith(']'))
        {
            body = body[1..^1];
        }
        else if (body.StartsWith('[') || body.EndsWith(']'))
        {
            error = "unbalanced brackets";
            return false;
        }

        var list = new List<PortRange>();
        foreach (var part in body.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-', StringComparison.Ordinal);
            var lo = dash < 0 ? part : part[..dash];
            var hi = dash < 0 ? part : part[(dash + 1)..];
            if (!int.TryParse(lo.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var b)
                || !int.TryParse(hi.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var e))
            {
                error = $"'{part}' is not a port or port range";
                return false;
            }

            if (b < 1 || e > 65535 || e < b)
            {
                error = $"'{part}' is outside 1-65535 or reversed";
                return false;
            }

            list.Add(new PortRange(b, e));
        }

        ranges = FromRanges(list);
        return true;
    }

    public bool Equals(PortRanges? other) => other is not null && Ranges.AsSpan().SequenceEqual(other.Ranges.AsSpan());

    public override bool Equals(object? obj) => Equals(obj as PortRanges);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var r in Ranges)
        {
            hash.Add(r);
        }

        return hash.ToHashCode();
    }
}
