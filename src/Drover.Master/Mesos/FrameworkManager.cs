using Drover.Core.Mesos;
using System.Collections.Immutable;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Protocol;
using Drover.Master.State;
using Drover.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Mesos;

/// <summary>The answer to a scheduler call: an HTTP status and, for errors, the reason.</summary>
internal readonly record struct CallResult(int Status, string? Error = null)
{
    public static CallResult Accepted { get; } = new(StatusCodes.Status202Accepted);

    public static CallResult Bad(string error) => new(StatusCodes.Status400BadRequest, error);
}

/// <summary>
/// The Mesos master's framework side: frameworks and their streams, offers, scheduler calls, status updates
/// and their acknowledgements, failover. One lock guards it. Lock order: this lock, then
/// <see cref="ClusterState"/>'s; methods of <see cref="ClusterState"/> that raise <c>TaskChanged</c> (kill,
/// launch) are only called with this lock released, because the handler of that event takes it.
/// </summary>
internal sealed partial class FrameworkManager
{
    public const string KeyPrefix = "/drover/frameworks/";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Framework> _frameworks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (MFrameworkInfo Info, DateTimeOffset RegisteredAt, DateTimeOffset RemovedAt)> _removed = new(StringComparer.Ordinal);
    private readonly ClusterState _state;
    private readonly IStateStore? _store;
    private readonly MasterOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<FrameworkManager> _logger;
    private readonly string _masterId = Guid.NewGuid().ToString();

    /// <summary>Framework ids this master knows: true live, false removed. Lock-free for <see cref="ClusterState.FrameworkPresenceOf"/>.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _presence = new(StringComparer.Ordinal);

    public FrameworkManager(ClusterState state, IStateStore? store, MasterOptions options, TimeProvider time, ILogger<FrameworkManager> logger)
    {
        _state = state;
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        state.TaskChanged += OnTaskChanged;
        state.FrameworkMessageReceived += OnExecutorMessage;
        state.ExecutorExited += OnExecutorExited;
        state.FrameworkPresenceOf = id => _presence.TryGetValue(id, out var live)
            ? live ? FrameworkPresence.Live : FrameworkPresence.Removed
            : FrameworkPresence.Unknown;
    }

    /// <summary>Raised (outside the lock) when something changed that an allocator pass should look at.</summary>
    public event Action? AllocationNeeded;

    /// <summary>Raised (under the lock; handlers must not block) for the operator API's event stream.</summary>
    public event Action<string, Framework?, MFrameworkInfo>? FrameworkChanged;

    public string MasterId => _masterId;

    /// <summary>
    /// The random part of a new framework id: 16 lowercase hex digits from the system's CSPRNG, so an id cannot be
    /// guessed from the ids or the master id a scheduler has seen. Replaceable by tests (to force collisions).
    /// </summary>
    internal Func<string> NewIdSuffix { get; set; } = static () => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    /// <summary>
    /// The ERROR of a SUBSCRIBE naming a framework id this cluster does not know. Drover checkpoints every framework
    /// it registers, so an unknown id is one it never issued (or of a framework removed before a master restart):
    /// taking it would let a scheduler choose an id the master gives to the next framework, or one whose tasks' ids
    /// (<c>{framework}.{task}</c>) read as another framework's. (A Mesos master without a framework registry accepts
    /// unknown ids, as a failover from a previous master; Drover answers as Mesos does for a removed one: ERROR, close.)
    /// </summary>
    internal static string UnknownFramework(string id) =>
        $"Framework '{id}' is not known to this cluster: a new framework subscribes without an id and is given one";

    private volatile int _connected;

    /// <summary>How many schedulers are connected now. Lock-free read, for hot paths.</summary>
    public int ConnectedCount => _connected;

    private void CountConnectedLocked() => _connected = _frameworks.Values.Count(f => f.Stream is not null);

    /// <summary>The Drover task id of a framework's task: unique across frameworks, safe in paths (<see cref="MesosTaskIds"/>).</summary>
    public static string DroverTaskId(string frameworkId, string taskId) => MesosTaskIds.ToDroverId(frameworkId, taskId);

    /// <summary>The Mesos task id back from a Drover task id.</summary>
    public static string MesosTaskId(string frameworkId, string droverId) => MesosTaskIds.FromDroverId(frameworkId, droverId);

    public static byte[] Encode(MEvent e) => JsonSerializer.SerializeToUtf8Bytes(e, MesosV1JsonContext.Default.MEvent);

    // ---------------------------------------------------------------- recovery

    /// <summary>
    /// Loads checkpointed frameworks at start-up, before requests are served. Each gets a full failover timeout
    /// from now, and at least the agent timeout (so a framework with failover_timeout 0 is not removed, and its
    /// tasks killed, before its scheduler could even notice the master is back).
    /// </summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        if (_store is null)
        {
            return;
        }

        var entries = await _store.ListAsync(KeyPrefix, ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            foreach (var e in entries)
            {
                var p = JsonSerializer.Deserialize(e.Value, MesosV1JsonContext.Default.PersistedFramework)!;
                var id = p.Info.Id?.Value ?? e.Key[KeyPrefix.Length..];
                var fw = new Framework(id, p.Info with { Id = new MId(id) }, p.RegisteredAt)
                {
                    DisconnectedAt = now,
                    Recovered = true,
                    MinimumFailover = _options.AgentUnreachableTimeout,
                };
                fw.Unacknowledged.AddRange(p.Unacknowledged ?? []);
                if (!_frameworks.TryAdd(id, fw))
                {
                    throw new InvalidOperationException($"two checkpoints under {KeyPrefix} name framework '{id}'");
                }

                _presence[id] = true;
            }
        }

        LogRecovered(entries.Length);
    }

    // ---------------------------------------------------------------- subscribe

    /// <summary>
    /// SUBSCRIBE: registers a new framework (assigning its id) or takes over an existing one (failover: the old
    /// stream is closed). Returns the new stream, already holding SUBSCRIBED and every unacknowledged update,
    /// or an error for the HTTP answer (a 4xx before the stream), or a <c>Refusal</c> — a framework that was torn
    /// down, or an authenticated <paramref name="caller"/> that may not register or take over this framework —
    /// which Mesos answers with an ERROR event on the stream, then closes it. A refusal changes nothing (the
    /// framework's current stream, if any, stays open).
    /// </summary>
    public (Framework? Framework, SchedulerStream? Stream, CallResult Error, string? Refusal) Subscribe(MCall call, string hostHeader, SchedulerCaller? caller = null)
    {
        caller ??= SchedulerCaller.Anyone;
        var info = call.Subscribe?.FrameworkInfo;
        if (info is null)
        {
            return (null, null, CallResult.Bad("subscribe.framework_info: required for a SUBSCRIBE call"), null);
        }

        if (string.IsNullOrEmpty(info.User))
        {
            return (null, null, CallResult.Bad("subscribe.framework_info.user: required"), null);
        }

        if (info.Name is not { Length: > 0 } name)
        {
            return (null, null, CallResult.Bad("subscribe.framework_info.name: required"), null);
        }

        if (FrameworkInfoSizeError(info) is { } tooLarge)
        {
            return (null, null, CallResult.Bad("subscribe.framework_info." + tooLarge), null);
        }

        if (call.FrameworkId?.Value is { } callId && info.Id?.Value is { } infoId && callId != infoId)
        {
            return (null, null, CallResult.Bad($"framework_id: '{callId}' differs from subscribe.framework_info.id '{infoId}'"), null);
        }

        (info, var principalError) = AuthenticateSubscription(info, caller);
        if (principalError is not null)
        {
            return (null, null, CallResult.Bad(principalError), null);
        }

        var caps = (info.Capabilities ?? []).Select(c => c.Type).ToHashSet(StringComparer.Ordinal);
        if (info.Roles is { Count: > 0 } && !caps.Contains("MULTI_ROLE"))
        {
            return (null, null, CallResult.Bad("subscribe.framework_info.roles: may only be set by a framework with the MULTI_ROLE capability (else use 'role')"), null);
        }

        foreach (var role in Framework.RolesOf(info))
        {
            if (RoleError(role) is { } why)
            {
                return (null, null, CallResult.Bad($"subscribe.framework_info.roles: '{role}' {why}"), null);
            }
        }

        if (info.FailoverTimeout is { } ft && (!double.IsFinite(ft) || ft < 0))
        {
            return (null, null, CallResult.Bad("subscribe.framework_info.failover_timeout: must be a non-negative number of seconds"), null);
        }

        var id = info.Id?.Value ?? call.FrameworkId?.Value;
        if (id is not null && !Ids.IsValidName(id))
        {
            return (null, null, CallResult.Bad($"framework_id: '{id}' is not a valid id (letters, digits, '_', '-', '.'; 1-128 characters)"), null);
        }

        Framework fw;
        SchedulerStream stream;
        lock (_lock)
        {
            if (id is not null && _removed.ContainsKey(id))
            {
                return (null, null, default, "Framework has been removed");
            }

            var known = id is not null ? _frameworks.GetValueOrDefault(id) : null;
            if (id is not null && known is null)
            {
                // Only the master issues framework ids (see UnknownFramework): naming any other is squatting.
                LogUnknownFrameworkRefused(id, name, caller.Principal ?? "<none>");
                return (null, null, default, UnknownFramework(id));
            }

            if (AuthorizeSubscriptionLocked(ref info, known, id, caller) is { } refusal)
            {
                LogSubscriptionRefused(name, refusal);
                return (null, null, default, refusal);
            }

            var now = _time.GetUtcNow();
            var added = false;
            if (known is null)
            {
                id = NewFrameworkIdLocked();
                fw = new Framework(id, info with { Id = new MId(id) }, now);
                if (!_frameworks.TryAdd(id, fw))
                {
                    throw new InvalidOperationException($"framework id '{id}' was issued twice"); // NewFrameworkIdLocked checked it
                }

                _presence[id] = true;
                added = true;
                LogSubscribed(id, name, string.Join(',', fw.Roles));
            }
            else
            {
                id = known.Id;
                fw = known;
                fw.Info = info with { Id = new MId(id) };
                fw.ReregisteredAt = now;
                fw.Recovered = false;
                fw.MinimumFailover = TimeSpan.Zero;
                if (fw.Stream is { } old)
                {
                    // Mesos closes the previous connection of a failed-over scheduler; its offers go back.
                    old.Close();
                    RescindAllLocked(fw, sendEvents: false);
                }

                LogResubscribed(id, name);
            }

            stream = new SchedulerStream();
            fw.Stream = stream;
            fw.DisconnectedAt = null;
            fw.SuppressedRoles.Clear();
            foreach (var r in call.Subscribe?.SuppressedRoles ?? [])
            {
                fw.SuppressedRoles.Add(r);
            }

            stream.Send(Encode(new MEvent
            {
                Type = "SUBSCRIBED",
                Subscribed = new MSubscribed(new MId(id), _options.SchedulerHeartbeatInterval.TotalSeconds, MasterInfo(hostHeader)),
            }));
            foreach (var status in fw.Unacknowledged)
            {
                stream.Send(Encode(new MEvent { Type = "UPDATE", Update = new MUpdate(status) }));
            }

            var saved = SaveLocked(fw);
            if (added)
            {
                // The id is issued once its record is durable: a master restarted after SUBSCRIBED knows it.
                fw.Issued = saved;
            }

            CountConnectedLocked();
            FrameworkChanged?.Invoke(added ? "FRAMEWORK_ADDED" : "FRAMEWORK_UPDATED", fw, fw.Info);
        }

        AllocationNeeded?.Invoke();
        return (fw, stream, default, null);
    }

    /// <summary>
    /// A new framework id, <c>{masterId}-{16 random hex digits}</c> (Mesos' "master id, dash, suffix" shape): never
    /// one a live or removed framework this master knows has, and never with a '.', so a framework task's Drover id
    /// <c>{framework}.{task}</c> splits at its first '.' (<see cref="MesosTaskIds"/>). Under the lock.
    /// </summary>
    private string NewFrameworkIdLocked()
    {
        while (true)
        {
            var id = $"{_masterId}-{NewIdSuffix()}";
            if (!_frameworks.ContainsKey(id) && !_removed.ContainsKey(id) && !id.Contains('.', StringComparison.Ordinal) && Ids.IsValidName(id))
            {
                return id;
            }

            LogFrameworkIdSkipped(id);
        }
    }

    /// <summary>The subscribe request ended (client gone, stream closed, master stopping). Starts the failover timeout.</summary>
    public void StreamEnded(Framework fw, SchedulerStream stream)
    {
        lock (_lock)
        {
            if (!ReferenceEquals(fw.Stream, stream) || !_frameworks.ContainsKey(fw.Id))
            {
                return; // superseded by a newer subscription, or torn down
            }

            fw.Stream = null;
            fw.DisconnectedAt = _time.GetUtcNow();
            RescindAllLocked(fw, sendEvents: false);
            SaveLocked(fw);
            CountConnectedLocked();
            FrameworkChanged?.Invoke("FRAMEWORK_UPDATED", fw, fw.Info);
            LogDisconnected(fw.Id, fw.FailoverTimeout.TotalSeconds);
        }

        AllocationNeeded?.Invoke();
    }

    // ---------------------------------------------------------------- other calls

    /// <summary>
    /// Every call but SUBSCRIBE, after the HTTP layer parsed it. Validates the stream id and the framework as Mesos
    /// does; an authenticated <paramref name="caller"/> must be the framework's principal (400, before the framework's
    /// state or stream id is looked at), so a stream id alone lets no one act for another principal's framework.
    /// </summary>
    public CallResult Handle(MCall call, string? streamId, SchedulerCaller? caller = null)
    {
        caller ??= SchedulerCaller.Anyone;
        if (string.IsNullOrEmpty(streamId))
        {
            return CallResult.Bad("All non-subscribe calls should include the 'Mesos-Stream-Id' header");
        }

        if (call.FrameworkId?.Value is not { Length: > 0 } fwId)
        {
            return CallResult.Bad("framework_id: required for every call but SUBSCRIBE");
        }

        List<string> kill = [];
        Func<CallResult>? after = null;
        CallResult result;
        lock (_lock)
        {
            if (_frameworks.TryGetValue(fwId, out var fw) && CallPrincipalError(fw, caller) is { } mismatch)
            {
                return CallResult.Bad(mismatch);
            }

            if (fw?.Stream is null)
            {
                return new CallResult(StatusCodes.Status403Forbidden, $"Framework '{fwId}' is not subscribed");
            }

            if (fw.Stream.Id != streamId)
            {
                return CallResult.Bad($"The stream ID '{streamId}' included in this request didn't match the stream ID currently associated with framework ID '{fwId}'");
            }

            result = call.Type switch
            {
                "TEARDOWN" => Teardown(fw, kill),
                "ACCEPT" => Accept(fw, call.Accept, caller, out after),
                "DECLINE" => Decline(fw, call.Decline?.OfferIds, call.Decline?.Filters),
                "ACCEPT_INVERSE_OFFERS" or "DECLINE_INVERSE_OFFERS" => InverseOfferAnswer(fw, call),
                "REVIVE" => Revive(fw, call.Revive?.Roles),
                "SUPPRESS" => Suppress(fw, call.Suppress?.Roles),
                "KILL" => KillCall(fw, call.Kill, kill),
                "SHUTDOWN" => ShutdownCall(fw, call.Shutdown),
                "ACKNOWLEDGE" => Acknowledge(fw, call.Acknowledge),
                "RECONCILE" => Reconcile(fw, call.Reconcile),
                "MESSAGE" => Message(fw, call.Message),
                "REQUEST" => RequestCall(fw),
                null => CallResult.Bad("type: required"),
                var t => CallResult.Bad($"type: '{t}' is not a scheduler call Drover supports (SUBSCRIBE, TEARDOWN, ACCEPT, DECLINE, ACCEPT_INVERSE_OFFERS, DECLINE_INVERSE_OFFERS, REVIVE, SUPPRESS, KILL, SHUTDOWN, ACKNOWLEDGE, RECONCILE, MESSAGE, REQUEST)"),
            };
        }

        // Calls into ClusterState that raise TaskChanged, with our lock released (see the class comment).
        if (after is not null)
        {
            result = after();
        }

        foreach (var taskId in kill)
        {
            if (call.Type == "TEARDOWN")
            {
                _state.Kill(taskId, "Framework torn down", TaskReasons.FrameworkRemoved);
            }
            else
            {
                _state.Kill(taskId);
            }
        }

        if (call.Type is "DECLINE" or "REVIVE" or "TEARDOWN" or "ACCEPT")
        {
            AllocationNeeded?.Invoke();
        }

        return result;
    }

    private CallResult Teardown(Framework fw, List<string> kill)
    {
        RemoveLocked(fw, "torn down by its scheduler");
        kill.AddRange(_state.ActiveTaskIdsOfFramework(fw.Id));
        return CallResult.Accepted;
    }

    private CallResult Decline(Framework fw, IReadOnlyList<MId>? offerIds, MFilters? filters)
    {
        if (offerIds is null || offerIds.Count == 0)
        {
            return CallResult.Bad("decline.offer_ids: at least one offer id is required");
        }

        var refuse = RefuseFor(filters);
        foreach (var id in offerIds)
        {
            if (id?.Value is { } oid && fw.Offers.Remove(oid, out var offer))
            {
                _state.ReleaseOffer(offer.AgentId, offer.Resources);
                Refuse(fw, offer.AgentId, offer.Resources, refuse);
            }
            else
            {
                LogUnknownOffer(fw.Id, id?.Value ?? "", "DECLINE");
            }
        }

        return CallResult.Accepted;
    }

    private TimeSpan RefuseFor(MFilters? filters) =>
        filters?.RefuseSeconds is { } s && double.IsFinite(s) && s >= 0 ? TimeSpan.FromSeconds(Math.Min(s, 365 * 24 * 3600)) : TimeSpan.FromSeconds(5);

    /// <summary>
    /// Installs an offer filter (as Mesos' allocator): <paramref name="resources"/> on the agent are not offered to
    /// the framework again before <paramref name="refuse"/> has passed, unless more than them is free there.
    /// Nothing for an empty refusal or nothing refused (an ACCEPT that used the whole offer).
    /// </summary>
    private void Refuse(Framework fw, string agentId, Resources resources, TimeSpan refuse)
    {
        if (refuse <= TimeSpan.Zero || resources.IsZero)
        {
            return;
        }

        if (!fw.Filters.TryGetValue(agentId, out var filters))
        {
            fw.Filters[agentId] = filters = [];
        }

        filters.Add(new OfferFilter(resources, _time.GetUtcNow() + refuse));
    }

    /// <summary>
    /// Whether an unexpired filter of the framework covers all of <paramref name="available"/> on the agent (Mesos:
    /// a filter refuses an offer whose resources it contains). Drops expired filters on the way.
    /// </summary>
    private static bool IsFiltered(Framework fw, string agentId, Resources available, DateTimeOffset now)
    {
        if (!fw.Filters.TryGetValue(agentId, out var filters))
        {
            return false;
        }

        filters.RemoveAll(f => f.Until <= now);
        if (filters.Count == 0)
        {
            fw.Filters.Remove(agentId);
            return false;
        }

        return filters.Exists(f => f.Resources.Contains(available));
    }

    private CallResult InverseOfferAnswer(Framework fw, MCall call)
    {
        var ids = (call.AcceptInverseOffers ?? call.DeclineInverseOffers)?.InverseOfferIds ?? [];
        LogInverseOfferAnswer(fw.Id, call.Type!, string.Join(',', ids.Select(i => i?.Value)));
        return CallResult.Accepted; // informational in Mesos too: a drain goes ahead whatever frameworks answer
    }

    private CallResult Revive(Framework fw, IReadOnlyList<string>? roles)
    {
        fw.Filters.Clear();
        if (roles is { Count: > 0 })
        {
            foreach (var r in roles)
            {
                fw.SuppressedRoles.Remove(r);
            }
        }
        else
        {
            fw.SuppressedRoles.Clear();
        }

        return CallResult.Accepted;
    }

    private CallResult Suppress(Framework fw, IReadOnlyList<string>? roles)
    {
        foreach (var r in roles is { Count: > 0 } ? roles : fw.Roles)
        {
            fw.SuppressedRoles.Add(r);
        }

        return CallResult.Accepted;
    }

    private CallResult KillCall(Framework fw, MKill? kill, List<string> toKill)
    {
        if (kill?.TaskId?.Value is not { Length: > 0 } taskId)
        {
            return CallResult.Bad("kill.task_id: required");
        }

        var droverId = DroverTaskId(fw.Id, taskId);
        var task = _state.GetTask(droverId);
        if (task is null || task.FrameworkId != fw.Id || task.State.IsTerminal())
        {
            // Mesos answers a kill of a task it does not know (or that ended) with an update, not an error.
            SendLocked(fw, new MTaskStatus
            {
                TaskId = new MId(taskId),
                State = (task?.State is { } s && s.IsTerminal() ? MapState(fw, s) : fw.PartitionAware ? TaskState.Unknown : TaskState.Lost).WireName(),
                Source = TaskSources.Master,
                Reason = TaskReasons.Reconciliation,
                Message = task is null ? "Attempted to kill an unknown task" : "The task has already ended",
                AgentId = MId.Of(kill.AgentId?.Value ?? task?.AgentId),
                Timestamp = UnixNow(),
            }, acknowledge: false);
            return CallResult.Accepted;
        }

        toKill.Add(droverId);

        // A task group run by the DEFAULT executor lives and dies together: Mesos' default executor kills the whole
        // group when one of its tasks is killed. A custom executor decides for itself (it just gets the KILL).
        var group = _state.ActiveTaskGroup(droverId);
        if (group.Any(t => t.Executor is null))
        {
            toKill.AddRange(group.Select(t => t.Id).Where(id => id != droverId));
        }

        return CallResult.Accepted;
    }

    private CallResult ShutdownCall(Framework fw, MShutdown? shutdown)
    {
        if (shutdown?.ExecutorId?.Value is not { Length: > 0 } executorId || shutdown.AgentId?.Value is not { Length: > 0 } agentId)
        {
            return CallResult.Bad("shutdown.executor_id and shutdown.agent_id: both required");
        }

        if (!_state.SendToExecutor(agentId, new FrameworkMessage { FrameworkId = fw.Id, ExecutorId = executorId }, AgentCommandType.ShutdownExecutor))
        {
            LogExecutorUnreachable(fw.Id, executorId, agentId, "SHUTDOWN");
        }

        return CallResult.Accepted;
    }

    private CallResult Acknowledge(Framework fw, MAcknowledge? ack)
    {
        if (ack?.Uuid is not { Length: > 0 } uuid || ack.TaskId?.Value is not { Length: > 0 } taskId || ack.AgentId?.Value is not { Length: > 0 })
        {
            return CallResult.Bad("acknowledge.agent_id, acknowledge.task_id and acknowledge.uuid: all required");
        }

        if (!TryDecodeUuid(uuid))
        {
            return CallResult.Bad("acknowledge.uuid: must be the base64 of the 16-byte uuid of the update");
        }

        var at = fw.Unacknowledged.FindIndex(s => s.Uuid == uuid && s.TaskId.Value == taskId);
        if (at >= 0)
        {
            fw.Unacknowledged.RemoveAt(at);
            SaveLocked(fw);
        }
        else
        {
            LogUnknownAck(fw.Id, taskId, uuid);
        }

        return CallResult.Accepted;
    }

    private CallResult Reconcile(Framework fw, MReconcile? reconcile)
    {
        var asked = reconcile?.Tasks ?? [];
        if (asked.Count == 0)
        {
            // Implicit: the latest state of every task the master knows is live.
            foreach (var t in _state.TasksOfFramework(fw.Id, includeCompleted: false))
            {
                SendLocked(fw, ReconcileStatus(fw, t), acknowledge: false);
            }

            return CallResult.Accepted;
        }

        foreach (var item in asked)
        {
            if (item.TaskId?.Value is not { Length: > 0 } taskId)
            {
                return CallResult.Bad("reconcile.tasks[].task_id: required");
            }
        }

        foreach (var item in asked)
        {
            var taskId = item.TaskId!.Value;
            var t = _state.GetTask(DroverTaskId(fw.Id, taskId));
            SendLocked(fw, t is not null && t.FrameworkId == fw.Id
                ? ReconcileStatus(fw, t)
                : new MTaskStatus
                {
                    TaskId = new MId(taskId),
                    State = (fw.PartitionAware ? TaskState.Unknown : TaskState.Lost).WireName(),
                    Source = TaskSources.Master,
                    Reason = TaskReasons.Reconciliation,
                    Message = "Reconciliation: task is unknown",
                    AgentId = item.AgentId,
                    Timestamp = UnixNow(),
                }, acknowledge: false);
        }

        return CallResult.Accepted;
    }

    private MTaskStatus ReconcileStatus(Framework fw, TaskView t)
    {
        var last = t.Statuses.IsDefaultOrEmpty ? null : t.Statuses[^1];
        var state = t.State is TaskState.Pending or TaskState.Staging ? TaskState.Staging : t.State;
        return new MTaskStatus
        {
            TaskId = new MId(MesosTaskId(fw.Id, t.Id)),
            State = MapState(fw, state).WireName(),
            Source = TaskSources.Master,
            Reason = TaskReasons.Reconciliation,
            Message = "Reconciliation: latest task state",
            AgentId = MId.Of(t.AgentId),
            ExecutorId = MId.Of(last?.ExecutorId),
            Healthy = t.Healthy,
            Timestamp = last?.Timestamp ?? UnixNow(),
        };
    }

    private CallResult Message(Framework fw, MMessage? message)
    {
        if (message?.AgentId?.Value is not { Length: > 0 } agentId || message.ExecutorId?.Value is not { Length: > 0 } executorId)
        {
            return CallResult.Bad("message.agent_id and message.executor_id: both required");
        }

        if (!IsBase64(message.Data))
        {
            return CallResult.Bad("message.data: must be base64 (Mesos encodes bytes as base64 in JSON)");
        }

        if (!_state.SendToExecutor(agentId, new FrameworkMessage { FrameworkId = fw.Id, ExecutorId = executorId, Data = message.Data ?? "" }))
        {
            LogExecutorUnreachable(fw.Id, executorId, agentId, "MESSAGE"); // best effort, as in Mesos
        }

        return CallResult.Accepted;
    }

    private CallResult RequestCall(Framework fw)
    {
        // Mesos' allocator ignores resource requests; so does Drover, but says so in the log.
        LogRequestIgnored(fw.Id);
        return CallResult.Accepted;
    }

    // ---------------------------------------------------------------- events from the cluster

    private void OnTaskChanged(TaskView view)
    {
        if (view.FrameworkId is not { } fwId || view.Statuses.IsDefaultOrEmpty)
        {
            return;
        }

        var s = view.Statuses[^1];
        if (s.State is TaskState.Pending or TaskState.Staging)
        {
            return; // Mesos never sends TASK_STAGING to schedulers
        }

        lock (_lock)
        {
            if (!_frameworks.TryGetValue(fwId, out var fw) || (s.State == TaskState.Killing && !fw.TaskKillingState))
            {
                return;
            }

            SendLocked(fw, new MTaskStatus
            {
                TaskId = new MId(MesosTaskId(fwId, view.Id)),
                State = MapState(fw, s.State).WireName(),
                Message = s.Message,
                Source = s.Source,
                Reason = s.Reason,
                Data = s.Data,
                AgentId = MId.Of(view.AgentId ?? s.AgentId),
                ExecutorId = MId.Of(s.ExecutorId),
                Timestamp = s.Timestamp,
                Healthy = s.Healthy,
            }, acknowledge: true);
        }

        if (s.State == TaskState.Failed)
        {
            // Mesos' default executor kills the rest of a task group when one of its tasks fails (a custom executor
            // decides for itself). Our lock is released: Kill raises TaskChanged again.
            foreach (var sibling in _state.ActiveTaskGroup(view.Id).Where(t => t.Executor is null && t.Id != view.Id))
            {
                _state.Kill(sibling.Id, $"Task '{MesosTaskId(fwId, view.Id)}' of its task group failed", reason: null);
            }
        }
    }

    private void OnExecutorMessage(string agentId, FrameworkMessage message)
    {
        lock (_lock)
        {
            if (_frameworks.TryGetValue(message.FrameworkId, out var fw) && fw.Stream is { } stream)
            {
                stream.Send(Encode(new MEvent { Type = "MESSAGE", Message = new MMessage(new MId(agentId), new MId(message.ExecutorId), message.Data) }));
            }
            else
            {
                LogMessageDropped(message.FrameworkId, message.ExecutorId);
            }
        }
    }

    /// <summary>
    /// An executor the master counted has exited: FAILURE (agent id, executor id, wait status) to its framework if
    /// connected. Not queued for a disconnected framework and not acknowledged, as in Mesos (its tasks' terminal
    /// updates are the reliable signal).
    /// </summary>
    private void OnExecutorExited(string agentId, ExecutorExit exit)
    {
        lock (_lock)
        {
            if (_frameworks.TryGetValue(exit.FrameworkId, out var fw) && fw.Stream is { } stream)
            {
                stream.Send(Encode(new MEvent { Type = "FAILURE", Failure = new MFailure(new MId(agentId), new MId(exit.ExecutorId), exit.Status) }));
                LogExecutorFailureSent(exit.FrameworkId, exit.ExecutorId, agentId, exit.Status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown");
            }
            else
            {
                LogExecutorFailureDropped(exit.FrameworkId, exit.ExecutorId, agentId);
            }
        }
    }

    /// <summary>Mesos' state for a framework: without PARTITION_AWARE, the partition states read TASK_LOST.</summary>
    private static TaskState MapState(Framework fw, TaskState s) => fw.PartitionAware ? s : s switch
    {
        TaskState.Unreachable or TaskState.Gone or TaskState.GoneByOperator or TaskState.Dropped or TaskState.Unknown => TaskState.Lost,
        _ => s,
    };

    /// <summary>Sends an UPDATE; with <paramref name="acknowledge"/>, stamps a uuid and keeps it (checkpointed) until acknowledged.</summary>
    private void SendLocked(Framework fw, MTaskStatus status, bool acknowledge)
    {
        if (acknowledge)
        {
            status = status with { Uuid = Convert.ToBase64String(Guid.NewGuid().ToByteArray()) };
            fw.Unacknowledged.Add(status);
            if (fw.Unacknowledged.Count > Framework.MaxUnacknowledged)
            {
                fw.Unacknowledged.RemoveAt(0);
                LogUnackedOverflow(fw.Id, Framework.MaxUnacknowledged);
            }

            SaveLocked(fw);
        }

        fw.Stream?.Send(Encode(new MEvent { Type = "UPDATE", Update = new MUpdate(status) }));
    }

    // ---------------------------------------------------------------- operator API views

    /// <summary>Frameworks (live, and removed ones this master saw), and the resources offered per agent, in operator API shapes.</summary>
    public (List<Operator.OFramework> Frameworks, List<Operator.OFramework> Completed, Dictionary<string, Resources> OfferedByAgent, List<(string Id, ImmutableArray<string> Roles)> Roles) OperatorView(ImmutableDictionary<string, Resources> usage)
    {
        lock (_lock)
        {
            var offered = new Dictionary<string, Resources>(StringComparer.Ordinal);
            foreach (var o in _frameworks.Values.SelectMany(f => f.Offers.Values))
            {
                offered[o.AgentId] = offered.GetValueOrDefault(o.AgentId, Resources.Zero).Add(o.Resources);
            }

            return (
                [.. _frameworks.Values.OrderBy(f => f.RegisteredAt).Select(f => ToOperatorLocked(f, usage.GetValueOrDefault(f.Id, Resources.Zero)))],
                [.. _removed.Select(kv => new Operator.OFramework
                {
                    FrameworkInfo = kv.Value.Info,
                    RegisteredTime = Operator.OperatorShapes.Time(kv.Value.RegisteredAt),
                    UnregisteredTime = Operator.OperatorShapes.Time(kv.Value.RemovedAt),
                })],
                offered,
                [.. _frameworks.Values.Select(f => (f.Id, f.Roles))]);
        }
    }

    /// <summary>A framework in the operator API's shape. Call under the lock (from <see cref="FrameworkChanged"/> handlers too).</summary>
    public Operator.OFramework ToOperatorLocked(Framework f, Resources? usage = null) => new()
    {
        FrameworkInfo = f.Info,
        Active = f.Connected,
        Connected = f.Connected,
        Recovered = f.Recovered,
        RegisteredTime = Operator.OperatorShapes.Time(f.RegisteredAt),
        ReregisteredTime = f.ReregisteredAt is { } r ? Operator.OperatorShapes.Time(r) : null,
        UnregisteredTime = f.DisconnectedAt is { } d ? Operator.OperatorShapes.Time(d) : null,
        Offers = [.. f.Offers.Values.Select(o => new MOffer
        {
            Id = new MId(o.Id),
            FrameworkId = new MId(f.Id),
            AgentId = new MId(o.AgentId),
            Hostname = o.Hostname,
            Resources = MesosResources.ToMesos(o.Resources, o.Role),
            AllocationInfo = new MAllocationInfo(o.Role),
        })],
        AllocatedResources = usage is null ? null : MesosResources.ToMesos(usage, null),
        OfferedResources = MesosResources.ToMesos(f.Offers.Values.Aggregate(Resources.Zero, (acc, o) => acc.Add(o.Resources)), null),
    };

    // ---------------------------------------------------------------- helpers (under the lock)

    /// <summary>Removes a framework: offers back, stream closed, record deleted. The caller kills its tasks after releasing the lock.</summary>
    private void RemoveLocked(Framework fw, string why)
    {
        RescindAllLocked(fw, sendEvents: false);
        fw.Stream?.Close();
        fw.Stream = null;
        _frameworks.Remove(fw.Id);
        _presence[fw.Id] = false;
        CountConnectedLocked();
        _removed[fw.Id] = (fw.Info, fw.RegisteredAt, _time.GetUtcNow());
        // As Mesos: the executors stop counting now and their agents shut them down.
        _state.RemoveFrameworkExecutors(fw.Id);
        if (_store is not null)
        {
            Observe(_store.CommitAsync(new Transaction { Writes = [WriteOp.Delete(KeyPrefix + fw.Id)] }));
        }

        FrameworkChanged?.Invoke("FRAMEWORK_REMOVED", null, fw.Info);
        LogRemoved(fw.Id, why);
    }

    private void RescindAllLocked(Framework fw, bool sendEvents)
    {
        foreach (var offer in fw.Offers.Values)
        {
            _state.ReleaseOffer(offer.AgentId, offer.Resources);
            if (sendEvents)
            {
                fw.Stream?.Send(Encode(new MEvent { Type = "RESCIND", Rescind = new MRescind(new MId(offer.Id)) }));
            }
        }

        fw.Offers.Clear();
    }

    /// <summary>
    /// Checkpoints the framework. Writes are issued under the lock, so they reach the (FIFO) store in order. Returns the
    /// write, already observed (a failure is logged); only a new framework's first SUBSCRIBE waits for it.
    /// </summary>
    private Task SaveLocked(Framework fw)
    {
        if (_store is null)
        {
            return Task.CompletedTask;
        }

        var write = _store.CommitAsync(new Transaction
        {
            Writes = [WriteOp.Put(KeyPrefix + fw.Id, JsonSerializer.SerializeToUtf8Bytes(fw.ToPersisted(), MesosV1JsonContext.Default.PersistedFramework))],
        });
        Observe(write);
        return write;
    }

    /// <summary>
    /// Framework checkpoints are not awaited by the calls that cause them (Mesos answers those before its
    /// registry write too); a failed write is logged, and the next change of the framework writes it whole again.
    /// </summary>
    private void Observe(Task write) =>
        _ = write.ContinueWith(t => LogCheckpointFailed(t.Exception!.GetBaseException()), CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private MMasterInfo MasterInfo(string hostHeader)
    {
        var host = hostHeader;
        var port = 5050;
        var colon = hostHeader.LastIndexOf(':');
        if (colon > 0 && int.TryParse(hostHeader[(colon + 1)..], out var p))
        {
            host = hostHeader[..colon];
            port = p;
        }

        return new MMasterInfo { Id = _masterId, Hostname = host, Port = port, Version = MasterHost.Version, Address = new MAddress(host, host, port) };
    }

    private static string? RoleError(string role) => role switch
    {
        "" => "is empty",
        "." or ".." => "is not a valid role",
        _ when role.StartsWith('-') => "must not start with '-'",
        _ when role.Any(c => c == '/' || char.IsWhiteSpace(c) || char.IsControl(c)) => "must not contain '/', whitespace or control characters",
        _ => null,
    };

    private static bool TryDecodeUuid(string uuid)
    {
        Span<byte> bytes = stackalloc byte[24];
        return Convert.TryFromBase64String(uuid, bytes, out var n) && n == 16;
    }

    private static bool IsBase64(string? data)
    {
        if (string.IsNullOrEmpty(data))
        {
            return true;
        }

        var buffer = new byte[(data.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(data, buffer, out _);
    }

    private double UnixNow() => _time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;

    [LoggerMessage(Level = LogLevel.Error, Message = "Checkpointing a Mesos framework failed")]
    private partial void LogCheckpointFailed(Exception e);

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered {Count} Mesos frameworks from the state store")]
    private partial void LogRecovered(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId} ({Name}) subscribed in roles {Roles}")]
    private partial void LogSubscribed(string frameworkId, string name, string roles);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused a SUBSCRIBE of '{Name}' (principal {Principal}) naming framework id {FrameworkId}, which this cluster never issued")]
    private partial void LogUnknownFrameworkRefused(string frameworkId, string name, string principal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Generated framework id {FrameworkId} is taken or unusable; drawing another")]
    private partial void LogFrameworkIdSkipped(string frameworkId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId} ({Name}) re-subscribed (failover)")]
    private partial void LogResubscribed(string frameworkId, string name);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId} disconnected; its tasks are kept for its failover timeout of {Seconds} s")]
    private partial void LogDisconnected(string frameworkId, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId} removed: {Why}; its tasks are killed")]
    private partial void LogRemoved(string frameworkId, string why);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Framework {FrameworkId} named unknown or expired offer {OfferId} in {Call}")]
    private partial void LogUnknownOffer(string frameworkId, string offerId, string call);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Framework {FrameworkId} acknowledged an update it has no pending update for (task {TaskId}, uuid {Uuid})")]
    private partial void LogUnknownAck(string frameworkId, string taskId, string uuid);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId}: {Call} {Ids} (noted; the drain proceeds)")]
    private partial void LogInverseOfferAnswer(string frameworkId, string call, string ids);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Framework {FrameworkId}: {Call} for executor {ExecutorId} dropped: agent {AgentId} is unknown, removed or unreachable")]
    private partial void LogExecutorUnreachable(string frameworkId, string executorId, string agentId, string call);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId} sent REQUEST; resource requests are accepted and ignored, as by Mesos' allocator")]
    private partial void LogRequestIgnored(string frameworkId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Executor message for framework {FrameworkId} from executor {ExecutorId} dropped: the framework is not connected")]
    private partial void LogMessageDropped(string frameworkId, string executorId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Executor {ExecutorId} of framework {FrameworkId} on agent {AgentId} exited (wait status {Status}); FAILURE sent")]
    private partial void LogExecutorFailureSent(string frameworkId, string executorId, string agentId, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Not forwarding the exit of executor {ExecutorId} on agent {AgentId}: framework {FrameworkId} is not connected")]
    private partial void LogExecutorFailureDropped(string frameworkId, string executorId, string agentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Framework {FrameworkId} has more than {Max} unacknowledged updates; the oldest is dropped")]
    private partial void LogUnackedOverflow(string frameworkId, int max);
}
