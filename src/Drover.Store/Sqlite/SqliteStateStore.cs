using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Drover.Store.Sqlite;

public sealed record SqliteStoreOptions
{
    /// <summary>Changes kept for watches that start in the past; older ones are compacted away.</summary>
    public int HistoryLimit { get; init; } = 100_000;

    /// <summary>Most requests folded into one SQLite transaction (one fsync).</summary>
    public int MaxBatch { get; init; } = 512;

    /// <summary>How often expired leases are looked for.</summary>
    public TimeSpan LeaseCheckInterval { get; init; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>
/// The embedded state store: one SQLite file in WAL mode with synchronous commits.
/// <para>
/// Every request goes through one writer loop, which folds whatever is queued (up to
/// <see cref="SqliteStoreOptions.MaxBatch"/>) into one SQLite transaction: N concurrent writers cost
/// one fsync, not N (group commit). Callers are answered only after that transaction is durable, so
/// an acknowledged write survives kill -9 and power loss. Each committed <see cref="Transaction"/> is
/// one revision, as in etcd; one whose compares fail changes nothing and bumps nothing.
/// </para>
/// </summary>
public sealed partial class SqliteStateStore : IStateStore
{
    private readonly SqliteConnection _db;
    private readonly SqliteStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _watchLock = new();
    private readonly List<Watcher> _watchers = [];
    private readonly Task _loop;
    private readonly ITimer _leaseTimer;
    private long _revision;
    private long _oldestRevision;
    private long _nextLease;

    private SqliteStateStore(SqliteConnection db, SqliteStoreOptions options, TimeProvider time, ILogger logger)
    {
        _db = db;
        _options = options;
        _time = time;
        _logger = logger;
        _revision = ReadMeta("revision");
        _nextLease = Math.Max(1, ReadMeta("next_lease"));
        _oldestRevision = Scalar("SELECT COALESCE(MIN(rev), 0) FROM events");
        _loop = Task.Run(RunAsync);
        _leaseTimer = time.CreateTimer(_ => _requests.Writer.TryWrite(new ExpireLeases()), null, options.LeaseCheckInterval, options.LeaseCheckInterval);
    }

    public long Revision => Interlocked.Read(ref _revision);

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public static SqliteStateStore Open(string path, TimeProvider? time = null, ILogger? logger = null, SqliteStoreOptions? options = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // SQLite takes an empty file for a new database and would fill it with empty tables: a store truncated
        // to 0 bytes (a full disk, a bad copy) must not come back as a cluster with nothing in it.
        if (File.Exists(path) && new FileInfo(path).Length == 0)
        {
            throw new StateStoreCorruptException(path, "is empty (0 bytes)");
        }

        // The store holds password hashes, signing keys and the cluster CA: owner-only. SQLite gives the -wal and
        // -shm files the database file's mode, so creating (or fixing) the file first covers all three.
        const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (!File.Exists(path))
        {
            using (new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnly }))
            {
            }
        }

        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            if (File.Exists(file) && (File.GetUnixFileMode(file) & ~OwnerOnly) != 0)
            {
                File.SetUnixFileMode(file, OwnerOnly);
            }
        }

        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        try
        {
            return OpenOn(db, path, time, logger, options);
        }
        catch (SqliteException e)
        {
            // A damaged header is "file is not a database" here; damaged pages show in the first reads below.
            db.Dispose();
            throw new StateStoreCorruptException(path, $"is not a readable Drover store (SQLite: {e.Message})", e);
        }
    }

    private static SqliteStateStore OpenOn(SqliteConnection db, string path, TimeProvider? time, ILogger? logger, SqliteStoreOptions? options)
    {
        db.Open();
        Exec(db, """
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = FULL;
            CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease <> 0;
            CREATE TABLE IF NOT EXISTS events (rev INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, value BLOB, PRIMARY KEY (rev, seq));
            CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """);
        var clock = time ?? TimeProvider.System;

        // A lease's clock restarts when the store opens (as etcd refreshes TTLs on a new leader):
        // holders had no chance to keep it alive while the store was down.
        using (var cmd = db.CreateCommand())
        {
            cmd.CommandText = "UPDATE leases SET expires_ms = $now + ttl_ms";
            cmd.Parameters.AddWithValue("$now", clock.GetUtcNow().ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
        }

        return new SqliteStateStore(db, options ?? new SqliteStoreOptions(), clock, logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
    }

    public Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default) => Enqueue(new Get(key), ct);

    public Task<ImmutableArray<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default) => Enqueue(new List(prefix), ct);

    public Task<CommitResult> CommitAsync(Transaction transaction, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return Enqueue(new Commit(transaction), ct);
    }

    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) =>
        ttl <= TimeSpan.Zero ? throw new ArgumentOutOfRangeException(nameof(ttl)) : Enqueue(new Grant(ttl), ct);

    public Task<bool> KeepAliveAsync(long lease, CancellationToken ct = default) => Enqueue(new KeepAlive(lease), ct);

    public Task RevokeAsync(long lease, CancellationToken ct = default) => Enqueue(new Revoke(lease), ct);

    /// <summary>Expires due leases now (the timer does this periodically). For tests that move the clock.</summary>
    internal Task ExpireLeasesNowAsync() => Enqueue(new ExpireLeases(), CancellationToken.None);

    public async IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision, [EnumeratorCancellation] CancellationToken ct = default)
    {
        // Subscribe before reading history so nothing committed in between is missed; duplicates
        // are dropped by revision below.
        var watcher = new Watcher(prefix);
        lock (_watchLock)
        {
            _watchers.Add(watcher);
        }

        try
        {
            var history = await Enqueue(new History(prefix, afterRevision), ct).ConfigureAwait(false);
            var historyEnd = afterRevision;
            foreach (var e in history)
            {
                historyEnd = e.Revision;
                yield return e;
            }

            // The history holds whole revisions (one transaction's events all, or none): a live event
            // at or below its end was delivered above. Later events of one revision all pass.
            await foreach (var e in watcher.Channel.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (e.Revision > historyEnd)
                {
                    yield return e;
                }
            }
        }
        finally
        {
            lock (_watchLock)
            {
                _watchers.Remove(watcher);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _leaseTimer.DisposeAsync().ConfigureAwait(false);
        _requests.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        lock (_watchLock)
        {
            foreach (var w in _watchers)
            {
                w.Channel.Writer.TryComplete();
            }
        }

        _putKv?.Dispose();
        _logEvent?.Dispose();
        await _db.DisposeAsync().ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ the writer loop

    private Task<T> Enqueue<T>(Request<T> request, CancellationToken ct)
    {
        if (!_requests.Writer.TryWrite(request))
        {
            throw new ObjectDisposedException(nameof(SqliteStateStore));
        }

        return ct.CanBeCanceled ? request.Done.Task.WaitAsync(ct) : request.Done.Task;
    }

    private async Task RunAsync()
    {
        var batch = new List<Request>(_options.MaxBatch);
        var reader = _requests.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < _options.MaxBatch && reader.TryRead(out var r))
            {
                batch.Add(r);
            }

            var events = new List<WatchEvent>();
            var revisionBefore = _revision;
            var oldestBefore = _oldestRevision;
            var nextLeaseBefore = _nextLease;
            var committing = false;
            SqliteTransaction? tx = null;
            try
            {
                tx = _db.BeginTransaction();
                foreach (var r in batch)
                {
                    r.Execute(this, tx, events);
                }

                if (_revision != revisionBefore)
                {
                    WriteMeta(tx, "revision", _revision);
                    Compact(tx);
                }

                // Only when a lease was granted: a batch of reads (or of leases checked and none expired) writes
                // nothing, so an idle master does not append a WAL frame every lease check.
                if (_nextLease != nextLeaseBefore)
                {
                    WriteMeta(tx, "next_lease", _nextLease);
                }

                committing = true;
                tx.Commit(); // durable here (WAL, synchronous = FULL)
                tx.Dispose();
                tx = null;
                foreach (var r in batch)
                {
                    r.Complete();
                }

                Publish(events);
            }
#pragma warning disable CA1031 // An I/O failure fails every request of the batch; the loop goes on.
            catch (Exception e)
#pragma warning restore CA1031
            {
                RollBack(tx);
                Interlocked.Exchange(ref _revision, revisionBefore);
                _oldestRevision = oldestBefore;
                _nextLease = nextLeaseBefore;
                LogBatchFailed(e, batch.Count);
                var failure = Unavailable(e, committing);
                foreach (var r in batch)
                {
                    r.Fail(failure);
                }
            }
        }
    }

    /// <summary>
    /// Ends a failed batch transaction. SQLite may already have rolled it back by itself (it does on SQLITE_FULL
    /// and some I/O errors), in which case the explicit rollback fails too; that second error says nothing new.
    /// </summary>
    private void RollBack(SqliteTransaction? tx)
    {
        if (tx is null)
        {
            return;
        }

        try
        {
            tx.Dispose();
        }
        catch (SqliteException e)
        {
            LogRollbackFailed(e.SqliteErrorCode, e.Message);
        }
    }

    /// <summary>
    /// What a failed batch means to its callers. The file or the disk under it refused the write (full, read-only,
    /// gone, an I/O error, locked by another process past the busy timeout): the store is unavailable, which the
    /// master answers with 503 and Retry-After, as the etcd store's failures. Whether the write may have been applied:
    /// a failure before the commit, and any refusal of the commit other than an I/O error, left nothing behind
    /// (SQLite writes the commit frame last, and a full disk or a read-only file refuses it before it is written).
    /// An I/O error during the commit (a failed write or fsync of the WAL) may have left a complete commit frame in
    /// the WAL, which the next open would replay: its outcome is unknown. Anything else (a bug) is passed on as is.
    /// </summary>
    internal static Exception Unavailable(Exception e, bool duringCommit)
    {
        if (e is not SqliteException se)
        {
            return e is IOException io ? new StateStoreUnavailableException($"the state store failed: {io.Message}", outcomeUnknown: duringCommit, io) : e;
        }

        var primary = se.SqliteErrorCode & 0xff;
        var reason = primary switch
        {
            SQLITE_FULL => "the disk holding the state store is full",
            SQLITE_IOERR => "the state store's file could not be read or written (I/O error)",
            SQLITE_READONLY => "the state store's file is read-only",
            SQLITE_CANTOPEN => "the state store's file cannot be opened",
            SQLITE_BUSY or SQLITE_LOCKED => "the state store's file is locked by another process",
            SQLITE_NOMEM => "the state store ran out of memory",
            SQLITE_PROTOCOL => "the state store's write-ahead log is locked",
            _ => null,
        };
        return reason is null
            ? e
            : new StateStoreUnavailableException($"{reason} ({se.Message.TrimEnd('.')}); the write was not acknowledged",
                outcomeUnknown: duringCommit && primary == SQLITE_IOERR, se);
    }

    // SQLite's primary result codes (sqlite3.h).
    private const int SQLITE_BUSY = 5;
    private const int SQLITE_LOCKED = 6;
    private const int SQLITE_NOMEM = 7;
    private const int SQLITE_READONLY = 8;
    private const int SQLITE_IOERR = 10;
    private const int SQLITE_FULL = 13;
    private const int SQLITE_CANTOPEN = 14;
    private const int SQLITE_PROTOCOL = 15;

    private void Publish(List<WatchEvent> events)
    {
        if (events.Count == 0)
        {
            return;
        }

        lock (_watchLock)
        {
            foreach (var w in _watchers)
            {
                foreach (var e in events)
                {
                    if (e.Key.StartsWith(w.Prefix, StringComparison.Ordinal))
                    {
                        w.Channel.Writer.TryWrite(e);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ operations (inside the batch transaction)

    private StoreEntry? ReadEntry(SqliteTransaction tx, string key)
    {
        using var cmd = Command(tx, "SELECT value, create_rev, mod_rev, lease FROM kv WHERE key = $k");
        cmd.Parameters.AddWithValue("$k", key);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new StoreEntry(key, (byte[])r[0], r.GetInt64(1), r.GetInt64(2), r.GetInt64(3)) : null;
    }

    private ImmutableArray<StoreEntry> ReadPrefix(SqliteTransaction tx, string prefix)
    {
        // Range scan on the primary key: prefix <= key < prefix + U+FFFF.
        using var cmd = Command(tx, "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key >= $lo AND key < $hi ORDER BY key");
        cmd.Parameters.AddWithValue("$lo", prefix);
        cmd.Parameters.AddWithValue("$hi", prefix + '\uffff');
        using var r = cmd.ExecuteReader();
        var list = ImmutableArray.CreateBuilder<StoreEntry>();
        while (r.Read())
        {
            list.Add(new StoreEntry(r.GetString(0), (byte[])r[1], r.GetInt64(2), r.GetInt64(3), r.GetInt64(4)));
        }

        return list.ToImmutable();
    }

    private CommitResult ApplyCommit(SqliteTransaction tx, Transaction t, List<WatchEvent> events)
    {
        foreach (var c in t.Compares)
        {
            var current = ReadEntry(tx, c.Key)?.ModRevision ?? 0;
            if (current != c.ModRevision)
            {
                return new CommitResult(false, _revision);
            }
        }

        foreach (var w in t.Writes)
        {
            if (w.Lease != 0 && !LeaseExists(tx, w.Lease))
            {
                throw new InvalidOperationException($"lease {w.Lease} does not exist");
            }
        }

        if (t.Writes.IsEmpty)
        {
            return new CommitResult(true, _revision);
        }

        var rev = Interlocked.Increment(ref _revision);
        var seq = 0;
        foreach (var w in t.Writes)
        {
            WriteKey(tx, w, rev, seq++, events);
        }

        return new CommitResult(true, rev);
    }

    private void WriteKey(SqliteTransaction tx, WriteOp w, long rev, int seq, List<WatchEvent> events)
    {
        if (w.Value is null)
        {
            using var del = Command(tx, "DELETE FROM kv WHERE key = $k");
            del.Parameters.AddWithValue("$k", w.Key);
            if (del.ExecuteNonQuery() == 0)
            {
                return; // deleting a missing key is a no-op, with no event
            }
        }
        else
        {
            var put = Prepared(ref _putKv, tx, """
                INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES ($k, $v, $rev, $rev, $lease)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease
                """, "$k", "$v", "$rev", "$lease");
            put.Parameters[0].Value = w.Key;
            put.Parameters[1].Value = w.Value;
            put.Parameters[2].Value = rev;
            put.Parameters[3].Value = w.Lease;
            put.ExecuteNonQuery();
        }

        var log = Prepared(ref _logEvent, tx, "INSERT INTO events (rev, seq, key, value) VALUES ($rev, $seq, $k, $v)", "$rev", "$seq", "$k", "$v");
        log.Parameters[0].Value = rev;
        log.Parameters[1].Value = seq;
        log.Parameters[2].Value = w.Key;
        log.Parameters[3].Value = (object?)w.Value ?? DBNull.Value;
        log.ExecuteNonQuery();
        events.Add(new WatchEvent(w.Value is null ? WatchEventType.Delete : WatchEventType.Put, w.Key, w.Value, rev));
        if (_oldestRevision == 0)
        {
            _oldestRevision = rev;
        }
    }

    private ImmutableArray<WatchEvent> ReadHistory(SqliteTransaction tx, string prefix, long after)
    {
        if (_oldestRevision > 0 && after + 1 < _oldestRevision)
        {
            throw new RevisionCompactedException(after, _oldestRevision);
        }

        using var cmd = Command(tx, "SELECT rev, key, value FROM events WHERE rev > $after AND key >= $lo AND key < $hi ORDER BY rev, seq");
        cmd.Parameters.AddWithValue("$after", after);
        cmd.Parameters.AddWithValue("$lo", prefix);
        cmd.Parameters.AddWithValue("$hi", prefix + '\uffff');
        using var r = cmd.ExecuteReader();
        var list = ImmutableArray.CreateBuilder<WatchEvent>();
        while (r.Read())
        {
            var value = r.IsDBNull(2) ? null : (byte[])r[2];
            list.Add(new WatchEvent(value is null ? WatchEventType.Delete : WatchEventType.Put, r.GetString(1), value, r.GetInt64(0)));
        }

        return list.ToImmutable();
    }

    private void Compact(SqliteTransaction tx)
    {
        var keepFrom = _revision - _options.HistoryLimit + 1;
        if (keepFrom <= _oldestRevision)
        {
            return;
        }

        using var cmd = Command(tx, "DELETE FROM events WHERE rev < $keep");
        cmd.Parameters.AddWithValue("$keep", keepFrom);
        cmd.ExecuteNonQuery();
        _oldestRevision = keepFrom;
    }

    private long GrantLease(SqliteTransaction tx, TimeSpan ttl)
    {
        var id = _nextLease++;
        using var cmd = Command(tx, "INSERT INTO leases (id, ttl_ms, expires_ms) VALUES ($id, $ttl, $exp)");
        cmd.Parameters.AddWithValue("$id", id);
        cmd.Parameters.AddWithValue("$ttl", (long)ttl.TotalMilliseconds);
        cmd.Parameters.AddWithValue("$exp", NowMs() + (long)ttl.TotalMilliseconds);
        cmd.ExecuteNonQuery();
        return id;
    }

    private bool Refresh(SqliteTransaction tx, long lease)
    {
        using var cmd = Command(tx, "UPDATE leases SET expires_ms = $now + ttl_ms WHERE id = $id AND expires_ms > $now");
        cmd.Parameters.AddWithValue("$id", lease);
        cmd.Parameters.AddWithValue("$now", NowMs());
        return cmd.ExecuteNonQuery() == 1;
    }

    private bool LeaseExists(SqliteTransaction tx, long lease)
    {
        using var cmd = Command(tx, "SELECT COUNT(*) FROM leases WHERE id = $id AND expires_ms > $now");
        cmd.Parameters.AddWithValue("$id", lease);
        cmd.Parameters.AddWithValue("$now", NowMs());
        return (long)cmd.ExecuteScalar()! > 0;
    }

    /// <summary>Deletes the given leases (or every expired one) and their keys, as one revision.</summary>
    private void EndLeases(SqliteTransaction tx, long? only, List<WatchEvent> events)
    {
        var ids = new List<long>();
        using (var find = Command(tx, only is null ? "SELECT id FROM leases WHERE expires_ms <= $now" : "SELECT id FROM leases WHERE id = $id"))
        {
            find.Parameters.AddWithValue("$now", NowMs());
            find.Parameters.AddWithValue("$id", only ?? 0);
            using var r = find.ExecuteReader();
            while (r.Read())
            {
                ids.Add(r.GetInt64(0));
            }
        }

        foreach (var id in ids)
        {
            var keys = new List<string>();
            using (var k = Command(tx, "SELECT key FROM kv WHERE lease = $id"))
            {
                k.Parameters.AddWithValue("$id", id);
                using var r = k.ExecuteReader();
                while (r.Read())
                {
                    keys.Add(r.GetString(0));
                }
            }

            if (keys.Count > 0)
            {
                var rev = Interlocked.Increment(ref _revision);
                var seq = 0;
                foreach (var key in keys)
                {
                    WriteKey(tx, WriteOp.Delete(key), rev, seq++, events);
                }
            }

            using var del = Command(tx, "DELETE FROM leases WHERE id = $id");
            del.Parameters.AddWithValue("$id", id);
            del.ExecuteNonQuery();
            LogLeaseEnded(id, keys.Count);
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>The two statements every write runs, prepared once and kept (the batch loop is their only user).</summary>
    private SqliteCommand? _putKv;

    private SqliteCommand? _logEvent;

    /// <summary>
    /// A statement prepared on first use and reused by every later write: SQLite parses and plans it once, not
    /// once per key (at tens of thousands of writes a second, parsing was a large part of each write).
    /// </summary>
    private SqliteCommand Prepared(ref SqliteCommand? cached, SqliteTransaction tx, string sql, params string[] parameters)
    {
        if (cached is null)
        {
            cached = _db.CreateCommand();
            cached.CommandText = sql;
            foreach (var p in parameters)
            {
                cached.Parameters.Add(new SqliteParameter { ParameterName = p });
            }
        }

        cached.Transaction = tx;
        return cached;
    }

    private SqliteCommand Command(SqliteTransaction tx, string sql)
    {
        var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private long Scalar(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private long ReadMeta(string name)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT value FROM meta WHERE name = $n";
        cmd.Parameters.AddWithValue("$n", name);
        return cmd.ExecuteScalar() is long v ? v : 0;
    }

    private void WriteMeta(SqliteTransaction tx, string name, long value)
    {
        using var cmd = Command(tx, "INSERT INTO meta (name, value) VALUES ($n, $v) ON CONFLICT (name) DO UPDATE SET value = excluded.value");
        cmd.Parameters.AddWithValue("$n", name);
        cmd.Parameters.AddWithValue("$v", value);
        cmd.ExecuteNonQuery();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "State store batch of {Count} requests failed")]
    private partial void LogBatchFailed(Exception e, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rolling back a failed state store batch failed too (SQLite error {Code}: {Reason})")]
    private partial void LogRollbackFailed(int code, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Lease {Lease} ended; deleted {Keys} keys")]
    private partial void LogLeaseEnded(long lease, int keys);

    // ------------------------------------------------------------------ requests

    private abstract class Request
    {
        public abstract void Execute(SqliteStateStore store, SqliteTransaction tx, List<WatchEvent> events);

        public abstract void Complete();

        public abstract void Fail(Exception e);
    }

    /// <summary>A request whose result is held until the batch is durable.</summary>
    private abstract class Request<T> : Request
    {
        private T _result = default!;
        private Exception? _error;

        public TaskCompletionSource<T> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public sealed override void Execute(SqliteStateStore store, SqliteTransaction tx, List<WatchEvent> events)
        {
            try
            {
                _result = Run(store, tx, events);
            }
            catch (Exception e) when (e is InvalidOperationException or RevisionCompactedException or ArgumentException)
            {
                _error = e; // this request's own error; the rest of the batch goes on
            }
        }

        protected abstract T Run(SqliteStateStore store, SqliteTransaction tx, List<WatchEvent> events);

        public sealed override void Complete()
        {
            if (_error is not null)
            {
                Done.TrySetException(_error);
            }
            else
            {
                Done.TrySetResult(_result);
            }
        }

        public sealed override void Fail(Exception e) => Done.TrySetException(e);
    }

    private sealed class Get(string key) : Request<StoreEntry?>
    {
        protected override StoreEntry? Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.ReadEntry(tx, key);
    }

    private sealed class List(string prefix) : Request<ImmutableArray<StoreEntry>>
    {
        protected override ImmutableArray<StoreEntry> Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.ReadPrefix(tx, prefix);
    }

    private sealed class Commit(Transaction t) : Request<CommitResult>
    {
        protected override CommitResult Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.ApplyCommit(tx, t, events);
    }

    private sealed class History(string prefix, long after) : Request<ImmutableArray<WatchEvent>>
    {
        protected override ImmutableArray<WatchEvent> Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.ReadHistory(tx, prefix, after);
    }

    private sealed class Grant(TimeSpan ttl) : Request<long>
    {
        protected override long Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.GrantLease(tx, ttl);
    }

    private sealed class KeepAlive(long lease) : Request<bool>
    {
        protected override bool Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events) => s.Refresh(tx, lease);
    }

    private sealed class Revoke(long lease) : Request<bool>
    {
        protected override bool Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events)
        {
            s.EndLeases(tx, lease, events);
            return true;
        }
    }

    private sealed class ExpireLeases : Request<bool>
    {
        protected override bool Run(SqliteStateStore s, SqliteTransaction tx, List<WatchEvent> events)
        {
            s.EndLeases(tx, null, events);
            return true;
        }
    }

    private sealed class Watcher(string prefix)
    {
        public string Prefix { get; } = prefix;

        public Channel<WatchEvent> Channel { get; } = System.Threading.Channels.Channel.CreateUnbounded<WatchEvent>();
    }
}
