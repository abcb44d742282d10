using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Drover.Core.State;
using Drover.Placement;
using Microsoft.Extensions.Logging;

namespace Drover.Master.State;

public enum KillResult
{
    NotFound,
    AlreadyTerminal,
    Accepted,
}

public enum AgentChangeResult
{
    NotFound,

    /// <summary>The agent was removed (unreachable too long); it can no longer be changed.</summary>
    Removed,
    Accepted,
}

/// <summary>
/// The master's in-memory view of the cluster: agents, their resource ledgers, and every task's
/// desired spec and observed state. One lock guards it; every public method is thread-safe and
/// O(1) or O(work asked for), except snapshots, which copy the agent list for placement.
/// Placement runs outside the lock on an immutable snapshot and its plan is applied back with a
/// re-check (optimistic), so API calls and status updates never wait for a placement pass.
/// </summary>
internal sealed partial class ClusterState
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, AgentRecord> _agents = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskRecord> _active = new(StringComparer.Ordinal);
    private readonly LinkedList<TaskRecord> _pending = new();
    private readonly Dictionary<string, LinkedListNode<TaskRecord>> _pendingIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskRecord> _completed = new(StringComparer.Ordinal);
    private readonly Queue<string> _completedOrder = new();
    private readonly Dictionary<TaskState, int> _countsByState = [];
    private readonly Dictionary<string, HashSet<string>> _activeByGroup = new(StringComparer.Ordinal);
    private readonly MasterOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ClusterState> _logger;
    private readonly MasterJournal _journal;

    /// <summary>The most recent journal write; when it completes, every earlier one has too.</summary>
    private Task _lastWrite = Task.CompletedTask;

    public ClusterState(MasterOptions options, TimeProvider time, ILogger<ClusterState> logger, MasterJournal journal)
    {
        _journal = journal;
        _options = options;
        _time = time;
        _logger = logger;
        foreach (var s in Enum.GetValues<TaskState>())
        {
            _countsByState[s] = 0;
        }

        StartRecoveryWindowLocked();
    }

    /// <summary>Raised (outside the lock) when something changed that may let pending tasks be placed.</summary>
    public event Action? SchedulingNeeded;

    /// <summary>Raised (outside the lock) when a task reaches a new state. Used for waiting clients and metrics.</summary>
    public event Action<TaskView>? TaskChanged;

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    // ---------------------------------------------------------------- recovery

    /// <summary>
    /// Rebuilds the in-memory state from what the store holds, at start-up, before any request is
    /// served. Agents get a fresh heartbeat window to reconnect; their heartbeats then reconcile each
    /// task (still running, ended meanwhile, or lost). Tasks on an agent the store no longer knows are lost.
    /// </summary>
    public void Restore(IReadOnlyList<PersistedTask> tasks, IReadOnlyList<PersistedAgent> agents)
    {
        var changes = new List<TaskView>();
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            StartRecoveryWindowLocked();
            foreach (var a in agents)
            {
                if (a.Info.AgentId is not { } id || !Enum.TryParse<AgentStatus>(a.Status, ignoreCase: true, out var status) || status == AgentStatus.Removed)
                {
                    continue;
                }

                _agents[id] = new AgentRecord(id, a.Info, now)
                {
                    RegisteredAt = a.RegisteredAt,
                    Status = status,
                    UnreachableSince = a.UnreachableSince,
                    DrainStartedAt = a.DrainStartedAt,
                    DrainDeadline = a.DrainStartedAt is null ? null : a.DrainDeadline ?? a.DrainStartedAt,
                };
            }

            var orphaned = new List<TaskRecord>();
            foreach (var t in tasks.OrderBy(t => t.SubmittedAt))
            {
                var r = new TaskRecord(t.Spec, t.SubmittedAt)
                {
                    State = t.State,
                    AgentId = t.AgentId,
                    Ports = t.Ports,
                    ExitCode = t.ExitCode,
                    Message = t.Message,
                    Reason = t.Reason,
                    KillRequested = t.KillRequested,
                    Healthy = t.Healthy,
                    HealthResults = t.HealthResults ?? [],
                    Ready = t.Ready,
                    StartedAt = t.StartedAt,
                    CommandSentAt = now,
                    EndedAt = t.State.IsTerminal() ? now : null, // an agent may still list it until its ack arrives
                };
                foreach (var st in t.Statuses)
                {
                    r.AddStatus(st);
                }

                _countsByState[r.State]++;
                if (r.State.IsTerminal())
                {
                    _completed[r.Spec.Id] = r;
                    _completedOrder.Enqueue(r.Spec.Id);
                    continue;
                }

                _active[r.Spec.Id] = r;
                IndexLocked(r);
                if (r.State == TaskState.Pending)
                {
                    r.WaitingReason = "waiting for the next placement pass";
                    _pendingIndex[r.Spec.Id] = _pending.AddLast(r);
                }
                else if (r.AgentId is { } agentId && _agents.TryGetValue(agentId, out var agent))
                {
                    r.Allocated = r.Spec.Resources with { Ports = PortRanges.Of([.. r.Ports]) };
                    agent.Used = agent.Used.Add(r.Allocated);
                    agent.TaskIds.Add(r.Spec.Id);
                    var group = r.Spec.Group ?? r.Spec.Id;
                    agent.GroupCounts[group] = agent.GroupCounts.GetValueOrDefault(group) + 1;
                    RestoreExecutorLocked(agent, r, now);
                }
                else
                {
                    orphaned.Add(r);
                }
            }

            foreach (var r in orphaned)
            {
                changes.Add(TransitionLocked(r, MasterStatus(r.Spec.Id, TaskState.Lost, "Its agent is gone", reason: TaskReasons.AgentRemoved)));
            }
        }

        LogRestored(tasks.Count, agents.Count);
        Publish(changes);
        SchedulingNeeded?.Invoke();
    }

    // ---------------------------------------------------------------- tasks

    /// <summary>Accepts a task. <c>Durable</c> completes once the task is in the state store.</summary>
    public (TaskView View, Task Durable) Submit(TaskSpec spec)
    {
        TaskView view;
        Task durable;
        lock (_lock)
        {
            var record = new TaskRecord(spec, _time.GetUtcNow());
            _active.Add(spec.Id, record);
            IndexLocked(record);
            _pendingIndex.Add(spec.Id, _pending.AddLast(record));
            _countsByState[TaskState.Pending]++;
            record.WaitingReason = "waiting for the next placement pass";
            view = ToView(record);
            durable = SaveLocked(record);
        }

        LogSubmitted(spec.Id, spec.Resources.ToString());
        SchedulingNeeded?.Invoke();
        return (view, durable);
    }

    /// <summary>The tasks of a placement group (an app's instances) that have not ended. O(group size).</summary>
    public ImmutableArray<TaskView> ActiveTasksOfGroup(string group)
    {
        lock (_lock)
        {
            return _activeByGroup.TryGetValue(group, out var members) ? [.. members.Select(id => ToView(_active[id]))] : [];
        }
    }

    /// <summary>
    /// Counts of a placement group's active tasks without building a view of each: O(group size) and
    /// allocation-free, for the service controller's every-pass check and the API's per-app counts.
    /// <paramref name="version"/> and <paramref name="leavingAgents"/> define <see cref="GroupSummary.Settled"/>.
    /// </summary>
    public GroupSummary SummarizeGroup(string group, string? version = null, IReadOnlySet<string>? leavingAgents = null)
    {
        lock (_lock)
        {
            if (!_activeByGroup.TryGetValue(group, out var members))
            {
                return default;
            }

            int staged = 0, running = 0, healthy = 0, unhealthy = 0, settled = 0, ready = 0;
            foreach (var id in members)
            {
                var r = _active[id];
                var hasCheck = !r.Spec.HealthChecks.IsEmpty;
                var isRunning = r.State == TaskState.Running;
                staged += r.State is TaskState.Pending or TaskState.Staging or TaskState.Starting ? 1 : 0;
                running += isRunning ? 1 : 0;
                healthy += isRunning && hasCheck && r.Healthy == true ? 1 : 0;
                unhealthy += isRunning && hasCheck && r.Healthy == false ? 1 : 0;
                var alive = r.State is not (TaskState.Killing or TaskState.Unreachable) && !r.KillRequested;
                var leaving = r.AgentId is { } agent && leavingAgents is not null && leavingAgents.Contains(agent);
                if (alive && !leaving && r.Spec.AppVersion == version)
                {
                    settled++;
                    var isHealthy = isRunning && (!hasCheck || r.Healthy == true);
                    ready += isHealthy && (r.Spec.ReadinessChecks.IsEmpty || r.Ready == true) ? 1 : 0;
                }
            }

            return new GroupSummary(members.Count, staged, running, healthy, unhealthy, settled, ready);
        }
    }

    public TaskView? GetTask(string id)
    {
        lock (_lock)
        {
            return _active.TryGetValue(id, out var r) || _completed.TryGetValue(id, out r) ? ToView(r) : null;
        }
    }

    public ImmutableArray<TaskView> ListTasks(TaskState? state = null, bool includeCompleted = true)
    {
        lock (_lock)
        {
            var list = ImmutableArray.CreateBuilder<TaskView>();
            foreach (var r in _active.Values)
            {
                if (state is null || r.State == state)
                {
                    list.Add(ToView(r));
                }
            }

            if (includeCompleted)
            {
                foreach (var r in _completed.Values)
                {
                    if (state is null || r.State == state)
                    {
                        list.Add(ToView(r));
                    }
                }
            }

            list.Sort((a, b) => a.SubmittedAt.CompareTo(b.SubmittedAt));
            return list.ToImmutable();
        }
    }

    /// <summary>Asks for a task to be killed. Idempotent. A pending task ends TASK_KILLED at once.</summary>
    public (KillResult Result, Task Durable) Kill(string id)
    {
        TaskView? changed = null;
        Task durable;
        lock (_lock)
        {
            if (!_active.TryGetValue(id, out var r))
            {
                return (_completed.ContainsKey(id) ? KillResult.AlreadyTerminal : KillResult.NotFound, _lastWrite);
            }

            changed = KillLocked(r, "Kill requested");
            durable = _lastWrite;
        }

        if (changed is not null)
        {
            TaskChanged?.Invoke(changed);
        }

        return (KillResult.Accepted, durable);
    }

    // ---------------------------------------------------------------- agents

    /// <summary>
    /// Starts (or adjusts) draining an agent: it gets no new work from now on, the service controller
    /// moves app instances off it, and at <c>drain start + deadline</c> whatever still runs there is
    /// killed. The deadline counts from the first drain request, so repeating one changes nothing.
    /// <c>Durable</c> completes once the drain is in the state store.
    /// </summary>
    public (AgentChangeResult Result, AgentView? View, Task Durable) Drain(string agentId, TimeSpan deadline)
    {
        var changes = new List<TaskView>();
        AgentView view;
        Task durable;
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent))
            {
                return (AgentChangeResult.NotFound, null, _lastWrite);
            }

            if (agent.Status == AgentStatus.Removed)
            {
                return (AgentChangeResult.Removed, ToView(agent), _lastWrite);
            }

            var now = _time.GetUtcNow();
            var startedAt = agent.DrainStartedAt ?? now;
            var until = startedAt + deadline;
            if (agent.DrainStartedAt != startedAt || agent.DrainDeadline != until)
            {
                agent.DrainStartedAt = startedAt;
                agent.DrainDeadline = until;
                SaveAgentLocked(agent);
                LogAgentDraining(agent.Id, until);
            }

            EnforceDrainDeadlineLocked(agent, now, changes);
            view = ToView(agent);
            durable = _lastWrite;
        }

        Publish(changes);
        return (AgentChangeResult.Accepted, view, durable);
    }

    /// <summary>Ends an agent's drain: it takes new work again. Idempotent; kills already made stay made.</summary>
    public (AgentChangeResult Result, AgentView? View, Task Durable) Undrain(string agentId)
    {
        AgentView view;
        Task durable;
        bool changed;
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent))
            {
                return (AgentChangeResult.NotFound, null, _lastWrite);
            }

            if (agent.Status == AgentStatus.Removed)
            {
                return (AgentChangeResult.Removed, ToView(agent), _lastWrite);
            }

            changed = agent.IsDraining;
            if (changed)
            {
                agent.DrainStartedAt = null;
                agent.DrainDeadline = null;
                SaveAgentLocked(agent);
                LogAgentUndrained(agent.Id);
            }

            view = ToView(agent);
            durable = _lastWrite;
        }

        if (changed)
        {
            SchedulingNeeded?.Invoke();
        }

        return (AgentChangeResult.Accepted, view, durable);
    }

    /// <summary>Ids of the agents being drained (the service controller moves app instances off them).</summary>
    public HashSet<string> DrainingAgentIds()
    {
        lock (_lock)
        {
            return [.. _agents.Values.Where(a => a.IsDraining && a.Status != AgentStatus.Removed).Select(a => a.Id)];
        }
    }

    /// <summary>Registers or re-registers an agent. <c>Durable</c> completes once the agent is in the state store.</summary>
    public (AgentRegistered Registered, Task Durable) Register(AgentRegistration registration)
    {
        var changes = new List<TaskView>();
        string id;
        Task durable;
        var added = false;
        var wantLaunches = false;
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            id = registration.AgentId is { Length: > 0 } given ? given : Ids.NewAgentId();
            var reported = registration.Tasks.Where(t => !t.State.IsTerminal()).Select(t => t.TaskId).ToHashSet(StringComparer.Ordinal);
            var info = registration with { AgentId = id, Launches = null }; // launches are for adoption, not kept
            if (_agents.TryGetValue(id, out var existing) && existing.Status != AgentStatus.Removed)
            {
                // Re-registration (agent restart or lost stream): keep the ledger, refresh the info.
                existing.Info = info;
                existing.LastHeartbeatAt = now;
                existing.RegisteredAt = now;
                if (existing.Status == AgentStatus.Unreachable)
                {
                    ReactivateLocked(existing, changes);
                }

                ReconcileLocked(existing, registration.Tasks.Select(t => t.TaskId).ToHashSet(StringComparer.Ordinal), changes, now);
                ReconcileExecutorsLocked(existing, registration.Executors, now);
                wantLaunches = ReconcileReportedLocked(existing, reported, registration.Launches, now, changes);
                SaveAgentLocked(existing);
            }
            else
            {
                added = true;
                var agent = new AgentRecord(id, info, now);
                _agents[id] = agent;
                SaveAgentLocked(agent);
                ReconcileExecutorsLocked(agent, registration.Executors, now);

                // Tasks the agent runs that this master does not know of wait out --unknown-task-grace (or are
                // adopted while recovering from agents); ones it knows ended, or placed elsewhere, are killed.
                wantLaunches = ReconcileReportedLocked(agent, reported, registration.Launches, now, changes);
            }

            durable = _lastWrite;
        }

        LogAgentRegistered(id, registration.Hostname, registration.Resources.ToString());
        if (added)
        {
            AgentAdded?.Invoke(id);
        }

        Publish(changes);
        RaiseUnknownTaskKills();
        SchedulingNeeded?.Invoke();
        return (new AgentRegistered { AgentId = id, HeartbeatIntervalSeconds = _options.HeartbeatInterval.TotalSeconds, SendLaunches = wantLaunches }, durable);
    }

    /// <summary>Records a heartbeat. False when the agent is unknown (it must register again).</summary>
    public bool Heartbeat(string agentId, AgentHeartbeat heartbeat)
    {
        var changes = new List<TaskView>();
        var freed = false;
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent) || agent.Status == AgentStatus.Removed)
            {
                return false;
            }

            var now = _time.GetUtcNow();
            agent.LastHeartbeatAt = now;
            if (agent.Status == AgentStatus.Unreachable)
            {
                ReactivateLocked(agent, changes);
            }

            var reported = heartbeat.ActiveTaskIds.ToHashSet(StringComparer.Ordinal);
            ReconcileLocked(agent, reported, changes, now);
            ReconcileReportedLocked(agent, reported, null, now, changes);
            var executors = agent.Executors.Count;
            ReconcileExecutorsLocked(agent, heartbeat.Executors, now);
            freed = agent.Executors.Count < executors;
        }

        if (changes.Count > 0 || freed)
        {
            Publish(changes);
            SchedulingNeeded?.Invoke();
        }

        RaiseUnknownTaskKills();
        return true;
    }

    /// <summary>
    /// Raised (outside the lock, on the request thread) for each message an executor sent its scheduler
    /// through its agent: (agent id, message). Subscribers must not block.
    /// </summary>
    public event Action<string, FrameworkMessage>? FrameworkMessageReceived;

    /// <summary>
    /// Called by the agent protocol endpoint for a message from an executor. Only an executor that runs on
    /// that agent (counted there, or named by a task placed there) may speak: an agent cannot send messages
    /// as another agent's executors. False when the message was dropped for that reason.
    /// </summary>
    public bool ReceiveFrameworkMessage(string agentId, FrameworkMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent)
                || !(agent.Executors.ContainsKey((message.FrameworkId, message.ExecutorId))
                    || agent.TaskIds.Any(id => _active.TryGetValue(id, out var t) && t.Spec.Executor is { } e
                        && e.ExecutorId == message.ExecutorId && e.FrameworkId == message.FrameworkId)))
            {
                LogForeignExecutorMessage(agentId, message.ExecutorId, message.FrameworkId);
                return false;
            }
        }

        FrameworkMessageReceived?.Invoke(agentId, message);
        return true;
    }

    /// <summary>
    /// Queues a scheduler's message (or an executor shutdown, <paramref name="type"/>) on the agent's command
    /// stream. Best effort, as in Mesos: false when the agent is unknown, removed or unreachable; a message
    /// queued for an agent whose stream then drops is lost.
    /// </summary>
    public bool SendToExecutor(string agentId, FrameworkMessage message, AgentCommandType type = AgentCommandType.FrameworkMessage)
    {
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent) || agent.Status is AgentStatus.Removed or AgentStatus.Unreachable)
            {
                return false;
            }

            SendLocked(agent, new AgentCommand { Type = type, Message = message });
            return true;
        }
    }

    public AgentRecord? FindAgent(string agentId)
    {
        lock (_lock)
        {
            return _agents.GetValueOrDefault(agentId);
        }
    }

    /// <summary>The agent's address for sandbox reads, or null.</summary>
    public (string AgentId, string Address)? AgentOfTask(string taskId)
    {
        lock (_lock)
        {
            if ((_active.TryGetValue(taskId, out var r) || _completed.TryGetValue(taskId, out r))
                && r.AgentId is { } a && _agents.TryGetValue(a, out var agent))
            {
                return (a, agent.Info.Address);
            }

            return null;
        }
    }

    /// <summary>
    /// Applies a batch of updates from an agent, in order, then its executor exits. Returns the uuids to
    /// acknowledge, and a task that completes once the changes are durable: acknowledge only after it.
    /// </summary>
    public (ImmutableArray<string> Acks, Task Durable) ApplyUpdates(string agentId, StatusUpdateBatch batch)
    {
        var acks = ImmutableArray.CreateBuilder<string>(batch.Updates.Length + batch.ExecutorExits.Length);
        var changes = new List<TaskView>();
        var failures = new List<ExecutorExit>();
        var freed = false;
        Task durable;
        lock (_lock)
        {
            _agents.TryGetValue(agentId, out var agent);
            foreach (var update in batch.Updates)
            {
                if (update.Uuid is { } uuid)
                {
                    acks.Add(uuid);
                }

                if (!_active.TryGetValue(update.TaskId, out var r))
                {
                    // Unknown or already ended here: acknowledge. An ended one still running is killed; an unknown
                    // one waits out --unknown-task-grace (ClusterState.Reconcile.cs).
                    if (agent is not null && !update.State.IsTerminal())
                    {
                        ReportedRunningLocked(agent, update.TaskId, _time.GetUtcNow(), fromUpdate: true);
                    }
                    else
                    {
                        agent?.UnknownTasks.Remove(update.TaskId);
                    }

                    continue;
                }

                if (update.Uuid is { } seen && r.Statuses.Any(st => st.Uuid == seen))
                {
                    continue; // re-sent by an agent that did not get our acknowledgement: applied already
                }

                if (r.AgentId != agentId)
                {
                    // A copy on an agent the task does not belong to (e.g. placed again after a master
                    // restart lost the first placement): it must not keep running.
                    if (!update.State.IsTerminal() && agent is not null)
                    {
                        ReportedRunningLocked(agent, update.TaskId, _time.GetUtcNow(), fromUpdate: true);
                    }

                    continue;
                }

                // The record keeps the status: its ids point at the strings the master holds already,
                // not at fresh copies parsed from this request (a few hundred bytes per task at scale).
                var kept = update with { TaskId = r.Spec.Id, AgentId = r.AgentId };
                if (r.State == TaskState.Killing && update.State is TaskState.Starting or TaskState.Running)
                {
                    r.AddStatus(kept);
                    SaveLocked(r);
                    continue; // the kill is in flight; keep showing KILLING
                }

                var view = TransitionLocked(r, kept);
                changes.Add(view);
                freed |= update.State.IsTerminal();
            }

            acks.AddRange(batch.ExecutorExits.Select(x => x.Uuid));
            if (agent is not null && agent.Status != AgentStatus.Removed)
            {
                ApplyExecutorExitsLocked(agent, batch.ExecutorExits, failures);
                freed |= failures.Count > 0;
            }

            durable = _lastWrite;
        }

        Publish(changes);
        RaiseUnknownTaskKills();
        foreach (var exit in failures)
        {
            ExecutorExited?.Invoke(agentId, exit);
        }

        if (freed)
        {
            SchedulingNeeded?.Invoke();
        }

        return (acks.ToImmutable(), durable);
    }

    /// <summary>
    /// Marks agents without heartbeats unreachable, and long-unreachable ones removed; kills what is left
    /// on draining agents past their deadline. Called periodically.
    /// </summary>
    public void CheckAgentTimeouts()
    {
        var changes = new List<TaskView>();
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            foreach (var agent in _agents.Values)
            {
                EnforceDrainDeadlineLocked(agent, now, changes);
                if (agent.Status == AgentStatus.Active && now - agent.LastHeartbeatAt > _options.AgentUnreachableTimeout)
                {
                    agent.Status = AgentStatus.Unreachable;
                    agent.UnreachableSince = now;
                    SaveAgentLocked(agent);
                    LogAgentUnreachable(agent.Id, (now - agent.LastHeartbeatAt).TotalSeconds);
                    TransitionAllLocked(agent, TaskState.Unreachable, TaskReasons.AgentDisconnected, "Agent stopped heartbeating", changes);
                }
                else if (agent.Status == AgentStatus.Unreachable && now - agent.UnreachableSince > _options.AgentRemovalTimeout)
                {
                    agent.Status = AgentStatus.Removed;
                    SaveAgentLocked(agent);
                    LogAgentRemoved(agent.Id);
                    TransitionAllLocked(agent, TaskState.Gone, TaskReasons.AgentRemoved, "Agent was removed after being unreachable", changes);
                    ClearExecutorsLocked(agent);
                }
            }
        }

        Publish(changes);
    }

    public ImmutableArray<AgentView> ListAgents()
    {
        lock (_lock)
        {
            return [.. _agents.Values.OrderBy(a => a.Info.Hostname, StringComparer.Ordinal).ThenBy(a => a.Id, StringComparer.Ordinal).Select(ToView)];
        }
    }

    public AgentView? GetAgent(string id)
    {
        lock (_lock)
        {
            return _agents.TryGetValue(id, out var a) ? ToView(a) : null;
        }
    }

    // ---------------------------------------------------------------- placement

    /// <summary>An immutable snapshot of schedulable agents and the oldest pending tasks.</summary>
    public (ClusterSnapshot Snapshot, List<PlacementRequest> Pending) TakeSnapshot(int maxPending)
    {
        lock (_lock)
        {
            var agents = ImmutableArray.CreateBuilder<AgentSnapshot>(_agents.Count);
            foreach (var a in _agents.Values)
            {
                if (a.Status == AgentStatus.Removed)
                {
                    continue;
                }

                agents.Add(new AgentSnapshot
                {
                    Id = a.Id,
                    Hostname = a.Info.Hostname,
                    Total = a.Total,
                    Free = a.Free,
                    Attributes = a.Info.Attributes,
                    Domain = a.Info.Domain,
                    Schedulable = a.Schedulable,
                    GroupCounts = a.GroupCounts.ToImmutableDictionary(StringComparer.Ordinal),
                });
            }

            var pending = new List<PlacementRequest>(Math.Min(_pending.Count, maxPending));
            foreach (var r in _pending)
            {
                if (pending.Count == maxPending)
                {
                    break;
                }

                pending.Add(PlacementRequest.For(r.Spec));
            }

            return (new ClusterSnapshot { Agents = agents.ToImmutable() }, pending);
        }
    }

    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>
    /// Applies a placement plan computed on a snapshot. Each decision is re-checked against the live
    /// ledger (the agent may have gone, or the task been killed, since the snapshot); decisions that no
    /// longer hold are skipped and retried by the next pass. Returns how many were applied.
    /// </summary>
    public int Apply(PlacementPlan plan)
    {
        var changes = new List<TaskView>(plan.Placed.Length);
        var placedOn = new Dictionary<AgentRecord, string>(); // one "Placed on HOST" string per agent and pass, not per task
        lock (_lock)
        {
            foreach (var d in plan.Placed)
            {
                if (!_pendingIndex.TryGetValue(d.TaskId, out var node) || !_agents.TryGetValue(d.AgentId, out var agent)
                    || !agent.Schedulable)
                {
                    continue;
                }

                var r = node.Value;
                var allocated = r.Spec.Resources with { Ports = PortRanges.Of([.. d.Ports]) };
                if (!agent.Free.Contains(allocated))
                {
                    continue;
                }

                _pending.Remove(node);
                _pendingIndex.Remove(d.TaskId);
                agent.Used = agent.Used.Add(allocated);
                agent.TaskIds.Add(r.Spec.Id);
                var group = r.Spec.Group ?? r.Spec.Id;
                agent.GroupCounts[group] = agent.GroupCounts.GetValueOrDefault(group) + 1;
                r.AgentId = agent.Id;
                r.Ports = d.Ports;
                r.Allocated = allocated;
                r.WaitingReason = null;
                r.CommandSentAt = _time.GetUtcNow();
                if (!placedOn.TryGetValue(agent, out var placedMessage))
                {
                    placedOn[agent] = placedMessage = $"Placed on {agent.Info.Hostname}";
                }

                changes.Add(TransitionLocked(r, MasterStatus(r.Spec.Id, TaskState.Staging, placedMessage)));
                SendLocked(agent, LaunchCommand(r));
            }

            foreach (var f in plan.Unplaced)
            {
                if (_active.TryGetValue(f.TaskId, out var r) && r.State == TaskState.Pending)
                {
                    r.WaitingReason = f.Reason;
                }
            }
        }

        Publish(changes);
        return changes.Count;
    }

    // ---------------------------------------------------------------- metrics

    public (int Active, int Unreachable, Resources Total, Resources Used) AgentTotals()
    {
        lock (_lock)
        {
            int active = 0, unreachable = 0;
            var total = Resources.Zero;
            var used = Resources.Zero;
            foreach (var a in _agents.Values)
            {
                if (a.Status == AgentStatus.Active)
                {
                    active++;
                    total = total.Add(a.Total with { Ports = PortRanges.Empty });
                    used = used.Add(a.Used with { Ports = PortRanges.Empty });
                }
                else if (a.Status == AgentStatus.Unreachable)
                {
                    unreachable++;
                }
            }

            return (active, unreachable, total, used);
        }
    }

    public Dictionary<TaskState, int> TaskCountsByState()
    {
        lock (_lock)
        {
            return new Dictionary<TaskState, int>(_countsByState);
        }
    }

    /// <summary>Consistent copy of agents and tasks for the Mesos-shaped /master/state.</summary>
    public (ImmutableArray<AgentView> Agents, ImmutableArray<TaskView> Active, ImmutableArray<TaskView> Completed) StateDump()
    {
        lock (_lock)
        {
            return (
                [.. _agents.Values.Where(a => a.Status != AgentStatus.Removed).Select(ToView)],
                [.. _active.Values.Select(ToView)],
                [.. _completed.Values.Select(ToView)]);
        }
    }

    // ---------------------------------------------------------------- internals (call under _lock)

    private void ReactivateLocked(AgentRecord agent, List<TaskView> changes)
    {
        agent.Status = AgentStatus.Active;
        agent.UnreachableSince = null;
        SaveAgentLocked(agent);
        LogAgentReachable(agent.Id);
        _ = changes;
    }

    /// <summary>
    /// Compares what the agent says it holds with what the master believes it placed there:
    /// re-sends launches and kills the agent has not acted on, brings TASK_UNREACHABLE tasks back,
    /// and ends tasks the agent has lost as TASK_LOST.
    /// </summary>
    private void ReconcileLocked(AgentRecord agent, HashSet<string> known, List<TaskView> changes, DateTimeOffset now)
    {
        foreach (var taskId in agent.TaskIds.ToList())
        {
            var r = _active[taskId];
            var inAgent = known.Contains(taskId);
            var stale = r.CommandSentAt is null || now - r.CommandSentAt > _options.CommandResendAfter;
            if (r.State == TaskState.Unreachable)
            {
                // A kill asked for while the agent was away (an expunged app instance, a drain deadline,
                // a user's kill) is carried out now; the task never shows TASK_RUNNING again, so nothing
                // counts it as a live instance in between.
                var back = (inAgent, r.KillRequested) switch
                {
                    (true, true) => (TaskState.Killing, "Agent reconnected; killing the task as asked while it was unreachable"),
                    (true, false) => (TaskState.Running, "Agent reconnected"),
                    (false, true) => (TaskState.Killed, "Agent reconnected without this task (a kill was asked for)"),
                    (false, false) => (TaskState.Lost, "Agent reconnected without this task"),
                };
                changes.Add(TransitionLocked(r, MasterStatus(taskId, back.Item1, back.Item2, reason: TaskReasons.Reconciliation)));
                if (inAgent && r.KillRequested)
                {
                    SendKillLocked(agent, r);
                }

                continue;
            }

            if (inAgent)
            {
                if (r.KillRequested && stale)
                {
                    SendKillLocked(agent, r);
                }

                continue;
            }

            if (!stale)
            {
                continue;
            }

            if (r.State == TaskState.Staging && !r.KillRequested)
            {
                r.CommandSentAt = now;
                SendLocked(agent, r.Spec.TaskGroupId is { } groupId ? ResendGroupLocked(agent, groupId, known, now) : LaunchCommand(r));
            }
            else
            {
                changes.Add(TransitionLocked(r, MasterStatus(taskId, r.KillRequested ? TaskState.Killed : TaskState.Lost, "The agent no longer knows this task", reason: TaskReasons.Reconciliation)));
            }
        }
    }

    /// <summary>
    /// Asks for a task to be killed: a pending one ends TASK_KILLED at once, a placed one goes KILLING and
    /// its agent gets a kill (queued until its stream is back when it is unreachable). Returns the change
    /// to publish, if the state changed.
    /// </summary>
    private TaskView? KillLocked(TaskRecord r, string message, string? reason = null)
    {
        var id = r.Spec.Id;
        r.KillRequested = true;
        SaveLocked(r);
        if (r.State == TaskState.Pending)
        {
            return TransitionLocked(r, MasterStatus(id, TaskState.Killed, "Killed before it was placed", reason));
        }

        TaskView? changed = null;
        if (r.AgentId is { } agentId && _agents.TryGetValue(agentId, out var agent))
        {
            if (r.State is TaskState.Staging or TaskState.Starting or TaskState.Running)
            {
                changed = TransitionLocked(r, MasterStatus(id, TaskState.Killing, message, reason));
            }

            SendKillLocked(agent, r);
        }

        return changed;
    }

    /// <summary>Past a draining agent's deadline, kills every task still on it that is not being killed already.</summary>
    private void EnforceDrainDeadlineLocked(AgentRecord agent, DateTimeOffset now, List<TaskView> changes)
    {
        if (agent.DrainDeadline is not { } deadline || now < deadline || agent.Status == AgentStatus.Removed)
        {
            return;
        }

        var killed = 0;
        foreach (var taskId in agent.TaskIds.ToList())
        {
            var r = _active[taskId];
            if (r.KillRequested)
            {
                continue;
            }

            killed++;
            if (KillLocked(r, "Agent drain deadline reached", TaskReasons.AgentDraining) is { } changed)
            {
                changes.Add(changed);
            }
        }

        if (killed > 0)
        {
            LogDrainDeadline(agent.Id, killed);
        }
    }

    private void SendKillLocked(AgentRecord agent, TaskRecord r)
    {
        r.CommandSentAt = _time.GetUtcNow();
        SendLocked(agent, new AgentCommand { Type = AgentCommandType.Kill, Kill = new KillTask { TaskId = r.Spec.Id } });
    }

    private static AgentCommand LaunchCommand(TaskRecord r) =>
        new() { Type = AgentCommandType.Launch, Launch = new LaunchTask { Task = r.Spec, Ports = r.Ports } };

    private static AgentCommand LaunchGroupCommand(IEnumerable<TaskRecord> group) => new()
    {
        Type = AgentCommandType.LaunchGroup,
        LaunchGroup = new LaunchTaskGroup { Tasks = [.. group.Select(r => new LaunchTask { Task = r.Spec, Ports = r.Ports })] },
    };

    /// <summary>
    /// A task group is re-sent as a group: every task of it on the agent that is still staging, not being killed and
    /// unknown to the agent, in one command (their resend clock restarts, so the rest of this reconciliation skips them).
    /// </summary>
    private AgentCommand ResendGroupLocked(AgentRecord agent, string groupId, HashSet<string> known, DateTimeOffset now)
    {
        var group = new List<TaskRecord>();
        foreach (var id in agent.TaskIds)
        {
            var r = _active[id];
            if (r.Spec.TaskGroupId == groupId && r.State == TaskState.Staging && !r.KillRequested && !known.Contains(id))
            {
                r.CommandSentAt = now;
                group.Add(r);
            }
        }

        return LaunchGroupCommand(group.OrderBy(r => r.Spec.Id == groupId ? 0 : 1));
    }

    /// <summary>Moves a task to the state in <paramref name="status"/>, keeping ledgers and counters true.</summary>
    private TaskView TransitionLocked(TaskRecord r, TaskStatus status)
    {
        var stamped = status.Timestamp == 0 ? status with { Timestamp = UnixNow() } : status;
        _countsByState[r.State]--;
        _countsByState[stamped.State]++;
        r.State = stamped.State;
        r.AddStatus(stamped);
        if (stamped.Message is not null)
        {
            r.Message = stamped.Message;
        }

        if (stamped.Reason is not null)
        {
            r.Reason = stamped.Reason;
        }

        if (stamped.ExitCode is not null)
        {
            r.ExitCode = stamped.ExitCode;
        }

        if (stamped.Healthy is not null)
        {
            r.Healthy = stamped.Healthy;
        }

        if (stamped.HealthResults is { IsDefault: false } results)
        {
            r.HealthResults = results;
        }

        if (stamped.Ready is not null)
        {
            r.Ready = stamped.Ready;
        }

        if (stamped.State == TaskState.Running && r.StartedAt is null)
        {
            r.StartedAt = _time.GetUtcNow();
        }

        if (stamped.State.IsTerminal())
        {
            r.EndedAt = _time.GetUtcNow();
            if (_pendingIndex.Remove(r.Spec.Id, out var node))
            {
                _pending.Remove(node);
            }

            if (r.AgentId is { } agentId && _agents.TryGetValue(agentId, out var agent) && agent.TaskIds.Remove(r.Spec.Id))
            {
                agent.Used = agent.Used.SubtractClamped(r.Allocated);
                var group = r.Spec.Group ?? r.Spec.Id;
                if (agent.GroupCounts.TryGetValue(group, out var n))
                {
                    if (n <= 1)
                    {
                        agent.GroupCounts.Remove(group);
                    }
                    else
                    {
                        agent.GroupCounts[group] = n - 1;
                    }
                }
            }

            _active.Remove(r.Spec.Id);
            if (_activeByGroup.TryGetValue(GroupOf(r), out var members) && members.Remove(r.Spec.Id) && members.Count == 0)
            {
                _activeByGroup.Remove(GroupOf(r));
            }

            _completed[r.Spec.Id] = r;
            _completedOrder.Enqueue(r.Spec.Id);
            while (_completedOrder.Count > _options.MaxCompletedTasks)
            {
                var old = _completedOrder.Dequeue();
                if (_completed.Remove(old, out var dropped))
                {
                    _countsByState[dropped.State]--;
                    _lastWrite = _journal.DeleteTask(old);
                }
            }

            LogTaskEnded(r.Spec.Id, stamped.State.WireName(), stamped.Message ?? "");
        }

        SaveLocked(r);
        return ToView(r);
    }

    /// <summary>A status the master itself decides (placement, kills, reconciliation, agent loss), stamped now.</summary>
    private TaskStatus MasterStatus(string taskId, TaskState state, string message, string? reason = null) => new()
    {
        TaskId = taskId,
        State = state,
        Source = TaskSources.Master,
        AgentId = _active.TryGetValue(taskId, out var r) ? r.AgentId : null,
        Message = message,
        Reason = reason,
        Timestamp = UnixNow(),
    };

    /// <summary>Moves every task on <paramref name="agent"/> to <paramref name="state"/> (agent lost or removed).</summary>
    private void TransitionAllLocked(AgentRecord agent, TaskState state, string reason, string message, List<TaskView> changes)
    {
        foreach (var taskId in agent.TaskIds.ToList())
        {
            changes.Add(TransitionLocked(_active[taskId], MasterStatus(taskId, state, message, reason)));
        }
    }

    private static string GroupOf(TaskRecord r) => r.Spec.Group ?? r.Spec.Id;

    private void IndexLocked(TaskRecord r)
    {
        var group = GroupOf(r);
        if (!_activeByGroup.TryGetValue(group, out var members))
        {
            _activeByGroup[group] = members = new HashSet<string>(StringComparer.Ordinal);
        }

        members.Add(r.Spec.Id);
    }

    private Task SaveLocked(TaskRecord r) => _lastWrite = _journal.SaveTask(r);

    private void SaveAgentLocked(AgentRecord a) => _lastWrite = _journal.SaveAgent(a);

    /// <summary>Queues a command for the agent's stream, to go out once every change made so far is durable.</summary>
    private void SendLocked(AgentRecord agent, AgentCommand command) => agent.Commands.Writer.TryWrite(new PendingCommand(_lastWrite, command));

    private double UnixNow() => _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;

    private void Publish(List<TaskView> changes)
    {
        var handler = TaskChanged;
        if (handler is null)
        {
            return;
        }

        foreach (var c in changes)
        {
            handler(c);
        }
    }

    private TaskView ToView(TaskRecord r)
    {
        string? hostname = null;
        if (r.AgentId is { } a && _agents.TryGetValue(a, out var agent))
        {
            hostname = agent.Info.Hostname;
        }

        return new TaskView
        {
            Id = r.Spec.Id,
            Name = r.Spec.Name,
            State = r.State,
            Cmd = r.Spec.Shell,
            Args = r.Spec.Args,
            Cpus = r.Spec.Resources.Cpus,
            Mem = r.Spec.Resources.MemMiB,
            Disk = r.Spec.Resources.DiskMiB,
            Gpus = r.Spec.Resources.Gpus,
            Ports = r.Ports,
            Constraints = [.. r.Spec.Constraints.Select(c => c.ToString())],
            AgentId = r.AgentId,
            Hostname = hostname,
            WaitingReason = r.State == TaskState.Pending ? r.WaitingReason : null,
            ExitCode = r.ExitCode,
            Message = r.Message,
            Reason = r.Reason,
            SubmittedAt = r.SubmittedAt,
            Statuses = [.. r.Statuses],
            Healthy = r.Healthy,
            HasHealthCheck = !r.Spec.HealthChecks.IsEmpty,
            HealthResults = r.HealthResults,
            Ready = r.Ready,
            HasReadinessCheck = !r.Spec.ReadinessChecks.IsEmpty,
            StartedAt = r.StartedAt,
            AppId = r.Spec.AppId,
            AppVersion = r.Spec.AppVersion,
            UnreachableSince = r.State == TaskState.Unreachable ? UnreachableSinceOf(r) : null,
            KillRequested = r.KillRequested,
            FrameworkId = r.Spec.FrameworkId,
            Owner = r.Spec.Owner,
        };
    }

    /// <summary>
    /// The timestamp of the task's last TASK_UNREACHABLE status. Derived from the statuses (which are
    /// stored), so it survives a master restart; the most recent statuses are always kept.
    /// </summary>
    private static DateTimeOffset? UnreachableSinceOf(TaskRecord r)
    {
        for (var i = r.Statuses.Count - 1; i >= 0; i--)
        {
            if (r.Statuses[i].State == TaskState.Unreachable)
            {
                return DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(r.Statuses[i].Timestamp * 1000));
            }
        }

        return null;
    }

    private AgentView ToView(AgentRecord a) => new()
    {
        Id = a.Id,
        Hostname = a.Info.Hostname,
        Address = a.Info.Address,
        Status = StatusText(a),
        DrainStartedAt = a.DrainStartedAt,
        DrainDeadline = a.DrainDeadline,
        Total = ResourcesView.From(a.Total),
        Used = ResourcesView.From(a.Used),
        Free = ResourcesView.From(a.Free),
        Attributes = a.Info.Attributes.ToImmutableSortedDictionary(kv => kv.Key, kv => kv.Value.ToString(), StringComparer.Ordinal),
        Region = a.Info.Domain?.Region,
        Zone = a.Info.Domain?.Zone,
        ActiveTasks = a.TaskIds.Count,
        RegisteredAt = a.RegisteredAt,
        LastHeartbeatAt = a.LastHeartbeatAt,
        UnknownTasks = UnknownViews(a),
    };

    /// <summary>What the API shows: unreachable and removed win over a drain (the drain fields still tell).</summary>
    private static string StatusText(AgentRecord a) => a.Status switch
    {
        AgentStatus.Active when a.IsDraining => a.TaskIds.Count == 0 ? "drained" : "draining",
        _ => a.Status.ToString().ToLowerInvariant(),
    };

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} draining; whatever still runs there is killed at {Deadline:u}")]
    private partial void LogAgentDraining(string agentId, DateTimeOffset deadline);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} no longer draining")]
    private partial void LogAgentUndrained(string agentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} reached its drain deadline; killing the {Count} tasks left on it")]
    private partial void LogDrainDeadline(string agentId, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered {Tasks} task records and {Agents} agents from the state store")]
    private partial void LogRestored(int tasks, int agents);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} submitted ({Resources})")]
    private partial void LogSubmitted(string taskId, string resources);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropped a message from agent {AgentId} for executor {ExecutorId} of framework {FrameworkId}: no such executor runs there")]
    private partial void LogForeignExecutorMessage(string agentId, string executorId, string frameworkId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} registered from {Hostname} with {Resources}")]
    private partial void LogAgentRegistered(string agentId, string hostname, string resources);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} is unreachable (no heartbeat for {Seconds:F1}s)")]
    private partial void LogAgentUnreachable(string agentId, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} is reachable again")]
    private partial void LogAgentReachable(string agentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} removed after being unreachable too long")]
    private partial void LogAgentRemoved(string agentId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} ended {State}: {Message}")]
    private partial void LogTaskEnded(string taskId, string state, string message);
}
