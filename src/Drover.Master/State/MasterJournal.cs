using System.Text.Json;
using Drover.Core.Json;
using Drover.Core.State;
using Drover.Store;

namespace Drover.Master.State;

/// <summary>
/// Writes the master's records to the state store. <see cref="ClusterState"/> calls it while holding
/// its lock, capturing an immutable copy of each record as it changes (serialized later, outside that lock); the returned task completes when that write, and
/// every write asked for before it, is durable.
/// <para>
/// Writes are coalesced (group commit per key): changes wait in a dirty map keyed by store key while
/// the previous flush is in flight, a later change of the same record replacing the earlier one, and
/// the next flush commits the whole map. A task's submit, placement, TASK_STARTING and TASK_RUNNING
/// arriving within one flush cost one row write, not four; under light load a flush starts at once, so
/// latency is one commit. Flushes run one at a time, so the store never holds a record older than one
/// it held before, and a flush holds every change made before it began. A flush is cut into
/// transactions of <see cref="MaxWritesPerTransaction"/> writes (the SQLite store folds up to 512 of
/// them into one commit); a crash in the middle of a large one leaves each record at a state it really
/// had, some at the flush's, none older than before it, and nothing acknowledged depends on it (an
/// acknowledgement waits for the whole flush).
/// </para>
/// <code>
///   SaveTask/SaveAgent/DeleteTask ──▶ dirty[key] = immutable copy ──▶ flush loop (one at a time):
///                                                             commit dirty (≤ MaxWritesPerTransaction per transaction)
///                                                             ──▶ complete the tasks of every write it held
/// </code>
/// Without a store (unit tests) writes complete at once. Thread-safe.
/// <para>
/// A failed flush is final. The records it held are already changed in memory (and may have been placed,
/// offered or counted in the ledger), so the journal does not retry them, nor commit any later change that
/// may depend on them: it fails that flush's writes, every write queued behind it and every later one with
/// the same <see cref="StateStoreUnavailableException"/>, and raises <see cref="StoreFault"/>; the host then
/// stops. The store keeps a prefix of the master's history, as after a crash, and no command whose change
/// was not saved reaches an agent (they wait for these tasks).
/// </para>
/// </summary>
internal sealed class MasterJournal(IStateStore? store, StoreFault? fault = null)
{
    public const string TaskPrefix = "/drover/tasks/";
    public const string AgentPrefix = "/drover/agents/";

    public static MasterJournal None { get; } = new(null);

    /// <summary>
    /// Captures the record as it is now (call under <see cref="ClusterState"/>'s lock); it is serialized
    /// later by the flush loop, outside that lock, and only its latest state if it changes again meanwhile.
    /// </summary>
    public Task SaveTask(TaskRecord r) => store is null ? Task.CompletedTask : Write(TaskPrefix + r.Spec.Id, new PersistedTask
    {
        Spec = r.Spec,
        State = r.State,
        SubmittedAt = r.SubmittedAt,
        AgentId = r.AgentId,
        Ports = r.Ports,
        ExitCode = r.ExitCode,
        Message = r.Message,
        Reason = r.Reason,
        KillRequested = r.KillRequested,
        Healthy = r.Healthy,
        HealthResults = r.HealthResults.IsEmpty ? null : r.HealthResults,
        Ready = r.Ready,
        StartedAt = r.StartedAt,
        Statuses = [.. r.Statuses],
    });

    public Task DeleteTask(string id) => Write(TaskPrefix + id, null);

    public Task SaveAgent(AgentRecord a) => store is null ? Task.CompletedTask : Write(AgentPrefix + a.Id, new PersistedAgent
    {
        Info = a.Info,
        Status = a.Status.ToString().ToLowerInvariant(),
        RegisteredAt = a.RegisteredAt,
        UnreachableSince = a.UnreachableSince,
        DrainStartedAt = a.DrainStartedAt,
        DrainDeadline = a.DrainDeadline,
    });

    private static byte[]? Serialize(object? value) => value switch
    {
        null => null,
        PersistedTask t => JsonSerializer.SerializeToUtf8Bytes(t, DroverJsonContext.Default.PersistedTask),
        PersistedAgent a => JsonSerializer.SerializeToUtf8Bytes(a, DroverJsonContext.Default.PersistedAgent),
        _ => throw new InvalidOperationException($"cannot persist a {value.GetType().Name}"),
    };

    /// <summary>Everything stored, for recovery at start-up.</summary>
    public async Task<(List<PersistedTask> Tasks, List<PersistedAgent> Agents)> LoadAsync(CancellationToken ct)
    {
        if (store is null)
        {
            return ([], []);
        }

        var tasks = (await store.ListAsync(TaskPrefix, ct).ConfigureAwait(false))
            .Select(e => JsonSerializer.Deserialize(e.Value, DroverJsonContext.Default.PersistedTask)!).ToList();
        var agents = (await store.ListAsync(AgentPrefix, ct).ConfigureAwait(false))
            .Select(e => JsonSerializer.Deserialize(e.Value, DroverJsonContext.Default.PersistedAgent)!).ToList();
        return (tasks, agents);
    }

    /// <summary>Writes per store transaction: within etcd's default --max-txn-ops (128); the SQLite store folds many into one fsync.</summary>
    internal const int MaxWritesPerTransaction = 100;

    private readonly Lock _gate = new();
    private Dictionary<string, object?> _dirty = new(StringComparer.Ordinal);
    private TaskCompletionSource? _next;
    private bool _flushing;
    private StateStoreUnavailableException? _failure;

    /// <summary>Why the journal stopped writing, once a flush failed; null while it works.</summary>
    public StateStoreUnavailableException? Failure
    {
        get
        {
            lock (_gate)
            {
                return _failure;
            }
        }
    }

    private Task Write(string key, object? value)
    {
        if (store is null)
        {
            return Task.CompletedTask;
        }

        lock (_gate)
        {
            if (_failure is not null)
            {
                return Task.FromException(_failure);
            }

            _dirty[key] = value;
            _next ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_flushing)
            {
                _flushing = true;
                _ = Task.Run(FlushLoopAsync);
            }

            return _next.Task;
        }
    }

    /// <summary>Commits the dirty map until it stays empty. One loop at a time (<see cref="_flushing"/>).</summary>
    private async Task FlushLoopAsync()
    {
        while (true)
        {
            Dictionary<string, object?> batch;
            TaskCompletionSource done;
            lock (_gate)
            {
                if (_dirty.Count == 0)
                {
                    _flushing = false;
                    return;
                }

                batch = _dirty;
                done = _next!;
                _dirty = new Dictionary<string, object?>(StringComparer.Ordinal);
                _next = null;
            }

            try
            {
                // Every chunk is queued before any is awaited: the store keeps their order and batches them.
                var commits = batch.Chunk(MaxWritesPerTransaction)
                    .Select(chunk => store!.CommitAsync(new Transaction { Writes = [.. chunk.Select(kv => new WriteOp(kv.Key, Serialize(kv.Value)))] }))
                    .ToList();
                await Task.WhenAll(commits).ConfigureAwait(false);
                done.TrySetResult();
            }
#pragma warning disable CA1031 // A store failure fails the writes of this flush (the store logged it); later flushes go on.
            catch (Exception e)
#pragma warning restore CA1031
            {
                var failure = StoreFault.Unavailable(e);
                TaskCompletionSource? queued;
                lock (_gate)
                {
                    _failure = failure;
                    queued = _next;
                    _next = null;
                    _dirty.Clear();
                    _flushing = false;
                }

                done.TrySetException(failure);
                queued?.TrySetException(failure);
                fault?.Raise($"the master's state could not be written to its store ({failure.Message})");
                return;
            }
        }
    }
}
