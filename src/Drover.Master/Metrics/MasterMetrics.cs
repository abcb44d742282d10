using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Drover.Core;
using Drover.Master.State;

namespace Drover.Master.Metrics;

/// <summary>
/// The master's metrics, rendered in the Prometheus text format at <c>GET /metrics</c>.
/// Gauges are read from <see cref="ClusterState"/> at scrape time; latencies are histograms.
/// Thread-safe.
/// </summary>
internal sealed class MasterMetrics(ClusterState state)
{
    private readonly ConcurrentDictionary<(string Method, string Route, int Status), Histogram> _http = new();
    private long _placementsTotal;
    private long _placementPasses;

    public Histogram PlacementLatency { get; } = new(Histogram.LatencySeconds);

    public void RecordPlacementPass(double seconds, int placed)
    {
        PlacementLatency.Observe(seconds);
        Interlocked.Increment(ref _placementPasses);
        Interlocked.Add(ref _placementsTotal, placed);
    }

    public void RecordHttp(string method, string route, int status, double seconds) =>
        _http.GetOrAdd((method, route, status), _ => new Histogram(Histogram.LatencySeconds)).Observe(seconds);

    public string Render()
    {
        var sb = new StringBuilder(4096);
        var (active, unreachable, total, used) = state.AgentTotals();
        Gauge(sb, "drover_agents", "Registered agents by status.", [("status=\"active\"", active), ("status=\"unreachable\"", unreachable)]);

        sb.Append("# HELP drover_tasks Tasks known to the master by state (completed tasks are bounded by max_completed_tasks).\n# TYPE drover_tasks gauge\n");
        foreach (var (s, n) in state.TaskCountsByState().OrderBy(kv => kv.Key))
        {
            sb.Append(CultureInfo.InvariantCulture, $"drover_tasks{{state=\"{s.WireName()}\"}} {n}\n");
        }

        Gauge(sb, "drover_tasks_pending", "Tasks waiting for placement.", [("", state.PendingCount)]);
        var (unknown, unknownKilled, strayKilled, adopted) = state.ReconciliationCounts();
        Gauge(sb, "drover_unknown_tasks", "Tasks agents run that the master has no record of, waiting out --unknown-task-grace.", [("", unknown)]);
        sb.Append("# HELP drover_reconciliation_kills_total Tasks the master killed on agents that ran them against its records: unknown past the grace, or recorded ended or on another agent (stray).\n# TYPE drover_reconciliation_kills_total counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"drover_reconciliation_kills_total{{reason=\"unknown\"}} {unknownKilled}\ndrover_reconciliation_kills_total{{reason=\"stray\"}} {strayKilled}\n");
        sb.Append("# HELP drover_tasks_adopted_total Task records rebuilt from agents' reports (--recover-from-agents).\n# TYPE drover_tasks_adopted_total counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"drover_tasks_adopted_total {adopted}\n");
        Resource(sb, "drover_cluster_cpus", "CPUs of active agents.", total.Cpus, used.Cpus);
        Resource(sb, "drover_cluster_mem_mebibytes", "Memory of active agents in MiB.", total.MemMiB, used.MemMiB);
        Resource(sb, "drover_cluster_disk_mebibytes", "Disk of active agents in MiB.", total.DiskMiB, used.DiskMiB);
        Resource(sb, "drover_cluster_gpus", "GPUs of active agents.", total.Gpus, used.Gpus);

        sb.Append("# HELP drover_placements_total Tasks placed.\n# TYPE drover_placements_total counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"drover_placements_total {Interlocked.Read(ref _placementsTotal)}\n");
        sb.Append("# HELP drover_placement_pass_seconds Duration of one placement pass (snapshot, filter, score, apply).\n# TYPE drover_placement_pass_seconds histogram\n");
        PlacementLatency.Write(sb, "drover_placement_pass_seconds", "");

        // The runtime's own view: at a million tasks the heap is gigabytes, and collections that stop the
        // process show up as API latency and missed heartbeats.
        sb.Append("# HELP dotnet_gc_pause_seconds_total Time the master was paused by garbage collections.\n# TYPE dotnet_gc_pause_seconds_total counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"dotnet_gc_pause_seconds_total {GC.GetTotalPauseDuration().TotalSeconds:F3}\n");
        Gauge(sb, "dotnet_gc_collections", "Garbage collections by generation since start.",
            [("generation=\"0\"", GC.CollectionCount(0)), ("generation=\"1\"", GC.CollectionCount(1)), ("generation=\"2\"", GC.CollectionCount(2))]);
        Gauge(sb, "dotnet_gc_heap_bytes", "Managed heap size after the last collection.", [("", GC.GetGCMemoryInfo().HeapSizeBytes)]);

        sb.Append("# HELP drover_http_request_duration_seconds HTTP request durations by route.\n# TYPE drover_http_request_duration_seconds histogram\n");
        foreach (var ((method, route, status), h) in _http.OrderBy(kv => kv.Key.Route, StringComparer.Ordinal).ThenBy(kv => kv.Key.Method, StringComparer.Ordinal))
        {
            h.Write(sb, "drover_http_request_duration_seconds", $"method=\"{method}\",route=\"{Escape(route)}\",status=\"{status}\"");
        }

        return sb.ToString();
    }

    private static void Gauge(StringBuilder sb, string name, string help, (string Labels, long Value)[] series)
    {
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n");
        foreach (var (labels, value) in series)
        {
            sb.Append(name);
            if (labels.Length > 0)
            {
                sb.Append('{').Append(labels).Append('}');
            }

            sb.Append(CultureInfo.InvariantCulture, $" {value}\n");
        }
    }

    private static void Resource(StringBuilder sb, string name, string help, decimal total, decimal used)
    {
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}{{kind=\"total\"}} {total}\n{name}{{kind=\"used\"}} {used}\n");
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
