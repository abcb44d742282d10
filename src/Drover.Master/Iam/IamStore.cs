using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Drover.Core.Security;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Iam;

/// <summary>What an IAM change came to: a value with a sentence, never an exception for a caller's mistake.</summary>
public enum IamOutcome
{
    Done,
    Created,
    NotFound,
    Conflict,
    Invalid,
}

public readonly record struct IamResult(IamOutcome Outcome, string Message = "")
{
    public bool Succeeded => Outcome is IamOutcome.Done or IamOutcome.Created;

    public static IamResult Done { get; } = new(IamOutcome.Done);

    public static IamResult NotFound(string message) => new(IamOutcome.NotFound, message);

    public static IamResult Conflict(string message) => new(IamOutcome.Conflict, message);

    public static IamResult Invalid(string message) => new(IamOutcome.Invalid, message);
}

/// <summary>An immutable view of every user, group and grant; authorization reads it without locks.</summary>
public sealed class IamSnapshot
{
    private readonly ConcurrentDictionary<string, ImmutableArray<Grant>> _grants = new(StringComparer.Ordinal);

    internal IamSnapshot(ImmutableSortedDictionary<string, IamUser> users, ImmutableSortedDictionary<string, IamGroup> groups, ImmutableSortedDictionary<string, IamAcl> acls)
    {
        Users = users;
        Groups = groups;
        Acls = acls;
    }

    public static IamSnapshot Empty { get; } = new(
        ImmutableSortedDictionary.Create<string, IamUser>(StringComparer.Ordinal),
        ImmutableSortedDictionary.Create<string, IamGroup>(StringComparer.Ordinal),
        ImmutableSortedDictionary.Create<string, IamAcl>(StringComparer.Ordinal));

    public ImmutableSortedDictionary<string, IamUser> Users { get; }

    public ImmutableSortedDictionary<string, IamGroup> Groups { get; }

    public ImmutableSortedDictionary<string, IamAcl> Acls { get; }

    /// <summary>Groups <paramref name="uid"/> belongs to.</summary>
    public IEnumerable<IamGroup> GroupsOf(string uid) => Groups.Values.Where(g => g.Members.Contains(uid));

    /// <summary>Every grant <paramref name="uid"/> holds, directly or through a group (computed once per snapshot).</summary>
    public ImmutableArray<Grant> GrantsOf(string uid) => _grants.GetOrAdd(uid, static (u, self) =>
    {
        var groups = self.GroupsOf(u).Select(g => g.Gid).ToHashSet(StringComparer.Ordinal);
        var grants = ImmutableArray.CreateBuilder<Grant>();
        foreach (var acl in self.Acls.Values)
        {
            var actions = acl.Users.GetValueOrDefault(u);
            foreach (var (gid, a) in acl.Groups)
            {
                if (groups.Contains(gid))
                {
                    actions |= a;
                }
            }

            if (actions != PermissionAction.None)
            {
                grants.Add(new Grant(acl.Rid, actions));
            }
        }

        return grants.ToImmutable();
    }, this);

    public bool Allows(string uid, string rid, PermissionAction action) => Users.ContainsKey(uid) && Policy.Allows(GrantsOf(uid), rid, action);
}

/// <summary>
/// Users, service accounts, groups and grants, kept in the state store under <c>/drover/iam/</c> (so every
/// master of a highly available set shares them) and in memory as an <see cref="IamSnapshot"/>. A change is
/// written to the store first and becomes visible only once the store accepted it; changes are serialised.
/// </summary>
public sealed partial class IamStore(IStateStore store, TimeProvider time, ILogger<IamStore> logger)
{
    public const string UserPrefix = "/drover/iam/users/";
    public const string GroupPrefix = "/drover/iam/groups/";
    public const string AclPrefix = "/drover/iam/acls/";
    public const string BootstrapKey = "/drover/iam/bootstrapped";

    /// <summary>The first administrator of a new cluster.</summary>
    public const string AdminUid = "admin";

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private IamSnapshot _snapshot = IamSnapshot.Empty;

    /// <summary>Store revisions of each record, for compare-and-swap writes.</summary>
    private ImmutableDictionary<string, long> _revisions = ImmutableDictionary<string, long>.Empty;

    /// <summary>Bumped on every change (cache invalidation for verified Basic credentials).</summary>
    private long _generation;

    public IamSnapshot Snapshot => Volatile.Read(ref _snapshot);

    public long Generation => Interlocked.Read(ref _generation);

    public async Task LoadAsync(CancellationToken ct)
    {
        var users = ImmutableSortedDictionary.CreateBuilder<string, IamUser>(StringComparer.Ordinal);
        var groups = ImmutableSortedDictionary.CreateBuilder<string, IamGroup>(StringComparer.Ordinal);
        var acls = ImmutableSortedDictionary.CreateBuilder<string, IamAcl>(StringComparer.Ordinal);
        var revisions = ImmutableDictionary.CreateBuilder<string, long>(StringComparer.Ordinal);
        foreach (var e in await store.ListAsync(UserPrefix, ct).ConfigureAwait(false))
        {
            var u = JsonSerializer.Deserialize(e.Value, IamStoreJsonContext.Default.IamUser)!;
            users[u.Uid] = u;
            revisions[e.Key] = e.ModRevision;
        }

        foreach (var e in await store.ListAsync(GroupPrefix, ct).ConfigureAwait(false))
        {
            var g = JsonSerializer.Deserialize(e.Value, IamStoreJsonContext.Default.IamGroup)!;
            groups[g.Gid] = g;
            revisions[e.Key] = e.ModRevision;
        }

        foreach (var e in await store.ListAsync(AclPrefix, ct).ConfigureAwait(false))
        {
            var a = JsonSerializer.Deserialize(e.Value, IamStoreJsonContext.Default.IamAcl)!;
            acls[a.Rid] = a;
            revisions[e.Key] = e.ModRevision;
        }

        _revisions = revisions.ToImmutable();
        Publish(new IamSnapshot(users.ToImmutable(), groups.ToImmutable(), acls.ToImmutable()));
    }

    /// <summary>
    /// On a new cluster (no bootstrap marker in the store): creates <c>admin</c> with <c>dcos:superuser</c>,
    /// with the password read from <paramref name="passwordFile"/>, or a generated one written to
    /// <c>{dataDir}/bootstrap-admin-password</c> (0600). Returns the path of the generated file, or null.
    /// Several masters starting at once agree: the marker is created only if absent, with the admin, in one transaction.
    /// </summary>
    public async Task<string?> BootstrapAsync(string? passwordFile, string dataDir, CancellationToken ct)
    {
        if (await store.GetAsync(BootstrapKey, ct).ConfigureAwait(false) is not null)
        {
            return null;
        }

        string password;
        string? written = null;
        if (passwordFile is not null)
        {
            password = (await File.ReadAllTextAsync(passwordFile, ct).ConfigureAwait(false)).TrimEnd('\r', '\n');
            if (password.Length < 8)
            {
                throw new InvalidOperationException($"--bootstrap-password-file {passwordFile}: the password must be at least 8 characters");
            }
        }
        else
        {
            password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');
            written = Path.Combine(dataDir, "bootstrap-admin-password");
        }

        var admin = new IamUser { Uid = AdminUid, Kind = AccountKind.User, Description = "bootstrap administrator", PasswordHash = PasswordHasher.Hash(password), Created = time.GetUtcNow() };
        var acl = new IamAcl
        {
            Rid = Rids.Superuser,
            Description = "every permission",
            Users = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create(AdminUid, PermissionAction.Full)]),
        };
        var result = await store.CommitAsync(new Transaction
        {
            Compares = [Compare.Absent(BootstrapKey)],
            Writes =
            [
                WriteOp.Put(BootstrapKey, Encoding.UTF8.GetBytes(time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture))),
                WriteOp.Put(UserPrefix + AdminUid, JsonSerializer.SerializeToUtf8Bytes(admin, IamStoreJsonContext.Default.IamUser)),
                WriteOp.Put(AclKey(Rids.Superuser), JsonSerializer.SerializeToUtf8Bytes(acl, IamStoreJsonContext.Default.IamAcl)),
            ],
        }, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            return null; // another master bootstrapped first
        }

        if (written is not null)
        {
            await WriteSecretFileAsync(written, password + "\n", ct).ConfigureAwait(false);
        }

        await LoadAsync(ct).ConfigureAwait(false);
        LogBootstrapped(AdminUid, written ?? passwordFile!);
        return written;
    }

    /// <summary>Writes a file readable by its owner only, created that way (never briefly world-readable).</summary>
    internal static async Task WriteSecretFileAsync(string path, string content, CancellationToken ct)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
        await using var f = new FileStream(path, options);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await f.WriteAsync(Encoding.UTF8.GetBytes(content), ct).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ users

    public async Task<IamResult> CreateUserAsync(IamUser user, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (!IamNames.IsValidId(user.Uid, out var why))
        {
            return IamResult.Invalid($"uid: '{user.Uid}' {why}");
        }

        return await WriteAsync(s => s.Users.ContainsKey(user.Uid)
            ? (IamResult.Conflict($"User with uid `{user.Uid}` already exists."), [])
            : (new IamResult(IamOutcome.Created), [Put(user with { Created = time.GetUtcNow() })]), ct).ConfigureAwait(false);
    }

    /// <summary>Changes a user's description and/or password (a new password ends every token issued before it).</summary>
    public Task<IamResult> UpdateUserAsync(string uid, string? description, string? password, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Users.TryGetValue(uid, out var u))
            {
                return (IamResult.NotFound($"User with uid `{uid}` not found."), []);
            }

            var updated = u with
            {
                Description = description ?? u.Description,
                PasswordHash = password is null ? u.PasswordHash : PasswordHasher.Hash(password),
                CredentialVersion = password is null ? u.CredentialVersion : u.CredentialVersion + 1,
            };
            return (IamResult.Done, [Put(updated)]);
        }, ct);

    /// <summary>Removes a user, its group memberships and its grants, in one transaction.</summary>
    public Task<IamResult> DeleteUserAsync(string uid, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Users.ContainsKey(uid))
            {
                return (IamResult.NotFound($"User with uid `{uid}` not found."), []);
            }

            var changes = new List<Change> { new(UserPrefix + uid, null) };
            changes.AddRange(s.Groups.Values.Where(g => g.Members.Contains(uid)).Select(g => Put(g with { Members = g.Members.Remove(uid) })));
            changes.AddRange(s.Acls.Values.Where(a => a.Users.ContainsKey(uid)).Select(a => Put(a with { Users = a.Users.Remove(uid) })));
            return (IamResult.Done, changes);
        }, ct);

    // ------------------------------------------------------------------ groups

    public async Task<IamResult> CreateGroupAsync(string gid, string description, CancellationToken ct)
    {
        if (!IamNames.IsValidId(gid, out var why))
        {
            return IamResult.Invalid($"gid: '{gid}' {why}");
        }

        return await WriteAsync(s => s.Groups.ContainsKey(gid)
            ? (IamResult.Conflict($"Group with gid `{gid}` already exists."), [])
            : (new IamResult(IamOutcome.Created), [Put(new IamGroup { Gid = gid, Description = description })]), ct).ConfigureAwait(false);
    }

    public Task<IamResult> DeleteGroupAsync(string gid, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Groups.ContainsKey(gid))
            {
                return (IamResult.NotFound($"Group with gid `{gid}` not found."), []);
            }

            var changes = new List<Change> { new(GroupPrefix + gid, null) };
            changes.AddRange(s.Acls.Values.Where(a => a.Groups.ContainsKey(gid)).Select(a => Put(a with { Groups = a.Groups.Remove(gid) })));
            return (IamResult.Done, changes);
        }, ct);

    public Task<IamResult> AddMemberAsync(string gid, string uid, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Groups.TryGetValue(gid, out var g))
            {
                return (IamResult.NotFound($"Group with gid `{gid}` not found."), []);
            }

            if (!s.Users.ContainsKey(uid))
            {
                return (IamResult.NotFound($"User with uid `{uid}` not found."), []);
            }

            return g.Members.Contains(uid)
                ? (IamResult.Conflict($"User `{uid}` is already a member of group `{gid}`."), [])
                : (new IamResult(IamOutcome.Created), [Put(g with { Members = g.Members.Add(uid) })]);
        }, ct);

    public Task<IamResult> RemoveMemberAsync(string gid, string uid, CancellationToken ct) =>
        WriteAsync(s =>
            !s.Groups.TryGetValue(gid, out var g) ? (IamResult.NotFound($"Group with gid `{gid}` not found."), [])
            : !g.Members.Contains(uid) ? (IamResult.NotFound($"User `{uid}` is not a member of group `{gid}`."), [])
            : (IamResult.Done, [Put(g with { Members = g.Members.Remove(uid) })]), ct);

    // ------------------------------------------------------------------ ACLs

    public async Task<IamResult> CreateAclAsync(string rid, string description, CancellationToken ct)
    {
        if (!Rids.IsValid(rid, out var why))
        {
            return IamResult.Invalid($"rid: '{rid}' {why}");
        }

        return await WriteAsync(s => s.Acls.ContainsKey(rid)
            ? (IamResult.Conflict($"ACL for resource `{rid}` already exists."), [])
            : (new IamResult(IamOutcome.Created), [Put(new IamAcl { Rid = rid, Description = description })]), ct).ConfigureAwait(false);
    }

    public Task<IamResult> DeleteAclAsync(string rid, CancellationToken ct) =>
        WriteAsync(s => s.Acls.ContainsKey(rid)
            ? (IamResult.Done, [new Change(AclKey(rid), null)])
            : (IamResult.NotFound($"ACL for resource `{rid}` not found."), []), ct);

    /// <summary>
    /// Grants <paramref name="action"/> on <paramref name="rid"/> to a user (<paramref name="isGroup"/> false) or a group.
    /// The ACL is created on first use, as <c>dcos security org users grant</c> does.
    /// </summary>
    public async Task<IamResult> GrantAsync(string rid, string principal, bool isGroup, PermissionAction action, CancellationToken ct)
    {
        if (!Rids.IsValid(rid, out var why))
        {
            return IamResult.Invalid($"rid: '{rid}' {why}");
        }

        return await WriteAsync(s =>
        {
            if (isGroup ? !s.Groups.ContainsKey(principal) : !s.Users.ContainsKey(principal))
            {
                return (IamResult.NotFound(isGroup ? $"Group with gid `{principal}` not found." : $"User with uid `{principal}` not found."), []);
            }

            var acl = s.Acls.GetValueOrDefault(rid) ?? new IamAcl { Rid = rid };
            var map = isGroup ? acl.Groups : acl.Users;
            var held = map.GetValueOrDefault(principal);
            if ((held & action) == action)
            {
                return (IamResult.Conflict($"`{principal}` already has action `{PermissionActions.Describe(action)}` on `{rid}`."), []);
            }

            map = map.SetItem(principal, held | action);
            return (new IamResult(IamOutcome.Created), [Put(isGroup ? acl with { Groups = map } : acl with { Users = map })]);
        }, ct).ConfigureAwait(false);
    }

    public Task<IamResult> RevokeAsync(string rid, string principal, bool isGroup, PermissionAction action, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Acls.TryGetValue(rid, out var acl))
            {
                return (IamResult.NotFound($"ACL for resource `{rid}` not found."), []);
            }

            var map = isGroup ? acl.Groups : acl.Users;
            var held = map.GetValueOrDefault(principal);
            if ((held & action) == PermissionAction.None)
            {
                return (IamResult.NotFound($"`{principal}` has no action `{PermissionActions.Describe(action)}` on `{rid}`."), []);
            }

            var left = held & ~action;
            map = left == PermissionAction.None ? map.Remove(principal) : map.SetItem(principal, left);
            return (IamResult.Done, [Put(isGroup ? acl with { Groups = map } : acl with { Users = map })]);
        }, ct);

    // ------------------------------------------------------------------ credentials

    /// <summary>The user with this uid and password, or null. Costs a PBKDF2 derivation (by design).</summary>
    public IamUser? VerifyPassword(string uid, string password)
    {
        var user = Snapshot.Users.GetValueOrDefault(uid);
        return user?.PasswordHash is { } hash && PasswordHasher.Verify(password, hash) ? user : null;
    }

    public static string AclKey(string rid) => AclPrefix + Uri.EscapeDataString(rid);

    // ------------------------------------------------------------------ the write path

    private readonly record struct Change(string Key, object? Record);

    private static Change Put(IamUser u) => new(UserPrefix + u.Uid, u);

    private static Change Put(IamGroup g) => new(GroupPrefix + g.Gid, g);

    private static Change Put(IamAcl a) => new(AclKey(a.Rid), a);

    /// <summary>
    /// Computes a change against the current snapshot, writes it to the store (each key compared with the
    /// revision this master last saw, so a lost race is detected, not overwritten), then publishes the new snapshot.
    /// </summary>
    private async Task<IamResult> WriteAsync(Func<IamSnapshot, (IamResult Result, IReadOnlyList<Change> Changes)> plan, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var before = Snapshot;
            var (result, changes) = plan(before);
            if (!result.Succeeded || changes.Count == 0)
            {
                return result;
            }

            var revisions = _revisions;
            var tx = new Transaction
            {
                Compares = [.. changes.Select(c => new Compare(c.Key, revisions.GetValueOrDefault(c.Key)))],
                Writes = [.. changes.Select(c => c.Record is null ? WriteOp.Delete(c.Key) : WriteOp.Put(c.Key, Serialize(c.Record)))],
            };
            var commit = await store.CommitAsync(tx, ct).ConfigureAwait(false);
            if (!commit.Succeeded)
            {
                // Another master changed IAM behind this one's back (only possible around a fail-over): reload and refuse.
                await LoadAsync(ct).ConfigureAwait(false);
                return IamResult.Conflict("the permissions changed concurrently; retry");
            }

            var users = before.Users;
            var groups = before.Groups;
            var acls = before.Acls;
            var newRevisions = revisions;
            foreach (var c in changes)
            {
                newRevisions = c.Record is null ? newRevisions.Remove(c.Key) : newRevisions.SetItem(c.Key, commit.Revision);
                switch (c.Record)
                {
                    case IamUser u:
                        users = users.SetItem(u.Uid, u);
                        break;
                    case IamGroup g:
                        groups = groups.SetItem(g.Gid, g);
                        break;
                    case IamAcl a:
                        acls = acls.SetItem(a.Rid, a);
                        break;
                    case null when c.Key.StartsWith(UserPrefix, StringComparison.Ordinal):
                        users = users.Remove(c.Key[UserPrefix.Length..]);
                        break;
                    case null when c.Key.StartsWith(GroupPrefix, StringComparison.Ordinal):
                        groups = groups.Remove(c.Key[GroupPrefix.Length..]);
                        break;
                    case null:
                        acls = acls.Remove(Uri.UnescapeDataString(c.Key[AclPrefix.Length..]));
                        break;
                }
            }

            _revisions = newRevisions;
            Publish(new IamSnapshot(users, groups, acls));
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void Publish(IamSnapshot snapshot)
    {
        Volatile.Write(ref _snapshot, snapshot);
        Interlocked.Increment(ref _generation);
    }

    private static byte[] Serialize(object record) => record switch
    {
        IamUser u => JsonSerializer.SerializeToUtf8Bytes(u, IamStoreJsonContext.Default.IamUser),
        IamGroup g => JsonSerializer.SerializeToUtf8Bytes(g, IamStoreJsonContext.Default.IamGroup),
        IamAcl a => JsonSerializer.SerializeToUtf8Bytes(a, IamStoreJsonContext.Default.IamAcl),
        _ => throw new ArgumentException($"not an IAM record: {record.GetType()}", nameof(record)),
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "New cluster: created user '{Uid}' with every permission; its password is in {PasswordFile}")]
    private partial void LogBootstrapped(string uid, string passwordFile);
}
