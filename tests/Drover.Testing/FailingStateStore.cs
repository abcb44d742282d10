using System.Collections.Immutable;
using Drover.Store;

namespace Drover.Testing;

/// <summary>
/// A real store (SQLite in tests) whose writes can be made to fail or wait, for the cases a full disk or a lost
/// etcd make hard to time: while <see cref="FailWrites"/> is set, every commit throws
/// <see cref="StateStoreUnavailableException"/> (not applied, as the SQLite store reports a full disk) without reaching
/// the store; while <see cref="HoldWrites"/> is set, commits wait until it is cleared (then fail or pass as
/// <see cref="FailWrites"/> says at that moment). Reads, watches and leases pass through.
/// </summary>
public sealed class FailingStateStore(IStateStore inner) : IStateStore
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _released = Completed();
    private volatile bool _fail;

    public bool FailWrites
    {
        get => _fail;
        set => _fail = value;
    }

    /// <summary>Commits that reached this store (passed, failed or waiting).</summary>
    public int Commits => Volatile.Read(ref _commits);

    private int _commits;

    /// <summary>Commits now waiting for <see cref="ReleaseWrites"/>.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    private int _waiting;

    /// <summary>From now on commits wait until <see cref="ReleaseWrites"/>.</summary>
    public void HoldWrites()
    {
        lock (_lock)
        {
            if (_released.Task.IsCompleted)
            {
                _released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Lets waiting and later commits go on.</summary>
    public void ReleaseWrites()
    {
        lock (_lock)
        {
            _released.TrySetResult();
        }
    }

    public long Revision => inner.Revision;

    public Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default) => inner.GetAsync(key, ct);

    public Task<ImmutableArray<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default) => inner.ListAsync(prefix, ct);

    public async Task<CommitResult> CommitAsync(Transaction transaction, CancellationToken ct = default)
    {
        Interlocked.Increment(ref _commits);
        Task released;
        lock (_lock)
        {
            released = _released.Task;
        }

        if (!released.IsCompleted)
        {
            Interlocked.Increment(ref _waiting);
            try
            {
                await released.WaitAsync(ct).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
        }

        return _fail
            ? throw new StateStoreUnavailableException("the disk holding the state store is full (test)", outcomeUnknown: false)
            : await inner.CommitAsync(transaction, ct).ConfigureAwait(false);
    }

    public IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision, CancellationToken ct = default) => inner.WatchAsync(prefix, afterRevision, ct);

    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) => inner.GrantLeaseAsync(ttl, ct);

    public Task<bool> KeepAliveAsync(long lease, CancellationToken ct = default) => inner.KeepAliveAsync(lease, ct);

    public Task RevokeAsync(long lease, CancellationToken ct = default) => inner.RevokeAsync(lease, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource();
        done.SetResult();
        return done;
    }
}
