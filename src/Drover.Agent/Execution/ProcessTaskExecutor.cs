using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Execution.Spawn;
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
/// A task is started with <c>posix_spawn</c> in a new session through a fixed <c>/bin/sh</c> shim
/// (<see cref="ShimScript"/>) that redirects its stdio into the sandbox, writes its own pid into every
/// task cgroup, then runs the command as its child and waits for it: the shim is the task's
/// supervisor. It records the command's exit status in the task's checkpoint (<see cref="TaskCheckpoint"/>),
/// so the status survives the agent: a task outlives an agent crash, and a restarted agent adopts
/// the tasks still running and reports those that ended while it was down with their real status.
/// The task and its shim share a session and process group (led by the shim), which kills signal.
/// Nothing user-supplied is ever interpolated into shell source: the command travels as arguments.
/// One async supervisor per task waits for exit or a kill request; there are no per-task threads.
/// Tasks with <see cref="TaskSpec.HealthChecks"/> or <see cref="TaskSpec.ReadinessChecks"/> are checked by one shared <see cref="HealthChecker"/>.
/// </remarks>
public sealed partial class ProcessTaskExecutor : ITaskExecutor, IHealthReporter
{
    /// <summary>
    /// $1 = the exits log to record the exit status in, $2 = the task id, $3 = number of cgroup.procs files, then those files, then
    /// the argv of the command. Exit status 125 with the marker file means the shim could not join a
    /// cgroup (a launch failure, not a task failure).
    /// </summary>
    /// <remarks>
    /// The shim stays as the command's parent so the exit status outlives the agent: it appends
    /// <c>"$2 status"</c> to <c>$1</c> (one write, see <see cref="TaskCheckpoint"/>) and exits with it. Signals sent to the task's process group reach the shim
    /// too; it traps them, and POSIX sh defers a trap until the foreground command has completed, so
    /// the shim always outlives the command and records how it ended. A command run in the foreground
    /// starts with default dispositions for the trapped signals (a background one would ignore
    /// SIGINT/SIGQUIT).
    /// </remarks>
    internal const string ShimScript = """
        exec </dev/null >>stdout 2>>stderr
        exits=$1
        task=$2
        n=$3
        shift 3
        while [ "$n" -gt 0 ]; do
          if ! echo $$ >"$1"; then
            echo "drover: cannot join cgroup $1" >&2
            : >.drover-launch-failed
            exit 125
          fi
          shift
          n=$((n - 1))
        done
        trap : TERM INT HUP QUIT USR1 USR2
        "$@"
        code=$?
        echo "$task $code" >>"$exits"
        exit $code
        """;

    /// <summary>argv[0] of the shim: how a restarted agent recognises its tasks' supervisors in /proc.</summary>
    private const string ShimName = "drover-shim";

    private const string LaunchFailedMarker = ".drover-launch-failed";
    private const string Shell = "/bin/sh";

    /// <summary>The kernel's name (<c>/proc/PID/comm</c>) of a process exec'd as <see cref="Shell"/>: the base name of the path exec'd.</summary>
    private const string ShellComm = "sh";
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private static readonly TimeSpan ReapTimeout = TimeSpan.FromSeconds(30);

    private readonly ProcessExecutorOptions _options;
    private readonly ILogger<ProcessTaskExecutor> _logger;
    private readonly TimeProvider _time;
    private readonly string _sandboxRoot;
    private readonly string _cgroupName;
    private readonly ICgroupDriver? _cgroups;
    private readonly string? _setpriv;
    private readonly string _path;
    private readonly string _lang;
    private readonly TaskCheckpoint _checkpoint;
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
        _sandboxRoot = Path.Combine(Path.GetFullPath(options.WorkDir), "sandboxes");
        Directory.CreateDirectory(_sandboxRoot);
        _cgroupName = CgroupDriver.Normalize(options.CgroupName);
        _path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } path ? path : DefaultPath;
        _lang = Environment.GetEnvironmentVariable("LANG") is { Length: > 0 } lang ? lang : "C.UTF-8";
        _setpriv = FindExecutable("setpriv", _path);

        try
        {
            var driver = CgroupDriver.Detect(options.CgroupRoot);
            driver.Create(_cgroupName, CgroupLimits.None);
            _cgroups = driver;
            LogCgroupsReady(_logger, driver.Version, driver.Root, _cgroupName);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (options.RequireCgroups)
            {
                throw new InvalidOperationException(
                    $"cgroups are not usable under {options.CgroupRoot} ({ex.Message}). Run the agent as root, "
                    + "or set RequireCgroups = false to run tasks without isolation.", ex);
            }

            LogCgroupsUnavailable(_logger, options.CgroupRoot, ex.Message);
        }

        _checkpoint = new TaskCheckpoint(options.WorkDir);
        _health = new HealthChecker(this, _logger, _time);
        try
        {
            // Tasks a previous incarnation of this agent launched: adopt those still running, report
            // those that ended meanwhile. Cgroups that belong to no checkpointed task hold processes
            // nobody supervises any more: they must not keep running or holding resources.
            Recover();
            if (_cgroups is not null)
            {
                ReapOrphansAsync().GetAwaiter().GetResult();
            }
        }
        catch
        {
            // A constructor that throws must leave no check loop (or open log) behind.
            _health.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _checkpoint.Dispose();
            throw;
        }
    }

    public ChannelReader<TaskStatus> Updates => _updates.Reader;

    public IReadOnlyCollection<string> KnownTaskIds => [.. _tasks.Keys];

    /// <summary>The cgroup driver in use, or null when running without cgroups.</summary>
    internal ICgroupDriver? Cgroups => _cgroups;

    /// <summary>The task's cgroup (its directories may no longer exist), or null without cgroups.</summary>
    internal Cgroup? CgroupOf(string taskId) => _cgroups?.Open(TaskCgroupName(taskId));

    /// <summary>This agent's own cgroup (parent of the task cgroups).</summary>
    internal Cgroup? AgentCgroup => _cgroups?.Open(_cgroupName);

    /// <summary>The task's main pid (also its process group and session id), or null.</summary>
    internal int? PidOf(string taskId) => _tasks.TryGetValue(taskId, out var run) && run.Pid > 0 ? run.Pid : null;

    /// <summary>The task checkpoint (launches and exit statuses). Internal for tests.</summary>
    internal TaskCheckpoint Checkpoint => _checkpoint;

    /// <summary>The health checker of this executor's tasks.</summary>
    internal HealthChecker Health => _health;

    public void Launch(LaunchTask launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var spec = launch.Task;
        var run = new TaskRun(spec, launch.Ports, Ids.IsValidName(spec.Id) ? Path.Combine(_sandboxRoot, spec.Id) : null);
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
            if (run.Phase != Phase.Running)
            {
                return;
            }

            run.Phase = Phase.Killing;
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
        if (!_tasks.TryGetValue(taskId, out var run) || run.Cgroup is not { } cgroup || _cgroups is null)
        {
            return false;
        }

        lock (run.Gate)
        {
            if (run.Phase != Phase.Running)
            {
                return false;
            }

            try
            {
                _cgroups.UpdateLimits(cgroup, new CgroupLimits
                {
                    MemoryMiB = resources.MemMiB,
                    MilliCpus = resources.MilliCpus,
                    PidsLimit = run.Spec.PidsLimit,
                });
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                LogResizeFailed(_logger, taskId, ex.Message);
                return false;
            }
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
            if (run.Phase != Phase.Ended)
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

        if (!Ids.IsValidName(taskId))
        {
            return null;
        }

        var path = Path.Combine(_sandboxRoot, taskId);
        return Directory.Exists(path) ? path : null;
    }

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

        // Checks stop first: shutting down must not look like (or cause) health failures.
        await _health.DisposeAsync().ConfigureAwait(false);
        if (!_options.KillTasksOnDispose)
        {
            _checkpoint.Dispose();
            _updates.Writer.TryComplete();
            LogLeftRunning(_logger, _tasks.Values.Count(r => r.Phase != Phase.Ended));
            return;
        }

        var runs = _tasks.Values.ToList();
        foreach (var run in runs)
        {
            var grace = run.Spec.KillGracePeriod < _options.ShutdownGracePeriod ? run.Spec.KillGracePeriod : _options.ShutdownGracePeriod;
            Kill(run.Spec.Id, grace);
        }

        await Task.WhenAll(runs.Select(r => r.Done.Task)).ConfigureAwait(false);

        if (_cgroups is not null)
        {
            await ReapOrphansAsync().ConfigureAwait(false);
            if (!await _cgroups.RemoveAsync(_cgroups.Open(_cgroupName)).ConfigureAwait(false))
            {
                LogCgroupRemoveFailed(_logger, _cgroupName);
            }
        }

        _checkpoint.Dispose();
        _updates.Writer.TryComplete();
        LogDisposed(_logger, runs.Count);
    }

    /// <summary>Validates, prepares the sandbox and cgroup, and spawns the shim. Called with the run's lock held.</summary>
    private bool Start(TaskRun run)
    {
        var spec = run.Spec;
        var invalid = Validate(spec, run.Ports.IsDefault ? 0 : run.Ports.Length);
        if (invalid is not null)
        {
            EndLaunchFailed(run, invalid);
            return false;
        }

        if (spec.User is { } user)
        {
            // Run as the task's user (Marathon's "user"): the shim joins the cgroups and opens the
            // logs as the agent's user, then setpriv drops to the user before exec'ing the command.
            if (_setpriv is null)
            {
                EndLaunchFailed(run, $"Cannot run as user '{user}': setpriv (util-linux) is not installed on this agent");
                return false;
            }

            if (!Native.TryGetUser(user, out var uid, out var gid))
            {
                EndLaunchFailed(run, $"Cannot run as user '{user}': no such user on agent {_options.Hostname}");
                return false;
            }

            run.RunAs = (uid, gid);
        }

        try
        {
            Directory.CreateDirectory(run.Sandbox!);
            Touch(Path.Combine(run.Sandbox!, "stdout"));
            Touch(Path.Combine(run.Sandbox!, "stderr"));
            if (run.RunAs is var (runUid, runGid))
            {
                // The sandbox belongs to the task's user, as Mesos does it.
                Native.Chown(run.Sandbox!, runUid, runGid);
                Native.Chown(Path.Combine(run.Sandbox!, "stdout"), runUid, runGid);
                Native.Chown(Path.Combine(run.Sandbox!, "stderr"), runUid, runGid);
            }

            File.Delete(Path.Combine(run.Sandbox!, LaunchFailedMarker));
            run.ExitsLog = _checkpoint.WriteLaunch(new LaunchTask { Task = spec, Ports = run.Ports });
            if (_cgroups is not null)
            {
                run.Cgroup = _cgroups.Create(TaskCgroupName(spec.Id), new CgroupLimits
                {
                    MemoryMiB = spec.Resources.MemMiB,
                    MilliCpus = spec.Resources.MilliCpus,
                    PidsLimit = spec.PidsLimit,
                });
            }

            // posix_spawn in a new session (the task leads its own session and process group), reaped by
            // the ChildReaper: see ChildProcess for why not System.Diagnostics.Process.
            var info = BuildStartInfo(run);
            var child = ChildProcess.Start(info.FileName, [info.FileName, .. info.ArgumentList],
                info.Environment.Where(kv => kv.Value is not null).Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value!)),
                info.WorkingDirectory, newSession: true);
            run.Pid = child.Pid;
            run.ShimExited = child.Exited;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Win32Exception or InvalidOperationException)
        {
            LogLaunchFailed(_logger, spec.Id, ex);
            if (run.Cgroup is { } cgroup)
            {
                _ = RemoveQuietlyAsync(spec.Id, cgroup);
            }

            EndLaunchFailed(run, $"Failed to launch task: {ex.Message}");
            return false;
        }

        run.Phase = Phase.Running;
        Emit(run, TaskState.Starting, TaskSources.Executor);
        Emit(run, TaskState.Running, TaskSources.Executor);
        LogLaunched(_logger, spec.Id, run.Pid, run.Cgroup?.Name);
        return true;
    }

    private void EndLaunchFailed(TaskRun run, string message)
    {
        run.Phase = Phase.Ended;
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

    private ProcessStartInfo BuildStartInfo(TaskRun run)
    {
        var spec = run.Spec;
        var info = new ProcessStartInfo(Shell)
        {
            UseShellExecute = false,
            WorkingDirectory = run.Sandbox,
        };

        var env = info.Environment;
        env.Clear();
        foreach (var (key, value) in TaskEnvironment(run))
        {
            env[key] = value;
        }

        var args = info.ArgumentList;
        args.Add("-c");
        args.Add(ShimScript);
        args.Add(ShimName);
        args.Add(run.ExitsLog!);
        args.Add(spec.Id);
        var procs = run.Cgroup?.ProcsFiles.ToList() ?? [];
        args.Add(procs.Count.ToString(CultureInfo.InvariantCulture));
        foreach (var file in procs)
        {
            args.Add(file);
        }

        // No setsid step: the shim is spawned in a new session already (ChildProcess, newSession), so
        // it leads the task's session and process group.

        if (run.RunAs is var (uid, gid))
        {
            args.Add(_setpriv!);
            args.Add(string.Create(CultureInfo.InvariantCulture, $"--reuid={uid}"));
            args.Add(string.Create(CultureInfo.InvariantCulture, $"--regid={gid}"));
            args.Add("--init-groups");
            args.Add("--");
            env["USER"] = spec.User!;
            env["LOGNAME"] = spec.User!;
        }

        if (!string.IsNullOrWhiteSpace(spec.Shell))
        {
            if (SimpleCommand.TrySplit(spec.Shell) is { } words)
            {
                // "sleep 600": the program itself under the shim, without a `sh -c` process in between.
                foreach (var word in words)
                {
                    args.Add(word);
                }
            }
            else
            {
                args.Add(Shell);
                args.Add("-c");
                args.Add(spec.Shell);
            }
        }
        else
        {
            foreach (var arg in spec.Args)
            {
                args.Add(arg);
            }
        }

        return info;
    }

    /// <summary>The task's whole environment (also given to its COMMAND health checks).</summary>
    private Dictionary<string, string> TaskEnvironment(TaskRun run)
    {
        var spec = run.Spec;
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = _path,
            ["LANG"] = _lang,
        };
        foreach (var (key, value) in spec.Env)
        {
            if (key.Length > 0 && !key.Contains('=', StringComparison.Ordinal))
            {
                env[key] = value;
            }
        }

        // Drover's own variables win over the task's: a task cannot lie to itself about its ports.
        env["MESOS_SANDBOX"] = run.Sandbox!;
        env["DROVER_SANDBOX"] = run.Sandbox!;
        env["MESOS_TASK_ID"] = spec.Id;
        env["DROVER_TASK_ID"] = spec.Id;
        env["HOST"] = _options.Hostname;
        var ports = run.Ports.IsDefault ? [] : run.Ports;
        for (var i = 0; i < ports.Length; i++)
        {
            env[string.Create(CultureInfo.InvariantCulture, $"PORT{i}")] = ports[i].ToString(CultureInfo.InvariantCulture);
        }

        for (var i = 0; i < ports.Length && i < spec.PortNames.Length; i++)
        {
            // Marathon's PORT_<NAME> for named ports (upper-cased, anything but letters/digits as '_').
            if (spec.PortNames[i] is { Length: > 0 } name)
            {
                var key = new string([.. name.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
                env["PORT_" + key] = ports[i].ToString(CultureInfo.InvariantCulture);
            }
        }

        if (ports.Length > 0)
        {
            env["PORT"] = ports[0].ToString(CultureInfo.InvariantCulture);
            env["PORTS"] = string.Join(',', ports.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        }

        return env;
    }

    /// <summary>Waits for the task to exit or be killed, cleans up its cgroup and reports the terminal state.</summary>
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
                    killing = run.Phase == Phase.Killing;
                    if (!killing)
                    {
                        run.Phase = Phase.Exiting;
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
                if (run.Phase != Phase.Ended)
                {
                    run.Phase = Phase.Ended;
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
        var code = ExitCodeOf(run, await run.ShimExited!.ConfigureAwait(false));
        var signal = code is > 128 and <= 128 + 64 ? code.Value - 128 : 0;
        var oom = run.Cgroup is not null && _cgroups!.WasOomKilled(run.Cgroup, signal == Native.SigKill);
        var launchFailed = code == 125 && File.Exists(Path.Combine(run.Sandbox!, LaunchFailedMarker));
        LogExited(_logger, run.Spec.Id, code ?? -1);

        // No process outlives its task: whatever it left running in the background dies now.
        await CleanUpAsync(run, mainExited: true).ConfigureAwait(false);

        TaskState state;
        string message;
        string? reason = null;
        if (launchFailed)
        {
            (state, message, reason) = (TaskState.Failed, "Failed to launch task: could not join its cgroups", TaskReasons.ContainerLaunchFailed);
        }
        else if (oom)
        {
            (state, message, reason) = (TaskState.Failed,
                string.Create(CultureInfo.InvariantCulture, $"Memory limit exceeded: limit {run.Spec.Resources.MemMiB} MiB"),
                TaskReasons.ContainerLimitationMemory);
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
            run.Phase = Phase.Ended;
            Emit(run, state, TaskSources.Executor, message, reason, code);
        }
    }

    private async Task KillAndReapAsync(TaskRun run, Task exited)
    {
        var grace = await run.KillRequested.Task.ConfigureAwait(false);
        if (!exited.IsCompleted)
        {
            Signal(run, Native.SigTerm);
            if (grace > TimeSpan.Zero)
            {
                using var cts = new CancellationTokenSource();
                await Task.WhenAny(exited, Task.Delay(grace, _time, cts.Token)).ConfigureAwait(false);
                await cts.CancelAsync().ConfigureAwait(false);
            }
        }

        if (!exited.IsCompleted)
        {
            Signal(run, Native.SigKill);
        }

        await CleanUpAsync(run, mainExited: false).ConfigureAwait(false);
        int? code = null;
        try
        {
            await exited.WaitAsync(ReapTimeout, _time).ConfigureAwait(false);
            code = ExitCodeOf(run, run.ShimExited!.Result);
        }
        catch (TimeoutException)
        {
            LogUnkillable(_logger, run.Spec.Id, run.Pid);
        }

        LogKilled(_logger, run.Spec.Id);
        lock (run.Gate)
        {
            run.Phase = Phase.Ended;
            if (run.HealthFailure is { } failure)
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

    /// <summary>SIGKILLs whatever is left of the task and removes its cgroup(s).</summary>
    private async Task CleanUpAsync(TaskRun run, bool mainExited)
    {
        if (run.Cgroup is { } cgroup)
        {
            if (!await _cgroups!.KillAllAsync(cgroup).ConfigureAwait(false))
            {
                LogCgroupNotEmpty(_logger, run.Spec.Id, cgroup.Name);
            }

            if (!await _cgroups.RemoveAsync(cgroup).ConfigureAwait(false))
            {
                LogCgroupRemoveFailed(_logger, cgroup.Name);
            }
        }
        else if (Native.KillGroup(run.Pid, Native.SigKill) && mainExited)
        {
            // Without cgroups the process group is all we have; its id cannot be reused while the group exists.
            LogLeftoversKilled(_logger, run.Spec.Id);
        }
    }

    /// <summary>Signals the task's process group (the shim was spawned in a new session, so the task leads one).</summary>
    private static void Signal(TaskRun run, int signal)
    {
        if (!Native.KillGroup(run.Pid, signal))
        {
            Native.Kill(run.Pid, signal);
        }
    }

    /// <summary>
    /// The command's exit status: what the shim recorded, else (the shim itself was killed) the shim's
    /// own status when this process is its parent, else unknown.
    /// </summary>
    private int? ExitCodeOf(TaskRun run, int shimStatus) =>
        _checkpoint.ReadExit(run.Spec.Id) ?? (shimStatus == ChildReaper.UnknownStatus ? null : shimStatus);

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
                Environment = TaskEnvironment(run),
                CgroupProcsFiles = [.. run.Cgroup?.ProcsFiles ?? []],
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
        var shims = FindShims();
        foreach (var rec in _checkpoint.Recovered)
        {
            var identity = new ShimIdentity(rec.ExitsLog, rec.TaskId);
            var shim = shims.GetValueOrDefault(identity);
            var run = new TaskRun(rec.Launch.Task, rec.Launch.Ports, Path.Combine(_sandboxRoot, rec.TaskId))
            {
                Cgroup = _cgroups?.Open(TaskCgroupName(rec.TaskId)),
                Pid = shim,
                Phase = Phase.Running,
                ExitsLog = rec.ExitsLog,
            };

            // The shim may have ended between the scan and now: WatchForeign checks it again through a pidfd.
            var watch = shim > 0 && rec.ExitCode is null ? ChildReaper.Instance.WatchForeign(shim, p => IdentifyShim(p) == identity) : null;
            run.ShimExited = watch ?? Task.FromResult(ChildReaper.UnknownStatus);
            _tasks[rec.TaskId] = run;
            if (watch is not null)
            {
                adopted++;
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

    /// <summary>
    /// The shims running on this machine, by the exits log and task id their command line names (one
    /// scan of /proc when the agent starts: the shims do not record their pids, to keep a launch to as
    /// few files as possible). Shims of other agents on the machine name other work dirs.
    /// </summary>
    internal static Dictionary<ShimIdentity, int> FindShims()
    {
        var shims = new Dictionary<ShimIdentity, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            // comm first: reading a command line takes the process' mmap lock, which a process hung
            // in the kernel may hold; a shim's comm is that of /bin/sh.
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && ReadProc(pid, "comm")?.TrimEnd('\n') == ShellComm
                && IdentifyShim(pid) is { } identity)
            {
                shims[identity] = pid;
            }
        }

        return shims;
    }

    /// <summary>The exits log and task id named by <paramref name="pid"/>'s command line if it is a shim, else null.</summary>
    private static ShimIdentity? IdentifyShim(int pid)
    {
        var argv = ReadProc(pid, "cmdline")?.Split('\0');
        var at = argv is null ? -1 : Array.IndexOf(argv, ShimName);
        return at >= 0 && at + 2 < argv!.Length ? new ShimIdentity(argv[at + 1], argv[at + 2]) : null;
    }

    private static string? ReadProc(int pid, string file)
    {
        try
        {
            return File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/{file}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>What a shim's command line says it supervises.</summary>
    internal readonly record struct ShimIdentity(string ExitsLog, string TaskId);

    private async Task ReapOrphansAsync()
    {
        foreach (var child in _cgroups!.ListChildren(_cgroupName))
        {
            if (_tasks.ContainsKey(child) || !Ids.IsValidName(child))
            {
                continue;
            }

            var cgroup = _cgroups.Open(TaskCgroupName(child));
            var pids = _cgroups.ListPids(cgroup).Count;
            await _cgroups.KillAllAsync(cgroup).ConfigureAwait(false);
            await _cgroups.RemoveAsync(cgroup).ConfigureAwait(false);
            LogOrphanReaped(_logger, cgroup.Name, pids);
        }
    }

    private async Task RemoveQuietlyAsync(string taskId, Cgroup cgroup)
    {
        try
        {
            await _cgroups!.RemoveAsync(cgroup).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogCleanupFailed(_logger, taskId, ex);
        }
    }

    private string TaskCgroupName(string taskId) => $"{_cgroupName}/{taskId}";

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
            if (run.Phase != Phase.Running)
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

    private static void Touch(string path)
    {
        // A bare handle, not a FileStream: this runs twice per launch, and FileStream's set-up showed in profiles.
        using var _ = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
    }

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

    private enum Phase
    {
        Launching,
        Running,
        Killing,
        Exiting,
        Ended,
    }

    private sealed class TaskRun(TaskSpec spec, ImmutableArray<int> ports, string? sandbox)
    {
        public Lock Gate { get; } = new();

        public TaskSpec Spec { get; } = spec;

        public ImmutableArray<int> Ports { get; } = ports;

        /// <summary>Null only for a task whose id is unusable as a directory name (it fails at launch).</summary>
        public string? Sandbox { get; } = sandbox;

        /// <summary>The uid/gid to run as when the spec names a user.</summary>
        public (uint Uid, uint Gid)? RunAs { get; set; }

        public Phase Phase { get; set; } = Phase.Launching;

        public Cgroup? Cgroup { get; set; }

        /// <summary>
        /// Completes when the shim exits: with its wait status when this process spawned it, with
        /// <see cref="ChildReaper.UnknownStatus"/> for a shim adopted from a previous agent process.
        /// </summary>
        public Task<int>? ShimExited { get; set; }

        /// <summary>The exits log the task's shim appends its exit status to.</summary>
        public string? ExitsLog { get; set; }

        /// <summary>The shim's pid: it leads the task's session and process group.</summary>
        public int Pid { get; set; }

        /// <summary>The task's health check registration, when it has a check.</summary>
        public HealthChecker.TaskHealth? Health { get; set; }

        /// <summary>Set when the task is being killed for failing its health check: why.</summary>
        public string? HealthFailure { get; set; }

        /// <summary>Set (once) with the grace period when a kill is requested.</summary>
        public TaskCompletionSource<TimeSpan> KillRequested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when the task has ended and been cleaned up.</summary>
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
