using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging;

namespace Drover.Master.State;

/// <summary>What the master knows of a Mesos framework id, for executors an agent reports.</summary>
internal enum FrameworkPresence
{
    /// <summary>Not a Mesos framework this master knows (e.g. the executor of a <c>/drover/v1</c> task).</summary>
    Unknown,
    Live,

    /// <summary>Torn down or timed out: its executors must go.</summary>
    Removed,
}

/// <summary>A live custom executor as the operator API shows it.</summary>
internal sealed record ExecutorView(string AgentId, ExecutorSpec Spec, string? ContainerId);

/// <summary>
/// The executor ledger: a Mesos framework's custom executor holds its own resources (<c>ExecutorInfo.resources</c>)
/// on its agent from the acceptance of its first task until the agent reports its exit, as in Mesos. They are part
/// of <see cref="AgentRecord.Used"/>, so offers and built-in placement see them taken.
/// <code>
///   ACCEPT (first task of (framework, executor) on the agent) ─▶ LaunchFromOffer: Used += executor resources
///   agent heartbeat / registration lists live executors ─▶ ReconcileExecutorsLocked: learn lost ones, forget stale ones
///   agent reports the exit (update batch, at least once) ─▶ Used −= executor resources; ExecutorExited → FAILURE
///   agent removed ─▶ all released · framework removed ─▶ released, ShutdownExecutor to the agent
/// </code>
/// Not persisted: after a master restart, executors are rebuilt from the restored tasks that use them and from
/// the agents' next heartbeats (which list live executors, idle ones included). Executors of tasks submitted
/// through <c>/drover/v1</c> are not counted (those tasks are placed by their own resources only).
/// </summary>
internal sealed partial class ClusterState
{
    /// <summary>How long an ended executor is remembered to recognise late or repeated reports.</summary>
    private static readonly TimeSpan EndedExecutorMemory = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Whether a framework id is a live or removed Mesos framework. Set once by the Mesos layer; called under this
    /// state's lock, so it must not take locks (the Mesos layer answers from a concurrent map).
    /// </summary>
    public Func<string, FrameworkPresence> FrameworkPresenceOf { get; set; } = _ => FrameworkPresence.Unknown;

    /// <summary>
    /// Raised (outside the lock) when an agent reports the exit of an executor the master counted (once per exit,
    /// repeats filtered): (agent id, exit). The Mesos layer sends FAILURE. Subscribers must not block.
    /// </summary>
    public event Action<string, ExecutorExit>? ExecutorExited;

    /// <summary>Whether the executor is counted as running on the agent (its resources are held already).</summary>
    public bool HasExecutor(string agentId, string frameworkId, string executorId)
    {
        lock (_lock)
        {
            return _agents.TryGetValue(agentId, out var agent) && agent.Executors.ContainsKey((frameworkId, executorId));
        }
    }

    /// <summary>Every live executor, ordered by agent then framework then executor id. O(executors).</summary>
    public ImmutableArray<ExecutorView> ListExecutors()
    {
        lock (_lock)
        {
            return [.. _agents.Values.Where(a => a.Status != AgentStatus.Removed)
                .SelectMany(a => a.Executors.Values.Select(e => new ExecutorView(a.Id, e.Spec, e.ContainerId)))
                .OrderBy(e => e.AgentId, StringComparer.Ordinal)
                .ThenBy(e => e.Spec.FrameworkId, StringComparer.Ordinal)
                .ThenBy(e => e.Spec.ExecutorId, StringComparer.Ordinal)];
        }
    }

    /// <summary>
    /// A framework was removed: its executors stop counting at once (as in Mesos) and their agents are told to shut
    /// them down. Idempotent.
    /// </summary>
    public void RemoveFrameworkExecutors(string frameworkId)
    {
        var released = false;
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            foreach (var agent in _agents.Values)
            {
                foreach (var (key, record) in agent.Executors.Where(kv => kv.Key.Framework == frameworkId).ToList())
                {
                    RemoveExecutorLocked(agent, key, new EndedExecutor(now, record.ContainerId, FailureSent: true));
                    released = true;
                    if (agent.Status != AgentStatus.Removed)
                    {
                        SendLocked(agent, ShutdownCommand(key));
                    }
                }
            }
        }

        if (released)
        {
            SchedulingNeeded?.Invoke();
        }
    }

    private static AgentCommand ShutdownCommand((string Framework, string Executor) key) => new()
    {
        Type = AgentCommandType.ShutdownExecutor,
        Message = new FrameworkMessage { FrameworkId = key.Framework, ExecutorId = key.Executor },
    };

    /// <summary>The executor a framework task runs in, if it is one the ledger counts (a Mesos framework's custom executor).</summary>
    private static ExecutorSpec? CountedExecutor(TaskSpec spec) => spec.FrameworkId is not null ? spec.Executor : null;

    private static Resources ExecutorResources(ExecutorSpec spec) => spec.Resources with { Ports = PortRanges.Empty };

    /// <summary>Starts counting an executor on the agent. The caller checked it is not counted already.</summary>
    private ExecutorRecord AddExecutorLocked(AgentRecord agent, ExecutorSpec spec, DateTimeOffset now)
    {
        var key = (spec.FrameworkId, spec.ExecutorId);
        var record = new ExecutorRecord(spec, now);
        agent.Executors[key] = record;
        agent.EndedExecutors.Remove(key);
        agent.Used = agent.Used.Add(ExecutorResources(spec));
        LogExecutorAdded(spec.ExecutorId, spec.FrameworkId, agent.Id, ExecutorResources(spec).ToString());
        return record;
    }

    private void RemoveExecutorLocked(AgentRecord agent, (string Framework, string Executor) key, EndedExecutor ended)
    {
        if (agent.Executors.Remove(key, out var record))
        {
            agent.Used = agent.Used.SubtractClamped(ExecutorResources(record.Spec));
            agent.EndedExecutors[key] = ended;
            LogExecutorRemoved(key.Executor, key.Framework, agent.Id);
        }
    }

    /// <summary>The agent is removed: its executors stop counting (their frameworks got FAILURE for the agent).</summary>
    private void ClearExecutorsLocked(AgentRecord agent)
    {
        var now = _time.GetUtcNow();
        foreach (var (key, record) in agent.Executors.ToList())
        {
            RemoveExecutorLocked(agent, key, new EndedExecutor(now, record.ContainerId, FailureSent: true));
        }
    }

    /// <summary>After a master restart: every executor a restored live task runs in is counted on the task's agent.</summary>
    private void RestoreExecutorLocked(AgentRecord agent, TaskRecord r, DateTimeOffset now)
    {
        if (CountedExecutor(r.Spec) is { } exec && !agent.Executors.ContainsKey((exec.FrameworkId, exec.ExecutorId)))
        {
            AddExecutorLocked(agent, exec, now);
        }
    }

    /// <summary>
    /// Applies an agent's reported executor exits: the executor stops counting and, unless this exit was applied
    /// before, it is returned in <paramref name="failures"/> (for FAILURE). An exit for an executor the master had
    /// already forgotten (the agent no longer listed it) still yields its FAILURE once; an exit of an older container
    /// than the one counted now, or of an executor never counted, changes nothing (Mesos ignores unknown executors).
    /// </summary>
    private void ApplyExecutorExitsLocked(AgentRecord agent, ImmutableArray<ExecutorExit> exits, List<ExecutorExit> failures)
    {
        var now = _time.GetUtcNow();
        foreach (var exit in exits)
        {
            var key = (exit.FrameworkId, exit.ExecutorId);
            if (agent.Executors.TryGetValue(key, out var record))
            {
                if (record.ContainerId is { } counted && exit.ContainerId is { } ended && counted != ended)
                {
                    continue; // a late copy of an earlier run's exit
                }

                RemoveExecutorLocked(agent, key, new EndedExecutor(now, exit.ContainerId, FailureSent: true));
                failures.Add(exit);
            }
            else if (agent.EndedExecutors.TryGetValue(key, out var gone) && !gone.FailureSent
                && (gone.ContainerId is null || exit.ContainerId is null || gone.ContainerId == exit.ContainerId))
            {
                agent.EndedExecutors[key] = gone with { FailureSent = true, ContainerId = exit.ContainerId ?? gone.ContainerId };
                failures.Add(exit);
            }
        }
    }

    /// <summary>
    /// Reconciles the agent's executors with the ones it lists (heartbeat or registration). A listed executor the
    /// master does not count is counted if its framework is live (the master restarted, or the agent was removed and
    /// came back), unless it is one whose exit was just applied (a listing older than the exit); one of a removed
    /// framework is shut down. A counted executor the agent does not list is forgotten once its first task had time
    /// to reach the agent (<see cref="MasterOptions.CommandResendAfter"/>) and no live task of it remains on the
    /// agent: the agent lists every executor until the master acknowledged its exit, so an unlisted one never ran or
    /// is gone without a report to wait for.
    /// </summary>
    private void ReconcileExecutorsLocked(AgentRecord agent, ImmutableArray<LiveExecutor> listed, DateTimeOffset now)
    {
        var seen = new HashSet<(string, string)>();
        foreach (var live in listed)
        {
            var spec = live.Executor;
            var key = (spec.FrameworkId, spec.ExecutorId);
            seen.Add(key);
            if (agent.Executors.TryGetValue(key, out var record))
            {
                record.ContainerId = live.ContainerId;
                continue;
            }

            if (agent.EndedExecutors.TryGetValue(key, out var gone) && gone.ContainerId == live.ContainerId)
            {
                continue;
            }

            switch (FrameworkPresenceOf(spec.FrameworkId))
            {
                case FrameworkPresence.Live:
                    AddExecutorLocked(agent, spec, now).ContainerId = live.ContainerId;
                    break;
                case FrameworkPresence.Removed:
                    SendLocked(agent, ShutdownCommand(key));
                    break;
                default:
                    break;
            }
        }

        if (agent.Executors.Count > seen.Count || !agent.Executors.Keys.All(seen.Contains))
        {
            foreach (var (key, record) in agent.Executors.ToList())
            {
                if (!seen.Contains(key) && now - record.Since > _options.CommandResendAfter && !HasLiveTaskLocked(agent, key))
                {
                    RemoveExecutorLocked(agent, key, new EndedExecutor(now, record.ContainerId, FailureSent: false));
                }
            }
        }

        if (agent.EndedExecutors.Count > 0)
        {
            foreach (var (key, gone) in agent.EndedExecutors.ToList())
            {
                if (now - gone.At > EndedExecutorMemory)
                {
                    agent.EndedExecutors.Remove(key);
                }
            }
        }
    }

    private bool HasLiveTaskLocked(AgentRecord agent, (string Framework, string Executor) key)
    {
        foreach (var taskId in agent.TaskIds)
        {
            if (_active.TryGetValue(taskId, out var r) && CountedExecutor(r.Spec) is { } exec
                && exec.FrameworkId == key.Framework && exec.ExecutorId == key.Executor)
            {
                return true;
            }
        }

        return false;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} counted on agent {AgentId} ({Resources})")]
    private partial void LogExecutorAdded(string executorId, string frameworkId, string agentId, string resources);

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} no longer counted on agent {AgentId}")]
    private partial void LogExecutorRemoved(string executorId, string frameworkId, string agentId);
}
