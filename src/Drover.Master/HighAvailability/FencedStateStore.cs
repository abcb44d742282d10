using System.Collections.Immutable;
using Drover.Store;

namespace Drover.Master.HighAvailability;

/// <summary>What fences a leader's writes: the leader key and its mod revision while this master holds it.</summary>
public interface ILeaderFence
{
    string Key { get; }

    /// <summary>The leader key's mod revision this master wrote when elected; 0 when it does not lead.</summary>
    long LeaderRevision { get; }

    void StepDown(string reason);
}

/// <summary>A write was refused because this master no longer holds the leader key.</summary>
public sealed class NotLeaderException(string message) : InvalidOperationException(message);

/// <summary>
/// Adds <c>Compare.Version(leaderKey, leaderRevision)</c> to every transaction, so a deposed leader
/// cannot commit: once another master holds the key (or the lease expired), every write fails.
/// A write that fails on the fence (not on its own compares) steps the master down and throws
/// <see cref="NotLeaderException"/>. Reads, watches and leases pass through.
/// </summary>
public sealed class FencedStateStore(IStateStore inner, ILeaderFence fence) : IStateStore
{
    public long Revision => inner.Revision;

    public Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default) => inner.GetAsync(key, ct);

    public Task<ImmutableArray<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default) => inner.ListAsync(prefix, ct);

    public async Task<CommitResult> CommitAsync(Transaction transaction, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var revision = fence.LeaderRevision;
        if (revision <= 0)
        {
            throw new NotLeaderException("this master is not the leader; it may not write");
        }

        var result = await inner.CommitAsync(transaction with { Compares = transaction.Compares.Add(Compare.Version(fence.Key, revision)) }, ct).ConfigureAwait(false);
        if (result.Succeeded)
        {
            return result;
        }

        var holder = await inner.GetAsync(fence.Key, ct).ConfigureAwait(false);
        if (holder is null || holder.ModRevision != revision)
        {
            fence.StepDown($"a write was fenced off: the leader key is {(holder is null ? "gone" : $"at revision {holder.ModRevision}")}, not {revision}");
            throw new NotLeaderException("this master is no longer the leader; the write was not committed");
        }

        return result;
    }

    public IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision, CancellationToken ct = default) => inner.WatchAsync(prefix, afterRevision, ct);

    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) => inner.GrantLeaseAsync(ttl, ct);

    public Task<bool> KeepAliveAsync(long lease, CancellationToken ct = default) => inner.KeepAliveAsync(lease, ct);

    public Task RevokeAsync(long lease, CancellationToken ct = default) => inner.RevokeAsync(lease, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
