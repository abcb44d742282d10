using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Serialization;

namespace Drover.Core.Health;

/// <summary>
/// A readiness check the agent runs against a task that has just started (Marathon's <c>readinessChecks</c>):
/// <c>GET {protocol}://127.0.0.1:{port}{path}</c> every <see cref="Interval"/>, each bounded by
/// <see cref="Timeout"/>, until the answer's status code is one of <see cref="HttpStatusCodesForReady"/>.
/// Then the task is ready (a TASK_RUNNING update with <see cref="TaskStatus.Ready"/> = true) and checking
/// stops. Failures never kill a task: readiness only gates deployments.
/// </summary>
/// <remarks>
/// Durations travel as (fractional) seconds: <c>intervalSeconds</c>, <c>timeoutSeconds</c>. Absent or
/// out-of-range values mean Marathon's defaults (30 s, 10 s, <c>[200]</c>, path <c>/</c>, HTTP).
/// </remarks>
public sealed record TaskReadinessCheck
{
    public const string DefaultName = "readinessCheck";
    public const string DefaultPath = "/";
    public const int DefaultStatusCode = 200;
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The reason of the TASK_RUNNING update that reports readiness (Mesos' reason for check status changes).</summary>
    public const string ReadyReason = "REASON_TASK_CHECK_STATUS_UPDATED";

    public string Name { get; init => field = string.IsNullOrEmpty(value) ? DefaultName : value; } = DefaultName;

    /// <summary><see cref="HealthCheckProtocol.Http"/> (default) or <see cref="HealthCheckProtocol.Https"/> (certificate not verified).</summary>
    public HealthCheckProtocol Protocol { get; init; }

    /// <summary>Always starts with <c>/</c>; defaults to <c>/</c>.</summary>
    public string Path { get; init => field = string.IsNullOrEmpty(value) ? DefaultPath : value[0] == '/' ? value : "/" + value; } = DefaultPath;

    /// <summary>Index into the task's assigned ports (PORT0…): the port Marathon's <c>portName</c> names.</summary>
    public int PortIndex { get; init; }

    /// <summary>Between the end of one check and the start of the next (default 30 s).</summary>
    [JsonIgnore]
    public TimeSpan Interval { get; init => field = Normalize(value, DefaultInterval); } = DefaultInterval;

    /// <summary>A check that has not answered after this long failed (default 10 s).</summary>
    [JsonIgnore]
    public TimeSpan Timeout { get; init => field = Normalize(value, DefaultTimeout); } = DefaultTimeout;

    /// <summary>Status codes that mean ready (default <c>[200]</c>).</summary>
    public ImmutableArray<int> HttpStatusCodesForReady { get; init => field = value.IsDefaultOrEmpty ? [DefaultStatusCode] : value; } = [DefaultStatusCode];

    // Nullable wire forms: an absent field means the default (see HealthCheck).
    [JsonInclude]
    [JsonPropertyName("intervalSeconds")]
    internal double? IntervalSeconds
    {
        get => Interval.TotalSeconds;
        init => Interval = value is { } s && double.IsFinite(s) && s > 0 ? TimeSpan.FromSeconds(Math.Min(s, HealthCheck.MaxDuration.TotalSeconds)) : DefaultInterval;
    }

    [JsonInclude]
    [JsonPropertyName("timeoutSeconds")]
    internal double? TimeoutSeconds
    {
        get => Timeout.TotalSeconds;
        init => Timeout = value is { } s && double.IsFinite(s) && s > 0 ? TimeSpan.FromSeconds(Math.Min(s, HealthCheck.MaxDuration.TotalSeconds)) : DefaultTimeout;
    }

    /// <summary>Whether an answer with <paramref name="statusCode"/> means ready.</summary>
    public bool IsReady(int statusCode) => HttpStatusCodesForReady.Contains(statusCode);

    /// <summary>What is wrong with this check for a task with <paramref name="portCount"/> ports, or null when it is usable.</summary>
    public string? Validate(int portCount)
    {
        if (Protocol is not (HealthCheckProtocol.Http or HealthCheckProtocol.Https))
        {
            return "protocol must be HTTP or HTTPS";
        }

        if (PortIndex < 0 || PortIndex >= portCount)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"portIndex {PortIndex} is out of range: the task has {portCount} port{(portCount == 1 ? "" : "s")}");
        }

        return Uri.TryCreate("http://127.0.0.1:1" + Path, UriKind.Absolute, out _) ? null : $"path '{Path}' is not a valid URL path";
    }

    private static TimeSpan Normalize(TimeSpan value, TimeSpan fallback) =>
        value <= TimeSpan.Zero ? fallback : value > HealthCheck.MaxDuration ? HealthCheck.MaxDuration : value;
}

/// <summary>
/// The state of one of a task's health checks (in <see cref="TaskSpec.HealthChecks"/> order) when the agent
/// reported the task's health: Marathon's <c>healthCheckResults</c> entries.
/// </summary>
public sealed record HealthCheckResult
{
    /// <summary>Whether the check's latest counted result was a pass.</summary>
    public bool Alive { get; init; }

    /// <summary>Counted failures in a row (failures in the grace period are not counted).</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>What the latest failure was, in words (e.g. <c>HTTP 500</c>); null when it has not failed.</summary>
    public string? LastFailureCause { get; init; }
}
