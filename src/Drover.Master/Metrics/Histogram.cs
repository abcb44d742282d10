using System.Globalization;
using System.Text;

namespace Drover.Master.Metrics;

/// <summary>
/// A Prometheus histogram: cumulative buckets, sum and count. Lock-free recording (Interlocked),
/// so it can sit on hot paths. Prometheus client libraries are not available here, and the text
/// exposition format is small and stable, so Drover writes it itself.
/// </summary>
public sealed class Histogram(double[] upperBounds)
{
    public static readonly double[] LatencySeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly long[] _buckets = new long[upperBounds.Length + 1];
    private long _count;
    private long _sumMicros;

    public void Observe(double seconds)
    {
        var i = 0;
        while (i < upperBounds.Length && seconds > upperBounds[i])
        {
            i++;
        }

        Interlocked.Increment(ref _buckets[i]);
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _sumMicros, (long)(seconds * 1_000_000));
    }

    public long Count => Interlocked.Read(ref _count);

    /// <summary>Appends the series lines (no HELP/TYPE) with the given label text, e.g. <c>route="/x"</c>.</summary>
    public void Write(StringBuilder sb, string name, string labels)
    {
        var sep = labels.Length == 0 ? "" : ",";
        long cumulative = 0;
        for (var i = 0; i < upperBounds.Length; i++)
        {
            cumulative += Interlocked.Read(ref _buckets[i]);
            sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}{sep}le=\"{upperBounds[i].ToString(CultureInfo.InvariantCulture)}\"}} {cumulative}\n");
        }

        cumulative += Interlocked.Read(ref _buckets[^1]);
        sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}\n");
        var braces = labels.Length == 0 ? "" : $"{{{labels}}}";
        sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{braces} {(Interlocked.Read(ref _sumMicros) / 1e6).ToString(CultureInfo.InvariantCulture)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_count{braces} {cumulative}\n");
    }
}
