using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Health;

/// <summary>
/// Runs the health checks of every running task that has one, and turns their results into health
/// changes and kills, as Mesos' built-in executors do.
/// </summary>
/// <remarks>
/// <para>
/// No thread or timer per task: one async loop keeps a priority queue of tasks by the time their next
/// check is due (on the injected <see cref="TimeProvider"/>) and starts each due check as a task, at most
/// <c>maxConcurrentChecks</c> at once. A task's next check is due <see cref="Core.Health.HealthCheck.Interval"/>
/// after its previous one finished, so one task never has two checks in flight.
/// </para>
/// <para>
/// Semantics (Mesos health checker): the first check runs <c>Delay</c> after <see cref="Add"/>. Failures
/// within <c>GracePeriod</c> of <see cref="Add"/> are ignored until the first success. Health is reported
/// through <see cref="IHealthReporter.ReportHealth"/> only when it changes (first result, healthy →
/// unhealthy, unhealthy → healthy). After <c>MaxConsecutiveFailures</c> counted failures in a row (0 =
/// never) the task is killed through <see cref="IHealthReporter.KillUnhealthy"/> and checking stops.
/// </para>
/// </remarks>
internal sealed partial class HealthChecker : IAsyncDisposable
{
    public const int DefaultMaxConcurrentChecks = 64;

    /// <summary>Upper bound of one idle wait, so timers stay within Task.Delay's range whatever the intervals.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromHours(1);

    private readonly IHealthReporter _reporter;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly HealthProbes _probes;
    private readonly int _maxConcurrentChecks;
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private readonly HashSet<TaskHealth> _tasks = [];
    private readonly PriorityQueue<TaskHealth, (DateTimeOffset Due, long Seq)> _due = new();
    private readonly Task _loop;
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _seq;
    private long _checksPerformed;
    private bool _disposed;

    public HealthChecker(IHealthReporter reporter, ILogger logger, TimeProvider time, string? setsid, int maxConcurrentChecks = DefaultMaxConcurrentChecks)
    {
        ArgumentNullException.ThrowIfNull(reporter);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentChecks, 1);
        _reporter = reporter;
        _logger = logger;
        _time = time;
        _probes = new HealthProbes(time, setsid);
        _maxConcurrentChecks = maxConcurrentChecks;
        _slots = new SemaphoreSlim(maxConcurrentChecks, maxConcurrentChecks);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Number of tasks being checked now.</summary>
    internal int CheckedTaskCount
    {
        get
        {
            lock (_gate)
            {
                return _tasks.Count;
            }
        }
    }

    /// <summary>Total checks performed (for tests and metrics).</summary>
    internal long ChecksPerformed => Interlocked.Read(ref _checksPerformed);

    /// <summary>
    /// Starts checking a task that has just started running. Returns the handle to stop it with, or null
    /// after disposal.
    /// </summary>
    public TaskHealth? Add(HealthCheckTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        TaskHealth health;
        lock (_gate)
        {
            if (_disposed)
            {
                return null;
            }

            var now = _time.GetUtcNow();
            health = new TaskHealth(target, now);
            _tasks.Add(health);
            Schedule(health, now + target.Check.Delay);
        }

        LogStarted(_logger, target.TaskId, target.Check.Protocol.ToString().ToUpperInvariant());
        return health;
    }

    /// <summary>Stops checking the task and cancels its check in flight without waiting for it. Safe to call from a check's own callbacks.</summary>
    public void Stop(TaskHealth health) => Detach(health);

    /// <summary>Stops checking the task and waits until its check in flight (if any) has ended, its process included.</summary>
    public Task StopAsync(TaskHealth health)
    {
        Detach(health);
        return health.Idle;
    }

    public async ValueTask DisposeAsync()
    {
        List<TaskHealth> all;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            all = [.. _tasks];
        }

        foreach (var health in all)
        {
            Detach(health);
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);

        // With the loop gone no check starts; holding every slot means none is in flight.
        for (var i = 0; i < _maxConcurrentChecks; i++)
        {
            await _slots.WaitAsync().ConfigureAwait(false);
        }

        _probes.Dispose();
        _slots.Dispose();
        _stopping.Dispose();
    }

    private void Detach(TaskHealth health)
    {
        lock (_gate)
        {
            if (!_tasks.Remove(health))
            {
                return;
            }

            health.Stopped = true;
        }

        health.Cancel();
        LogStopped(_logger, health.Target.TaskId);
    }

    /// <summary>Called with <see cref="_gate"/> held.</summary>
    private void Schedule(TaskHealth health, DateTimeOffset due)
    {
        // The loop only needs waking when this check is due before the one it is waiting for.
        var earliest = !_due.TryPeek(out _, out var head) || due < head.Due;
        _due.Enqueue(health, (due, _seq++));
        if (earliest)
        {
            _wake.TrySetResult();
        }
    }

    private async Task LoopAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            TaskHealth? next = null;
            var wait = Timeout.InfiniteTimeSpan;
            Task wake;
            lock (_gate)
            {
                if (_wake.Task.IsCompleted)
                {
                    _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                wake = _wake.Task;
                var now = _time.GetUtcNow();
                while (_due.TryPeek(out var health, out var key))
                {
                    if (health.Stopped)
                    {
                        _due.Dequeue();
                        continue;
                    }

                    if (key.Due <= now)
                    {
                        _due.Dequeue();
                        next = health;
                    }
                    else
                    {
                        wait = key.Due - now < MaxWait ? key.Due - now : MaxWait;
                    }

                    break;
                }
            }

            try
            {
                if (next is not null)
                {
                    await _slots.WaitAsync(stopping).ConfigureAwait(false);
                    if (!next.TryBegin())
                    {
                        _slots.Release();
                        continue;
                    }

                    _ = RunCheckAsync(next);
                    continue;
                }

                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                await Task.WhenAny(wake, Task.Delay(wait, _time, cts.Token)).ConfigureAwait(false);
                await cts.CancelAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>One check of one task; owns one slot, which it releases.</summary>
    private async Task RunCheckAsync(TaskHealth health)
    {
        var taskId = health.Target.TaskId;
        try
        {
            ProbeResult result;
            try
            {
                result = await _probes.ProbeAsync(health.Target, health.Cancellation).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (health.Cancellation.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogCheckError(_logger, taskId, ex);
                result = ProbeResult.Unhealthy($"the check could not run: {ex.Message}");
            }

            Interlocked.Increment(ref _checksPerformed);
            if (!Apply(health, result))
            {
                return;
            }

            lock (_gate)
            {
                if (!health.Stopped)
                {
                    Schedule(health, _time.GetUtcNow() + health.Target.Check.Interval);
                }
            }
        }
        catch (Exception ex)
        {
            // A bug here must not silently stop a task's checks without a trace.
            LogCheckError(_logger, taskId, ex);
        }
        finally
        {
            _slots.Release();
            health.End();
        }
    }

    /// <summary>Turns one result into health changes and a kill. Returns false when checking this task is over.</summary>
    private bool Apply(TaskHealth health, ProbeResult result)
    {
        var target = health.Target;
        var check = target.Check;
        switch (result.Outcome)
        {
            case ProbeOutcome.Ignored:
                LogIgnored(_logger, target.TaskId, result.Detail);
                return true;

            case ProbeOutcome.Healthy:
                health.SeenHealthy = true;
                health.ConsecutiveFailures = 0;
                LogPassed(_logger, target.TaskId, result.Detail);
                return health.Reported == true || Report(health, healthy: true, $"Health check passed: {result.Detail}");

            default:
                if (!health.SeenHealthy && check.GracePeriod > TimeSpan.Zero && _time.GetUtcNow() - health.Started <= check.GracePeriod)
                {
                    LogFailureInGrace(_logger, target.TaskId, result.Detail);
                    return true;
                }

                health.ConsecutiveFailures++;
                LogFailed(_logger, target.TaskId, health.ConsecutiveFailures, result.Detail);
                if (health.Reported != false && !Report(health, healthy: false, $"Health check failed: {result.Detail}"))
                {
                    return false;
                }

                if (check.MaxConsecutiveFailures > 0 && health.ConsecutiveFailures >= check.MaxConsecutiveFailures)
                {
                    var message = string.Create(CultureInfo.InvariantCulture,
                        $"health check failed {health.ConsecutiveFailures} time{(health.ConsecutiveFailures == 1 ? "" : "s")} in a row: {result.Detail}");
                    LogKilling(_logger, target.TaskId, message);
                    Detach(health);
                    _reporter.KillUnhealthy(target.TaskId, message);
                    return false;
                }

                return true;
        }
    }

    private bool Report(TaskHealth health, bool healthy, string message)
    {
        if (health.Stopped || !_reporter.ReportHealth(health.Target.TaskId, healthy, message))
        {
            Detach(health);
            return false;
        }

        health.Reported = healthy;
        return true;
    }

    /// <summary>Check state of one task (the handle <see cref="Add"/> returns). Counters are touched only by its (single) check in flight.</summary>
    internal sealed class TaskHealth(HealthCheckTarget target, DateTimeOffset started)
    {
        private readonly CancellationTokenSource _cancel = new();
        private TaskCompletionSource? _inFlight;

        public HealthCheckTarget Target { get; } = target;

        /// <summary>When checking began (≈ when the task started running): the grace period counts from here.</summary>
        public DateTimeOffset Started { get; } = started;

        /// <summary>Set under the checker's lock; a stopped task is never checked or reported again.</summary>
        public volatile bool Stopped;

        public bool SeenHealthy { get; set; }

        public int ConsecutiveFailures { get; set; }

        /// <summary>The health last reported, or null before the first report.</summary>
        public bool? Reported { get; set; }

        public CancellationToken Cancellation => _cancel.Token;

        /// <summary>Completes when no check of this task is in flight.</summary>
        public Task Idle
        {
            get
            {
                lock (_cancel)
                {
                    return _inFlight?.Task ?? Task.CompletedTask;
                }
            }
        }

        /// <summary>Marks a check in flight, unless the task was stopped meanwhile.</summary>
        public bool TryBegin()
        {
            lock (_cancel)
            {
                if (Stopped)
                {
                    return false;
                }

                _inFlight = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return true;
            }
        }

        public void End()
        {
            TaskCompletionSource? done;
            lock (_cancel)
            {
                done = _inFlight;
                _inFlight = null;
            }

            done?.TrySetResult();
        }

        public void Cancel()
        {
            lock (_cancel)
            {
                _cancel.Cancel();
            }
        }
    }
}
