using System.Collections.Immutable;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Store.Etcd;

/// <summary>
/// The state store on an etcd (v3.4+) cluster, spoken to through etcd's v3 JSON gateway over HTTP
/// (no gRPC runtime needed), or HTTPS with <see cref="EtcdStoreOptions.Tls"/>. The contract maps one to one onto etcd:
/// <list type="bullet">
/// <item>keys: the caller's key under <see cref="EtcdStoreOptions.Prefix"/> (<c>/drover</c> + <c>/drover/tasks/t1</c>);
/// keys written through this store start with '/';</item>
/// <item>revisions: etcd's own (create/mod revision per key, one global revision per etcd transaction);</item>
/// <item>transactions: nested in one etcd Txn with whatever else is queued, sent in call order by one
/// writer (EtcdStateStore.Writer.cs); <see cref="Compare.Absent"/> is CREATE == 0, a version is MOD == n;</item>
/// <item>watches: the streaming <c>/v3/watch</c> from <c>afterRevision + 1</c>; after a broken stream it
/// resumes on another member from the revision after the last one delivered, so nothing is lost or repeated;</item>
/// <item>leases: etcd leases (TTL rounded up to whole seconds, at least etcd's minimum).</item>
/// </list>
/// A write completes when etcd answers, that is once a majority of members has it on disk. When a
/// write's outcome is unknown (sent, no answer), it and every write queued behind it fail with
/// <see cref="StateStoreUnavailableException"/>; writes never reach etcd out of order.
/// <para>
/// Differences from the embedded store, within the contract: <see cref="Revision"/> is the highest
/// revision this client has seen in any answer (etcd reports the cluster's current revision with
/// each), so it is 0 until the first call and includes other clients' writes. Transactions sent
/// together share one revision. A transaction that writes one key several times keeps only the last
/// write (etcd refuses duplicate keys in one Txn): the outcome is the same, but a watch sees one
/// event for that key. A transaction that changes nothing (deletes only missing keys) does not bump
/// the revision. etcd limits a transaction to <c>--max-txn-ops</c> operations (default 128) and a
/// request to <c>--max-request-bytes</c> (default 1.5 MiB); past that the commit fails with
/// <see cref="ArgumentException"/>.
/// </para>
/// </summary>
public sealed partial class EtcdStateStore : IStateStore
{
    internal const string RangePath = "v3/kv/range";
    private const string TxnPath = "v3/kv/txn";
    private const string WatchPath = "v3/watch";
    private const string LeaseGrantPath = "v3/lease/grant";
    private const string LeaseKeepAlivePath = "v3/lease/keepalive";
    private const string LeaseRevokePath = "v3/lease/revoke";
    private const string StatusPath = "v3/maintenance/status";

    private readonly string _root;
    private readonly byte[] _rootBytes;
    private readonly EtcdStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly EtcdTransport _transport;
    private readonly CancellationTokenSource _disposed = new();
    private long _revision;

    /// <param name="endpoints">Client URLs of the cluster's members (http://host:2379, or https:// with <see cref="EtcdStoreOptions.Tls"/>); calls fail over between them.</param>
    public EtcdStateStore(IEnumerable<Uri> endpoints, EtcdStoreOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var list = endpoints.Select(e => e.AbsolutePath.EndsWith('/') ? e : new Uri(e.AbsoluteUri + "/")).ToImmutableArray();
        if (list.IsEmpty)
        {
            throw new ArgumentException("at least one etcd endpoint is needed", nameof(endpoints));
        }

        _options = options ?? new EtcdStoreOptions();
        var scheme = _options.Tls is null ? Uri.UriSchemeHttp : Uri.UriSchemeHttps;
        if (list.FirstOrDefault(e => e.Scheme != scheme) is { } bad)
        {
            throw new ArgumentException(_options.Tls is null
                ? $"etcd endpoint {bad} is not http://; an https:// endpoint needs EtcdStoreOptions.Tls (the CA that signed etcd's certificate)"
                : $"etcd endpoint {bad} is not https://, but EtcdStoreOptions.Tls is set: TLS settings never go with plain HTTP", nameof(endpoints));
        }

        if (_options.Tls is not null && _options.CreateHandler is not null)
        {
            throw new ArgumentException("EtcdStoreOptions.Tls and CreateHandler exclude each other: a handler of the caller's is used as it is", nameof(options));
        }

        _root = NormalizePrefix(_options.Prefix);
        _rootBytes = Encoding.UTF8.GetBytes(_root);
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _transport = new EtcdTransport(list, Encoding.UTF8.GetBytes(_root + "/"), _options, _time, _logger);
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>The prefix every key is stored under, normalized ("" or "/x/y" without a trailing '/').</summary>
    public string Prefix => _root;

    public ImmutableArray<Uri> Endpoints => _transport.Endpoints;

    /// <summary>
    /// The highest revision this client has seen in any answer from etcd (a write's own, or the
    /// cluster's current revision reported with a read, a failed compare or a watch event). 0 before
    /// the first call. Other clients' writes count once an answer reports them.
    /// </summary>
    public long Revision => Interlocked.Read(ref _revision);

    public async Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!IsStorable(key))
        {
            return null; // no key written through this store looks like that
        }

        var response = await _transport.CallAsync(RangePath, new RangeRequest { Key = ToEtcd(key) }, EtcdJsonContext.Default.RangeRequest, EtcdJsonContext.Default.RangeResponse, CallKind.Idempotent, ct)
            .ConfigureAwait(false);
        Observe(response.Header);
        return response.Kvs is [var kv, ..] ? ToEntry(kv) : null;
    }

    public async Task<ImmutableArray<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (RangeOf(prefix) is not { } range)
        {
            return [];
        }

        var (key, end) = range;

        // Pages of ListPageSize keys, all read at the first page's revision: one consistent snapshot.
        for (var attempt = 0; ; attempt++)
        {
            var list = ImmutableArray.CreateBuilder<StoreEntry>();
            long? atRevision = null;
            var from = key;
            try
            {
                while (true)
                {
                    var request = new RangeRequest { Key = from, RangeEnd = end, Limit = _options.ListPageSize, Revision = atRevision };
                    var page = await _transport.CallAsync(RangePath, request, EtcdJsonContext.Default.RangeRequest, EtcdJsonContext.Default.RangeResponse, CallKind.Idempotent, ct)
                        .ConfigureAwait(false);
                    Observe(page.Header);
                    atRevision ??= page.Header?.Revision;
                    foreach (var kv in page.Kvs ?? [])
                    {
                        list.Add(ToEntry(kv));
                    }

                    if (!page.More || page.Kvs is not [.., var lastKv])
                    {
                        return list.ToImmutable();
                    }

                    from = [.. lastKv.Key, 0]; // the next key after the last one
                }
            }
            catch (EtcdServerException e) when (e.Code == GrpcCode.OutOfRange && attempt < 3)
            {
                // The snapshot revision was compacted between two pages: read again at the latest.
                LogListRestarted(prefix, e.Message);
            }
        }
    }

    /// <summary>
    /// Queues the transaction behind every earlier one of this store; see the class remarks for how
    /// queued transactions reach etcd in order.
    /// </summary>
    public Task<CommitResult> CommitAsync(Transaction transaction, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var pending = Prepare(transaction, ct);
        if (_disposed.IsCancellationRequested || !_commits.Writer.TryWrite(pending))
        {
            throw new ObjectDisposedException(nameof(EtcdStateStore));
        }

        return ct.CanBeCanceled ? pending.Done.Task.WaitAsync(ct) : pending.Done.Task;
    }

    public async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        var seconds = (long)Math.Ceiling(ttl.TotalSeconds);

        // Retried like a read: a grant whose answer was lost leaves a lease nobody holds, which
        // simply expires.
        var response = await _transport.CallAsync(LeaseGrantPath, new LeaseGrantRequest { Ttl = seconds }, EtcdJsonContext.Default.LeaseGrantRequest, EtcdJsonContext.Default.LeaseGrantResponse, CallKind.Idempotent, ct)
            .ConfigureAwait(false);
        Observe(response.Header);
        if (!string.IsNullOrEmpty(response.Error) || response.Id == 0)
        {
            throw new InvalidOperationException($"etcd did not grant a lease of {seconds} s: {response.Error}");
        }

        LogLeaseGranted(response.Id, response.Ttl);
        return response.Id;
    }

    public async Task<bool> KeepAliveAsync(long lease, CancellationToken ct = default)
    {
        // A bidirectional stream in gRPC; through the gateway one request body is one keep-alive and
        // the answer is one {"result": …} line. TTL 0 (left out): the lease is gone.
        var line = await _transport.CallAsync(LeaseKeepAlivePath, new LeaseIdRequest { Id = lease }, EtcdJsonContext.Default.LeaseIdRequest, EtcdJsonContext.Default.LeaseKeepAliveLine, CallKind.Idempotent, ct)
            .ConfigureAwait(false);
        if (line.Result is null)
        {
            throw new StateStoreUnavailableException($"etcd failed the keep-alive of lease {lease}: {line.Error}", outcomeUnknown: false);
        }

        Observe(line.Result.Header);
        return line.Result.Ttl > 0;
    }

    public async Task RevokeAsync(long lease, CancellationToken ct = default)
    {
        try
        {
            var response = await _transport.CallAsync(LeaseRevokePath, new LeaseIdRequest { Id = lease }, EtcdJsonContext.Default.LeaseIdRequest, EtcdJsonContext.Default.LeaseRevokeResponse, CallKind.Idempotent, ct)
                .ConfigureAwait(false);
            Observe(response.Header);
        }
        catch (EtcdServerException e) when (e.Code == GrpcCode.NotFound)
        {
            // Already expired or revoked (perhaps by our own first attempt): its keys are gone either way.
        }
    }

    /// <summary>The etcd version and the leader's member id as the current endpoint sees them.</summary>
    public async Task<(string Version, ulong Leader, ulong Member)> StatusAsync(CancellationToken ct = default)
    {
        var status = await _transport.CallAsync(StatusPath, new StatusRequest(), EtcdJsonContext.Default.StatusRequest, EtcdJsonContext.Default.StatusResponse, CallKind.Idempotent, ct)
            .ConfigureAwait(false);
        Observe(status.Header);
        return (status.Version ?? "", status.Leader, status.Header?.MemberId ?? 0);
    }

    public async IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposed.Token);
        if (RangeOf(prefix) is not { } range)
        {
            // Nothing written through this store can match: wait for the end like an idle watch.
            await WaitForEndAsync(stop.Token, ct).ConfigureAwait(false);
            yield break;
        }

        var (key, end) = range;

        var next = afterRevision + 1; // etcd's start_revision is inclusive
        var failures = 0;
        while (!stop.IsCancellationRequested)
        {
            var request = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = key, RangeEnd = end, StartRevision = next } };
            await using var stream = await WatchStream.OpenAsync(_transport, request, stop.Token).ConfigureAwait(false);
            if (stream.Error is not null)
            {
                failures++;
                LogWatchReconnect(prefix, stream.Endpoint, next, _transport.Describe(stream.Error));
                await DelayAfterWatchFailureAsync(failures, stop.Token).ConfigureAwait(false);
                continue;
            }

            while (true)
            {
                var response = await stream.ReadAsync(stop.Token).ConfigureAwait(false);
                if (response is null)
                {
                    break; // the stream broke (stream.Error says why) or we are stopping
                }

                Observe(response.Header);
                if (response.Canceled)
                {
                    if (response.CompactRevision > 0)
                    {
                        throw new RevisionCompactedException(next - 1, response.CompactRevision);
                    }

                    stream.Fail(new InvalidOperationException($"watch cancelled by etcd: {response.CancelReason}"));
                    break;
                }

                failures = 0;
                var from = next; // a transaction's events share one revision: compare with the batch's start
                foreach (var e in response.Events ?? [])
                {
                    if (e.Kv is not { } kv || kv.ModRevision < from)
                    {
                        continue; // never expected; guards the no-duplicates promise
                    }

                    // etcd never splits one revision's events across responses (no fragmenting
                    // requested), so once a response is read every event of its revisions is ours.
                    yield return e.Type == "DELETE"
                        ? new WatchEvent(WatchEventType.Delete, FromEtcd(kv.Key), null, kv.ModRevision)
                        : new WatchEvent(WatchEventType.Put, FromEtcd(kv.Key), kv.Value ?? [], kv.ModRevision);
                    next = kv.ModRevision + 1;
                }
            }

            if (stop.IsCancellationRequested)
            {
                break;
            }

            failures++;
            LogWatchReconnect(prefix, stream.Endpoint, next, stream.Error is null ? "stream ended" : _transport.Describe(stream.Error));
            _transport.MoveOn(stream.Index, stream.Error);
            await DelayAfterWatchFailureAsync(failures, stop.Token).ConfigureAwait(false);
        }

        // Cancelled by the caller: throw as the embedded store does. Disposed: the watch just ends.
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Gives up on every write not yet answered: queued ones fail unsent, the one in flight is abandoned
    /// (its outcome unknown). For a master that lost leadership: its writes are fenced on a leader key
    /// that is no longer its own, so none of them could commit, and waiting for an unreachable etcd
    /// would only delay its exit. Idempotent; the store stays usable for reads until disposed.
    /// </summary>
    public void AbandonWrites()
    {
        if (!_disposed.IsCancellationRequested)
        {
            _abandonWrites.Cancel();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        // Queued transactions are still sent (as the embedded store does), for up to RequestTimeout;
        // watches end at once.
        _commits.Writer.TryComplete();
        await _disposed.CancelAsync().ConfigureAwait(false);
        if (await Task.WhenAny(_writer, Task.Delay(_options.RequestTimeout, _time)).ConfigureAwait(false) != _writer)
        {
            await _abandonWrites.CancelAsync().ConfigureAwait(false);
        }

        await _writer.ConfigureAwait(false);
        _transport.Dispose();
        _disposed.Dispose();
        _abandonWrites.Dispose();
    }

    // ------------------------------------------------------------------ keys

    /// <summary>"" and "/" mean no prefix; otherwise "/a/b" (leading '/', no trailing one).</summary>
    internal static string NormalizePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var trimmed = prefix.TrimEnd('/');
        if (trimmed.Length > 0 && !trimmed.StartsWith('/'))
        {
            throw new ArgumentException($"the etcd key prefix '{prefix}' must start with '/'", nameof(prefix));
        }

        return trimmed;
    }

    /// <summary>
    /// The etcd range [key, end) for a caller's prefix. Keys start with '/', so "" means everything
    /// under "root/" — never a sibling prefix such as /drover-staging next to /drover.
    /// </summary>
    private (byte[] Key, byte[] End)? RangeOf(string prefix)
    {
        if (prefix.Length > 0 && !prefix.StartsWith('/'))
        {
            return null;
        }

        var key = Encoding.UTF8.GetBytes(_root + (prefix.Length == 0 ? "/" : prefix));
        return (key, PrefixEnd(key));
    }

    /// <summary>The smallest key greater than every key starting with <paramref name="prefix"/> (etcd's range_end).</summary>
    internal static byte[] PrefixEnd(byte[] prefix)
    {
        for (var i = prefix.Length - 1; i >= 0; i--)
        {
            if (prefix[i] < 0xff)
            {
                var end = prefix[..(i + 1)];
                end[i]++;
                return end;
            }
        }

        return [0]; // every byte 0xff: to the end of the key space
    }

    private static bool IsStorable(string key) => key.StartsWith('/');

    private static string RequireStorable(string key) => IsStorable(key)
        ? key
        : throw new ArgumentException($"key '{key}' does not start with '/': the etcd store keeps every key under its prefix as prefix + key", nameof(key));

    private byte[] ToEtcd(string key) => Encoding.UTF8.GetBytes(_root + key);

    private string FromEtcd(byte[] key) => Encoding.UTF8.GetString(key.AsSpan(_rootBytes.Length));

    private StoreEntry ToEntry(EtcdKeyValue kv) => new(FromEtcd(kv.Key), kv.Value ?? [], kv.CreateRevision, kv.ModRevision, kv.Lease);

    private void Observe(EtcdHeader? header)
    {
        if (header is null)
        {
            return;
        }

        var seen = Interlocked.Read(ref _revision);
        while (header.Revision > seen)
        {
            var was = Interlocked.CompareExchange(ref _revision, header.Revision, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }

    // ------------------------------------------------------------------ watch plumbing

    private async Task DelayAfterWatchFailureAsync(int failures, CancellationToken stop)
    {
        var n = _transport.Endpoints.Length;
        if (failures < n)
        {
            return; // try each member once at once
        }

        var ms = Math.Min(_options.MaxBackoff.TotalMilliseconds, 25 * Math.Pow(2, Math.Min(10, failures - n))) * (0.5 + (Random.Shared.NextDouble() / 2));
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(ms), _time, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stopping: the loop ends
        }
    }

    private static async Task WaitForEndAsync(CancellationToken stop, CancellationToken caller)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!caller.IsCancellationRequested)
        {
            // disposed
        }
    }

    /// <summary>One watch stream on one member: newline-delimited {"result": WatchResponse} objects.</summary>
    private sealed class WatchStream : IAsyncDisposable
    {
        private readonly HttpResponseMessage? _response;
        private readonly StreamReader? _reader;

        private WatchStream(int index, Uri endpoint, HttpResponseMessage? response, StreamReader? reader, Exception? error)
        {
            Index = index;
            Endpoint = endpoint;
            _response = response;
            _reader = reader;
            Error = error;
        }

        public int Index { get; }

        public Uri Endpoint { get; }

        /// <summary>Why the stream could not be opened or broke; null while it is healthy.</summary>
        public Exception? Error { get; private set; }

        public static async Task<WatchStream> OpenAsync(EtcdTransport transport, WatchRequest request, CancellationToken stop)
        {
            var index = transport.Current;
            try
            {
                var (opened, response) = await transport.OpenStreamAsync(WatchPath, request, EtcdJsonContext.Default.WatchRequest, stop).ConfigureAwait(false);
                var body = await response.Content.ReadAsStreamAsync(stop).ConfigureAwait(false);
                return new WatchStream(opened, transport.Endpoints[opened], response, new StreamReader(body, Encoding.UTF8), null);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or SocketException || (e is OperationCanceledException && !stop.IsCancellationRequested))
            {
                transport.MoveOn(index, e);
                return new WatchStream(index, transport.Endpoints[index], null, null, e);
            }
            catch (OperationCanceledException)
            {
                return new WatchStream(index, transport.Endpoints[index], null, null, null);
            }
        }

        /// <summary>The next message; null when the stream ended, broke (see <see cref="Error"/>) or <paramref name="stop"/> fired.</summary>
        public async Task<WatchResponse?> ReadAsync(CancellationToken stop)
        {
            if (_reader is null || Error is not null)
            {
                return null;
            }

            try
            {
                while (await _reader.ReadLineAsync(stop).ConfigureAwait(false) is { } line)
                {
                    if (line.Length == 0)
                    {
                        continue;
                    }

                    var parsed = JsonSerializer.Deserialize(line, EtcdJsonContext.Default.WatchLine);
                    if (parsed?.Result is { } result)
                    {
                        return result;
                    }

                    Error = new InvalidOperationException($"etcd ended the watch: {parsed?.Error?.ToString() ?? line}");
                    return null;
                }

                Error = new EndOfStreamException("etcd closed the watch stream");
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is IOException or HttpRequestException or JsonException or OperationCanceledException)
            {
                Error = e;
            }

            return null;
        }

        public void Fail(Exception e) => Error = e;

        public ValueTask DisposeAsync()
        {
            _reader?.Dispose();
            _response?.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Watch of '{Prefix}' on {Endpoint} broke ({Reason}); resuming from revision {Next}")]
    private partial void LogWatchReconnect(string prefix, Uri endpoint, long next, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Listing '{Prefix}' again: its snapshot revision was compacted ({Reason})")]
    private partial void LogListRestarted(string prefix, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "etcd granted lease {Lease} with TTL {Ttl} s")]
    private partial void LogLeaseGranted(long lease, long ttl);
}
