using System.Globalization;

namespace Drover.Agent.Executors;

/// <summary>Settings of <see cref="ExecutorManager"/> (Mesos' agent flags of the same meaning, with their defaults).</summary>
public sealed record ExecutorManagerOptions
{
    /// <summary>
    /// How long a started executor has to SUBSCRIBE (Mesos' <c>--executor_registration_timeout</c>, 1 min).
    /// After it, the executor's queued tasks fail with REASON_EXECUTOR_REGISTRATION_TIMEOUT and it is killed.
    /// </summary>
    public TimeSpan RegistrationTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long an executor recovered by a restarted agent (its process outlived the previous agent process) has to
    /// SUBSCRIBE again (Mesos' <c>--executor_reregistration_timeout</c>, 2 s). After it, the executor's unfinished
    /// tasks fail with REASON_EXECUTOR_REREGISTRATION_TIMEOUT and it is killed. Counted from when the restarted agent's
    /// endpoint serves; an executor retries with a backoff of at most <see cref="SubscriptionBackoffMax"/>, so keep
    /// this at least that.
    /// </summary>
    public TimeSpan ReregistrationTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Between the SHUTDOWN event and killing the executor (Mesos' <c>--executor_shutdown_grace_period</c>,
    /// 5 s); exported as <c>MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD</c>.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Added to a task's kill grace period before the agent gives up on the executor killing it and
    /// kills the executor itself.
    /// </summary>
    public TimeSpan KillMargin { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>HEARTBEAT events on every subscription stream (Mesos sends them every 30 s).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Exported as <c>MESOS_SUBSCRIPTION_BACKOFF_MAX</c>: the longest an executor waits between two SUBSCRIBE attempts
    /// after losing its connection (a Mesos agent exports its executor re-registration timeout constant, 2 s).
    /// </summary>
    public TimeSpan SubscriptionBackoffMax { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Exported as <c>MESOS_RECOVERY_TIMEOUT</c> (Mesos' <c>--recovery_timeout</c>, 15 min).</summary>
    public TimeSpan RecoveryTimeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Mesos' duration text (<c>5secs</c>, <c>250ms</c>), as executors parse it from the environment.</summary>
    public static string FormatDuration(TimeSpan span) =>
        span.Ticks % TimeSpan.TicksPerSecond == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{(long)span.TotalSeconds}secs")
            : string.Create(CultureInfo.InvariantCulture, $"{(long)Math.Ceiling(span.TotalMilliseconds)}ms");
}
