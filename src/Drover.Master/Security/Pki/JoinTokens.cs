using System.Collections.Immutable;
using System.Text.Json;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security.Pki;

/// <summary>
/// Join tokens (<c>drover node token create</c>): short-lived, usable by any number of agents until they
/// expire or are revoked (as kubeadm's bootstrap tokens), kept in the state store as the SHA-256 of their
/// secret only, so every master honours them and a store dump does not reveal one.
/// </summary>
public sealed partial class JoinTokens(IStateStore store, MasterCredentials credentials, TimeProvider time, ILogger<JoinTokens> logger)
{
    public const string StorePrefix = "/drover/security/join-tokens/";

    /// <summary>Creates a token valid for <paramref name="ttl"/>; the answer is the only place its secret appears.</summary>
    public async Task<JoinTokenCreated> CreateAsync(TimeSpan ttl, string? description, CancellationToken ct)
    {
        await PurgeExpiredAsync(ct).ConfigureAwait(false);
        var token = JoinToken.Create(credentials.ServingCaHash);
        var now = time.GetUtcNow();
        var record = new StoredJoinToken { Id = token.Id, SecretSha256 = token.SecretHash, CreatedAt = now, ExpiresAt = now + ttl, Description = description };
        if (!await store.CompareAndSwapAsync(StorePrefix + token.Id, 0, JsonSerializer.SerializeToUtf8Bytes(record, PkiJsonContext.Default.StoredJoinToken), ct).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"join token id {token.Id} exists already"); // 48 random bits: a bug, not chance
        }

        LogCreated(logger, token.Id, record.ExpiresAt);
        return new JoinTokenCreated { Token = token.Text, Id = token.Id, ExpiresAt = record.ExpiresAt };
    }

    /// <summary>Tokens not yet expired, oldest first.</summary>
    public async Task<ImmutableArray<JoinTokenView>> ListAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        return [.. (await ReadAllAsync(ct).ConfigureAwait(false))
            .Where(t => t.Record.ExpiresAt > now)
            .OrderBy(t => t.Record.CreatedAt)
            .Select(t => new JoinTokenView { Id = t.Record.Id, CreatedAt = t.Record.CreatedAt, ExpiresAt = t.Record.ExpiresAt, Description = t.Record.Description })];
    }

    /// <summary>Revokes a token at once. False when there is no such token.</summary>
    public async Task<bool> RevokeAsync(string id, CancellationToken ct)
    {
        if (await store.GetAsync(StorePrefix + id, ct).ConfigureAwait(false) is not { } entry)
        {
            return false;
        }

        await store.CommitAsync(new Transaction { Compares = [Compare.Version(entry.Key, entry.ModRevision)], Writes = [WriteOp.Delete(entry.Key)] }, ct).ConfigureAwait(false);
        LogRevoked(logger, id);
        return true;
    }

    /// <summary>
    /// Checks a presented <c>&lt;id&gt;.&lt;secret&gt;</c>: null when it is a live token, else why not (the
    /// same sentence for an unknown id and a wrong secret, so the answer tells nothing about which ids exist).
    /// </summary>
    public async Task<string?> CheckAsync(string? credential, CancellationToken ct)
    {
        const string Refused = "the join token is unknown, revoked or wrong; create one with `drover node token create`";
        if (JoinToken.ParseCredential(credential) is not { } parsed)
        {
            return Refused;
        }

        if (await store.GetAsync(StorePrefix + parsed.Id, ct).ConfigureAwait(false) is not { } entry
            || JsonSerializer.Deserialize(entry.Value, PkiJsonContext.Default.StoredJoinToken) is not { } record
            || !JoinToken.SecretMatches(parsed.Secret, record.SecretSha256))
        {
            return Refused;
        }

        return record.ExpiresAt <= time.GetUtcNow()
            ? $"the join token {record.Id} expired at {record.ExpiresAt:u}; create a new one with `drover node token create`"
            : null;
    }

    private async Task<List<(StoreEntry Entry, StoredJoinToken Record)>> ReadAllAsync(CancellationToken ct)
    {
        var all = new List<(StoreEntry, StoredJoinToken)>();
        foreach (var entry in await store.ListAsync(StorePrefix, ct).ConfigureAwait(false))
        {
            if (JsonSerializer.Deserialize(entry.Value, PkiJsonContext.Default.StoredJoinToken) is { } record)
            {
                all.Add((entry, record));
            }
        }

        return all;
    }

    /// <summary>Expired tokens are deleted when a new one is made, so the store holds few.</summary>
    private async Task PurgeExpiredAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var expired = (await ReadAllAsync(ct).ConfigureAwait(false)).Where(t => t.Record.ExpiresAt <= now).ToList();
        if (expired.Count > 0)
        {
            await store.CommitAsync(new Transaction { Writes = [.. expired.Select(t => WriteOp.Delete(t.Entry.Key))] }, ct).ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Created join token {Token}, valid until {ExpiresAt:u}")]
    private static partial void LogCreated(ILogger logger, string token, DateTimeOffset expiresAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Revoked join token {Token}")]
    private static partial void LogRevoked(ILogger logger, string token);
}
