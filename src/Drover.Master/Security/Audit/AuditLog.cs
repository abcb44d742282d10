using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security.Audit;

/// <summary>One mutating call: who, from where, what, and how it ended.</summary>
public sealed record AuditRecord
{
    /// <summary>UTC, milliseconds, <c>Z</c>.</summary>
    public required string Time { get; init; }

    /// <summary><c>user:alice</c>, <c>service:ci</c>, <c>anonymous</c> (refused before authentication, or a dev cluster without logins).</summary>
    public required string Caller { get; init; }

    /// <summary>The client's address and port.</summary>
    public required string From { get; init; }

    public required string Method { get; init; }

    /// <summary>Path and query as sent.</summary>
    public required string Path { get; init; }

    /// <summary>What the handler noted beyond the path (e.g. the Mesos call type, the uid of a login); may be null.</summary>
    public string? Detail { get; init; }

    public required int Status { get; init; }

    /// <summary><c>allowed</c> (2xx/3xx), <c>denied</c> (401/403), <c>refused</c> (other 4xx), <c>failed</c> (5xx).</summary>
    public required string Result { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditRecord))]
[JsonSerializable(typeof(AuditPage))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;

/// <summary>An answer of <c>GET /drover/v1/audit</c>: the newest records last.</summary>
public sealed record AuditPage
{
    public required ImmutableArray<AuditRecord> Records { get; init; }
}

/// <summary>
/// The append-only audit log: one JSON line per mutating call in <c>{data-dir}/audit.log</c> (mode 0600),
/// appended by one writer in batches, each batch flushed to disk (fsync) before the next; rotated at
/// <see cref="MaxFileBytes"/> to <c>audit.log.1</c> … <c>audit.log.{MaxRotated}</c>. Calls refused before
/// anyone was authenticated (no or wrong credentials, failed logins) go to <c>audit-unauthenticated.log</c>,
/// rotated on its own, so a flood of anonymous requests cannot push the record of what real callers did out
/// of the log. A request never waits for the disk: records are queued (bounded; when the queue is full the
/// request waits, so nothing is dropped). In a highly available set each master logs the calls it served
/// (only the leader serves mutating calls).
/// </summary>
public sealed partial class AuditLog : BackgroundService
{
    public const long MaxFileBytes = 64L * 1024 * 1024;
    public const int MaxRotated = 5;
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public const string UnauthenticatedLog = "unauthenticated";

    private readonly Channel<(AuditRecord Record, bool Unauthenticated)> _queue = Channel.CreateBounded<(AuditRecord, bool)>(new BoundedChannelOptions(10_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly ILogger<AuditLog> _logger;
    private readonly TimeProvider _time;
    private readonly State.StoreFault? _fault;

    /// <param name="fault">
    /// Raised when the log cannot be written (a full disk): the master stops rather than serve calls it cannot
    /// account for, and its process exits non-zero with the reason, as on a failed store write.
    /// </param>
    public AuditLog(MasterOptions options, TimeProvider time, ILogger<AuditLog> logger, State.StoreFault? fault = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        FilePath = Path.Combine(options.DataDir, "audit.log");
        UnauthenticatedFilePath = Path.Combine(options.DataDir, "audit-unauthenticated.log");
        _time = time;
        _logger = logger;
        _fault = fault;
    }

    public string FilePath { get; }

    public string UnauthenticatedFilePath { get; }

    /// <summary>Queues a record; completes once it is queued (not yet on disk).</summary>
    public ValueTask AppendAsync(AuditRecord record, bool unauthenticated = false, CancellationToken ct = default) => _queue.Writer.WriteAsync((record, unauthenticated), ct);

    public string Now() => _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Completes once every record queued before the call is on disk (tests, shutdown).</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        var marker = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _flushes.Enqueue(marker);
        await _queue.Writer.WriteAsync((FlushMarker, false), ct).ConfigureAwait(false);
        await marker.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    private static readonly AuditRecord FlushMarker = new() { Time = "", Caller = "", From = "", Method = "", Path = "", Status = 0, Result = "" };
    private readonly System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource> _flushes = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var reader = _queue.Reader;
        var files = new FileStream?[2];
        var paths = new[] { FilePath, UnauthenticatedFilePath };
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                var flushes = 0;
                var written = new bool[2];
                while (reader.TryRead(out var item))
                {
                    if (ReferenceEquals(item.Record, FlushMarker))
                    {
                        flushes++;
                        continue;
                    }

                    var i = item.Unauthenticated ? 1 : 0;
                    var file = files[i] ??= Open(paths[i]);
                    await JsonSerializer.SerializeAsync(file, item.Record, AuditJsonContext.Default.AuditRecord, CancellationToken.None).ConfigureAwait(false);
                    await file.WriteAsync(NewLine, CancellationToken.None).ConfigureAwait(false);
                    written[i] = true;
                }

                for (var i = 0; i < files.Length; i++)
                {
                    if (!written[i] || files[i] is not { } file)
                    {
                        continue;
                    }

                    await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    file.Flush(flushToDisk: true);
                    if (file.Length >= MaxFileBytes)
                    {
                        await file.DisposeAsync().ConfigureAwait(false);
                        files[i] = null;
                        Rotate(paths[i]);
                    }
                }

                for (var i = 0; i < flushes && _flushes.TryDequeue(out var done); i++)
                {
                    done.TrySetResult();
                }
            }
        }
        catch (IOException e)
        {
            LogWriteFailed(FilePath, e.Message);
            _fault?.Raise($"the audit log {FilePath} could not be written ({e.Message})");
            throw;
        }
        finally
        {
            foreach (var file in files)
            {
                if (file is not null)
                {
                    await file.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    private static FileStream Open(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var f = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return f;
    }

    private static void Rotate(string path)
    {
        for (var i = MaxRotated - 1; i >= 1; i--)
        {
            var from = $"{path}.{i}";
            if (File.Exists(from))
            {
                File.Move(from, $"{path}.{i + 1}", overwrite: true);
            }
        }

        File.Move(path, path + ".1", overwrite: true);
    }

    /// <summary>
    /// The newest records (at most <paramref name="limit"/>, oldest first) at or after <paramref name="since"/>
    /// (UTC, compared as Drover writes it), optionally of one caller, from the current file and the rotated ones.
    /// </summary>
    public async Task<ImmutableArray<AuditRecord>> ReadAsync(string? since, string? caller, int limit, CancellationToken ct, bool unauthenticated = false)
    {
        var newestFirst = new List<AuditRecord>();
        var current = unauthenticated ? UnauthenticatedFilePath : FilePath;
        foreach (var path in new[] { current }.Concat(Enumerable.Range(1, MaxRotated).Select(i => $"{current}.{i}")))
        {
            if (!File.Exists(path))
            {
                break;
            }

            var lines = await File.ReadAllLinesAsync(path, Encoding.UTF8, ct).ConfigureAwait(false);
            for (var i = lines.Length - 1; i >= 0 && newestFirst.Count < limit; i--)
            {
                if (lines[i].Length == 0)
                {
                    continue;
                }

                AuditRecord? r;
                try
                {
                    r = JsonSerializer.Deserialize(lines[i], AuditJsonContext.Default.AuditRecord);
                }
                catch (JsonException)
                {
                    continue; // a line cut short by a crash
                }

                if (r is null || (since is not null && string.CompareOrdinal(r.Time, since) < 0))
                {
                    if (r is not null)
                    {
                        return [.. Enumerable.Reverse(newestFirst)];
                    }

                    continue;
                }

                if (caller is null || r.Caller == caller)
                {
                    newestFirst.Add(r);
                }
            }

            if (newestFirst.Count >= limit)
            {
                break;
            }
        }

        return [.. Enumerable.Reverse(newestFirst)];
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "Cannot write the audit log {Path}: {Reason}")]
    private partial void LogWriteFailed(string path, string reason);
}
