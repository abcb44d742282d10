using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Protocol;
using Drover.Core.Secrets;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Secrets;

/// <summary>What a secret write came to: a value with a sentence, never an exception for a caller's mistake.</summary>
public enum SecretOutcome
{
    Created,
    Replaced,
    Deleted,

    /// <summary>Create-only (DC/OS PUT) and the secret exists.</summary>
    Exists,

    /// <summary>Replace-only (DC/OS PATCH) or delete, and the secret does not exist.</summary>
    NotFound,

    /// <summary>The store changed under the write (another master?); nothing was written, retry.</summary>
    Conflict,
}

public enum SecretWriteMode
{
    /// <summary>Create or replace (Drover's PUT).</summary>
    Upsert,

    /// <summary>Only when absent (DC/OS' PUT).</summary>
    CreateOnly,

    /// <summary>Only when present (DC/OS' PATCH).</summary>
    ReplaceOnly,
}

/// <summary>What a caller may see of a secret without reading it.</summary>
public sealed record SecretInfo(string Path, string? Author, DateTimeOffset Created, DateTimeOffset Updated, string? Description);

/// <summary>The store refused to start: it holds secrets this master's keys cannot open. One sentence for the operator.</summary>
public sealed class SecretKeyMismatchException(string message) : Exception(message);

/// <summary>
/// Secrets, encrypted (<see cref="SecretEnvelope"/>) in the state store so that every master of a highly available
/// set shares them, and in memory as their sealed records (never decrypted values) for launches and listings:
/// <code>
///   /drover/secrets/values/{path}            a stored secret (the secrets API, Marathon "secrets", Mesos REFERENCE)
///   /drover/secrets/tasks/{taskId}/{index}   a Mesos VALUE secret, kept for its task until the task ends
/// </code>
/// Values are decrypted only to answer a reader holding the secret's read permission (<see cref="Reveal"/>) and to
/// fill a launch command for the agent of the task using it (<see cref="Resolve"/>). Nothing here logs a value.
/// Writes to stored secrets are serialised and compare-and-swap on the record's revision. Thread-safe.
/// </summary>
public sealed partial class SecretStore(IStateStore store, SecretKeyRing keys, TimeProvider time, ILogger<SecretStore> logger)
{
    public const string ValuePrefix = "/drover/secrets/values/";
    public const string TaskPrefix = "/drover/secrets/tasks/";

    private readonly SemaphoreSlim _writeLock = new(1, 1);

    private ImmutableSortedDictionary<string, Entry> _values = ImmutableSortedDictionary.Create<string, Entry>(StringComparer.Ordinal);

    /// <summary>Mesos VALUE secrets by task id, then by index in the task's <see cref="TaskSpec.Secrets"/>.</summary>
    private readonly ConcurrentDictionary<string, ImmutableDictionary<int, SealedSecret>> _taskValues = new(StringComparer.Ordinal);

    private sealed record Entry(SealedSecret Sealed, long ModRevision);

    public SecretKeyRing Keys => keys;

    public int Count => Volatile.Read(ref _values).Count;

    /// <summary>
    /// Reads every secret's sealed record. Refuses (<see cref="SecretKeyMismatchException"/>) when a record was wrapped
    /// under a key this master does not hold: started with the wrong key file, it would fail every launch that needs a
    /// secret. Re-wraps records wrapped under an older key of the ring with the primary key (rotation), and drops the
    /// Mesos VALUE secrets of tasks that are no longer active (<paramref name="isActiveTask"/>).
    /// </summary>
    public async Task LoadAsync(Func<string, bool> isActiveTask, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(isActiveTask);
        var values = ImmutableSortedDictionary.CreateBuilder<string, Entry>(StringComparer.Ordinal);
        var unknownKeys = new SortedSet<string>(StringComparer.Ordinal);
        var count = 0;
        foreach (var e in await store.ListAsync(ValuePrefix, ct).ConfigureAwait(false))
        {
            var sealedSecret = Parse(e);
            values[e.Key[ValuePrefix.Length..]] = new Entry(sealedSecret, e.ModRevision);
            if (keys.Find(sealedSecret.KeyId) is null)
            {
                unknownKeys.Add(sealedSecret.KeyId);
                count++;
            }
        }

        var stale = new List<string>();
        foreach (var e in await store.ListAsync(TaskPrefix, ct).ConfigureAwait(false))
        {
            var rest = e.Key[TaskPrefix.Length..];
            var slash = rest.LastIndexOf('/');
            if (slash <= 0 || !int.TryParse(rest[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || !isActiveTask(rest[..slash]))
            {
                stale.Add(e.Key);
                continue;
            }

            var sealedSecret = Parse(e);
            _taskValues.AddOrUpdate(rest[..slash], _ => ImmutableDictionary<int, SealedSecret>.Empty.Add(index, sealedSecret), (_, m) => m.SetItem(index, sealedSecret));
            if (keys.Find(sealedSecret.KeyId) is null)
            {
                unknownKeys.Add(sealedSecret.KeyId);
                count++;
            }
        }

        if (unknownKeys.Count > 0)
        {
            throw new SecretKeyMismatchException(
                $"the state store holds {count} secret(s) encrypted under key {string.Join(", ", unknownKeys)}, which {keys.Source} does not hold: "
                + "start every master with the same --secrets-key-file (while rotating, keep the old key as a later line of the file)");
        }

        Volatile.Write(ref _values, values.ToImmutable());
        if (stale.Count > 0)
        {
            await store.CommitAsync(new Transaction { Writes = [.. stale.Select(WriteOp.Delete)] }, ct).ConfigureAwait(false);
            LogStaleTaskValues(stale.Count);
        }

        await RewrapAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Re-wraps every data key not wrapped by the primary key (after a rotation), one compare-and-swap each.</summary>
    private async Task RewrapAsync(CancellationToken ct)
    {
        var primary = keys.Primary.Id;
        var rewrapped = 0;
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            foreach (var (path, entry) in _values.Where(kv => kv.Value.Sealed.KeyId != primary))
            {
                var (updated, error) = SecretEnvelope.Rewrap(keys, ValuePrefix + path, entry.Sealed);
                if (updated is null)
                {
                    LogRewrapFailed(path, error!);
                    continue;
                }

                var result = await store.CommitAsync(new Transaction
                {
                    Compares = [Compare.Version(ValuePrefix + path, entry.ModRevision)],
                    Writes = [WriteOp.Put(ValuePrefix + path, Serialize(updated))],
                }, ct).ConfigureAwait(false);
                if (result.Succeeded)
                {
                    _values = _values.SetItem(path, new Entry(updated, result.Revision));
                    rewrapped++;
                }
            }

            foreach (var (taskId, byIndex) in _taskValues)
            {
                foreach (var (index, s) in byIndex.Where(kv => kv.Value.KeyId != primary))
                {
                    var key = TaskKey(taskId, index);
                    if (SecretEnvelope.Rewrap(keys, key, s) is ({ } updated, _))
                    {
                        await store.PutAsync(key, Serialize(updated), ct).ConfigureAwait(false);
                        _taskValues.AddOrUpdate(taskId, _ => byIndex.SetItem(index, updated), (_, m) => m.SetItem(index, updated));
                        rewrapped++;
                    }
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }

        if (rewrapped > 0)
        {
            LogRewrapped(rewrapped, primary);
        }
    }

    // ------------------------------------------------------------------ stored secrets

    public bool Exists(string path) => Volatile.Read(ref _values).ContainsKey(path);

    public SecretInfo? Info(string path) => Volatile.Read(ref _values).TryGetValue(path, out var e) ? InfoOf(path, e.Sealed) : null;

    /// <summary>Paths under <paramref name="prefix"/> (canonical; empty for all), in order.</summary>
    public ImmutableArray<string> List(string prefix) =>
        [.. Volatile.Read(ref _values).Keys.Where(p => SecretPaths.IsUnder(p, prefix))];

    /// <summary>
    /// The value of the secret at <paramref name="path"/> (canonical), for a caller already authorized to read it.
    /// Null value and null error: no such secret. The caller should zero the bytes when done.
    /// </summary>
    public (byte[]? Value, string? Error) Reveal(string path) =>
        Volatile.Read(ref _values).TryGetValue(path, out var e) ? SecretEnvelope.Open(keys, ValuePrefix + path, e.Sealed) : (null, null);

    /// <summary>Stores <paramref name="value"/> at <paramref name="path"/> (canonical, value within <see cref="SecretPaths.MaxValueBytes"/>).</summary>
    public async Task<SecretOutcome> PutAsync(string path, byte[] value, string? author, string? description, SecretWriteMode mode, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(value);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var existing = _values.GetValueOrDefault(path);
            if (existing is not null && mode == SecretWriteMode.CreateOnly)
            {
                return SecretOutcome.Exists;
            }

            if (existing is null && mode == SecretWriteMode.ReplaceOnly)
            {
                return SecretOutcome.NotFound;
            }

            var now = time.GetUtcNow();
            var sealedSecret = SecretEnvelope.Seal(keys, ValuePrefix + path, value) with
            {
                Author = author,
                Created = existing?.Sealed.Created ?? now,
                Updated = now,
                Description = description ?? existing?.Sealed.Description,
            };
            var result = await store.CommitAsync(new Transaction
            {
                Compares = [existing is null ? Compare.Absent(ValuePrefix + path) : Compare.Version(ValuePrefix + path, existing.ModRevision)],
                Writes = [WriteOp.Put(ValuePrefix + path, Serialize(sealedSecret))],
            }, ct).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                return SecretOutcome.Conflict;
            }

            _values = _values.SetItem(path, new Entry(sealedSecret, result.Revision));
            LogStored(path, author ?? "", existing is null ? "created" : "replaced");
            return existing is null ? SecretOutcome.Created : SecretOutcome.Replaced;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async Task<SecretOutcome> DeleteAsync(string path, string? by, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_values.GetValueOrDefault(path) is not { } existing)
            {
                return SecretOutcome.NotFound;
            }

            var result = await store.CommitAsync(new Transaction
            {
                Compares = [Compare.Version(ValuePrefix + path, existing.ModRevision)],
                Writes = [WriteOp.Delete(ValuePrefix + path)],
            }, ct).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                return SecretOutcome.Conflict;
            }

            _values = _values.Remove(path);
            LogStored(path, by ?? "", "deleted");
            return SecretOutcome.Deleted;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // ------------------------------------------------------------------ Mesos VALUE secrets

    /// <summary>
    /// Keeps the VALUE secrets of a task being launched, encrypted, under the task. Call before the task is recorded
    /// (<c>ClusterState.LaunchFromOffer</c>): the store commits transactions in call order and completes a write only
    /// once every earlier one is durable, so once the task's record is durable — which its launch command waits
    /// for — so are these. The returned task completes with the write (a failure is logged; the launch then fails
    /// to resolve). The values are not kept in memory.
    /// </summary>
    public Task KeepTaskValues(string taskId, IReadOnlyList<(int Index, byte[] Value)> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return Task.CompletedTask;
        }

        var byIndex = ImmutableDictionary<int, SealedSecret>.Empty;
        var writes = ImmutableArray.CreateBuilder<WriteOp>(values.Count);
        var now = time.GetUtcNow();
        foreach (var (index, value) in values)
        {
            var key = TaskKey(taskId, index);
            var sealedSecret = SecretEnvelope.Seal(keys, key, value) with { Created = now, Updated = now };
            byIndex = byIndex.SetItem(index, sealedSecret);
            writes.Add(WriteOp.Put(key, Serialize(sealedSecret)));
        }

        _taskValues[taskId] = byIndex;
        return ObserveAsync(store.CommitAsync(new Transaction { Writes = writes.MoveToImmutable() }), taskId);
    }

    /// <summary>Drops a task's VALUE secrets (it ended). Cheap when it has none: called for every task change.</summary>
    public void ForgetTask(string taskId)
    {
        if (_taskValues.IsEmpty || !_taskValues.TryRemove(taskId, out var byIndex))
        {
            return;
        }

        _ = ObserveAsync(store.CommitAsync(new Transaction { Writes = [.. byIndex.Keys.Select(i => WriteOp.Delete(TaskKey(taskId, i)))] }), taskId);
    }

    public bool HasTaskValues(string taskId) => _taskValues.ContainsKey(taskId);

    // ------------------------------------------------------------------ launches

    /// <summary>
    /// The values of every secret <paramref name="spec"/> uses, for its launch command; or the first reason one cannot
    /// be had (a stored secret deleted since the deploy, a key this master lacks, a record that does not authenticate).
    /// </summary>
    public (ImmutableArray<SecretValue> Values, string? Error) Resolve(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var result = ImmutableArray.CreateBuilder<SecretValue>(spec.Secrets.Length);
        var values = Volatile.Read(ref _values);
        for (var i = 0; i < spec.Secrets.Length; i++)
        {
            var s = spec.Secrets[i];
            byte[]? value;
            string? error;
            if (s.Path is { } path)
            {
                (value, error) = values.TryGetValue(path, out var e)
                    ? SecretEnvelope.Open(keys, ValuePrefix + path, e.Sealed)
                    : (null, $"secret '{path}' does not exist (deleted after the task was deployed?)");
            }
            else
            {
                (value, error) = _taskValues.TryGetValue(spec.Id, out var byIndex) && byIndex.TryGetValue(i, out var sealedSecret)
                    ? SecretEnvelope.Open(keys, TaskKey(spec.Id, i), sealedSecret)
                    : (null, $"the value of secret {i} ({Describe(s)}) given with the launch is no longer kept (the task's record outlived it)");
            }

            if (value is null)
            {
                return ([], $"{Describe(s)}: {error}");
            }

            result.Add(new SecretValue { TaskId = spec.Id, Index = i, Data = value });
        }

        return (result.MoveToImmutable(), null);
    }

    private static string Describe(TaskSecret s) => s.Target == SecretTarget.Env ? $"environment variable {s.Name}" : $"secret file {s.Name}";

    // ------------------------------------------------------------------ helpers

    private static string TaskKey(string taskId, int index) => TaskPrefix + taskId + "/" + index.ToString(CultureInfo.InvariantCulture);

    private static SecretInfo InfoOf(string path, SealedSecret s) => new(path, s.Author, s.Created, s.Updated, s.Description);

    private static byte[] Serialize(SealedSecret s) => JsonSerializer.SerializeToUtf8Bytes(s, SecretStoreJsonContext.Default.SealedSecret);

    private static SealedSecret Parse(StoreEntry e) =>
        JsonSerializer.Deserialize(e.Value, SecretStoreJsonContext.Default.SealedSecret)
        ?? throw new InvalidDataException($"the state store's {e.Key} is not a sealed secret");

    private async Task ObserveAsync(Task<CommitResult> commit, string taskId)
    {
        try
        {
            await commit.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogTaskValuesWriteFailed(taskId, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Secret '{Path}' {Change} by '{Author}'")]
    private partial void LogStored(string path, string author, string change);

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-wrapped {Count} secret data key(s) under the primary key {KeyId}")]
    private partial void LogRewrapped(int count, string keyId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot re-wrap secret '{Path}': {Reason}")]
    private partial void LogRewrapFailed(string path, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dropped {Count} launch-time secret value(s) of tasks no longer active")]
    private partial void LogStaleTaskValues(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing or deleting the launch-time secret values of task {TaskId} failed: {Reason}")]
    private partial void LogTaskValuesWriteFailed(string taskId, string reason);
}
