using System.Collections.Immutable;

namespace Drover.Store;

// The one contract every Drover state store implements: the embedded SQLite store (one master) and
// etcd (highly available masters, src/Drover.Store/Etcd). It is etcd's model, kept small:
//
//  * a flat, ordered key space of byte values;
//  * one global revision, bumped by every committed write; each key records the revision that
//    created it and the one that last modified it, so callers can compare-and-swap. A store may
//    commit several transactions as one revision (etcd's batches), never writing a key twice in it;
//  * transactions: if every compare holds, apply every write, atomically; else apply none. They are
//    applied in the order CommitAsync was called: a later call never lands before an earlier one;
//  * watches: every change under a prefix after a revision, in revision order;
//  * leases: keys attached to a lease vanish when it expires (leader election, agent liveness).
//
// A write completes only once it and every write called before it are durable. Implementations
// are thread-safe.

/// <summary>One key as stored.</summary>
public sealed record StoreEntry(string Key, byte[] Value, long CreateRevision, long ModRevision, long Lease = 0);

/// <summary>A condition on a key for <see cref="IStateStore.CommitAsync"/>.</summary>
public sealed record Compare(string Key, long ModRevision)
{
    /// <summary>Holds when the key does not exist.</summary>
    public static Compare Absent(string key) => new(key, 0);

    /// <summary>Holds when the key was last modified at exactly <paramref name="modRevision"/>.</summary>
    public static Compare Version(string key, long modRevision) => new(key, modRevision);
}

/// <summary>A write inside a transaction: a put (Value set) or a delete (Value null).</summary>
public sealed record WriteOp(string Key, byte[]? Value, long Lease = 0)
{
    public static WriteOp Put(string key, byte[] value, long lease = 0) => new(key, value, lease);

    public static WriteOp Delete(string key) => new(key, null);
}

public sealed record Transaction
{
    public ImmutableArray<Compare> Compares { get; init => field = value.IsDefault ? [] : value; } = [];

    public required ImmutableArray<WriteOp> Writes { get; init; }
}

/// <summary>Outcome of a transaction: whether the compares held, and the store revision after it.</summary>
public sealed record CommitResult(bool Succeeded, long Revision);

public enum WatchEventType
{
    Put,
    Delete,
}

public sealed record WatchEvent(WatchEventType Type, string Key, byte[]? Value, long Revision);

/// <summary>Thrown by a watch that asked for history the store no longer keeps; restart from a fresh read.</summary>
public sealed class RevisionCompactedException(long requested, long oldest)
    : Exception($"revision {requested} has been compacted; the oldest kept is {oldest}")
{
    public long OldestRevision { get; } = oldest;
}

/// <summary>
/// The store could not be reached within its retry budget, or it was reached but did not answer.
/// When <see cref="OutcomeUnknown"/> is true a write was sent and may or may not have been applied
/// (the connection or the store's leader was lost before the answer): read before retrying it.
/// The embedded store throws it when its file or disk refuses a request (full, read-only, I/O error, locked by
/// another process); a failed batch there is known not applied, except after an I/O error during the commit
/// itself (<see cref="OutcomeUnknown"/>). The etcd store throws it when etcd cannot be reached or does not answer.
/// </summary>
public sealed class StateStoreUnavailableException(string message, bool outcomeUnknown, Exception? inner = null)
    : IOException(message, inner)
{
    public bool OutcomeUnknown { get; } = outcomeUnknown;
}

public interface IStateStore : IAsyncDisposable
{
    /// <summary>
    /// The revision of the last committed write this store knows of: for the embedded store, the
    /// store's own; for etcd, the highest revision any answer reported (0 before the first call).
    /// </summary>
    long Revision { get; }

    Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default);

    /// <summary>Every key starting with <paramref name="prefix"/>, in key order.</summary>
    Task<ImmutableArray<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default);

    /// <summary>Applies the writes if every compare holds, atomically and durably, after every transaction committed before it.</summary>
    Task<CommitResult> CommitAsync(Transaction transaction, CancellationToken ct = default);

    /// <summary>
    /// Every change under <paramref name="prefix"/> with a revision greater than <paramref name="afterRevision"/>,
    /// in order, then live changes until cancelled.
    /// </summary>
    IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision, CancellationToken ct = default);

    /// <summary>Grants a lease that expires <paramref name="ttl"/> after its last keep-alive. Returns its id.</summary>
    Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default);

    /// <summary>Extends a lease. False when it has already expired (its keys are gone).</summary>
    Task<bool> KeepAliveAsync(long lease, CancellationToken ct = default);

    /// <summary>Ends a lease now, deleting its keys.</summary>
    Task RevokeAsync(long lease, CancellationToken ct = default);
}

public static class StateStoreExtensions
{
    public static async Task<long> PutAsync(this IStateStore store, string key, byte[] value, CancellationToken ct = default) =>
        (await store.CommitAsync(new Transaction { Writes = [WriteOp.Put(key, value)] }, ct).ConfigureAwait(false)).Revision;

    public static async Task<long> DeleteAsync(this IStateStore store, string key, CancellationToken ct = default) =>
        (await store.CommitAsync(new Transaction { Writes = [WriteOp.Delete(key)] }, ct).ConfigureAwait(false)).Revision;

    /// <summary>Puts only if the key is unchanged since <paramref name="expectedModRevision"/> (0: only if absent).</summary>
    public static async Task<bool> CompareAndSwapAsync(this IStateStore store, string key, long expectedModRevision, byte[] value, CancellationToken ct = default) =>
        (await store.CommitAsync(new Transaction { Compares = [new Compare(key, expectedModRevision)], Writes = [WriteOp.Put(key, value)] }, ct).ConfigureAwait(false)).Succeeded;
}

/// <summary>
/// The embedded store's file cannot be used: it is empty (0 bytes) or not a readable SQLite database. Never
/// repaired or replaced silently: an empty store would make the master believe it runs nothing and kill
/// every task agents report. The master refuses to start with <see cref="Reason"/>.
/// </summary>
public sealed class StateStoreCorruptException(string path, string reason, Exception? inner = null)
    : IOException($"{path} {reason}", inner)
{
    /// <summary>The store file.</summary>
    public string Path { get; } = path;

    /// <summary>What is wrong with it, e.g. "is empty (0 bytes)".</summary>
    public string Reason { get; } = reason;
}
