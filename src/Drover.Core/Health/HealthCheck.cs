using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Core.Health;

/// <summary>
/// How a health check probes its task. Every protocol runs on the agent, next to the task (Mesos-native
/// health checks, Marathon's <c>MESOS_HTTP</c>, <c>MESOS_HTTPS</c>, <c>MESOS_TCP</c> and <c>COMMAND</c>).
/// On the wire: <c>"HTTP"</c>, <c>"HTTPS"</c>, <c>"TCP"</c>, <c>"COMMAND"</c>; Marathon's <c>MESOS_</c>
/// names are accepted too.
/// </summary>
[JsonConverter(typeof(HealthCheckProtocolJsonConverter))]
public enum HealthCheckProtocol
{
    /// <summary><c>GET http://127.0.0.1:{port}{path}</c>; healthy on 200–399.</summary>
    Http,

    /// <summary>As <see cref="Http"/> over TLS; the certificate is not verified (as Mesos' <c>curl -k</c>).</summary>
    Https,

    /// <summary>Healthy when a TCP connection to <c>127.0.0.1:{port}</c> is established.</summary>
    Tcp,

    /// <summary><c>/bin/sh -c command</c> in the task's sandbox and environment; healthy on exit status 0.</summary>
    Command,
}

/// <summary>
/// A health check the agent runs against a running task, with Marathon's field names and defaults.
/// Durations travel as (fractional) seconds: <c>gracePeriodSeconds</c>, <c>intervalSeconds</c>,
/// <c>timeoutSeconds</c>, <c>delaySeconds</c>. An absent field means its documented default.
/// </summary>
/// <remarks>
/// Out-of-range values are normalised rather than rejected, as <see cref="TaskSpec.KillGracePeriod"/> is:
/// a negative duration (or a non-positive interval/timeout) means the default, and durations longer than
/// <see cref="MaxDuration"/> are clamped to it. Port and command problems are reported by <see cref="Validate"/>.
/// </remarks>
public sealed record HealthCheck
{
    public static readonly TimeSpan DefaultGracePeriod = TimeSpan.FromSeconds(300);
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan DefaultDelay = TimeSpan.FromSeconds(15);
    public static readonly TimeSpan MaxDuration = TimeSpan.FromDays(365);
    public const int DefaultMaxConsecutiveFailures = 3;
    public const string DefaultPath = "/";

    /// <summary>Defaults to <see cref="HealthCheckProtocol.Http"/>, as in Marathon.</summary>
    public HealthCheckProtocol Protocol { get; init; }

    /// <summary>Index into the task's assigned ports (PORT0…); 0 when neither this nor <see cref="Port"/> is set.</summary>
    public int? PortIndex { get; init; }

    /// <summary>A fixed port to probe; wins over <see cref="PortIndex"/>.</summary>
    public int? Port { get; init; }

    /// <summary>HTTP(S) path, always starting with <c>/</c>; defaults to <c>/</c>.</summary>
    public string Path { get; init => field = NormalizePath(value); } = DefaultPath;

    /// <summary>Shell command for <see cref="HealthCheckProtocol.Command"/>.</summary>
    public string? Command { get; init; }

    /// <summary>
    /// Failures are ignored for this long after the task starts, until the first success (default 300 s).
    /// It includes <see cref="Delay"/>.
    /// </summary>
    [JsonIgnore]
    public TimeSpan GracePeriod { get; init => field = Normalize(value, DefaultGracePeriod, positive: false); } = DefaultGracePeriod;

    /// <summary>Between the end of one check and the start of the next (default 60 s).</summary>
    [JsonIgnore]
    public TimeSpan Interval { get; init => field = Normalize(value, DefaultInterval, positive: true); } = DefaultInterval;

    /// <summary>A check that has not answered after this long failed (default 20 s).</summary>
    [JsonIgnore]
    public TimeSpan Timeout { get; init => field = Normalize(value, DefaultTimeout, positive: true); } = DefaultTimeout;

    /// <summary>Before the first check (default 15 s).</summary>
    [JsonIgnore]
    public TimeSpan Delay { get; init => field = Normalize(value, DefaultDelay, positive: false); } = DefaultDelay;

    /// <summary>Consecutive failures (counted once the grace period is over or the task was healthy) after which the task is killed; 0 = never kill. Default 3.</summary>
    [JsonIgnore]
    public int MaxConsecutiveFailures { get; init => field = value >= 0 ? value : DefaultMaxConsecutiveFailures; } = DefaultMaxConsecutiveFailures;

    /// <summary>HTTP(S) only: a 1xx answer is discarded (health unchanged) instead of counting as a failure.</summary>
    public bool IgnoreHttp1xx { get; init; }

    // Wire forms. Nullable so an absent field means the default: the source generator passes every
    // init-only property to the object initializer, absent ones as default(T) (dotnet/runtime#84484).
    [JsonInclude]
    [JsonPropertyName("gracePeriodSeconds")]
    internal double? GracePeriodSeconds
    {
        get => GracePeriod.TotalSeconds;
        init => GracePeriod = FromSeconds(value, DefaultGracePeriod);
    }

    [JsonInclude]
    [JsonPropertyName("intervalSeconds")]
    internal double? IntervalSeconds
    {
        get => Interval.TotalSeconds;
        init => Interval = FromSeconds(value, DefaultInterval);
    }

    [JsonInclude]
    [JsonPropertyName("timeoutSeconds")]
    internal double? TimeoutSeconds
    {
        get => Timeout.TotalSeconds;
        init => Timeout = FromSeconds(value, DefaultTimeout);
    }

    [JsonInclude]
    [JsonPropertyName("delaySeconds")]
    internal double? DelaySeconds
    {
        get => Delay.TotalSeconds;
        init => Delay = FromSeconds(value, DefaultDelay);
    }

    [JsonInclude]
    [JsonPropertyName("maxConsecutiveFailures")]
    internal int? MaxConsecutiveFailuresWire
    {
        get => MaxConsecutiveFailures;
        init => MaxConsecutiveFailures = value ?? DefaultMaxConsecutiveFailures;
    }

    /// <summary>The port to probe given the task's assigned ports, or null when there is none.</summary>
    public int? ResolvePort(IReadOnlyList<int> ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        if (Port is { } port)
        {
            return port;
        }

        var index = PortIndex ?? 0;
        return index >= 0 && index < ports.Count ? ports[index] : null;
    }

    /// <summary>What is wrong with this check for a task with <paramref name="portCount"/> ports, or null when it is usable.</summary>
    public string? Validate(int portCount)
    {
        if (!Enum.IsDefined(Protocol))
        {
            return "protocol must be one of HTTP, HTTPS, TCP, COMMAND";
        }

        if (Protocol == HealthCheckProtocol.Command)
        {
            if (string.IsNullOrWhiteSpace(Command))
            {
                return "a COMMAND health check needs a command";
            }

            return Command.Contains('\0', StringComparison.Ordinal) ? "the command must not contain NUL characters" : null;
        }

        if (Port is { } port)
        {
            if (port is < 1 or > 65535)
            {
                return string.Create(CultureInfo.InvariantCulture, $"port {port} is not between 1 and 65535");
            }
        }
        else
        {
            var index = PortIndex ?? 0;
            if (index < 0 || index >= portCount)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"portIndex {index} is out of range: the task has {portCount} port{(portCount == 1 ? "" : "s")}");
            }
        }

        if (Protocol is HealthCheckProtocol.Http or HealthCheckProtocol.Https
            && !Uri.TryCreate("http://127.0.0.1:1" + Path, UriKind.Absolute, out _))
        {
            return $"path '{Path}' is not a valid URL path";
        }

        return null;
    }

    private static string NormalizePath(string? path) =>
        string.IsNullOrEmpty(path) ? DefaultPath : path[0] == '/' ? path : "/" + path;

    private static TimeSpan Normalize(TimeSpan value, TimeSpan fallback, bool positive) =>
        value < TimeSpan.Zero || (positive && value == TimeSpan.Zero) ? fallback : value > MaxDuration ? MaxDuration : value;

    private static TimeSpan FromSeconds(double? seconds, TimeSpan fallback) => seconds switch
    {
        null or double.NaN => fallback,
        < 0 => fallback,
        _ when seconds.Value >= MaxDuration.TotalSeconds => MaxDuration,
        _ => TimeSpan.FromSeconds(seconds.Value),
    };
}

/// <summary>Reads <c>HTTP</c>/<c>MESOS_HTTP</c>, <c>HTTPS</c>/<c>MESOS_HTTPS</c>, <c>TCP</c>/<c>MESOS_TCP</c>, <c>COMMAND</c> (any case); writes the short names.</summary>
public sealed class HealthCheckProtocolJsonConverter : JsonConverter<HealthCheckProtocol>
{
    public override HealthCheckProtocol Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException("protocol must be a string: HTTP, HTTPS, TCP or COMMAND");
        }

        var text = reader.GetString()!;
        return text.ToUpperInvariant() switch
        {
            "HTTP" or "MESOS_HTTP" => HealthCheckProtocol.Http,
            "HTTPS" or "MESOS_HTTPS" => HealthCheckProtocol.Https,
            "TCP" or "MESOS_TCP" => HealthCheckProtocol.Tcp,
            "COMMAND" => HealthCheckProtocol.Command,
            _ => throw new JsonException($"unknown health check protocol '{text}' (expected HTTP, HTTPS, TCP or COMMAND)"),
        };
    }

    public override void Write(Utf8JsonWriter writer, HealthCheckProtocol value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(value switch
        {
            HealthCheckProtocol.Http => "HTTP",
            HealthCheckProtocol.Https => "HTTPS",
            HealthCheckProtocol.Tcp => "TCP",
            HealthCheckProtocol.Command => "COMMAND",
            _ => throw new JsonException($"unknown health check protocol {value}"),
        });
    }
}
