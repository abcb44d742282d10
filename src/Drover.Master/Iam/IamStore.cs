using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Drover.Core.Security;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Iam;

/// <summary>Why an IAM change was refused (<see cref="None"/>: it was made). The API maps each onto DC/OS' status and code.</summary>
public enum IamError
{
    None,
    InvalidUid,
    InvalidGid,
    InvalidRid,
    InvalidData,
    UnknownUser,
    UnknownGroup,
    UnknownAcl,
    UserExists,
    GroupExists,
    AclExists,
    AlreadyMember,
    NotMember,
    UserNotInAcl,
    GroupNotInAcl,
    ActionNotHeld,

    /// <summary>The change would leave no account holding <c>dcos:superuser</c> (DC/OS' <c>ERR_NO_MORE_SUPERUSERS</c>).</summary>
    LastSuperuser,

    /// <summary>Another master changed IAM at the same time (only around a fail-over): retry.</summary>
    Concurrent,
}

/// <summary>What an IAM change came to: a value with a sentence, never an exception for a caller's mistake.</summary>
public readonly record struct IamResult(IamError Error, string Message = "")
{
    public bool Succeeded => Error == IamError.None;

    public static IamResult Done { get; } = new(IamError.None);

    public static IamResult Fail(IamError error, string message) => new(error, message);

    public static IamResult UnknownUser(string uid) => new(IamError.UnknownUser, $"User with uid `{uid}` not known.");

    public static IamResult UnknownGroup(string gid) => new(IamError.UnknownGroup, $"Group with gid `{gid}` not known.");

    public static IamResult UnknownAcl(string rid) => new(IamError.UnknownAcl, $"Protected resource with rid `{rid}` not known.");
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

    /// <summary>The grants a group's members receive through it.</summary>
    public ImmutableArray<Grant> GrantsOfGroup(string gid) =>
        [.. Acls.Values.Where(a => a.Groups.ContainsKey(gid)).Select(a => new Grant(a.Rid, a.Groups[gid]))];

    public bool GroupAllows(string gid, string rid, PermissionAction action) => Groups.ContainsKey(gid) && Policy.Allows(GrantsOfGroup(gid), rid, action);

    /// <summary>Accounts holding every action on <c>dcos:superuser</c>, directly or through a group.</summary>
    public int SuperuserCount() => Users.Keys.Count(IsSuperuser);

    /// <summary>Whether any account holds every action on <c>dcos:superuser</c> (stops at the first).</summary>
    public bool HasSuperuser() => Users.Keys.Any(IsSuperuser);

    private bool IsSuperuser(string uid) => Allows(uid, Rids.Superuser, PermissionAction.Full);
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
            if (!IamRules.IsValidPassword(password, out var why))
            {
                throw new InvalidOperationException($"--bootstrap-password-file {passwordFile}: the password {why}");
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
            Security.PrivateFile.Write(written, Encoding.UTF8.GetBytes(password + "\n"));
        }

        await LoadAsync(ct).ConfigureAwait(false);
        LogBootstrapped(AdminUid, written ?? passwordFile!);
        return written;
    }

    // ------------------------------------------------------------------ users

    /// <summary>
    /// Creates a user or service account. Its credential version starts at a random number, so the tokens of a
    /// deleted account with the same uid do not work for the new one.
    /// </summary>
    public async Task<IamResult> CreateUserAsync(IamUser user, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (!IamNames.IsValidId(user.Uid, out var why))
        {
            return IamResult.Fail(IamError.InvalidUid, $"Invalid user ID `{user.Uid}`: it {why}.");
        }

        var created = user with { Created = time.GetUtcNow(), CredentialVersion = RandomNumberGenerator.GetInt32(1, int.MaxValue / 2) };
        return await WriteAsync(s => s.Users.ContainsKey(user.Uid)
            ? (IamResult.Fail(IamError.UserExists, $"User with id `{user.Uid}` already exists."), [])
            : (IamResult.Done, [Put(created)]), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Changes an account's description, a user's password or a service account's public key. A new password or
    /// key ends every token issued before it. <paramref name="password"/> is the clear text (hashed here, outside
    /// the write lock); <paramref name="publicKeyPem"/> an already validated key (<see cref="ServiceKeys"/>).
    /// </summary>
    public async Task<IamResult> UpdateUserAsync(string uid, string? description, string? password, string? publicKeyPem, CancellationToken ct)
    {
        var hash = password is null ? null : PasswordHasher.Hash(password);
        return await WriteAsync(s =>
        {
            if (!s.Users.TryGetValue(uid, out var u))
            {
                return (IamResult.UnknownUser(uid), []);
            }

            if (hash is not null && u.Kind == AccountKind.Service)
            {
                return (IamResult.Fail(IamError.InvalidData, "Password update is not available for service user accounts."), []);
            }

            if (publicKeyPem is not null && u.Kind != AccountKind.Service)
            {
                return (IamResult.Fail(IamError.InvalidData, "A public key can be set only on a service account; a user logs in with a password."), []);
            }

            var credentialChanged = hash is not null || publicKeyPem is not null;
            var updated = u with
            {
                Description = description ?? u.Description,
                PasswordHash = hash ?? u.PasswordHash,
                PublicKey = publicKeyPem ?? u.PublicKey,
                CredentialVersion = credentialChanged ? unchecked(u.CredentialVersion + 1) : u.CredentialVersion,
            };
            return (IamResult.Done, [Put(updated)]);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Removes a user, its group memberships and its grants, in one transaction.</summary>
    public Task<IamResult> DeleteUserAsync(string uid, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Users.ContainsKey(uid))
            {
                return (IamResult.UnknownUser(uid), []);
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
            return IamResult.Fail(IamError.InvalidGid, $"Invalid group ID `{gid}`: it {why}.");
        }

        return await WriteAsync(s => s.Groups.ContainsKey(gid)
            ? (IamResult.Fail(IamError.GroupExists, $"Group with id `{gid}` already exists."), [])
            : (IamResult.Done, [Put(new IamGroup { Gid = gid, Description = description })]), ct).ConfigureAwait(false);
    }

    public Task<IamResult> UpdateGroupAsync(string gid, string description, CancellationToken ct) =>
        WriteAsync(s => s.Groups.TryGetValue(gid, out var g)
            ? (IamResult.Done, [Put(g with { Description = description })])
            : (IamResult.UnknownGroup(gid), []), ct);

    /// <summary>Removes a group and its grants (its members keep their own).</summary>
    public Task<IamResult> DeleteGroupAsync(string gid, CancellationToken ct) =>
        WriteAsync(s =>
        {
            if (!s.Groups.ContainsKey(gid))
            {
                return (IamResult.UnknownGroup(gid), []);
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
                return (IamResult.UnknownGroup(gid), []);
            }

            if (!s.Users.ContainsKey(uid))
            {
                return (IamResult.UnknownUser(uid), []);
            }

            return g.Members.Contains(uid)
                ? (IamResult.Fail(IamError.AlreadyMember, $"User `{uid}` is already a member of group `{gid}`."), [])
                : (IamResult.Done, [Put(g with { Members = g.Members.Add(uid) })]);
        }, ct);

    public Task<IamResult> RemoveMemberAsync(string gid, string uid, CancellationToken ct) =>
        WriteAsync(s =>
            !s.Groups.TryGetValue(gid, out var g) ? (IamResult.UnknownGroup(gid), [])
            : !s.Users.ContainsKey(uid) ? (IamResult.UnknownUser(uid), [])
            : !g.Members.Contains(uid) ? (IamResult.Fail(IamError.NotMember, $"User `{uid}` is not a member of group `{gid}`."), [])
            : (IamResult.Done, [Put(g with { Members = g.Members.Remove(uid) })]), ct);

    // ------------------------------------------------------------------ ACLs

    public async Task<IamResult> CreateAclAsync(string rid, string description, CancellationToken ct)
    {
        if (!IsValidRid(rid, out var why))
        {
            return IamResult.Fail(IamError.InvalidRid, $"Invalid resource ID `{rid}`: it {why}.");
        }

        return await WriteAsync(s => s.Acls.ContainsKey(rid)
            ? (IamResult.Fail(IamError.AclExists, $"ACL for resource `{rid}` already exists."), [])
            : (IamResult.Done, [Put(new IamAcl { Rid = rid, Description = description })]), ct).ConfigureAwait(false);
    }

    public Task<IamResult> UpdateAclAsync(string rid, string description, CancellationToken ct) =>
        WriteAsync(s => s.Acls.TryGetValue(rid, out var a)
            ? (IamResult.Done, [Put(a with { Description = description })])
            : (IamResult.UnknownAcl(rid), []), ct);

    public Task<IamResult> DeleteAclAsync(string rid, CancellationToken ct) =>
        WriteAsync(s => s.Acls.ContainsKey(rid)
            ? (IamResult.Done, [new Change(AclKey(rid), null)])
            : (IamResult.UnknownAcl(rid), []), ct);

    /// <summary>
    /// Grants <paramref name="action"/> on <paramref name="rid"/> to a user (<paramref name="isGroup"/> false) or a
    /// group. The ACL is created on first use (as <c>dcos security org users grant</c> does) unless
    /// <paramref name="createAcl"/> is false: the IAM API, as DC/OS', grants only on an existing ACL.
    /// Granting what is already held changes nothing and succeeds.
    /// </summary>
    public async Task<IamResult> GrantAsync(string rid, string principal, bool isGroup, PermissionAction action, CancellationToken ct, bool createAcl = true)
    {
        if (!IsValidRid(rid, out var why))
        {
            return IamResult.Fail(IamError.InvalidRid, $"Invalid resource ID `{rid}`: it {why}.");
        }

        return await WriteAsync(s =>
        {
            if (!s.Acls.TryGetValue(rid, out var acl))
            {
                if (!createAcl)
                {
                    return (IamResult.UnknownAcl(rid), []);
                }

                acl = new IamAcl { Rid = rid };
            }

            if (isGroup ? !s.Groups.ContainsKey(principal) : !s.Users.ContainsKey(principal))
            {
                return (isGroup ? IamResult.UnknownGroup(principal) : IamResult.UnknownUser(principal), []);
            }

            var map = isGroup ? acl.Groups : acl.Users;
            var held = map.GetValueOrDefault(principal);
            if ((held & action) == action)
            {
                return (IamResult.Done, []);
            }

            map = map.SetItem(principal, held | action);
            return (IamResult.Done, [Put(isGroup ? acl with { Groups = map } : acl with { Users = map })]);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes <paramref name="action"/> on <paramref name="rid"/> away from a user or group; <see cref="PermissionAction.Full"/>
    /// with <paramref name="all"/> takes every action it holds there (<c>DELETE /acls/{rid}/users/{uid}</c>).
    /// </summary>
    public Task<IamResult> RevokeAsync(string rid, string principal, bool isGroup, PermissionAction action, CancellationToken ct, bool all = false) =>
        WriteAsync(s =>
        {
            if (!s.Acls.TryGetValue(rid, out var acl))
            {
                return (IamResult.UnknownAcl(rid), []);
            }

            if (isGroup ? !s.Groups.ContainsKey(principal) : !s.Users.ContainsKey(principal))
            {
                return (isGroup ? IamResult.UnknownGroup(principal) : IamResult.UnknownUser(principal), []);
            }

            var map = isGroup ? acl.Groups : acl.Users;
            if (!map.TryGetValue(principal, out var held))
            {
                return (isGroup
                    ? IamResult.Fail(IamError.GroupNotInAcl, $"Group `{principal}` is not part of ACL for resource `{rid}`")
                    : IamResult.Fail(IamError.UserNotInAcl, $"User `{principal}` is not part of ACL for resource `{rid}`"), []);
            }

            if (all)
            {
                action = held;
            }
            else if ((held & action) != action)
            {
                var name = PermissionActions.Describe(action);
                return (IamResult.Fail(IamError.ActionNotHeld, $"Action `{name}` unknown for {(isGroup ? "group" : "user")} `{principal}` in ACL for resource `{rid}`"), []);
            }

            var left = held & ~action;
            map = left == PermissionAction.None ? map.Remove(principal) : map.SetItem(principal, left);
            return (IamResult.Done, [Put(isGroup ? acl with { Groups = map } : acl with { Users = map })]);
        }, ct);

    /// <summary>
    /// A resource id as <see cref="Rids.IsValid"/> has it, and without <c>%</c>: in a URL each <c>/</c> travels as
    /// <c>%252F</c>, so a literal <c>%2F</c> in an id could not be told from a slash.
    /// </summary>
    public static bool IsValidRid(string? rid, out string reason)
    {
        if (!Rids.IsValid(rid, out reason))
        {
            return false;
        }

        if (rid!.Contains('%', StringComparison.Ordinal))
        {
            reason = "may not contain '%'";
            return false;
        }

        return true;
    }

    // ------------------------------------------------------------------ credentials

    /// <summary>The user with this uid and password, or null. Costs a PBKDF2 derivation (by design).</summary>
    public IamUser? VerifyPassword(string uid, string password)
    {
        var user = Snapshot.Users.GetValueOrDefault(uid);
        if (user?.PasswordHash is not { } hash)
        {
            // The same work as for a known account, so the time an answer takes does not tell which uids exist.
            PasswordHasher.Verify(password, DummyHash.Value);
            return null;
        }

        return PasswordHasher.Verify(password, hash) ? user : null;
    }

    private static readonly Lazy<string> DummyHash = new(() => PasswordHasher.Hash(Convert.ToBase64String(RandomNumberGenerator.GetBytes(16))));

    public static string AclKey(string rid) => AclPrefix + Uri.EscapeDataString(rid);

    // ------------------------------------------------------------------ the write path

    private readonly record struct Change(string Key, object? Record);

    private static Change Put(IamUser u) => new(UserPrefix + u.Uid, u);

    private static Change Put(IamGroup g) => new(GroupPrefix + g.Gid, g);

    private static Change Put(IamAcl a) => new(AclKey(a.Rid), a);

    /// <summary>
    /// Computes a change against the current snapshot and the snapshot it leads to; refuses it when it would leave
    /// no account holding <c>dcos:superuser</c> (nobody could manage the cluster any more); writes it to the store
    /// (each key compared with the revision this master last saw, so a lost race is detected, not overwritten);
    /// then publishes the new snapshot.
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

            var after = Apply(before, changes);
            if (before.HasSuperuser() && !after.HasSuperuser())
            {
                return IamResult.Fail(IamError.LastSuperuser,
                    $"The last account holding `{Rids.Superuser}` cannot be removed or lose it: grant `{Rids.Superuser}` full to another account first.");
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
                return IamResult.Fail(IamError.Concurrent, "The permissions changed concurrently; retry.");
            }

            var newRevisions = revisions;
            foreach (var c in changes)
            {
                newRevisions = c.Record is null ? newRevisions.Remove(c.Key) : newRevisions.SetItem(c.Key, commit.Revision);
            }

            _revisions = newRevisions;
            Publish(after);
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static IamSnapshot Apply(IamSnapshot before, IReadOnlyList<Change> changes)
    {
        var users = before.Users;
        var groups = before.Groups;
        var acls = before.Acls;
        foreach (var c in changes)
        {
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

        return new IamSnapshot(users, groups, acls);
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
