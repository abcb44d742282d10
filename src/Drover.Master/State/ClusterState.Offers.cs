using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;

namespace Drover.Master.State;

/// <summary>One agent as the Mesos allocator sees it (a copy; see <see cref="ClusterState.OfferView"/>).</summary>
internal sealed record OfferAgent(
    string Id,
    string Hostname,
    Attributes Attributes,
    FaultDomain? Domain,
    Resources Total,
    Resources Free,
    Resources Offered,
    bool Schedulable,
    AgentStatus Status,
    DateTimeOffset? DrainStartedAt,
    DateTimeOffset? DrainDeadline);

/// <summary>
/// What the allocator needs from one consistent moment of the ledger: the agents, the resources the oldest
/// pending built-in tasks ask for, and per framework the resources its live tasks hold and the agents they are on.
/// </summary>
internal sealed record OfferView(
    ImmutableArray<OfferAgent> Agents,
    ImmutableArray<PendingDemand> PendingBuiltIn,
    ImmutableDictionary<string, Resources> FrameworkUsage,
    ImmutableDictionary<string, ImmutableHashSet<string>> FrameworkAgents);

/// <summary>What a pending built-in task asks for, and since when it waits.</summary>
internal readonly record struct PendingDemand(Resources Resources, DateTimeOffset SubmittedAt);

/// <summary>A framework task to start from an accepted offer: the spec and the exact ports it took from the offer.</summary>
internal sealed record OfferLaunch(TaskSpec Spec, ImmutableArray<int> Ports);

/// <summary>
/// The Mesos offer hooks on the one resource ledger. An offer holds resources on its agent
/// (<see cref="AgentRecord.Offered"/>), so built-in placement cannot take them; an accepted offer turns its
/// hold into tasks under the same lock, a declined, rescinded or expired one gives it back. All methods are
/// thread-safe; none raises <see cref="TaskChanged"/> while a caller's lock could be held except
/// <see cref="LaunchFromOffer"/> (raised after this lock is released, like every other change).
/// </summary>
internal sealed partial class ClusterState
{
    /// <summary>Raised (outside the lock) when an agent registers for the first time (not on re-registration): its id.</summary>
    public event Action<string>? AgentAdded;

    /// <summary>
    /// A consistent copy for one allocator pass. O(agents + active tasks + <paramref name="maxPending"/>); without
    /// <paramref name="includeTasks"/> (no framework exists) only the agents, O(agents).
    /// </summary>
    public OfferView OfferView(int maxPending, bool includeTasks = true)
    {
        lock (_lock)
        {
            var agents = ImmutableArray.CreateBuilder<OfferAgent>(_agents.Count);
            foreach (var a in _agents.Values)
            {
                agents.Add(new OfferAgent(a.Id, a.Info.Hostname, a.Info.Attributes, a.Info.Domain, a.Total, a.Free, a.Offered,
                    a.Schedulable, a.Status, a.DrainStartedAt, a.DrainDeadline));
            }

            var pending = ImmutableArray.CreateBuilder<PendingDemand>();
            foreach (var r in _pending)
            {
                if (pending.Count == maxPending || !includeTasks)
                {
                    break;
                }

                pending.Add(new PendingDemand(r.Spec.Resources, r.SubmittedAt));
            }

            var usage = new Dictionary<string, Resources>(StringComparer.Ordinal);
            var where = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            foreach (var r in includeTasks ? _active.Values : Enumerable.Empty<TaskRecord>())
            {
                if (r.Spec.FrameworkId is not { } fw || !r.State.HoldsResources())
                {
                    continue;
                }

                usage[fw] = usage.GetValueOrDefault(fw, Resources.Zero).Add(r.Allocated with { Ports = PortRanges.Empty });
                if (r.AgentId is { } agentId)
                {
                    if (!where.TryGetValue(fw, out var set))
                    {
                        where[fw] = set = new HashSet<string>(StringComparer.Ordinal);
                    }

                    set.Add(agentId);
                }
            }

            // A framework's executors count towards its allocation like its tasks.
            foreach (var a in includeTasks ? _agents.Values : Enumerable.Empty<AgentRecord>())
            {
                foreach (var e in a.Executors.Values)
                {
                    var fw = e.Spec.FrameworkId;
                    usage[fw] = usage.GetValueOrDefault(fw, Resources.Zero).Add(ExecutorResources(e.Spec));
                    if (!where.TryGetValue(fw, out var set))
                    {
                        where[fw] = set = new HashSet<string>(StringComparer.Ordinal);
                    }

                    set.Add(a.Id);
                }
            }

            return new OfferView(agents.ToImmutable(), pending.ToImmutable(), usage.ToImmutableDictionary(StringComparer.Ordinal),
                where.ToImmutableDictionary(kv => kv.Key, kv => kv.Value.ToImmutableHashSet(StringComparer.Ordinal), StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// Holds <paramref name="resources"/> on the agent for an offer. False (nothing held) when the agent is not
    /// schedulable or no longer has them free, e.g. placement took them since the allocator's view.
    /// </summary>
    public bool TryHoldForOffer(string agentId, Resources resources)
    {
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var agent) || !agent.Schedulable || !agent.Free.Contains(resources))
            {
                return false;
            }

            agent.Offered = agent.Offered.Add(resources);
            return true;
        }
    }

    /// <summary>Gives back an offer's hold (declined, rescinded, expired). Idempotent per hold only: call once per offer.</summary>
    public void ReleaseOffer(string agentId, Resources resources)
    {
        lock (_lock)
        {
            if (_agents.TryGetValue(agentId, out var agent))
            {
                agent.Offered = agent.Offered.SubtractClamped(resources);
            }
        }

        SchedulingNeeded?.Invoke();
    }

    /// <summary>
    /// Turns an accepted offer's hold into tasks: releases <paramref name="held"/> and, under the same lock,
    /// places each task on the agent (TASK_STAGING, launch queued once durable). A task that cannot be placed
    /// (agent gone, id taken) ends at once in <paramref name="failState"/> (TASK_LOST or TASK_DROPPED, as
    /// Mesos answers for frameworks without/with PARTITION_AWARE), so the framework always hears of it. The tasks
    /// of a task group (same <see cref="TaskSpec.TaskGroupId"/>) are placed all or none, and go to the agent in
    /// one <see cref="AgentCommandType.LaunchGroup"/> command.
    /// <c>Durable</c> completes once every change is in the store.
    /// </summary>
    public Task LaunchFromOffer(string agentId, Resources held, IReadOnlyList<OfferLaunch> launches, TaskState failState)
    {
        var changes = new List<TaskView>(launches.Count);
        Task durable;
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            _agents.TryGetValue(agentId, out var agent);
            if (agent is not null)
            {
                agent.Offered = agent.Offered.SubtractClamped(held);
            }

            // A task group (Mesos' LAUNCH_GROUP) is placed all or nothing and sent as one command; other tasks one by one.
            foreach (var batch in launches.GroupBy(l => l.Spec.TaskGroupId ?? l.Spec.Id, StringComparer.Ordinal))
            {
                // Cannot record a second task under an id; the Mesos layer checks first, so a taken id is a race only.
                var members = batch.Where(l => !_active.ContainsKey(l.Spec.Id) && !_completed.ContainsKey(l.Spec.Id)).ToList();
                // The first task of a custom executor on the agent also takes the executor's own resources, once.
                var newExecutors = agent is null ? [] : members.Select(l => CountedExecutor(l.Spec)).OfType<ExecutorSpec>()
                    .DistinctBy(e => (e.FrameworkId, e.ExecutorId))
                    .Where(e => !agent.Executors.ContainsKey((e.FrameworkId, e.ExecutorId))).ToList();
                var needed = members.Aggregate(Resources.Zero, (acc, l) => acc.Add(l.Spec.Resources with { Ports = PortRanges.Of([.. l.Ports]) }));
                needed = newExecutors.Aggregate(needed, (acc, e) => acc.Add(ExecutorResources(e)));
                var why = agent is null || agent.Status != AgentStatus.Active ? "The offer's agent is no longer active"
                    : !agent.Free.Contains(needed) ? "The offer's resources are no longer free on its agent"
                    : members.Count < batch.Count() ? "Another task of its task group could not be launched"
                    : null;
                var placed = new List<TaskRecord>(members.Count);
                if (why is null)
                {
                    foreach (var exec in newExecutors)
                    {
                        AddExecutorLocked(agent!, exec, now);
                    }
                }

                foreach (var launch in members)
                {
                    var spec = launch.Spec;
                    var r = new TaskRecord(spec, now);
                    _active.Add(spec.Id, r);
                    IndexLocked(r);
                    _countsByState[TaskState.Pending]++;
                    if (why is not null)
                    {
                        changes.Add(TransitionLocked(r, MasterStatus(spec.Id, failState, why, TaskReasons.InvalidOffers)));
                        continue;
                    }

                    var allocated = spec.Resources with { Ports = PortRanges.Of([.. launch.Ports]) };
                    agent!.Used = agent.Used.Add(allocated);
                    agent.TaskIds.Add(spec.Id);
                    var group = spec.Group ?? spec.Id;
                    agent.GroupCounts[group] = agent.GroupCounts.GetValueOrDefault(group) + 1;
                    r.AgentId = agent.Id;
                    r.Ports = launch.Ports;
                    r.Allocated = allocated;
                    r.CommandSentAt = now;
                    changes.Add(TransitionLocked(r, MasterStatus(spec.Id, TaskState.Staging, $"Launched on {agent.Info.Hostname} from an offer")));
                    placed.Add(r);
                }

                if (placed.Count > 0)
                {
                    SendLocked(agent!, placed[0].Spec.TaskGroupId is null ? LaunchCommand(placed[0]) : LaunchGroupCommand(placed));
                }
            }

            durable = _lastWrite;
        }

        Publish(changes);
        SchedulingNeeded?.Invoke();
        return durable;
    }

    /// <summary>Kills a task as <see cref="Kill"/> does, with the message and reason its status should carry.</summary>
    public KillResult Kill(string id, string message, string? reason)
    {
        TaskView? changed;
        lock (_lock)
        {
            if (!_active.TryGetValue(id, out var r))
            {
                return _completed.ContainsKey(id) ? KillResult.AlreadyTerminal : KillResult.NotFound;
            }

            changed = KillLocked(r, message, reason);
        }

        if (changed is not null)
        {
            TaskChanged?.Invoke(changed);
        }

        return KillResult.Accepted;
    }

    /// <summary>
    /// The specs of the live tasks of the task group (<see cref="TaskSpec.TaskGroupId"/>) <paramref name="taskId"/>
    /// belongs to — itself included while it is live, so also for a task that just ended; empty when it is unknown or
    /// not in a group. O(tasks on its agent).
    /// </summary>
    public ImmutableArray<TaskSpec> ActiveTaskGroup(string taskId)
    {
        lock (_lock)
        {
            if ((_active.TryGetValue(taskId, out var r) || _completed.TryGetValue(taskId, out r)) is false || r.Spec.TaskGroupId is not { } groupId)
            {
                return [];
            }

            if (r.AgentId is null || !_agents.TryGetValue(r.AgentId, out var agent))
            {
                return _active.ContainsKey(taskId) ? [r.Spec] : [];
            }

            return [.. agent.TaskIds.Select(id => _active[id].Spec).Where(s => s.TaskGroupId == groupId)];
        }
    }

    /// <summary>Ids of the live (not ended) tasks a framework launched. O(active tasks).</summary>
    public ImmutableArray<string> ActiveTaskIdsOfFramework(string frameworkId)
    {
        lock (_lock)
        {
            return [.. _active.Values.Where(r => r.Spec.FrameworkId == frameworkId).Select(r => r.Spec.Id)];
        }
    }

    /// <summary>Views of every task a framework launched that the master still knows (live and recently ended).</summary>
    public ImmutableArray<TaskView> TasksOfFramework(string frameworkId, bool includeCompleted)
    {
        lock (_lock)
        {
            var list = _active.Values.Where(r => r.Spec.FrameworkId == frameworkId);
            if (includeCompleted)
            {
                list = list.Concat(_completed.Values.Where(r => r.Spec.FrameworkId == frameworkId));
            }

            return [.. list.Select(ToView)];
        }
    }
}
