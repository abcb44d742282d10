using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.Threading.Channels;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Execution.Runtime;
using Drover.Agent.Execution.Spawn;
using Drover.Agent.Execution.Stages;
using Drover.Agent.Health;
using Drover.Core;
using Drover.Core.Health;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Execution;

/// <summary>
/// Runs each task as a Linux process tree in its own session, sandbox directory and cgroup(s), with
/// memory, CPU and pid limits. See <c>Execution/README.md</c> for the lifecycle and isolation contract.
/// </summary>
/// <remarks>
/// A launch goes through the <see cref="LaunchPipeline"/> (<c>Stages/README.md</c>): sandbox, cgroups and user
/// stages, then the <see cref="ProcessRuntime"/>, which spawns the task's shim, its supervisor. This class owns
/// the task's lifecycle around it: the status updates, kills with their grace period, the wait for the end,
/// health and readiness checks (one shared <see cref="HealthChecker"/>), and adopting the tasks a previous
/// agent process left running. One async supervisor per task waits for exit or a kill request; there are no
/// per-task threads.
/// </remarks>
public sealed partial class ProcessTaskExecutor : ITaskExecutor, IHealthReporter
{
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private static readonly TimeSpan ReapTimeout = TimeSpan.FromSeconds(30);

    private readonly ProcessExecutorOptions _options;
    private readonly ILogger<ProcessTaskExecutor> _logger;
    private readonly TimeProvider _time;
    private readonly string _path;
    private readonly string _lang;
    private readonly TaskCheckpoint _checkpoint;
    private readonly SandboxStage _sandbox;
    private readonly CgroupsStage _cgroups;
    private readonly DiskQuotaStage _disk;
    private readonly LaunchPipeline _pipeline;
    private readonly string? _setpriv;
    private readonly bool _isolate;
    private readonly Channel<TaskStatus> _updates = Channel.CreateUnbounded<TaskStatus>();
    private readonly ConcurrentDictionary<string, TaskRun> _tasks = new(StringComparer.Ordinal);
    private readonly HealthChecker _health;
    private int _disposed;

    public ProcessTaskExecutor(ProcessExecutorOptions options, ILogger<ProcessTaskExecutor> logger, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(time);
        _options = options;
        _logger = logger;
        _time = time;
        _path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } path ? path : DefaultPath;
        _lang = Environment.GetEnvironmentVariable("LANG") is { Length: > 0 } lang ? lang : "C.UTF-8";
        _setpriv = FindExecutable("setpriv", _path);
        var isolate = _isolate = options.Isolate ?? Environment.IsPrivilegedProcess;
        if (isolate)
        {
            CheckCanIsolate(options, _setpriv);
        }
        else
        {
            LogNotIsolating(logger);
        }

        _sandbox = new SandboxStage(options.WorkDir);
        _cgroups = new CgroupsStage(options, logger);
        _checkpoint = new TaskCheckpoint(options.WorkDir);
        _disk = new DiskQuotaStage(options.DiskWatchInterval, KillForLimitation, time, logger);

        // The launch, in order. Slots for what is to come are marked where each will go (issue 16):
        _pipeline = new LaunchPipeline(
            [
                _sandbox,                                   // the task's directory, stdout and stderr
                // fetch: the task's URIs downloaded (and unpacked) into the sandbox
                // image: the task's root filesystem from an OCI image (overlay of its layers)
                // volumes: host paths and persistent volumes mounted into the task
                // network: the task's network namespace, ports mapped into it
                _cgroups,                                   // limits, OOM, killing whatever is left
                new UserStage(isolate, options.DefaultTaskUser, _setpriv, options.Hostname), // the user and its privileges
                new NamespacesStage(isolate, Path.GetFullPath(options.AgentRoot ?? options.WorkDir), _cgroups.Driver?.Version),
                new SecretsStage(),                         // secret values as environment, or files on a tmpfs in the task's namespace
                _disk,                                      // the disk quota, measured (disk/du)
            ],
            new ProcessRuntime(_checkpoint, _setpriv),      // today's runtime; runc comes with images
            _checkpoint);

        _health = new HealthChecker(this, _logger, _time);
        try
        {
            // Tasks a previous incarnation of this agent launched: adopt those still running, report
            // those that ended meanwhile. Cgroups that belong to no checkpointed task hold processes
            // nobody supervises any more: they must not keep running or holding resources.
            Recover();
            _cgroups.ReapOrphansAsync(_tasks.ContainsKey, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch
        {
            // A constructor that throws must leave no check loop (or open log) behind.
            _health.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _disk.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _checkpoint.Dispose();
            throw;
        }
    }

    public ChannelReader<TaskStatus> Updates => _updates.Reader;

    public IReadOnlyCollection<string> KnownTaskIds => [.. _tasks.Keys];

    public LaunchTask? LaunchOf(string taskId) =>
        _tasks.TryGetValue(taskId, out var run) ? new LaunchTask { Task = run.Spec, Ports = run.Ports } : null;

    /// <summary>The cgroup driver in use, or null when running without cgroups.</summary>
    internal ICgroupDriver? Cgroups => _cgroups.Driver;

    /// <summary>The task's cgroup (its directories may no longer exist), or null without cgroups.</summary>
    internal Cgroup? CgroupOf(string taskId) => _cgroups.Open(taskId);

    /// <summary>This agent's own cgroup (parent of the task cgroups).</summary>
    internal Cgroup? AgentCgroup => _cgroups.AgentCgroup;

    /// <summary>The task's main pid (also its process group and session id), or null.</summary>
    internal int? PidOf(string taskId) => _tasks.TryGetValue(taskId, out var run) && run.Pid > 0 ? run.Pid : null;

    /// <summary>The task checkpoint (launches and exit statuses). Internal for tests.</summary>
    internal TaskCheckpoint Checkpoint => _checkpoint;

    /// <summary>The health checker of this executor's tasks.</summary>
    internal HealthChecker Health => _health;

    /// <summary>Whether tasks run isolated (their own user, namespaces, no capabilities): see <see cref="ProcessExecutorOptions.Isolate"/>.</summary>
    internal bool Isolates => _isolate;

    /// <summary>The disk quota stage (its watch loop). Internal for tests.</summary>
    internal DiskQuotaStage Disk => _disk;

    /// <summary>The launch stages and runtime. Internal for tests.</summary>
    internal LaunchPipeline Pipeline => _pipeline;

    public void Launch(LaunchTask launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var spec = launch.Task;
        var run = new TaskRun(spec, launch.Ports, _sandbox.PathOf(spec.Id)) { SecretValues = launch.SecretValues };
        lock (run.Gate)
        {
            // Published while its lock is held, so a concurrent Kill waits for the start to finish.
            if (!_tasks.TryAdd(spec.Id, run))
            {
                LogDuplicateLaunch(_logger, spec.Id);
                return;
            }

            if (!Start(run))
            {
                run.Done.TrySetResult();
                return;
            }

            // Checked from now on: TASK_RUNNING has been emitted, so health updates follow it.
            StartChecks(run);
        }

        _ = SuperviseAsync(run);
        if (Volatile.Read(ref _disposed) != 0)
        {
            Kill(spec.Id, TimeSpan.Zero);
        }
    }

    public void Kill(string taskId, TimeSpan? gracePeriod = null) => Kill(taskId, gracePeriod, healthFailure: null);

    /// <param name="healthFailure">Why the task's health check got it killed, or null for an ordinary kill.</param>
    private void Kill(string taskId, TimeSpan? gracePeriod, string? healthFailure)
    {
        if (!_tasks.TryGetValue(taskId, out var run))
        {
            return;
        }

        var grace = gracePeriod ?? run.Spec.KillGracePeriod;
        if (grace < TimeSpan.Zero)
        {
            grace = TimeSpan.Zero;
        }

        lock (run.Gate)
        {
            if (run.Phase != TaskPhase.Running)
            {
                return;
            }

            run.Phase = TaskPhase.Killing;
            run.HealthFailure = healthFailure;
            var message = string.Create(CultureInfo.InvariantCulture, $"Killing task (grace period {grace.TotalSeconds:0.###} s)");
            Emit(run, TaskState.Killing, TaskSources.Executor, healthFailure is null ? message : $"{message}: {healthFailure}");
        }

        // Mesos stops health checking at TASK_KILLING: no TASK_RUNNING may follow it.
        if (run.Health is { } health)
        {
            _health.Stop(health);
        }

        LogKilling(_logger, taskId, grace.TotalSeconds);
        run.KillRequested.TrySetResult(grace);
    }

    /// <summary>
    /// Changes a running task's cgroup limits to <paramref name="resources"/> (used for executor containers,
    /// whose limits follow the tasks they run). False when the task is not running, runs without cgroups,
    /// or the kernel refused (e.g. memory below current use); the old limits then stay.
    /// </summary>
    internal bool TryUpdateResources(string taskId, Resources resources)
    {
        if (!_tasks.TryGetValue(taskId, out var run))
        {
            return false;
        }

        lock (run.Gate)
        {
            return run.Phase == TaskPhase.Running && _cgroups.TryUpdateLimits(run, resources);
        }
    }

    /// <remarks>Also removes the task's checkpoint, even for an id no longer known (idempotent).</remarks>
    public void Forget(string taskId)
    {
        if (!_tasks.TryGetValue(taskId, out var run))
        {
            _checkpoint.Remove(taskId);
            return;
        }

        lock (run.Gate)
        {
            if (run.Phase != TaskPhase.Ended)
            {
                LogForgetActive(_logger, taskId);
                return;
            }

            _tasks.TryRemove(taskId, out _);
            _checkpoint.Remove(taskId);
        }
    }

    /// <inheritdoc />
    /// <remarks>Also answers for a forgotten task whose sandbox is still on disk, so its logs stay readable.</remarks>
    public string? SandboxPath(string taskId)
    {
        if (_tasks.TryGetValue(taskId, out var run))
        {
            return run.Sandbox;
        }

        return _sandbox.PathOf(taskId) is { } path && Directory.Exists(path) ? path : null;
    }

    /// <summary>Where the sandbox of a task with this id is (or will be) made, or null for an id unusable as a directory name.</summary>
    internal string? SandboxOf(string taskId) => _sandbox.PathOf(taskId);

    /// <summary>
    /// Kills every task (short grace), waits for them, and removes this agent's cgroup subtree; or,
    /// with <see cref="ProcessExecutorOptions.KillTasksOnDispose"/> off, leaves every task running
    /// under its shim, checkpointed for the next executor on this work dir.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Checks stop first: shutting down must not look like (or cause) health failures; no disk kill either.
        await _health.DisposeAsync().ConfigureAwait(false);
        await _disk.DisposeAsync().ConfigureAwait(false);
        if (!_options.KillTasksOnDispose)
        {
            _checkpoint.Dispose();
            _updates.Writer.TryComplete();
            LogLeftRunning(_logger, _tasks.Values.Count(r => r.Phase != TaskPhase.Ended));
            return;
        }

        var runs = _tasks.Values.ToList();
        foreach (var run in runs)
        {
            var grace = run.Spec.KillGracePeriod < _options.ShutdownGracePeriod ? run.Spec.KillGracePeriod : _options.ShutdownGracePeriod;
            Kill(run.Spec.Id, grace);
        }

        await Task.WhenAll(runs.Select(r => r.Done.Task)).ConfigureAwait(false);
        await _cgroups.ReapOrphansAsync(_tasks.ContainsKey, CancellationToken.None).ConfigureAwait(false);
        await _cgroups.RemoveAgentCgroupAsync(CancellationToken.None).ConfigureAwait(false);
        _checkpoint.Dispose();
        _updates.Writer.TryComplete();
        LogDisposed(_logger, runs.Count);
    }

    /// <summary>Validates, runs the launch pipeline (stages, then the runtime). Called with the run's lock held.</summary>
    private bool Start(TaskRun run)
    {
        var spec = run.Spec;
        var invalid = Validate(spec, run.Ports.IsDefault ? 0 : run.Ports.Length);
        if (invalid is not null)
        {
            EndLaunchFailed(run, invalid);
            return false;
        }

        run.Environment = ProcessRuntime.EnvironmentOf(run, _path, _lang, _options.Hostname);
        if (_pipeline.Launch(run, ex => LogLaunchFailed(_logger, spec.Id, ex)) is { } failed)
        {
            EndLaunchFailed(run, failed);
            return false;
        }

        run.Phase = TaskPhase.Running;
        Emit(run, TaskState.Starting, TaskSources.Executor);
        Emit(run, TaskState.Running, TaskSources.Executor);
        LogLaunched(_logger, spec.Id, run.Pid, run.Cgroup?.Name);
        return true;
    }

    private void EndLaunchFailed(TaskRun run, string message)
    {
        run.Phase = TaskPhase.Ended;
        Emit(run, TaskState.Failed, TaskSources.Agent, message, TaskReasons.ContainerLaunchFailed);
    }

    private static string? Validate(TaskSpec spec, int portCount)
    {
        if (!Ids.IsValidName(spec.Id))
        {
            return $"Invalid task id '{spec.Id}'";
        }

        var hasShell = !string.IsNullOrWhiteSpace(spec.Shell);
        var hasArgs = !spec.Args.IsDefaultOrEmpty;
        if (hasShell == hasArgs)
        {
            return "Exactly one of a shell command and exec args must be given";
        }

        if (hasArgs && string.IsNullOrEmpty(spec.Args[0]))
        {
            return "The program (first argument) is empty";
        }

        var strings = spec.Env.Keys.Concat(spec.Env.Values).Concat(spec.Args.IsDefault ? [] : spec.Args).Append(spec.Shell ?? "");
        if (strings.Any(s => s.Contains('\0', StringComparison.Ordinal)))
        {
            return "Command, arguments and environment must not contain NUL characters";
        }

        foreach (var check in spec.HealthChecks)
        {
            if (check.Validate(portCount) is { } badCheck)
            {
                return $"Invalid health check: {badCheck}";
            }
        }

        foreach (var check in spec.ReadinessChecks)
        {
            if (check.Validate(portCount) is { } badCheck)
            {
                return $"Invalid readiness check: {badCheck}";
            }
        }

        return null;
    }

    /// <summary>Waits for the task to exit or be killed, cleans up its stages and reports the terminal state.</summary>
    private async Task SuperviseAsync(TaskRun run)
    {
        try
        {
            Task exited = run.ShimExited!;
            var first = await Task.WhenAny(exited, run.KillRequested.Task).ConfigureAwait(false);
            var killing = first != exited;
            if (!killing)
            {
                lock (run.Gate)
                {
                    killing = run.Phase == TaskPhase.Killing;
                    if (!killing)
                    {
                        run.Phase = TaskPhase.Exiting;
                    }
                }
            }

            // No check may still run (or join the cgroup) while the task is cleaned up.
            if (run.Health is { } health)
            {
                await _health.StopAsync(health).ConfigureAwait(false);
            }

            if (killing)
            {
                await KillAndReapAsync(run, exited).ConfigureAwait(false);
            }
            else
            {
                await ReapExitedAsync(run).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // Never leave a task without a terminal update, whatever went wrong supervising it.
            LogSupervisionFailed(_logger, run.Spec.Id, ex);
            lock (run.Gate)
            {
                if (run.Phase != TaskPhase.Ended)
                {
                    run.Phase = TaskPhase.Ended;
                    Emit(run, TaskState.Failed, TaskSources.Agent, $"Task supervision failed: {ex.Message}", TaskReasons.ExecutorTerminated);
                }
            }
        }
        finally
        {
            run.Done.TrySetResult();
        }
    }

    private async Task ReapExitedAsync(TaskRun run)
    {
        var code = _pipeline.Runtime.ExitCodeOf(run, await run.ShimExited!.ConfigureAwait(false));
        run.ExitCode = code;
        var signal = code is > 128 and <= 128 + 64 ? code.Value - 128 : 0;
        var launchFailure = ProcessRuntime.LaunchFailure(run, code);
        LogExited(_logger, run.Spec.Id, code ?? -1);

        // No process outlives its task: whatever it left running in the background dies now (and the
        // stages note any limitation the task hit, e.g. the OOM killer in its cgroup).
        await _pipeline.CleanupAsync(run, CancellationToken.None).ConfigureAwait(false);

        TaskState state;
        string message;
        string? reason = null;
        if (launchFailure is not null)
        {
            (state, message, reason) = (TaskState.Failed, launchFailure, TaskReasons.ContainerLaunchFailed);
        }
        else if (run.Limitation is { } limitation)
        {
            (state, message, reason) = (TaskState.Failed, limitation.Message, limitation.Reason);
        }
        else if (code is null)
        {
            (state, message, reason) = (TaskState.Failed,
                "The task's supervisor ended without recording an exit status (it was killed while the agent was down, or the agent stopped while launching it)",
                TaskReasons.ExecutorTerminated);
        }
        else if (code == 0)
        {
            (state, message) = (TaskState.Finished, "Command exited with status 0");
        }
        else if (signal > 0)
        {
            (state, message) = (TaskState.Failed, $"Command terminated by signal {Native.SignalName(signal)}");
        }
        else
        {
            (state, message) = (TaskState.Failed, string.Create(CultureInfo.InvariantCulture, $"Command exited with status {code}"));
        }

        lock (run.Gate)
        {
            run.Phase = TaskPhase.Ended;
            Emit(run, state, TaskSources.Executor, message, reason, code);
        }
    }

    private async Task KillAndReapAsync(TaskRun run, Task exited)
    {
        var grace = await run.KillRequested.Task.ConfigureAwait(false);
        if (!exited.IsCompleted)
        {
            ProcessRuntime.Signal(run, Native.SigTerm);
            if (grace > TimeSpan.Zero)
            {
                using var cts = new CancellationTokenSource();
                await Task.WhenAny(exited, Task.Delay(grace, _time, cts.Token)).ConfigureAwait(false);
                await cts.CancelAsync().ConfigureAwait(false);
            }
        }

        if (!exited.IsCompleted)
        {
            ProcessRuntime.Signal(run, Native.SigKill);
        }

        await _pipeline.CleanupAsync(run, CancellationToken.None).ConfigureAwait(false);
        int? code = null;
        try
        {
            await exited.WaitAsync(ReapTimeout, _time).ConfigureAwait(false);
            code = _pipeline.Runtime.ExitCodeOf(run, run.ShimExited!.Result);
            run.ExitCode = code;
        }
        catch (TimeoutException)
        {
            LogUnkillable(_logger, run.Spec.Id, run.Pid);
        }

        LogKilled(_logger, run.Spec.Id);
        lock (run.Gate)
        {
            run.Phase = TaskPhase.Ended;
            if (run.Limitation is { } limitation)
            {
                // Stopped by the agent for going over a limit (disk): a failure, as Mesos reports a container limitation.
                Emit(run, TaskState.Failed, TaskSources.Executor, limitation.Message, limitation.Reason, code);
            }
            else if (run.HealthFailure is { } failure)
            {
                // As Mesos' executors: the terminal update of a task killed for its health says it was unhealthy.
                Emit(run, TaskState.Killed, TaskSources.Executor, $"Task killed: {failure}", TaskReasons.TaskHealthCheckStatusUpdated, code, healthy: false);
            }
            else
            {
                Emit(run, TaskState.Killed, TaskSources.Executor, "Task killed", exitCode: code);
            }
        }
    }

    /// <summary>Registers the task's health and readiness checks, if it has any. Called with the run's lock held.</summary>
    private void StartChecks(TaskRun run)
    {
        var spec = run.Spec;
        if (!spec.HealthChecks.IsEmpty || !spec.ReadinessChecks.IsEmpty)
        {
            run.Health = _health.Add(new HealthCheckTarget
            {
                TaskId = spec.Id,
                HealthChecks = spec.HealthChecks,
                ReadinessChecks = spec.ReadinessChecks,
                Ports = run.Ports,
                WorkingDirectory = run.Sandbox!,
                Environment = run.Environment,
                CgroupProcsFiles = [.. run.Cgroup?.ProcsFiles ?? []],
                NamespacePid = run.Isolated ? run.Pid : null,
                RunAs = run.RunAs,
            });
        }
    }

    /// <summary>
    /// Takes over the tasks a previous agent process launched (from their checkpoints): a task whose
    /// shim still runs is supervised again (same processes, no update: the master already knows it
    /// runs); a task that ended meanwhile is reported with the status its shim recorded; a launch the
    /// agent never finished is reported failed. Never starts anything.
    /// </summary>
    private void Recover()
    {
        var adopted = 0;
        var ended = 0;
        var shims = ProcessRuntime.FindShims();
        foreach (var rec in _checkpoint.Recovered)
        {
            var run = new TaskRun(rec.Launch.Task, rec.Launch.Ports, _sandbox.PathOf(rec.TaskId))
            {
                Phase = TaskPhase.Running,
                ExitsLog = rec.ExitsLog,
                StageState = rec.StageState is { } state ? new Dictionary<string, string>(state, StringComparer.Ordinal) : null,
            };
            _pipeline.Recover(run);
            var alive = ProcessRuntime.Adopt(run, shims.GetValueOrDefault(new ShimIdentity(rec.ExitsLog, rec.TaskId)), rec.ExitCode is not null);
            _tasks[rec.TaskId] = run;
            if (alive)
            {
                adopted++;
                run.Environment = ProcessRuntime.EnvironmentOf(run, _path, _lang, _options.Hostname);
                lock (run.Gate)
                {
                    StartChecks(run);
                }
            }
            else
            {
                ended++;
            }

            _ = SuperviseAsync(run);
        }

        if (adopted + ended > 0)
        {
            LogRecovered(_logger, adopted, ended);
        }
    }

    /// <summary>The shims running on this machine, by the exits log and task id their command line names (see <see cref="ProcessRuntime.FindShims"/>).</summary>
    internal static Dictionary<ShimIdentity, int> FindShims() => ProcessRuntime.FindShims();

    /// <summary>What a shim's command line says it supervises.</summary>
    internal readonly record struct ShimIdentity(string ExitsLog, string TaskId);

    bool IHealthReporter.ReportHealth(string taskId, bool healthy, string message, ImmutableArray<HealthCheckResult> results) =>
        EmitRunning(taskId, message, TaskReasons.TaskHealthCheckStatusUpdated, healthy, results, ready: null);

    bool IHealthReporter.ReportReady(string taskId, string message) =>
        EmitRunning(taskId, message, TaskReadinessCheck.ReadyReason, healthy: null, results: null, ready: true);

    /// <summary>A TASK_RUNNING update about a running task's checks; false when it is no longer running.</summary>
    private bool EmitRunning(string taskId, string message, string reason, bool? healthy, ImmutableArray<HealthCheckResult>? results, bool? ready)
    {
        if (!_tasks.TryGetValue(taskId, out var run))
        {
            return false;
        }

        lock (run.Gate)
        {
            if (run.Phase != TaskPhase.Running)
            {
                return false;
            }

            _updates.Writer.TryWrite(NewStatus(run, TaskState.Running, TaskSources.Executor, message, reason, exitCode: null, healthy) with
            {
                HealthResults = results,
                Ready = ready,
            });
            return true;
        }
    }

    void IHealthReporter.KillUnhealthy(string taskId, string message) => Kill(taskId, gracePeriod: null, healthFailure: message);

    /// <summary>
    /// Stops a running task that went over a limit the agent enforces (disk): SIGKILL at once, no TASK_KILLING, and the
    /// terminal update is TASK_FAILED with the limitation's reason and message, as Mesos reports a container limitation.
    /// False when the task is no longer running.
    /// </summary>
    private bool KillForLimitation(TaskRun run, TaskLimitation limitation)
    {
        lock (run.Gate)
        {
            if (run.Phase != TaskPhase.Running)
            {
                return false;
            }

            run.Phase = TaskPhase.Killing;
            run.Limitation = limitation;
        }

        if (run.Health is { } health)
        {
            _health.Stop(health);
        }

        run.KillRequested.TrySetResult(TimeSpan.Zero);
        return true;
    }

    /// <summary>
    /// What isolation needs, checked once at start so an agent that cannot isolate tasks says so in one sentence instead
    /// of failing every launch: root, setpriv, the default task user, and a kernel that lets it build the namespaces.
    /// </summary>
    private static void CheckCanIsolate(ProcessExecutorOptions options, string? setpriv)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException("isolating tasks (own user, namespaces, no capabilities) needs the agent to run as root");
        }

        if (setpriv is null)
        {
            throw new InvalidOperationException(
                "tasks run as their own user through setpriv, which is missing: install util-linux (apt-get install util-linux)");
        }

        if (FindExecutable("mount", DefaultPath) is null)
        {
            throw new InvalidOperationException(
                "tasks' /proc is mounted with mount(8) on kernels before 6.18, which is missing: install it (apt-get install mount)");
        }

        if (!Native.TryGetUser(options.DefaultTaskUser, out _, out _))
        {
            throw new InvalidOperationException($"the default task user '{options.DefaultTaskUser}' does not exist on this machine (--default-task-user)");
        }

        _ = NamespaceSpawner.Instance;
    }

    private void Emit(TaskRun run, TaskState state, string source, string? message = null, string? reason = null, int? exitCode = null, bool? healthy = null) =>
        _updates.Writer.TryWrite(NewStatus(run, state, source, message, reason, exitCode, healthy));

    private TaskStatus NewStatus(TaskRun run, TaskState state, string source, string? message, string? reason, int? exitCode, bool? healthy) =>
        new()
        {
            TaskId = run.Spec.Id,
            State = state,
            Message = message,
            Reason = reason,
            Source = source,
            Timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
            ExitCode = exitCode,
            Healthy = healthy,
            Uuid = Ids.NewUuid(),
        };

    private static string? FindExecutable(string name, string path)
    {
        foreach (var dir in new[] { "/usr/bin", "/bin" }.Concat(path.Split(':', StringSplitOptions.RemoveEmptyEntries)))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
