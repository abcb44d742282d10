using System.Collections.Immutable;
using System.Globalization;
using Drover.Core.Health;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Health;

/// <summary>
/// Runs the health and readiness checks of every running task that has some, and turns their results into
/// health changes, readiness and kills, as Mesos' built-in executors (and Marathon's readiness checker) do.
/// </summary>
/// <remarks>
/// <para>
/// No thread or timer per task or check: one async loop keeps a priority queue of checks by the time each
/// is next due (on the injected <see cref="TimeProvider"/>) and starts each due check as a task, at most
/// <c>maxConcurrentChecks</c> at once. A check is next due its interval after its previous run finished,
/// so one check never has two runs in flight (a task's different checks may run concurrently).
/// </para>
/// <para>
/// Health (Mesos health checker, per check): a check first runs <c>Delay</c> after <see cref="Add"/>; its
/// failures within its <c>GracePeriod</c> of <see cref="Add"/> are ignored until its first success. The task
/// is healthy when every check's latest counted result is a pass and unhealthy as soon as one's is a failure
/// (Marathon: an instance is healthy when all its health checks are alive); until then its health is unknown.
/// The combined health is reported through <see cref="IHealthReporter.ReportHealth"/> only when it changes.
/// When any check reaches its <c>MaxConsecutiveFailures</c> counted failures in a row (0 = never) the task
/// is killed through <see cref="IHealthReporter.KillUnhealthy"/> and all checking stops.
/// </para>
/// <para>
/// Readiness (Marathon readiness checks): each readiness check runs at once and then every interval until it
/// succeeds once, then stops; when all have succeeded the task's readiness is reported once through
/// <see cref="IHealthReporter.ReportReady"/>. Failures never kill.
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
    private readonly PriorityQueue<Check, (DateTimeOffset Due, long Seq)> _due = new();
    private readonly Task _loop;
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _seq;
    private long _checksPerformed;
    private long _readinessChecksPerformed;
    private bool _disposed;

    public HealthChecker(IHealthReporter reporter, ILogger logger, TimeProvider time, int maxConcurrentChecks = DefaultMaxConcurrentChecks)
    {
        ArgumentNullException.ThrowIfNull(reporter);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentChecks, 1);
        _reporter = reporter;
        _logger = logger;
        _time = time;
        _probes = new HealthProbes(time);
        _maxConcurrentChecks = maxConcurrentChecks;
        _slots = new SemaphoreSlim(maxConcurrentChecks, maxConcurrentChecks);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Number of tasks being checked now (a task without health checks is done once it is ready).</summary>
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

    /// <summary>Total health checks performed (for tests and metrics).</summary>
    internal long ChecksPerformed => Interlocked.Read(ref _checksPerformed);

    /// <summary>Total readiness checks performed (for tests and metrics).</summary>
    internal long ReadinessChecksPerformed => Interlocked.Read(ref _readinessChecksPerformed);

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
            foreach (var check in health.HealthChecks)
            {
                Schedule(check, now + check.Check.Delay);
            }

            foreach (var check in health.ReadinessChecks)
            {
                Schedule(check, now);
            }
        }

        LogStarted(_logger, target.TaskId, target.HealthChecks.Length, target.ReadinessChecks.Length);
        return health;
    }

    /// <summary>Stops checking the task and cancels its checks in flight without waiting for them. Safe to call from a check's own callbacks.</summary>
    public void Stop(TaskHealth health) => Detach(health);

    /// <summary>Stops checking the task and waits until its checks in flight (if any) have ended, their processes included.</summary>
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
    private void Schedule(Check check, DateTimeOffset due)
    {
        // The loop only needs waking when this check is due before the one it is waiting for.
        var earliest = !_due.TryPeek(out _, out var head) || due < head.Due;
        _due.Enqueue(check, (due, _seq++));
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
            Check? next = null;
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
                while (_due.TryPeek(out var check, out var key))
                {
                    if (check.Owner.Stopped)
                    {
                        _due.Dequeue();
                        continue;
                    }

                    if (key.Due <= now)
                    {
                        _due.Dequeue();
                        next = check;
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
                    if (!next.Owner.TryBegin())
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

    /// <summary>One run of one check of one task; owns one slot, which it releases.</summary>
    private async Task RunCheckAsync(Check check)
    {
        var health = check.Owner;
        var taskId = health.Target.TaskId;
        try
        {
            ProbeResult result;
            try
            {
                result = check switch
                {
                    HealthCheckState h => await _probes.ProbeAsync(health.Target, h.Check, h.Port, health.Cancellation).ConfigureAwait(false),
                    ReadinessCheckState r => await _probes.ReadinessAsync(r.Check, r.Port, health.Cancellation).ConfigureAwait(false),
                    _ => throw new InvalidOperationException($"unknown check {check.GetType()}"),
                };
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

            bool again;
            if (check is HealthCheckState healthCheck)
            {
                Interlocked.Increment(ref _checksPerformed);
                again = Apply(healthCheck, result);
            }
            else
            {
                Interlocked.Increment(ref _readinessChecksPerformed);
                again = Apply((ReadinessCheckState)check, result);
            }

            if (!again)
            {
                return;
            }

            lock (_gate)
            {
                if (!health.Stopped)
                {
                    Schedule(check, _time.GetUtcNow() + check.Interval);
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

    /// <summary>Turns one health check result into health changes and a kill. Returns false when this check is over.</summary>
    private bool Apply(HealthCheckState state, ProbeResult result)
    {
        var health = state.Owner;
        var taskId = health.Target.TaskId;
        var check = state.Check;
        string? kill = null;
        bool stop;
        lock (health.Sync)
        {
            if (health.Stopped)
            {
                return false;
            }

            switch (result.Outcome)
            {
                case ProbeOutcome.Ignored:
                    LogIgnored(_logger, taskId, result.Detail);
                    return true;

                case ProbeOutcome.Healthy:
                    state.SeenHealthy = true;
                    state.ConsecutiveFailures = 0;
                    state.Alive = true;
                    LogPassed(_logger, taskId, state.Number, result.Detail);
                    stop = !ReportChange(health, health.HealthChecks.Length == 1
                        ? $"Health check passed: {result.Detail}"
                        : string.Create(CultureInfo.InvariantCulture, $"All {health.HealthChecks.Length} health checks passed; check {state.Number}: {result.Detail}"));
                    break;

                default:
                    if (!state.SeenHealthy && check.GracePeriod > TimeSpan.Zero && _time.GetUtcNow() - health.Started <= check.GracePeriod)
                    {
                        LogFailureInGrace(_logger, taskId, state.Number, result.Detail);
                        return true;
                    }

                    state.ConsecutiveFailures++;
                    state.Alive = false;
                    state.LastFailureCause = result.Detail;
                    LogFailed(_logger, taskId, state.Number, state.ConsecutiveFailures, result.Detail);
                    var name = health.HealthChecks.Length == 1 ? "health check" : string.Create(CultureInfo.InvariantCulture, $"health check {state.Number} of {health.HealthChecks.Length}");
                    stop = !ReportChange(health, $"H{name[1..]} failed: {result.Detail}");
                    if (!stop && check.MaxConsecutiveFailures > 0 && state.ConsecutiveFailures >= check.MaxConsecutiveFailures)
                    {
                        kill = string.Create(CultureInfo.InvariantCulture,
                            $"{name} failed {state.ConsecutiveFailures} time{(state.ConsecutiveFailures == 1 ? "" : "s")} in a row: {result.Detail}");
                    }

                    break;
            }
        }

        if (stop)
        {
            Detach(health);
            return false;
        }

        if (kill is not null)
        {
            LogKilling(_logger, taskId, kill);
            Detach(health);
            _reporter.KillUnhealthy(taskId, kill);
            return false;
        }

        return true;
    }

    /// <summary>Turns one readiness check result into readiness. Returns false when this check is over.</summary>
    private bool Apply(ReadinessCheckState state, ProbeResult result)
    {
        var health = state.Owner;
        var taskId = health.Target.TaskId;
        bool done;
        lock (health.Sync)
        {
            if (health.Stopped)
            {
                return false;
            }

            state.LastResponse = result.Detail;
            if (result.Outcome != ProbeOutcome.Healthy)
            {
                LogNotReady(_logger, taskId, state.Check.Name, result.Detail);
                return true;
            }

            state.Ready = true;
            LogReady(_logger, taskId, state.Check.Name, result.Detail);
            if (health.ReadinessChecks.Any(r => !r.Ready))
            {
                return false;
            }

            // All ready: reported once; a task without health checks has nothing left to check.
            var reported = _reporter.ReportReady(taskId, $"Readiness check '{state.Check.Name}' passed: {result.Detail}");
            done = !reported || health.HealthChecks.IsEmpty;
        }

        if (done)
        {
            Detach(health);
        }

        return false;
    }

    /// <summary>
    /// Reports the task's combined health if it is known and differs from the last report. Called with the
    /// task's lock held. Returns false when the task is no longer running (checking must stop).
    /// </summary>
    private bool ReportChange(TaskHealth health, string message)
    {
        bool? combined = true;
        foreach (var check in health.HealthChecks)
        {
            if (check.Alive == false)
            {
                combined = false;
                break;
            }

            if (check.Alive is null)
            {
                combined = null;
            }
        }

        if (combined is not { } healthy || health.Reported == healthy)
        {
            return true;
        }

        ImmutableArray<HealthCheckResult> results = [.. health.HealthChecks.Select(c => new HealthCheckResult
        {
            Alive = c.Alive == true,
            ConsecutiveFailures = c.ConsecutiveFailures,
            LastFailureCause = c.LastFailureCause,
        })];
        if (!_reporter.ReportHealth(health.Target.TaskId, healthy, message, results))
        {
            return false;
        }

        health.Reported = healthy;
        return true;
    }

    /// <summary>One check of a task, queued by when it is next due. Its fields are touched only by its (single) run in flight, under the task's lock.</summary>
    internal abstract class Check(TaskHealth owner, int? port)
    {
        public TaskHealth Owner { get; } = owner;

        /// <summary>The port it probes (null for COMMAND checks, or when the task has no such port).</summary>
        public int? Port { get; } = port;

        public abstract TimeSpan Interval { get; }
    }

    internal sealed class HealthCheckState(TaskHealth owner, HealthCheck check, int number, int? port) : Check(owner, port)
    {
        public HealthCheck Check { get; } = check;

        /// <summary>1-based position in the task's health checks (for messages).</summary>
        public int Number { get; } = number;

        public override TimeSpan Interval => Check.Interval;

        public bool SeenHealthy { get; set; }

        public int ConsecutiveFailures { get; set; }

        /// <summary>The latest counted result: null before the first (or while failures are in the grace period).</summary>
        public bool? Alive { get; set; }

        public string? LastFailureCause { get; set; }
    }

    internal sealed class ReadinessCheckState(TaskHealth owner, TaskReadinessCheck check, int? port) : Check(owner, port)
    {
        public TaskReadinessCheck Check { get; } = check;

        public override TimeSpan Interval => Check.Interval;

        public bool Ready { get; set; }

        /// <summary>What the latest check saw, e.g. <c>HTTP 503</c>.</summary>
        public string? LastResponse { get; set; }
    }

    /// <summary>Check state of one task (the handle <see cref="Add"/> returns).</summary>
    internal sealed class TaskHealth
    {
        private readonly CancellationTokenSource _cancel = new();
        private readonly Lock _flight = new();
        private int _inFlight;
        private TaskCompletionSource? _idle;

        public TaskHealth(HealthCheckTarget target, DateTimeOffset started)
        {
            Target = target;
            Started = started;
            HealthChecks = [.. target.HealthChecks.Select((c, i) => new HealthCheckState(this, c, i + 1, c.ResolvePort(target.Ports)))];
            ReadinessChecks = [.. target.ReadinessChecks.Select(c =>
                new ReadinessCheckState(this, c, c.PortIndex >= 0 && c.PortIndex < target.Ports.Length ? target.Ports[c.PortIndex] : null))];
        }

        public HealthCheckTarget Target { get; }

        /// <summary>When checking began (≈ when the task started running): grace periods count from here.</summary>
        public DateTimeOffset Started { get; }

        public ImmutableArray<HealthCheckState> HealthChecks { get; }

        public ImmutableArray<ReadinessCheckState> ReadinessChecks { get; }

        /// <summary>Serialises applying results of the task's checks (which may run concurrently) and reporting them.</summary>
        public Lock Sync { get; } = new();

        /// <summary>Set under the checker's lock; a stopped task is never checked or reported again.</summary>
        public volatile bool Stopped;

        /// <summary>The combined health last reported, or null before the first report.</summary>
        public bool? Reported { get; set; }

        public CancellationToken Cancellation => _cancel.Token;

        /// <summary>Completes when no check of this task is in flight.</summary>
        public Task Idle
        {
            get
            {
                lock (_flight)
                {
                    if (_inFlight == 0)
                    {
                        return Task.CompletedTask;
                    }

                    _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    return _idle.Task;
                }
            }
        }

        /// <summary>Marks a check in flight, unless the task was stopped meanwhile.</summary>
        public bool TryBegin()
        {
            lock (_flight)
            {
                if (Stopped)
                {
                    return false;
                }

                _inFlight++;
                return true;
            }
        }

        public void End()
        {
            TaskCompletionSource? done = null;
            lock (_flight)
            {
                if (--_inFlight == 0)
                {
                    done = _idle;
                    _idle = null;
                }
            }

            done?.TrySetResult();
        }

        public void Cancel() => _cancel.Cancel();
    }
}
