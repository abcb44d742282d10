using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging;

namespace Drover.Master.State;

/// <summary>
/// Reconciliation from the agents' side: what an agent reports running (registration, heartbeat, a
/// non-terminal status update) that the master does not hold as a live task of that agent.
/// <list type="bullet">
/// <item><b>Unknown</b> (no record at all, e.g. after a lost store): never killed on sight. The agent's
/// view lists it, a gauge counts it, and only after <see cref="MasterOptions.UnknownTaskGrace"/> is it
/// killed. With <see cref="MasterOptions.RecoverFromAgents"/>, during the recovery window it is adopted
/// as a record instead (spec and ports from the agent's checkpoint).</item>
/// <item><b>Stray</b> (the master records it ended, or live on another agent): killed at once, re-sent at
/// most every <see cref="MasterOptions.CommandResendAfter"/>.</item>
/// </list>
/// This follows Mesos: a Mesos master that fails over rebuilds its task list from the agents' re-registrations
/// and keeps tasks of frameworks it has not heard from yet (as "recovered" frameworks) instead of killing them;
/// an agent never kills its tasks on its own, it waits for the master's explicit shutdown of a framework, which
/// the master sends only for frameworks it knows ended. Drover's grace is that wait, bounded.
/// No timers: the checks ride on the agent's own periodic heartbeats.
/// </summary>
internal sealed partial class ClusterState
{
    /// <summary>Unknown tasks tracked per agent at most; past it, further ones wait (untracked, unkilled) until room frees.</summary>
    internal const int MaxUnknownTasksPerAgent = 10_000;

    /// <summary>Until when tasks agents report and the master does not know are adopted (<see cref="MasterOptions.RecoverFromAgents"/>).</summary>
    private DateTimeOffset _recoverUntil = DateTimeOffset.MinValue;

    /// <summary>Unknown tasks killed under the lock, to be raised on <see cref="UnknownTaskKilled"/> once it is released.</summary>
    private List<(string AgentId, string TaskId)>? _unknownKilledToRaise;

    private long _strayKillsTotal;
    private long _unknownKillsTotal;
    private long _adoptedTotal;

    /// <summary>
    /// Raised (outside the lock) with (agent id, task id) when a task unknown to the master is killed after
    /// <see cref="MasterOptions.UnknownTaskGrace"/>; Marathon's event bus publishes <c>unknown_instance_terminated_event</c>.
    /// </summary>
    public event Action<string, string>? UnknownTaskKilled;

    /// <summary>Raises <see cref="UnknownTaskKilled"/> for kills made under the lock; call after releasing it.</summary>
    private void RaiseUnknownTaskKills()
    {
        if (Volatile.Read(ref _unknownKilledToRaise) is null)
        {
            return;
        }

        List<(string AgentId, string TaskId)>? killed;
        lock (_lock)
        {
            killed = _unknownKilledToRaise;
            _unknownKilledToRaise = null;
        }

        foreach (var (agentId, taskId) in killed ?? [])
        {
            UnknownTaskKilled?.Invoke(agentId, taskId);
        }
    }

    /// <summary>Figures for metrics: unknown tasks tracked now, and kills and adoptions so far.</summary>
    public (int Unknown, long UnknownKilled, long StrayKilled, long Adopted) ReconciliationCounts()
    {
        lock (_lock)
        {
            var unknown = 0;
            foreach (var a in _agents.Values)
            {
                unknown += a.UnknownTasks.Count;
            }

            return (unknown, _unknownKillsTotal, _strayKillsTotal, _adoptedTotal);
        }
    }

    /// <summary>Opens the recovery window (at start-up and on taking over as leader) when <see cref="MasterOptions.RecoverFromAgents"/> is set.</summary>
    private void StartRecoveryWindowLocked()
    {
        if (_options.RecoverFromAgents)
        {
            _recoverUntil = _time.GetUtcNow() + _options.AgentUnreachableTimeout;
            LogRecoveryWindow(_recoverUntil);
        }
    }

    private bool RecoveringLocked(DateTimeOffset now) => now < _recoverUntil;

    /// <summary>
    /// Handles a full list of the tasks an agent holds (registration or heartbeat): adopts, tracks or kills
    /// what the master does not hold as a live task of this agent, and forgets tracking of ids no longer listed.
    /// Returns true when the master is recovering and some unknown task could not be adopted for want of its
    /// launch (the agent should send <see cref="AgentRegistration.Launches"/>).
    /// </summary>
    private bool ReconcileReportedLocked(AgentRecord agent, HashSet<string> reported, IReadOnlyList<LaunchTask>? launches, DateTimeOffset now, List<TaskView> changes)
    {
        var wantLaunches = false;
        Dictionary<string, LaunchTask>? byId = null;
        if (launches is { Count: > 0 } && RecoveringLocked(now))
        {
            byId = new Dictionary<string, LaunchTask>(StringComparer.Ordinal);
            foreach (var l in launches)
            {
                byId.TryAdd(l.Task.Id, l);
            }
        }

        foreach (var id in reported)
        {
            if (!_active.ContainsKey(id) && !_completed.ContainsKey(id) && RecoveringLocked(now))
            {
                if (byId is not null && byId.TryGetValue(id, out var launch))
                {
                    changes.Add(AdoptLocked(agent, launch, now));
                    continue;
                }

                wantLaunches = true;
            }

            ReportedRunningLocked(agent, id, now, fromUpdate: false);
        }

        Prune(agent.UnknownTasks, reported);
        Prune(agent.StrayKills, reported);
        return wantLaunches;

        static void Prune<T>(Dictionary<string, T> tracked, HashSet<string> reported)
        {
            if (tracked.Count == 0)
            {
                return;
            }

            foreach (var id in tracked.Keys.Where(id => !reported.Contains(id)).ToList())
            {
                tracked.Remove(id);
            }
        }
    }

    /// <summary>
    /// One task the agent says it holds. A live task of this agent is the master's own reconciliation's business
    /// (<see cref="ReconcileLocked"/>); anything else is stray or unknown. <paramref name="fromUpdate"/>: reported
    /// by a non-terminal status update (not a full list).
    /// </summary>
    private void ReportedRunningLocked(AgentRecord agent, string id, DateTimeOffset now, bool fromUpdate)
    {
        if (_active.TryGetValue(id, out var r))
        {
            if (r.AgentId == agent.Id)
            {
                agent.UnknownTasks.Remove(id); // became known (adopted, or restored) meanwhile
                return;
            }

            StrayKillLocked(agent, id, now, r.AgentId is { } other ? $"placed on agent {other}" : "not placed on any agent");
            return;
        }

        if (_completed.TryGetValue(id, out var ended))
        {
            // The agent lists an ended task until it sees the acknowledgement of its terminal update, and an update
            // sent before the end may arrive just after it: give both time before taking them as "still running"
            // (one that still runs stays listed in heartbeats, and is killed then).
            if (ended.EndedAt is { } endedAt && now - endedAt < _options.CommandResendAfter)
            {
                return;
            }

            StrayKillLocked(agent, id, now, $"ended {ended.State.WireName()}");
            return;
        }

        if (!agent.UnknownTasks.TryGetValue(id, out var unknown))
        {
            if (agent.UnknownTasks.Count >= MaxUnknownTasksPerAgent)
            {
                return;
            }

            agent.UnknownTasks[id] = new UnknownTask(now, null);
            LogUnknownTask(agent.Id, id, now + _options.UnknownTaskGrace);
            return;
        }

        if (now - unknown.FirstSeen < _options.UnknownTaskGrace
            || (unknown.KillSentAt is { } sent && now - sent < _options.CommandResendAfter))
        {
            return;
        }

        if (unknown.KillSentAt is null)
        {
            _unknownKillsTotal++;
            LogUnknownTaskKilled(agent.Id, id, (now - unknown.FirstSeen).TotalSeconds);
            (_unknownKilledToRaise ??= []).Add((agent.Id, id));
        }

        agent.UnknownTasks[id] = unknown with { KillSentAt = now };
        SendLocked(agent, new AgentCommand { Type = AgentCommandType.Kill, Kill = new KillTask { TaskId = id } });
    }

    /// <summary>Kills a task the agent runs against the master's record; idempotent, re-sent at most every <see cref="MasterOptions.CommandResendAfter"/>.</summary>
    private void StrayKillLocked(AgentRecord agent, string id, DateTimeOffset now, string why)
    {
        if (agent.StrayKills.TryGetValue(id, out var sent) && now - sent < _options.CommandResendAfter)
        {
            return;
        }

        if (agent.StrayKills.Count >= MaxUnknownTasksPerAgent && !agent.StrayKills.ContainsKey(id))
        {
            agent.StrayKills.Clear(); // a flood of strays: forget the rate limit rather than grow (kills are idempotent)
        }

        var first = !agent.StrayKills.ContainsKey(id);
        agent.StrayKills[id] = now;
        if (first)
        {
            _strayKillsTotal++;
            LogStrayTaskKilled(agent.Id, id, why);
        }

        SendLocked(agent, new AgentCommand { Type = AgentCommandType.Kill, Kill = new KillTask { TaskId = id } });
    }

    /// <summary>
    /// Makes a record of a task an agent runs, from its launch as the agent checkpointed it: the spec, the
    /// ports, the agent; running. Charged to the agent's ledger and saved through the journal like any task.
    /// </summary>
    private TaskView AdoptLocked(AgentRecord agent, LaunchTask launch, DateTimeOffset now)
    {
        var r = new TaskRecord(launch.Task, now)
        {
            AgentId = agent.Id,
            Ports = launch.Ports,
            CommandSentAt = now,
            Allocated = launch.Task.Resources with { Ports = PortRanges.Of([.. launch.Ports]) },
        };
        _active[r.Spec.Id] = r;
        _countsByState[r.State]++;
        IndexLocked(r);
        agent.Used = agent.Used.Add(r.Allocated);
        agent.TaskIds.Add(r.Spec.Id);
        var group = GroupOf(r);
        agent.GroupCounts[group] = agent.GroupCounts.GetValueOrDefault(group) + 1;
        RestoreExecutorLocked(agent, r, now);
        agent.UnknownTasks.Remove(r.Spec.Id);
        _adoptedTotal++;
        LogTaskAdopted(agent.Id, r.Spec.Id);
        return TransitionLocked(r, MasterStatus(r.Spec.Id, TaskState.Running, $"Adopted from agent {agent.Info.Hostname}'s report (--recover-from-agents)", TaskReasons.Reconciliation));
    }

    private ImmutableArray<UnknownTaskView> UnknownViews(AgentRecord a) =>
        a.UnknownTasks.Count == 0
            ? []
            : [.. a.UnknownTasks.OrderBy(kv => kv.Value.FirstSeen).ThenBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => new UnknownTaskView { Id = kv.Key, FirstSeenAt = kv.Value.FirstSeen, KillAt = kv.Value.FirstSeen + _options.UnknownTaskGrace, KillSent = kv.Value.KillSentAt is not null })];

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {AgentId} runs task {TaskId}, which this master has no record of; it keeps running until {KillAt:u} (--unknown-task-grace), then is killed unless it becomes known")]
    private partial void LogUnknownTask(string agentId, string taskId, DateTimeOffset killAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing task {TaskId} on agent {AgentId}: still unknown to this master after {Seconds:F0}s (--unknown-task-grace)")]
    private partial void LogUnknownTaskKilled(string agentId, string taskId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing task {TaskId} on agent {AgentId}: the agent runs it, but this master's record says {Why}")]
    private partial void LogStrayTaskKilled(string agentId, string taskId, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Adopted task {TaskId} from agent {AgentId}'s report (--recover-from-agents)")]
    private partial void LogTaskAdopted(string agentId, string taskId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recovering task records from agents (--recover-from-agents) until {Until:u}: tasks they report and this master does not know are adopted")]
    private partial void LogRecoveryWindow(DateTimeOffset until);
}
