using System.Collections.Immutable;
using System.Text.Json;
using System.Threading.Channels;
using Drover.Agent.Execution;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Mesos;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Executors;

/// <summary>
/// The agent's task runner: plain tasks go to the command-task executor; tasks with a
/// <see cref="TaskSpec.Executor"/> go to a custom executor process, started once per (framework id,
/// executor id) and driven through <c>POST /api/v1/executor</c>. See <c>Executors/README.md</c>.
/// </summary>
/// <remarks>
/// Thread-safe: every executor and executor-task transition happens under one lock, so the updates
/// of one task are emitted in order. Executor processes are run by a second
/// <see cref="ProcessTaskExecutor"/> (own work dir <c>{WorkDir}/executors</c>, own cgroup subtree
/// <c>{CgroupName}-executors</c>): sandbox, cgroup, shim and kill semantics are exactly those of tasks,
/// and the two never see each other's ids. Launch, Kill and Forget are idempotent like the inner executor's.
/// </remarks>
public sealed partial class ExecutorManager : ITaskExecutor
{
    /// <summary>Mesos' reason for tasks of an executor that never subscribed.</summary>
    public const string ReasonRegistrationTimeout = "REASON_EXECUTOR_REGISTRATION_TIMEOUT";

    /// <summary>Mesos' reason for tasks of an executor that did not re-subscribe after an agent restart.</summary>
    public const string ReasonReregistrationTimeout = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT";

    private readonly ITaskExecutor _tasks;
    private readonly ProcessTaskExecutor _containers;
    private readonly string _tasksSandboxRoot;
    private readonly ExecutorManagerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ExecutorManager> _logger;
    private readonly ExecutorTokens _tokens;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Framework, string Executor), ExecutorRun> _executors = [];
    private readonly Dictionary<string, ExecutorRun> _byContainer = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ExecTask> _execTasks = new(StringComparer.Ordinal);
    private readonly Channel<TaskStatus> _updates = Channel.CreateUnbounded<TaskStatus>();
    private readonly Channel<FrameworkMessage> _outgoing = Channel.CreateBounded<FrameworkMessage>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly Channel<ExecutorExit> _exits = Channel.CreateUnbounded<ExecutorExit>();

    /// <summary>Exits emitted and not yet acknowledged by the master, by uuid: still listed as live to the master.</summary>
    private readonly Dictionary<string, LiveExecutor> _reporting = new(StringComparer.Ordinal);

    /// <summary>Executors recovered from a previous agent process: their timeout starts at <see cref="AttachAgent"/>.</summary>
    private readonly List<ExecutorRun> _awaitingAttach = [];
    private readonly string _checkpointDir;
    private readonly string _executorsDir;
    private readonly Task _taskPump;
    private readonly Task _containerPump;
    private readonly ITimer _heartbeat;
    private Func<string?> _agentId = () => null;
    private string _agentEndpoint = "127.0.0.1:5051";
    private string _hostname = Environment.MachineName;
    private int _disposed;

    /// <param name="tasks">Runs plain (command) tasks; owned (disposed) by this manager.</param>
    /// <param name="processOptions">The agent's process options; executor processes get their own work dir and cgroup subtree beside them.</param>
    public ExecutorManager(ITaskExecutor tasks, ProcessExecutorOptions processOptions, ExecutorManagerOptions options, ILoggerFactory loggers, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(processOptions);
        ArgumentNullException.ThrowIfNull(loggers);
        _tasks = tasks;
        _options = options ?? new ExecutorManagerOptions();
        _time = time;
        _logger = loggers.CreateLogger<ExecutorManager>();
        _hostname = processOptions.Hostname;
        var containerOptions = processOptions with
        {
            WorkDir = Path.Combine(Path.GetFullPath(processOptions.WorkDir), "executors"),
            CgroupName = processOptions.CgroupName.TrimEnd('/') + "-executors",

            // An executor sees its own sandbox, never the agent's work dir around it (the tasks' sandboxes included).
            AgentRoot = Path.GetFullPath(processOptions.AgentRoot ?? processOptions.WorkDir),
        };
        _tasksSandboxRoot = Path.Combine(Path.GetFullPath(processOptions.WorkDir), "sandboxes");
        _tokens = ExecutorTokens.LoadOrCreate(Path.Combine(Path.GetFullPath(processOptions.WorkDir), "meta"), time);
        RestrictToOwner(Path.Combine(containerOptions.WorkDir, "meta"));
        _containers = new ProcessTaskExecutor(containerOptions, loggers.CreateLogger<ProcessTaskExecutor>(), time);
        _checkpointDir = Path.Combine(Path.GetFullPath(processOptions.WorkDir), "meta", "executor-tasks");
        Directory.CreateDirectory(_checkpointDir);
        _executorsDir = Path.Combine(Path.GetFullPath(processOptions.WorkDir), "meta", "executors");
        Directory.CreateDirectory(_executorsDir);
        Recover();
        _taskPump = PumpTasksAsync();
        _containerPump = PumpContainersAsync();
        _heartbeat = time.CreateTimer(_ => SendHeartbeats(), null, _options.HeartbeatInterval, _options.HeartbeatInterval);
    }

    public ChannelReader<TaskStatus> Updates => _updates.Reader;

    /// <summary>Issues each executor container's token and checks the tokens executors present (<see cref="ExecutorApi"/>).</summary>
    internal ExecutorTokens Tokens => _tokens;

    public IReadOnlyCollection<string> KnownTaskIds
    {
        get
        {
            var plain = _tasks.KnownTaskIds;
            lock (_gate)
            {
                return [.. plain, .. _execTasks.Keys];
            }
        }
    }

    public LaunchTask? LaunchOf(string taskId)
    {
        lock (_gate)
        {
            if (_execTasks.TryGetValue(taskId, out var task))
            {
                return task.Launch;
            }
        }

        return _tasks.LaunchOf(taskId);
    }

    /// <summary>
    /// Executor exits for the master. The agent makes each durable (<see cref="OnExitsDurable"/>), delivers it at
    /// least once and reports the acknowledgement (<see cref="OnExitsAcknowledged"/>).
    /// </summary>
    public ChannelReader<ExecutorExit> Exits => _exits.Reader;

    /// <summary>
    /// Executors the master should count as running here: every executor whose process has not ended, and every
    /// ended one whose exit the master has not acknowledged yet (so it never forgets one whose exit is on its way).
    /// </summary>
    public IReadOnlyList<LiveExecutor> LiveExecutors
    {
        get
        {
            lock (_gate)
            {
                return [.. _byContainer.Values.Select(r => new LiveExecutor { Executor = r.Spec, ContainerId = r.ContainerId }), .. _reporting.Values];
            }
        }
    }

    /// <summary>Exits are on disk in the agent's update log, which now owns their delivery: the executors' checkpoints go.</summary>
    public void OnExitsDurable(IEnumerable<ExecutorExit> exits)
    {
        ArgumentNullException.ThrowIfNull(exits);
        foreach (var exit in exits)
        {
            if (exit.ContainerId is { } containerId && Ids.IsValidName(containerId))
            {
                File.Delete(ExecutorCheckpointPath(containerId));
                File.Delete(SubscribedPath(containerId));
            }
        }
    }

    /// <summary>The master acknowledged these exits (uuids; others are ignored): the executors are no longer listed.</summary>
    public void OnExitsAcknowledged(IEnumerable<string> uuids)
    {
        ArgumentNullException.ThrowIfNull(uuids);
        lock (_gate)
        {
            foreach (var uuid in uuids)
            {
                _reporting.Remove(uuid);
            }
        }
    }

    /// <summary>Messages executors sent their schedulers; the agent posts them to the master (best effort).</summary>
    public ChannelReader<FrameworkMessage> OutgoingMessages => _outgoing.Reader;

    /// <summary>Containers (executor processes) started and not yet ended and cleaned up. For tests and diagnostics.</summary>
    public IReadOnlyCollection<string> ContainerIds => _containers.KnownTaskIds;

    /// <summary>
    /// Tells the manager how executors reach this agent (<c>MESOS_AGENT_ENDPOINT</c>, <c>host:port</c>) and
    /// its id (read when needed: it is confirmed at registration). Called once by the agent at start, once its
    /// HTTP endpoint serves: only then do the executors recovered from a previous agent process start their
    /// (re-)registration timeout, so the agent's own start-up does not eat into it.
    /// </summary>
    public void AttachAgent(Uri endpoint, Func<string?> agentId, string hostname)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var host = endpoint.Host is "0.0.0.0" or "[::]" or "+" or "*" ? "127.0.0.1" : endpoint.Host;
        _agentEndpoint = $"{host}:{endpoint.Port}";
        _agentId = agentId;
        _hostname = hostname;
        lock (_gate)
        {
            foreach (var run in _awaitingAttach)
            {
                if (!run.EverSubscribed && !run.Terminated)
                {
                    var timeout = run.WasSubscribed ? _options.ReregistrationTimeout : _options.RegistrationTimeout;
                    run.RegistrationTimer ??= _time.CreateTimer(_ => RegistrationTimedOut(run), null, timeout, Timeout.InfiniteTimeSpan);
                }
            }

            _awaitingAttach.Clear();
        }
    }

    /// <summary>The container (executor process) currently running the executor, or null. For tests and diagnostics.</summary>
    public string? ContainerOf(string frameworkId, string executorId)
    {
        lock (_gate)
        {
            return _executors.TryGetValue((frameworkId, executorId), out var run) ? run.ContainerId : null;
        }
    }

    public void Launch(LaunchTask launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var spec = launch.Task;
        if (spec.Executor is not { } exec)
        {
            _tasks.Launch(launch);
            return;
        }

        lock (_gate)
        {
            if (_execTasks.ContainsKey(spec.Id))
            {
                return; // re-sent by the master
            }

            var task = new ExecTask(launch, exec);
            _execTasks[spec.Id] = task;
            WriteCheckpoint(launch);
            if (ValidateExecutor(spec, exec) is { } invalid)
            {
                EndTask(task, TaskState.Failed, invalid, TaskReasons.TaskInvalid);
                return;
            }

            if (AdmitLocked([task], exec) is { } run)
            {
                if (run.Subscription is not null)
                {
                    SendLaunch(run, task);
                }

                Resize(run);
            }
        }
    }

    /// <summary>
    /// The tasks of one task group (Mesos' LAUNCH_GROUP). Tasks without an executor (the DEFAULT executor's) run as
    /// command tasks, each on its own; the tasks of a custom executor are admitted together — all of them, or none
    /// (each then ends TASK_FAILED) — and handed to the executor in one LAUNCH_GROUP event. Tasks already known are
    /// skipped (a re-send). Idempotent, like <see cref="Launch"/>.
    /// </summary>
    public void LaunchGroup(LaunchTaskGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        foreach (var plain in group.Tasks.Where(l => l.Task.Executor is null))
        {
            _tasks.Launch(plain);
        }

        lock (_gate)
        {
            var fresh = group.Tasks.Where(l => l.Task.Executor is not null && !_execTasks.ContainsKey(l.Task.Id)).ToList();
            if (fresh.Count == 0)
            {
                return;
            }

            var groupKey = fresh[0].Task.TaskGroupId ?? fresh[0].Task.Id;
            var tasks = fresh.ConvertAll(l => new ExecTask(l, l.Task.Executor!) { GroupKey = groupKey });
            foreach (var task in tasks)
            {
                _execTasks[task.Launch.Task.Id] = task;
                WriteCheckpoint(task.Launch);
            }

            var exec = tasks[0].Executor;
            var invalid = tasks.Select(t => ValidateExecutor(t.Launch.Task, t.Executor)).FirstOrDefault(e => e is not null)
                ?? (tasks.Exists(t => t.Executor.FrameworkId != exec.FrameworkId || t.Executor.ExecutorId != exec.ExecutorId || !SameCommand(t.Executor, exec))
                    ? "The tasks of a task group must all be run by the same executor" : null);
            if (invalid is not null)
            {
                foreach (var task in tasks)
                {
                    EndTask(task, TaskState.Failed, invalid, TaskReasons.TaskInvalid);
                }

                return;
            }

            if (AdmitLocked(tasks, exec) is { } run)
            {
                if (run.Subscription is not null)
                {
                    SendLaunchGroup(run, tasks);
                }

                Resize(run);
            }
        }
    }

    /// <summary>
    /// Gives <paramref name="tasks"/> (one task, or one task group) to their executor, starting it when it does not
    /// run: all of them, or — when the executor is shutting down or runs another command — none, each then ended
    /// TASK_FAILED. Returns the executor, or null when the tasks failed. Called with the gate held.
    /// </summary>
    private ExecutorRun? AdmitLocked(List<ExecTask> tasks, ExecutorSpec exec)
    {
        var key = (exec.FrameworkId, exec.ExecutorId);
        if (_executors.TryGetValue(key, out var run))
        {
            var refused = run.Terminating ? (TaskReasons.ExecutorTerminated, $"Executor '{exec.ExecutorId}' is shutting down")
                : !SameCommand(run.Spec, exec) ? (TaskReasons.TaskInvalid, $"Executor '{exec.ExecutorId}' of framework '{exec.FrameworkId}' already runs with a different command")
                : default((string Reason, string Message)?);
            if (refused is var (reason, message))
            {
                foreach (var task in tasks)
                {
                    EndTask(task, TaskState.Failed, message, reason);
                }

                return null;
            }

            if (!run.MesosTaskIdsKnown)
            {
                // Recovered without any task to tell: the first task it is given tells.
                run.MesosTaskIds = tasks[0].Launch.Task.FrameworkId is not null;
                run.MesosTaskIdsKnown = true;
            }
        }
        else
        {
            run = StartExecutor(exec, tasks[0].Launch.Task);
        }

        foreach (var task in tasks)
        {
            task.Run = run;
            task.Sandbox = _containers.SandboxOf(run.ContainerId)!;
            LinkSandbox(task.Launch.Task.Id, task.Sandbox);
            run.Tasks[task.Launch.Task.Id] = task;
        }

        return run;
    }

    public void Kill(string taskId, TimeSpan? gracePeriod = null)
    {
        if (!KillExecutorTask(taskId, gracePeriod))
        {
            _tasks.Kill(taskId, gracePeriod); // a plain task: not under this manager's lock
        }
    }

    /// <summary>False when <paramref name="taskId"/> is not an executor's task.</summary>
    private bool KillExecutorTask(string taskId, TimeSpan? gracePeriod)
    {
        lock (_gate)
        {
            if (!_execTasks.TryGetValue(taskId, out var task))
            {
                return false;
            }

            switch (task.Phase)
            {
                case TaskPhase.Queued:
                    // Never given to the executor: nothing to ask it. A task group is delivered whole or not at all,
                    // so the rest of a queued group is killed with it (as a Mesos agent does).
                    EndTask(task, TaskState.Killed, "Task killed before it was delivered to its executor", TaskReasons.TaskKilledDuringLaunch);
                    foreach (var sibling in task.GroupKey is { } groupKey && task.Run is { } owner
                        ? owner.Tasks.Values.Where(t => t.GroupKey == groupKey && t.Phase == TaskPhase.Queued).OrderBy(t => t.Sequence).ToList()
                        : [])
                    {
                        EndTask(sibling, TaskState.Killed, $"Task killed before it was delivered to its executor: task '{task.Run!.ToExecutor(taskId)}' of its task group was killed", TaskReasons.TaskKilledDuringLaunch);
                    }

                    if (task.Run is { } run)
                    {
                        Resize(run);
                    }

                    break;
                case TaskPhase.Launched:
                    var grace = gracePeriod ?? task.Launch.Task.KillGracePeriod;
                    task.KillRequested = true;
                    task.KillGrace = grace;
                    SendKill(task);
                    task.KillTimer ??= _time.CreateTimer(_ => KillDeadlinePassed(task), null, grace + _options.KillMargin, Timeout.InfiniteTimeSpan);
                    break;
                default:
                    break;
            }

            return true;
        }
    }

    public void Forget(string taskId)
    {
        lock (_gate)
        {
            if (_execTasks.TryGetValue(taskId, out var task))
            {
                if (task.Phase == TaskPhase.Ended)
                {
                    _execTasks.Remove(taskId);
                    task.Run?.Tasks.Remove(taskId);
                    DeleteCheckpoint(taskId);
                }

                return;
            }
        }

        _tasks.Forget(taskId);
    }

    /// <remarks>A task run by an executor shares its executor's sandbox (stdout/stderr are the executor's), as in Mesos.</remarks>
    public string? SandboxPath(string taskId)
    {
        lock (_gate)
        {
            if (_execTasks.TryGetValue(taskId, out var task))
            {
                return task.Sandbox;
            }
        }

        return _tasks.SandboxPath(taskId);
    }

    /// <summary>A scheduler's message for one of its executors (best effort: dropped when it is not subscribed).</summary>
    public bool Deliver(FrameworkMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        lock (_gate)
        {
            if (_executors.TryGetValue((message.FrameworkId, message.ExecutorId), out var run) && run.Subscription is { } sub)
            {
                sub.Send(new ExecutorEvent { Type = "MESSAGE", Message = new ExecutorMessage { Data = message.Data } });
                return true;
            }
        }

        LogMessageDropped(message.FrameworkId, message.ExecutorId);
        return false;
    }

    /// <summary>
    /// Shuts an executor down: SHUTDOWN event, then the process is killed after the shutdown grace period
    /// (at once with SIGTERM→SIGKILL when it is not subscribed). Its tasks left unfinished end TASK_KILLED.
    /// </summary>
    public void Shutdown(string frameworkId, string executorId)
    {
        lock (_gate)
        {
            if (_executors.TryGetValue((frameworkId, executorId), out var run))
            {
                ShutdownLocked(run, "shutdown requested by the framework");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _heartbeat.DisposeAsync().ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var run in _executors.Values)
            {
                run.DisposeTimers();
                run.Subscription?.Complete();
            }

            foreach (var task in _execTasks.Values)
            {
                task.KillTimer?.Dispose();
            }
        }

        await _containers.DisposeAsync().ConfigureAwait(false);
        await _containerPump.ConfigureAwait(false);
        await _tasks.DisposeAsync().ConfigureAwait(false);
        await _taskPump.ConfigureAwait(false);
        _updates.Writer.TryComplete();
        _outgoing.Writer.TryComplete();
        _exits.Writer.TryComplete();
    }

    // ---- /api/v1/executor calls (validated for shape by ExecutorApi) ----

    /// <summary>
    /// SUBSCRIBE: replaces any previous subscription of the executor; the returned stream starts with
    /// SUBSCRIBED, then delivers re-sent and queued LAUNCHes and pending KILLs. Unacknowledged updates
    /// are handled as UPDATEs (a duplicate uuid is only acknowledged again). Launched tasks the executor
    /// no longer knows (neither in <c>unacknowledged_tasks</c> nor with an update) are launched again when
    /// they were launched by this agent process — they can only have been lost on the broken stream — but
    /// end TASK_DROPPED (REASON_AGENT_RESTARTED) when they were recovered from a previous agent process's
    /// checkpoints, as a Mesos agent does: that agent may have died before the LAUNCH reached the executor,
    /// or after, and only the executor could tell.
    /// </summary>
    internal (CallOutcome Outcome, ExecutorSubscription? Subscription) Subscribe(ExecutorPrincipal caller, ExecutorSubscribe subscribe)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(subscribe);
        var (frameworkId, executorId) = (caller.FrameworkId, caller.ExecutorId);
        lock (_gate)
        {
            var (run, outcome) = Find(caller, needSubscribed: false);
            if (run is null)
            {
                return (outcome, null);
            }

            // Refused as a whole, before anything changes, when an update it re-sends is about another's task.
            foreach (var u in subscribe.UnacknowledgedUpdates ?? [])
            {
                if (u.Status is { } status && ExecutorApi.ValidateStatus(status, executorId) is null && ForeignTask(run, status) is { } foreign)
                {
                    return (CallOutcome.Forbidden(foreign), null);
                }
            }

            run.Subscription?.Complete();
            if (!run.WasSubscribed)
            {
                // Before any LAUNCH can go out: a restarted agent then knows its tasks may have reached the executor.
                MarkSubscribed(run.ContainerId);
                run.WasSubscribed = true;
            }

            var sub = new ExecutorSubscription(run);
            run.Subscription = sub;
            run.EverSubscribed = true;
            run.RegistrationTimer?.Dispose();
            run.RegistrationTimer = null;
            LogSubscribed(frameworkId, executorId, run.ContainerId);
            sub.Send(new ExecutorEvent
            {
                Type = "SUBSCRIBED",
                Subscribed = new ExecutorSubscribed
                {
                    ExecutorInfo = ExecutorInfo(run.Spec),
                    FrameworkInfo = new MFrameworkInfo { Id = new MId(frameworkId), User = "", Name = "" },
                    AgentInfo = new MAgentInfo { Hostname = _hostname, Port = PortOf(_agentEndpoint), Id = AgentIdOrNull() },
                    ContainerId = new MId(run.ContainerId),
                },
            });

            if (run.Terminating)
            {
                sub.Send(new ExecutorEvent { Type = "SHUTDOWN" });
                return (CallOutcome.Ok, sub);
            }

            var known = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in subscribe.UnacknowledgedTasks ?? [])
            {
                if (t.TaskId?.Value is { } id)
                {
                    known.Add(DroverTaskId(run, id));
                }
            }

            foreach (var u in subscribe.UnacknowledgedUpdates ?? [])
            {
                if (u.Status is { } status && ExecutorApi.ValidateStatus(status, executorId) is null)
                {
                    known.Add(DroverTaskId(run, status.TaskId!.Value!));
                    UpdateLocked(run, status);
                }
            }

            foreach (var task in run.Tasks.Values.Where(t => t.Recovered).OrderBy(t => t.Sequence).ToList())
            {
                task.Recovered = false;
                if (task.Phase == TaskPhase.Launched && !task.HasUpdate && !known.Contains(task.Launch.Task.Id))
                {
                    EndTask(task, TaskState.Dropped,
                        $"Task launched during agent restart: executor '{executorId}' did not know it when it re-subscribed", TaskReasons.AgentRestarted);
                }
            }

            // A task group's tasks go in one LAUNCH_GROUP, as they first did (GroupBy keeps the order of first appearance).
            var launch = run.Tasks.Values.OrderBy(t => t.Sequence)
                .Where(t => t.Phase == TaskPhase.Queued || (t.Phase == TaskPhase.Launched && !t.HasUpdate && !known.Contains(t.Launch.Task.Id)));
            foreach (var batch in launch.GroupBy(t => t.GroupKey ?? t.Launch.Task.Id, StringComparer.Ordinal).ToList())
            {
                if (batch.First().GroupKey is null)
                {
                    SendLaunch(run, batch.First());
                }
                else
                {
                    SendLaunchGroup(run, [.. batch]);
                }
            }

            foreach (var task in run.Tasks.Values.OrderBy(t => t.Sequence))
            {
                if (task.Phase == TaskPhase.Launched && task.KillRequested)
                {
                    SendKill(task);
                }
            }

            Resize(run);
            return (CallOutcome.Ok, sub);
        }
    }

    /// <summary>The subscription's stream ended (connection closed): the executor is disconnected until it subscribes again.</summary>
    internal void Unsubscribe(ExecutorSubscription subscription)
    {
        lock (_gate)
        {
            if (subscription.Run.Subscription == subscription)
            {
                subscription.Run.Subscription = null;
                LogDisconnected(subscription.Run.Spec.FrameworkId, subscription.Run.Spec.ExecutorId);
            }
        }

        subscription.Complete();
    }

    /// <summary>UPDATE: forwards the status through the agent's status update path; ACKNOWLEDGED follows once it is on disk.</summary>
    internal CallOutcome Update(ExecutorPrincipal caller, MTaskStatus status)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(status);
        lock (_gate)
        {
            var (run, outcome) = Find(caller, needSubscribed: true);
            if (run is null)
            {
                return outcome;
            }

            if (ForeignTask(run, status) is { } foreign)
            {
                return CallOutcome.Forbidden(foreign);
            }

            UpdateLocked(run, status);
            return CallOutcome.Accepted;
        }
    }

    /// <summary>MESSAGE: queued for the master (best effort, as in Mesos).</summary>
    internal CallOutcome Message(ExecutorPrincipal caller, string data)
    {
        ArgumentNullException.ThrowIfNull(caller);
        lock (_gate)
        {
            var (run, outcome) = Find(caller, needSubscribed: true);
            if (run is null)
            {
                return outcome;
            }
        }

        _outgoing.Writer.TryWrite(new FrameworkMessage { FrameworkId = caller.FrameworkId, ExecutorId = caller.ExecutorId, Data = data });
        return CallOutcome.Accepted;
    }

    /// <summary>HEARTBEAT: nothing to do but answer, once the caller is known to be one of this agent's executors.</summary>
    internal CallOutcome Heartbeat(ExecutorPrincipal caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        lock (_gate)
        {
            var (run, outcome) = Find(caller, needSubscribed: false);
            return run is null ? outcome : CallOutcome.Accepted;
        }
    }

    /// <summary>
    /// Called by the agent once updates are durable in its status update log: each executor update among
    /// them is acknowledged to its executor (ACKNOWLEDGED), as a Mesos agent does once its status update
    /// manager has checkpointed the update — not when the scheduler acknowledges it. A durable terminal
    /// update also marks the task's checkpoint ended (see <see cref="Recover"/>).
    /// </summary>
    public void OnDurable(IEnumerable<TaskStatus> updates)
    {
        ArgumentNullException.ThrowIfNull(updates);
        lock (_gate)
        {
            foreach (var u in updates)
            {
                if (u.ExecutorId is null || u.Uuid is not { } uuid)
                {
                    continue;
                }

                _execTasks.TryGetValue(u.TaskId, out var task);
                if (task is not null && u.State.IsTerminal())
                {
                    // Only now: a restarted agent reports a task without this mark as failed, so a terminal
                    // update lost before reaching the disk is never silently replaced by nothing.
                    MarkEnded(u.TaskId);
                }
                else if (task is not null && !task.UpdateDurable && task.Phase != TaskPhase.Ended)
                {
                    // The executor has the task (it sent an update, now safe): a restarted agent must not drop it
                    // when it re-subscribes without listing it (its acknowledged updates are no longer listed).
                    MarkUpdated(u.TaskId);
                    task.UpdateDurable = true;
                }

                // The run that forwarded the update, even for a task ended or forgotten already (a re-sent update).
                var run = task?.Run is { } owner && owner.PendingAcks.Contains(uuid) ? owner
                    : _byContainer.Values.FirstOrDefault(r => r.PendingAcks.Contains(uuid));
                if (run is not null && run.PendingAcks.Remove(uuid))
                {
                    run.DurableUuids.Add(uuid);
                    run.Subscription?.Send(Acknowledged(run, u.TaskId, uuid));
                }
            }
        }
    }

    // ---- internals (all *Locked and helpers called with _gate held) ----

    /// <summary>
    /// The executor an authenticated call speaks for (its ids are the token's, checked by <see cref="ExecutorApi"/>).
    /// The token must also be that of the executor's current container (Mesos' <c>cid</c> check): a token of an earlier
    /// container of the same executor id is refused.
    /// </summary>
    private (ExecutorRun? Run, CallOutcome Outcome) Find(ExecutorPrincipal caller, bool needSubscribed)
    {
        var (frameworkId, executorId) = (caller.FrameworkId, caller.ExecutorId);
        if (!_executors.TryGetValue((frameworkId, executorId), out var run))
        {
            return _executors.Keys.Any(k => k.Framework == frameworkId)
                ? (null, CallOutcome.BadRequest("Executor cannot be found"))
                : (null, CallOutcome.BadRequest("Framework cannot be found"));
        }

        if (run.ContainerId != caller.ContainerId)
        {
            return (null, CallOutcome.Forbidden(
                $"Authenticated principal does not contain a '{ExecutorTokens.ContainerClaim}' claim with the correct active ContainerID"));
        }

        if (needSubscribed && !run.EverSubscribed)
        {
            return (null, CallOutcome.Forbidden("Executor is not subscribed"));
        }

        return (run, CallOutcome.Ok);
    }

    /// <summary>
    /// Null when an executor may report on the task its status names: one of its own, or one this agent does not know
    /// (forwarded: the master decides). Else the reason (403): the task is another executor's, or a command task of this
    /// agent — an executor's update would otherwise end a task it does not run. Called with the gate held.
    /// </summary>
    private string? ForeignTask(ExecutorRun run, MTaskStatus status)
    {
        var taskId = DroverTaskId(run, status.TaskId!.Value!);
        var owned = _execTasks.TryGetValue(taskId, out var task)
            ? task.Run == run
            : !_tasks.KnownTaskIds.Contains(taskId, StringComparer.Ordinal);
        return owned ? null : $"Task {status.TaskId.Value} is not a task of executor '{run.Spec.ExecutorId}'";
    }

    private void UpdateLocked(ExecutorRun run, MTaskStatus status)
    {
        var uuid = status.Uuid!;
        var taskId = DroverTaskId(run, status.TaskId!.Value!);
        if (run.DurableUuids.Contains(uuid))
        {
            run.Subscription?.Send(Acknowledged(run, taskId, uuid)); // the executor missed the first ACKNOWLEDGED
            return;
        }

        if (!run.PendingAcks.Add(uuid))
        {
            return; // on its way to disk; acknowledged when it gets there
        }

        TaskStates.TryParse(status.State!, out var state);
        if (_execTasks.TryGetValue(taskId, out var task) && task.Run == run)
        {
            task.HasUpdate = true;
            if (state.IsTerminal() && task.Phase != TaskPhase.Ended)
            {
                task.Phase = TaskPhase.Ended;
                task.KillTimer?.Dispose();
                Resize(run);
            }
        }

        // Forwarded even for a task this agent does not know: the master decides (and kills strays).
        _updates.Writer.TryWrite(new TaskStatus
        {
            TaskId = taskId,
            State = state,
            Message = status.Message,
            Reason = status.Reason,
            Source = TaskSources.Executor,
            Timestamp = status.Timestamp ?? _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
            Healthy = status.Healthy,
            Uuid = uuid,
            ExecutorId = run.Spec.ExecutorId,
            Data = status.Data,
        });
    }

    private ExecutorRun StartExecutor(ExecutorSpec exec, TaskSpec firstTask)
    {
        var containerId = Ids.NewTaskId(exec.ExecutorId);
        var run = new ExecutorRun(exec, containerId) { MesosTaskIds = firstTask.FrameworkId is not null, MesosTaskIdsKnown = true };
        _executors[(exec.FrameworkId, exec.ExecutorId)] = run;
        _byContainer[containerId] = run;
        var sandbox = _containers.SandboxOf(containerId)!;
        var env = exec.Env
            .SetItem("MESOS_FRAMEWORK_ID", exec.FrameworkId)
            .SetItem("MESOS_EXECUTOR_ID", exec.ExecutorId)
            .SetItem("MESOS_AGENT_ENDPOINT", _agentEndpoint)
            .SetItem("MESOS_DIRECTORY", sandbox)
            .SetItem("MESOS_SANDBOX", sandbox)
            .SetItem("MESOS_HTTP_COMMAND_EXECUTOR", "0")
            .SetItem("MESOS_CHECKPOINT", "1")
            .SetItem("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", ExecutorManagerOptions.FormatDuration(_options.ShutdownGracePeriod))
            .SetItem("MESOS_SUBSCRIPTION_BACKOFF_MAX", ExecutorManagerOptions.FormatDuration(_options.SubscriptionBackoffMax))
            .SetItem("MESOS_RECOVERY_TIMEOUT", ExecutorManagerOptions.FormatDuration(_options.RecoveryTimeout))
            .SetItem("MESOS_CONTAINER_ID", containerId)
            .SetItem("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", _tokens.Issue(exec.FrameworkId, exec.ExecutorId, containerId));
        if (_agentId() is { } agentId)
        {
            env = env.SetItem("MESOS_SLAVE_ID", agentId).SetItem("MESOS_AGENT_ID", agentId);
        }

        LogStartingExecutor(exec.FrameworkId, exec.ExecutorId, containerId);
        WriteExecutorCheckpoint(containerId, exec);
        run.RegistrationTimer = _time.CreateTimer(_ => RegistrationTimedOut(run), null, _options.RegistrationTimeout, Timeout.InfiniteTimeSpan);
        // The container's own updates (RUNNING, then its end) arrive on the container pump; a launch
        // failure arrives there too, as the container's TASK_FAILED, and fails the executor's tasks.
        _containers.Launch(new LaunchTask
        {
            Task = new TaskSpec
            {
                Id = containerId,
                Name = exec.Name ?? exec.ExecutorId,
                Shell = exec.Shell,
                Args = exec.Args,
                Env = env,
                Resources = exec.Resources.Add(firstTask.Resources),
                KillGracePeriod = _options.ShutdownGracePeriod,
                User = firstTask.User,
            },
        });
        return run;
    }

    private void SendLaunch(ExecutorRun run, ExecTask task)
    {
        task.Phase = TaskPhase.Launched;
        run.Subscription?.Send(new ExecutorEvent { Type = "LAUNCH", Launch = new ExecutorLaunch { Task = TaskInfo(run, task) } });
    }

    private void SendLaunchGroup(ExecutorRun run, List<ExecTask> tasks)
    {
        foreach (var task in tasks)
        {
            task.Phase = TaskPhase.Launched;
        }

        run.Subscription?.Send(new ExecutorEvent
        {
            Type = "LAUNCH_GROUP",
            LaunchGroup = new ExecutorLaunchGroup { TaskGroup = new MTaskGroupInfo([.. tasks.Select(t => TaskInfo(run, t))]) },
        });
    }

    private void SendKill(ExecTask task)
    {
        task.Run?.Subscription?.Send(new ExecutorEvent
        {
            Type = "KILL",
            Kill = new ExecutorKill
            {
                TaskId = new MId(task.Run!.ToExecutor(task.Launch.Task.Id)),
                KillPolicy = task.KillGrace is { } g ? new MKillPolicy(MDurationInfo.Of(g)) : null,
            },
        });
    }

    private void KillDeadlinePassed(ExecTask task)
    {
        lock (_gate)
        {
            if (task.Phase == TaskPhase.Ended || task.Run is not { } run || run.Terminated)
            {
                return;
            }

            LogKillTimeout(task.Launch.Task.Id, run.Spec.ExecutorId);
            run.Terminating = true;
            _containers.Kill(run.ContainerId, TimeSpan.Zero);
        }
    }

    private void RegistrationTimedOut(ExecutorRun run)
    {
        lock (_gate)
        {
            if (run.EverSubscribed || run.Terminated)
            {
                return;
            }

            // Subscribed to a previous agent process (this one recovered it): it had the re-registration timeout.
            var again = run.WasSubscribed;
            var timeout = again ? _options.ReregistrationTimeout : _options.RegistrationTimeout;
            LogRegistrationTimeout(run.Spec.FrameworkId, run.Spec.ExecutorId, again ? "re-subscribe after the agent restarted" : "subscribe", timeout.TotalSeconds);
            foreach (var task in run.Tasks.Values.Where(t => t.Phase != TaskPhase.Ended).OrderBy(t => t.Sequence).ToList())
            {
                EndTask(task, TaskState.Failed, again
                    ? $"Executor '{run.Spec.ExecutorId}' did not re-subscribe within {timeout.TotalSeconds:0.###} s of the agent's restart"
                    : $"Executor '{run.Spec.ExecutorId}' did not subscribe within {timeout.TotalSeconds:0.###} s",
                    again ? ReasonReregistrationTimeout : ReasonRegistrationTimeout);
            }

            run.Terminating = true;
            _containers.Kill(run.ContainerId, TimeSpan.Zero);
        }
    }

    private void ShutdownLocked(ExecutorRun run, string why)
    {
        if (run.Terminating)
        {
            return;
        }

        run.Terminating = true;
        run.ShuttingDown = true;
        LogShuttingDown(run.Spec.FrameworkId, run.Spec.ExecutorId, why);
        if (run.Subscription is { } sub)
        {
            sub.Send(new ExecutorEvent { Type = "SHUTDOWN" });
            run.ShutdownTimer = _time.CreateTimer(_ => _containers.Kill(run.ContainerId, TimeSpan.Zero), null, _options.ShutdownGracePeriod, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _containers.Kill(run.ContainerId, _options.ShutdownGracePeriod);
        }
    }

    /// <summary>The executor process ended: every task of it still unfinished ends with it.</summary>
    private void ExecutorEnded(string containerId, TaskStatus containerStatus)
    {
        lock (_gate)
        {
            if (!_byContainer.Remove(containerId, out var run))
            {
                return;
            }

            run.Terminated = true;
            run.Terminating = true;
            run.DisposeTimers();
            run.Subscription?.Complete();
            run.Subscription = null;
            var key = (run.Spec.FrameworkId, run.Spec.ExecutorId);
            if (_executors.TryGetValue(key, out var current) && current == run)
            {
                _executors.Remove(key);
            }

            LogExecutorEnded(run.Spec.FrameworkId, run.Spec.ExecutorId, containerStatus.State.WireName(), containerStatus.Message ?? "");
            ReportExit(run.Spec, run.ContainerId, ExecutorExit.WaitStatus(containerStatus.ExitCode), containerStatus.Message);
            var reason = containerStatus.Reason == TaskReasons.ContainerLaunchFailed ? TaskReasons.ContainerLaunchFailed : TaskReasons.ExecutorTerminated;
            foreach (var task in run.Tasks.Values.Where(t => t.Phase != TaskPhase.Ended).OrderBy(t => t.Sequence).ToList())
            {
                var killed = task.KillRequested || run.ShuttingDown;
                EndTask(task, killed ? TaskState.Killed : TaskState.Failed,
                    $"Executor '{run.Spec.ExecutorId}' terminated: {containerStatus.Message}", reason);
            }
        }
    }

    /// <summary>Queues the exit for the master; the executor stays listed as live until the master acknowledges it. Called with the gate held.</summary>
    private void ReportExit(ExecutorSpec spec, string containerId, int? status, string? message)
    {
        var exit = new ExecutorExit
        {
            FrameworkId = spec.FrameworkId,
            ExecutorId = spec.ExecutorId,
            ContainerId = containerId,
            Status = status,
            Message = message,
            Uuid = Ids.NewUuid(),
            Timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
        };
        _reporting[exit.Uuid] = new LiveExecutor { Executor = spec, ContainerId = containerId };
        _exits.Writer.TryWrite(exit);
    }

    private void EndTask(ExecTask task, TaskState state, string message, string reason)
    {
        task.Phase = TaskPhase.Ended;
        task.KillTimer?.Dispose();
        _updates.Writer.TryWrite(new TaskStatus
        {
            TaskId = task.Launch.Task.Id,
            State = state,
            Message = message,
            Reason = reason,
            Source = TaskSources.Agent,
            Timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
            Uuid = Ids.NewUuid(),
            ExecutorId = task.Executor.ExecutorId,
        });
    }

    /// <summary>The executor's cgroup limits follow its resources plus those of its unfinished tasks.</summary>
    private void Resize(ExecutorRun run)
    {
        var total = run.Tasks.Values.Where(t => t.Phase != TaskPhase.Ended)
            .Aggregate(run.Spec.Resources, (sum, t) => sum.Add(t.Launch.Task.Resources));
        if (total.MemMiB == 0 && total.MilliCpus == 0)
        {
            return; // nothing left to size by: keep the last limits until the executor ends
        }

        if (total != run.Limits && _containers.TryUpdateResources(run.ContainerId, total))
        {
            run.Limits = total;
        }
    }

    private void SendHeartbeats()
    {
        lock (_gate)
        {
            foreach (var run in _executors.Values)
            {
                run.Subscription?.Send(new ExecutorEvent { Type = "HEARTBEAT" });
            }
        }
    }

    /// <summary>
    /// The Drover id of a task id the executor sent: framework-qualified for a Mesos framework's executor, unless
    /// only the id as sent is a task of this agent (a task submitted with a framework id but not through the
    /// scheduler API). Called with the gate held.
    /// </summary>
    private string DroverTaskId(ExecutorRun run, string executorTaskId)
    {
        if (!run.MesosTaskIds)
        {
            return executorTaskId;
        }

        var qualified = Core.Mesos.MesosTaskIds.ToDroverId(run.Spec.FrameworkId, executorTaskId);
        return _execTasks.ContainsKey(qualified) || !_execTasks.ContainsKey(executorTaskId) ? qualified : executorTaskId;
    }

    /// <summary>
    /// Makes <paramref name="directory"/> the agent's alone (0700): the executor containers' launch checkpoints there hold
    /// each executor's environment, token included. Tasks never need it (their sandboxes are elsewhere).
    /// </summary>
    private static void RestrictToOwner(string directory)
    {
        const UnixFileMode ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(Path.GetDirectoryName(directory)!); // with the usual mode: executors reach their sandboxes through it
        if (OperatingSystem.IsWindows())
        {
            return; // Drover runs on Linux; this only keeps the platform analyzer informed
        }

        Directory.CreateDirectory(directory, ownerOnly);
        if (File.GetUnixFileMode(directory) != ownerOnly)
        {
            File.SetUnixFileMode(directory, ownerOnly); // made before executor tokens existed
        }
    }

    private static ExecutorEvent Acknowledged(ExecutorRun run, string taskId, string uuid) =>
        new() { Type = "ACKNOWLEDGED", Acknowledged = new ExecutorAcknowledged { TaskId = new MId(run.ToExecutor(taskId)), Uuid = uuid } };

    private MId? AgentIdOrNull() => _agentId() is { } id ? new MId(id) : null;

    private static int? PortOf(string endpoint) =>
        int.TryParse(endpoint.AsSpan(endpoint.LastIndexOf(':') + 1), System.Globalization.CultureInfo.InvariantCulture, out var port) ? port : null;

    private MTaskInfo TaskInfo(ExecutorRun run, ExecTask task)
    {
        var spec = task.Launch.Task;
        return new MTaskInfo
        {
            Name = spec.Name,
            TaskId = new MId(run.ToExecutor(spec.Id)),
            AgentId = AgentIdOrNull(),
            Resources = MesosResources(spec.Resources, task.Launch.Ports),
            Executor = ExecutorInfo(run.Spec),
            Command = !string.IsNullOrWhiteSpace(spec.Shell) || !spec.Args.IsEmpty ? Command(spec.Shell, spec.Args, spec.Env) : null,
            Data = spec.Data,
            KillPolicy = new MKillPolicy(MDurationInfo.Of(spec.KillGracePeriod)),
        };
    }

    private MExecutorInfo ExecutorInfo(ExecutorSpec exec) => new()
    {
        Type = "CUSTOM",
        ExecutorId = new MId(exec.ExecutorId),
        FrameworkId = new MId(exec.FrameworkId),
        Name = exec.Name,
        Command = Command(exec.Shell, exec.Args, exec.Env),
        Resources = MesosResources(exec.Resources, []),
        Data = exec.Data,
        ShutdownGracePeriod = MDurationInfo.Of(_options.ShutdownGracePeriod),
    };

    private static MCommandInfo Command(string? shell, ImmutableArray<string> args, ImmutableSortedDictionary<string, string> env) => new()
    {
        Shell = !string.IsNullOrWhiteSpace(shell),
        Value = !string.IsNullOrWhiteSpace(shell) ? shell : args.FirstOrDefault(),
        Arguments = !string.IsNullOrWhiteSpace(shell) || args.IsEmpty ? null : args,
        Environment = env.IsEmpty ? null : new MEnvironment([.. env.Select(kv => new MEnvVariable(kv.Key, kv.Value, null))]),
    };

    private static ImmutableArray<MResource> MesosResources(Resources r, ImmutableArray<int> ports)
    {
        var list = ImmutableArray.CreateBuilder<MResource>();
        list.Add(Scalar("cpus", (double)r.Cpus));
        list.Add(Scalar("mem", r.MemMiB));
        if (r.DiskMiB > 0)
        {
            list.Add(Scalar("disk", r.DiskMiB));
        }

        if (r.Gpus > 0)
        {
            list.Add(Scalar("gpus", r.Gpus));
        }

        if (!ports.IsDefaultOrEmpty)
        {
            list.Add(new MResource
            {
                Name = "ports",
                Type = "RANGES",
                Ranges = new MRanges([.. ports.Order().Select(p => new MRange(p, p))]),
            });
        }

        return list.ToImmutable();

        static MResource Scalar(string name, double value) => new() { Name = name, Type = "SCALAR", Scalar = new MScalar(value) };
    }

    private static string? ValidateExecutor(TaskSpec spec, ExecutorSpec exec)
    {
        if (string.IsNullOrEmpty(exec.ExecutorId) || string.IsNullOrEmpty(exec.FrameworkId))
        {
            return "The task's executor needs an executor id and a framework id";
        }

        if (spec.FrameworkId is { } fw && fw != exec.FrameworkId)
        {
            return $"The task belongs to framework '{fw}' but its executor to framework '{exec.FrameworkId}'";
        }

        var hasShell = !string.IsNullOrWhiteSpace(exec.Shell);
        if (hasShell == !exec.Args.IsEmpty)
        {
            return "The task's executor needs exactly one of a shell command and exec args";
        }

        return null;
    }

    private static bool SameCommand(ExecutorSpec a, ExecutorSpec b) =>
        a.Shell == b.Shell && a.Args.SequenceEqual(b.Args, StringComparer.Ordinal);

    // ---- pumps ----

    private async Task PumpTasksAsync()
    {
        await foreach (var u in _tasks.Updates.ReadAllAsync().ConfigureAwait(false))
        {
            _updates.Writer.TryWrite(u);
        }
    }

    private async Task PumpContainersAsync()
    {
        await foreach (var u in _containers.Updates.ReadAllAsync().ConfigureAwait(false))
        {
            if (!u.State.IsTerminal())
            {
                continue;
            }

            try
            {
                ExecutorEnded(u.TaskId, u);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogCheckpointFailed(u.TaskId, e.Message);
            }

            _containers.Forget(u.TaskId);
        }
    }

    // ---- checkpoints and recovery ----

    private string CheckpointPath(string taskId) => Path.Combine(_checkpointDir, taskId + ".json");

    private string EndedPath(string taskId) => Path.Combine(_checkpointDir, taskId + ".ended");

    /// <summary>Written once an update of the task from its executor is durable: the executor had the task.</summary>
    private string UpdatedPath(string taskId) => Path.Combine(_checkpointDir, taskId + ".updated");

    /// <summary>Written at the executor's first SUBSCRIBE, before any LAUNCH is sent to it.</summary>
    private string SubscribedPath(string containerId) => Path.Combine(_executorsDir, containerId + ".subscribed");

    /// <summary>The launch, so a restarted agent can report the task (not fsynced: see TaskCheckpoint).</summary>
    private void WriteCheckpoint(LaunchTask launch)
    {
        if (!Ids.IsValidName(launch.Task.Id))
        {
            return;
        }

        try
        {
            File.WriteAllBytes(CheckpointPath(launch.Task.Id), JsonSerializer.SerializeToUtf8Bytes(launch, DroverJsonContext.Default.LaunchTask));
        }
        catch (IOException e)
        {
            LogCheckpointFailed(launch.Task.Id, e.Message);
        }
    }

    private string ExecutorCheckpointPath(string containerId) => Path.Combine(_executorsDir, containerId + ".json");

    /// <summary>
    /// The executor's spec, kept until its exit is durable in the agent's update log, so the exit of an executor
    /// that outlived its agent process (killed when the agent restarts) still reaches the master.
    /// </summary>
    private void WriteExecutorCheckpoint(string containerId, ExecutorSpec exec)
    {
        if (!Ids.IsValidName(containerId))
        {
            return;
        }

        try
        {
            File.WriteAllBytes(ExecutorCheckpointPath(containerId), JsonSerializer.SerializeToUtf8Bytes(exec, DroverJsonContext.Default.ExecutorSpec));
        }
        catch (IOException e)
        {
            LogCheckpointFailed(containerId, e.Message);
        }
    }

    /// <summary>
    /// <c>{WorkDir}/sandboxes/{taskId}</c> → the executor's sandbox, so the task's files stay readable by
    /// task id (the agent's file endpoint, after the task is forgotten) like any task's.
    /// </summary>
    private void LinkSandbox(string taskId, string sandbox)
    {
        if (!Ids.IsValidName(taskId))
        {
            return;
        }

        try
        {
            Directory.CreateDirectory(_tasksSandboxRoot);
            var link = Path.Combine(_tasksSandboxRoot, taskId);
            if (!Path.Exists(link))
            {
                Directory.CreateSymbolicLink(link, sandbox);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogCheckpointFailed(taskId, e.Message);
        }
    }

    private void MarkEnded(string taskId) => Mark(taskId, EndedPath);

    private void MarkUpdated(string taskId) => Mark(taskId, UpdatedPath);

    private void MarkSubscribed(string containerId) => Mark(containerId, SubscribedPath);

    /// <summary>An empty marker file (not fsynced, like every checkpoint here: it must outlive the agent process, not the machine).</summary>
    private void Mark(string id, Func<string, string> path)
    {
        if (!Ids.IsValidName(id))
        {
            return;
        }

        try
        {
            File.WriteAllBytes(path(id), []);
        }
        catch (IOException e)
        {
            LogCheckpointFailed(id, e.Message);
        }
    }

    private void DeleteCheckpoint(string taskId)
    {
        if (!Ids.IsValidName(taskId))
        {
            return;
        }

        File.Delete(CheckpointPath(taskId));
        File.Delete(EndedPath(taskId));
        File.Delete(UpdatedPath(taskId));
    }

    /// <summary>A checkpoint file's record, or null after deleting a file that is unreadable or empty (torn by a crash).</summary>
    private static T? ReadCheckpoint<T>(string file, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            if (JsonSerializer.Deserialize(File.ReadAllBytes(file), type) is { } record)
            {
                return record;
            }
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
        }

        File.Delete(file);
        return null;
    }

    /// <summary>
    /// Takes over what a previous agent process left (Mesos' agent recovery with <c>--recover=reconnect</c>). An
    /// executor whose container the executors' <see cref="ProcessTaskExecutor"/> adopted (its process still runs)
    /// is kept, with its unfinished tasks, and has <see cref="ExecutorManagerOptions.ReregistrationTimeout"/> (from
    /// <see cref="AttachAgent"/>) to SUBSCRIBE again (<see cref="ExecutorManagerOptions.RegistrationTimeout"/> when
    /// it had never subscribed: its tasks were never sent, and are delivered as usual); one whose container ended meanwhile is reported by
    /// <see cref="ExecutorEnded"/> with the status its shim recorded, taking its tasks with it. A task whose
    /// executor is gone without a trace is reported TASK_FAILED (REASON_EXECUTOR_TERMINATED). Tasks whose terminal
    /// update was already durable stay known until the master acknowledges it again (the update log re-sends it).
    /// Never starts anything. Called from the constructor, before the pumps run.
    /// </summary>
    private void Recover()
    {
        var leftovers = _containers.KnownTaskIds.ToHashSet(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(_executorsDir, "*.json").Order(StringComparer.Ordinal))
        {
            var containerId = Path.GetFileNameWithoutExtension(file);
            var spec = ReadCheckpoint(file, DroverJsonContext.Default.ExecutorSpec);
            if (spec is null)
            {
                continue;
            }

            if (!leftovers.Remove(containerId))
            {
                // Ended and forgotten before its exit was durable: all that is known is that it is gone.
                File.Delete(SubscribedPath(containerId));
                ReportExit(spec, containerId, null, "The executor ended while the agent restarted; its exit status was not recorded");
                continue;
            }

            var run = new ExecutorRun(spec, containerId) { WasSubscribed = File.Exists(SubscribedPath(containerId)) };
            _byContainer[containerId] = run;
            if (_executors.TryAdd((spec.FrameworkId, spec.ExecutorId), run))
            {
                _awaitingAttach.Add(run); // its timeout starts once the agent's endpoint serves (AttachAgent)
                LogRecoveredExecutor(spec.FrameworkId, spec.ExecutorId, containerId);
            }
            else
            {
                // Two containers of one executor id outlived the agent (an old one was still ending while its
                // successor started): only one can be subscribed to; the other goes, its exit reported when it ends.
                run.Terminating = true;
                _containers.Kill(containerId, TimeSpan.Zero);
            }
        }

        foreach (var containerId in leftovers)
        {
            LogKillingLeftover(containerId);
            _containers.Kill(containerId, TimeSpan.Zero);
        }

        // In launch order (as near as the files tell), so queued tasks are delivered in their order.
        var checkpoints = Directory.EnumerateFiles(_checkpointDir, "*.json")
            .Select(f => new FileInfo(f)).OrderBy(f => f.LastWriteTimeUtc).ThenBy(f => f.Name, StringComparer.Ordinal).ToList();
        foreach (var file in checkpoints)
        {
            var launch = ReadCheckpoint(file.FullName, DroverJsonContext.Default.LaunchTask);
            if (launch?.Task.Executor is not { } exec)
            {
                File.Delete(file.FullName);
                continue;
            }

            var id = launch.Task.Id;
            var task = new ExecTask(launch, exec) { Phase = TaskPhase.Ended, GroupKey = launch.Task.TaskGroupId };
            _execTasks[id] = task;
            var ended = File.Exists(EndedPath(id));
            if (_executors.TryGetValue((exec.FrameworkId, exec.ExecutorId), out var run))
            {
                task.Run = run;
                task.Sandbox = _containers.SandboxOf(run.ContainerId);
                run.Tasks[id] = task;
                if (!ended)
                {
                    task.Phase = run.WasSubscribed ? TaskPhase.Launched : TaskPhase.Queued;
                    task.UpdateDurable = task.HasUpdate = File.Exists(UpdatedPath(id));
                    task.Recovered = true;
                }
            }
            else if (!ended)
            {
                EndTask(task, TaskState.Failed, "The agent restarted and the task's executor was no longer running", TaskReasons.ExecutorTerminated);
            }
        }

        foreach (var run in _executors.Values)
        {
            run.MesosTaskIdsKnown = run.Tasks.Count > 0;
            run.MesosTaskIds = run.Tasks.Values.Any(t => t.Launch.Task.FrameworkId is not null);
            Resize(run);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting executor {ExecutorId} of framework {FrameworkId} as container {ContainerId}")]
    private partial void LogStartingExecutor(string frameworkId, string executorId, string containerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} subscribed (container {ContainerId})")]
    private partial void LogSubscribed(string frameworkId, string executorId, string containerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} disconnected")]
    private partial void LogDisconnected(string frameworkId, string executorId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Executor {ExecutorId} of framework {FrameworkId} did not {What} within {Seconds} s; killing it")]
    private partial void LogRegistrationTimeout(string frameworkId, string executorId, string what, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} was not killed by executor {ExecutorId} in time; killing the executor")]
    private partial void LogKillTimeout(string taskId, string executorId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down executor {ExecutorId} of framework {FrameworkId}: {Why}")]
    private partial void LogShuttingDown(string frameworkId, string executorId, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} ended: {State} {Message}")]
    private partial void LogExecutorEnded(string frameworkId, string executorId, string state, string message);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dropped a message for executor {ExecutorId} of framework {FrameworkId}: not subscribed")]
    private partial void LogMessageDropped(string frameworkId, string executorId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered executor {ExecutorId} of framework {FrameworkId} (container {ContainerId}); waiting for it to subscribe again")]
    private partial void LogRecoveredExecutor(string frameworkId, string executorId, string containerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing executor container {ContainerId} left by a previous agent process without a checkpoint")]
    private partial void LogKillingLeftover(string containerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Executor task checkpoint of {TaskId}: {Error}")]
    private partial void LogCheckpointFailed(string taskId, string error);

    internal enum TaskPhase
    {
        /// <summary>Waiting for the executor to subscribe.</summary>
        Queued,

        /// <summary>LAUNCH sent (or to be re-sent on re-subscription).</summary>
        Launched,

        /// <summary>A terminal update was emitted.</summary>
        Ended,
    }

    internal sealed class ExecTask(LaunchTask launch, ExecutorSpec executor)
    {
        private static long _sequence;

        public LaunchTask Launch { get; } = launch;

        public ExecutorSpec Executor { get; } = executor;

        public long Sequence { get; } = Interlocked.Increment(ref _sequence);

        /// <summary>Set on the tasks of one task group (the same on each): they reach the executor in one LAUNCH_GROUP.</summary>
        public string? GroupKey { get; init; }

        public ExecutorRun? Run { get; set; }

        public string? Sandbox { get; set; }

        public TaskPhase Phase { get; set; } = TaskPhase.Queued;

        public bool HasUpdate { get; set; }

        /// <summary>An update of it from the executor is durable (and marked on disk, see <c>UpdatedPath</c>).</summary>
        public bool UpdateDurable { get; set; }

        /// <summary>
        /// Rebuilt from a previous agent process's checkpoints and not yet confirmed by its executor: dropped when the
        /// executor re-subscribes without knowing it (instead of being launched again).
        /// </summary>
        public bool Recovered { get; set; }

        public bool KillRequested { get; set; }

        public TimeSpan? KillGrace { get; set; }

        public ITimer? KillTimer { get; set; }
    }

    internal sealed class ExecutorRun(ExecutorSpec spec, string containerId)
    {
        public ExecutorSpec Spec { get; } = spec;

        /// <summary>
        /// Started for a Mesos framework's tasks: the executor knows them by the framework's own task ids, the
        /// agent and master by Drover ids ({frameworkId}.{taskId}, <see cref="Core.Mesos.MesosTaskIds"/>).
        /// False for executors of /drover/v1 tasks, which see Drover ids.
        /// </summary>
        public bool MesosTaskIds { get; set; }

        /// <summary>False for an executor recovered without any task: <see cref="MesosTaskIds"/> is then set by its next task.</summary>
        public bool MesosTaskIdsKnown { get; set; }

        /// <summary>The id the executor knows a task by.</summary>
        public string ToExecutor(string droverTaskId) =>
            MesosTaskIds ? Core.Mesos.MesosTaskIds.FromDroverId(Spec.FrameworkId, droverTaskId) : droverTaskId;


        public string ContainerId { get; } = containerId;

        public Dictionary<string, ExecTask> Tasks { get; } = new(StringComparer.Ordinal);

        public ExecutorSubscription? Subscription { get; set; }

        /// <summary>Subscribed to this agent process (UPDATE and MESSAGE are refused before, as by a Mesos agent).</summary>
        public bool EverSubscribed { get; set; }

        /// <summary>
        /// Subscribed to this or a previous agent process (its marker file is on disk): LAUNCHes may have reached it.
        /// Decides, after a restart, between the re-registration and the registration timeout.
        /// </summary>
        public bool WasSubscribed { get; set; }

        /// <summary>Being killed or shut down: takes no new tasks.</summary>
        public bool Terminating { get; set; }

        /// <summary>Shut down on the framework's request: unfinished tasks end TASK_KILLED.</summary>
        public bool ShuttingDown { get; set; }

        public bool Terminated { get; set; }

        public Resources? Limits { get; set; }

        /// <summary>Update uuids forwarded but not yet durable.</summary>
        public HashSet<string> PendingAcks { get; } = new(StringComparer.Ordinal);

        /// <summary>Update uuids durable (and acknowledged to the executor).</summary>
        public HashSet<string> DurableUuids { get; } = new(StringComparer.Ordinal);

        public ITimer? RegistrationTimer { get; set; }

        public ITimer? ShutdownTimer { get; set; }

        public void DisposeTimers()
        {
            RegistrationTimer?.Dispose();
            ShutdownTimer?.Dispose();
        }
    }
}
