using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Drover.Store.Etcd;

// Transactions reach etcd in the order CommitAsync was called, which is what the embedded store's
// single writer gives and what the master's journal relies on (a later record of a task never
// overwritten by an earlier one; a completed write means every earlier one is durable). Independent
// HTTP requests would race each other to the leader, so one loop sends them: whatever is queued when
// the previous request returns goes as one etcd transaction holding each queued transaction nested
// (its own compares and writes, its own success), which is one Raft round and one fsync for all, as
// the embedded store's group commit. A batch ends before a transaction that would not behave as if
// applied after the ones before it: one that writes or compares a key an earlier one writes (etcd
// evaluates every nested compare before any write, and refuses two writes of one key).
public sealed partial class EtcdStateStore
{
    private readonly Channel<PendingCommit> _commits = Channel.CreateUnbounded<PendingCommit>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;

    // Cancelled when disposal has waited RequestTimeout for the queue to drain: what is still being
    // sent is abandoned (its outcome unknown), what is queued fails unsent.
    private readonly CancellationTokenSource _abandonWrites = new();

    // Keys this store wrote, with the revision: a compare on such a key for an older mod revision
    // can never hold again (a key's mod revision only grows; deleted, it is 0), so it fails without
    // a round trip. Makes a burst of compare-and-swaps on one key cost one round per winner.
    private readonly Dictionary<string, long> _writtenAt = new(StringComparer.Ordinal);

    private PendingCommit Prepare(Transaction transaction, CancellationToken ct)
    {
        var compares = new TxnCompare[transaction.Compares.Length];
        for (var i = 0; i < compares.Length; i++)
        {
            var c = transaction.Compares[i];
            var key = ToEtcd(RequireStorable(c.Key));
            compares[i] = c.ModRevision == 0
                ? new TxnCompare { Target = "CREATE", Key = key, CreateRevision = 0 }
                : new TxnCompare { Target = "MOD", Key = key, ModRevision = c.ModRevision };
        }

        // etcd refuses a Txn that touches one key twice; the last write to a key decides its outcome.
        var lastWrite = new Dictionary<string, WriteOp>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var w in transaction.Writes)
        {
            if (!lastWrite.ContainsKey(RequireStorable(w.Key)))
            {
                order.Add(w.Key);
            }

            lastWrite[w.Key] = w;
        }

        var bytes = 0;
        var ops = new RequestOp[order.Count];
        for (var i = 0; i < ops.Length; i++)
        {
            var w = lastWrite[order[i]];
            var key = ToEtcd(w.Key);
            bytes += 64 + ((key.Length + (w.Value?.Length ?? 0)) * 4 / 3);
            ops[i] = w.Value is null
                ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } }
                : new RequestOp { RequestPut = new PutRequest { Key = key, Value = w.Value, Lease = w.Lease == 0 ? null : w.Lease } };
        }

        return new PendingCommit(transaction, compares, ops, [.. order], bytes, ct);
    }

    private async Task WriteLoopAsync()
    {
        var reader = _commits.Reader;
        var batch = new List<PendingCommit>();
        var written = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            written.Clear();
            var bytes = 0;
            var widest = 0;
            while (reader.TryPeek(out var next))
            {
                if (next.Cancellation.IsCancellationRequested)
                {
                    reader.TryRead(out _);
                    next.Done.TrySetCanceled(next.Cancellation); // never sent
                    continue;
                }

                if (IsDoomed(next))
                {
                    reader.TryRead(out _);
                    next.Done.TrySetResult(new CommitResult(false, Revision));
                    continue;
                }

                var width = Math.Max(next.Compares.Length, next.Ops.Length);
                if (batch.Count > 0 && (batch.Count >= _options.MaxBatch
                    || batch.Count + 1 + Math.Max(widest, width) > _options.MaxTxnOps
                    || bytes + next.Bytes > _options.MaxBatchBytes
                    || next.WrittenKeys.Any(written.Contains)
                    || next.Transaction.Compares.Any(c => written.Contains(c.Key))))
                {
                    break;
                }

                reader.TryRead(out _);
                batch.Add(next);
                written.UnionWith(next.WrittenKeys);
                bytes += next.Bytes;
                widest = Math.Max(widest, width);
            }

            if (batch.Count == 0)
            {
                continue;
            }

            var unknown = batch.Count == 1 ? await SendOneAsync(batch[0]).ConfigureAwait(false) : await SendBatchAsync(batch).ConfigureAwait(false);
            if (unknown is not null)
            {
                // A write may or may not have been applied: sending the ones queued behind it could
                // leave a later write in the store without an earlier one. Fail them unsent; the
                // caller reads the store before it writes again.
                var failed = 0;
                while (reader.TryRead(out var queued))
                {
                    failed++;
                    queued.Done.TrySetException(new StateStoreUnavailableException(
                        $"not sent: an earlier write's outcome is unknown ({unknown.Message})", outcomeUnknown: false, unknown));
                }

                if (failed > 0)
                {
                    LogQueueFailed(failed, unknown.Message);
                }
            }
        }
    }

    /// <summary>Sends one transaction as itself. Returns the exception when its outcome is unknown.</summary>
    private async Task<Exception?> SendOneAsync(PendingCommit p)
    {
        try
        {
            var response = await _transport.CallAsync(TxnPath, new TxnRequest { Compare = p.Compares, Success = p.Ops }, EtcdJsonContext.Default.TxnRequest, EtcdJsonContext.Default.TxnResponse, CallKind.Mutation, _abandonWrites.Token)
                .ConfigureAwait(false);
            Observe(response.Header);
            Complete(p, response.Succeeded, response.Header?.Revision ?? Revision);
            return null;
        }
        catch (EtcdServerException e)
        {
            p.Done.TrySetException(MapCommitError(e, p.Transaction));
            return null;
        }
        catch (StateStoreUnavailableException e)
        {
            p.Done.TrySetException(e);
            return e.OutcomeUnknown ? e : null;
        }
#pragma warning disable CA1031 // anything else (a malformed answer, disposal) leaves the outcome unknown; the loop goes on
        catch (Exception e)
#pragma warning restore CA1031
        {
            var unknown = Abandoned(e);
            p.Done.TrySetException(unknown);
            return unknown;
        }
    }

    /// <summary>Sends several transactions nested in one. Returns the exception when their outcome is unknown.</summary>
    private async Task<Exception?> SendBatchAsync(List<PendingCommit> batch)
    {
        var request = new TxnRequest { Success = [.. batch.Select(p => new RequestOp { RequestTxn = new TxnRequest { Compare = p.Compares, Success = p.Ops } })] };
        try
        {
            var response = await _transport.CallAsync(TxnPath, request, EtcdJsonContext.Default.TxnRequest, EtcdJsonContext.Default.TxnResponse, CallKind.Mutation, _abandonWrites.Token)
                .ConfigureAwait(false);
            Observe(response.Header);
            var revision = response.Header?.Revision ?? Revision;
            if (response.Responses is not { } answers || answers.Length != batch.Count)
            {
                var e = new InvalidDataException($"etcd answered a batch of {batch.Count} transactions with {response.Responses?.Length ?? 0} results");
                Fail(batch, e);
                return e;
            }

            for (var i = 0; i < batch.Count; i++)
            {
                Complete(batch[i], answers[i].ResponseTxn?.Succeeded ?? false, revision);
            }

            LogBatch(batch.Count, revision);
            return null;
        }
        catch (EtcdServerException)
        {
            // Refused as a whole before anything was applied (a lease that does not exist, a batch
            // too large for this cluster's limits): one by one, so only the culprit fails.
            for (var i = 0; i < batch.Count; i++)
            {
                if (await SendOneAsync(batch[i]).ConfigureAwait(false) is { } unknown)
                {
                    Fail(batch.Skip(i + 1), new StateStoreUnavailableException($"not sent: an earlier write's outcome is unknown ({unknown.Message})", outcomeUnknown: false, unknown));
                    return unknown;
                }
            }

            return null;
        }
        catch (StateStoreUnavailableException e)
        {
            Fail(batch, e);
            return e.OutcomeUnknown ? e : null;
        }
#pragma warning disable CA1031 // as in SendOneAsync
        catch (Exception e)
#pragma warning restore CA1031
        {
            var unknown = Abandoned(e);
            Fail(batch, unknown);
            return unknown;
        }
    }

    private Exception Abandoned(Exception e) => e is OperationCanceledException && _abandonWrites.IsCancellationRequested
        ? new StateStoreUnavailableException("the store was disposed while this write was being sent; it may or may not have been applied", outcomeUnknown: true, e)
        : e;

    private void Complete(PendingCommit p, bool succeeded, long revision)
    {
        if (succeeded && p.WrittenKeys.Length > 0)
        {
            if (_writtenAt.Count > 100_000)
            {
                _writtenAt.Clear(); // a cache: forgetting only costs a round trip
            }

            foreach (var key in p.WrittenKeys)
            {
                _writtenAt[key] = revision;
            }
        }

        p.Done.TrySetResult(new CommitResult(succeeded, revision));
    }

    private bool IsDoomed(PendingCommit p)
    {
        foreach (var c in p.Transaction.Compares)
        {
            if (c.ModRevision > 0 && _writtenAt.TryGetValue(c.Key, out var at) && c.ModRevision < at)
            {
                return true;
            }
        }

        return false;
    }

    private static void Fail(IEnumerable<PendingCommit> commits, Exception e)
    {
        foreach (var p in commits)
        {
            p.Done.TrySetException(e);
        }
    }

    private static Exception MapCommitError(EtcdServerException e, Transaction transaction)
    {
        if (e.Code == GrpcCode.NotFound && e.Message.Contains("lease", StringComparison.Ordinal))
        {
            var leases = string.Join(", ", transaction.Writes.Where(w => w.Lease != 0).Select(w => w.Lease).Distinct());
            return new InvalidOperationException($"lease {leases} does not exist ({e.Message})", e);
        }

        return e.Code == GrpcCode.InvalidArgument
            ? new ArgumentException($"etcd refused the transaction: {e.Message}", nameof(transaction), e)
            : e;
    }

    [LoggerMessage(Level = LogLevel.Trace, Message = "Sent {Count} transactions as one at revision {Revision}")]
    private partial void LogBatch(int count, long revision);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Failed {Count} queued writes unsent: an earlier write's outcome is unknown ({Reason})")]
    private partial void LogQueueFailed(int count, string reason);

    private sealed class PendingCommit(Transaction transaction, TxnCompare[] compares, RequestOp[] ops, string[] writtenKeys, int bytes, CancellationToken cancellation)
    {
        public Transaction Transaction { get; } = transaction;

        public TxnCompare[] Compares { get; } = compares;

        public RequestOp[] Ops { get; } = ops;

        /// <summary>The caller's keys this transaction writes (puts and deletes), each once.</summary>
        public string[] WrittenKeys { get; } = writtenKeys;

        /// <summary>Rough size in the request (base64 JSON).</summary>
        public int Bytes { get; } = bytes;

        public CancellationToken Cancellation { get; } = cancellation;

        public TaskCompletionSource<CommitResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
