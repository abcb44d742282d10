using System.Collections.Immutable;
using Drover.Core.Iam;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Iam;

/// <summary>
/// DC/OS' IAM API (bouncer) under <c>/acs/api/v1</c>: users and service accounts, groups and membership, ACLs and
/// grants, the permission views and the <c>{"allowed": bool}</c> check, in bouncer's shapes, status codes and error
/// codes, so DC/OS tools and scripts manage a Drover cluster unchanged. Every change goes through <see cref="IamStore"/>.
/// <para>
/// Who may call what (all on <see cref="Rids.Acs"/>, <c>dcos:adminrouter:acs</c>): reading needs <c>read</c>;
/// creating a user, group or ACL <c>create</c>; changing a description <c>update</c>; deleting, removing a member
/// or taking a grant away <c>delete</c>. What hands out power — adding a member to a group, granting an action,
/// setting a password or key (which takes the account over) — needs <c>full</c>. A user cannot change their own
/// password without that permission: DC/OS keeps password changes for administrators too.
/// </para>
/// </summary>
internal static class IamEndpoints
{
    /// <summary>A user body carries at most a description, a password and a PEM public key: 64 KiB is ample.</summary>
    private const long UserBodyLimit = 64 * 1024;

    /// <summary>Group and ACL bodies carry a description.</summary>
    private const long DescriptionBodyLimit = 16 * 1024;

    /// <summary>Routes that take no body.</summary>
    private const long NoBodyLimit = 1024;

    private static readonly string[] UserFields = ["description", "password", "public_key"];
    private static readonly string[] DescriptionFields = ["description"];

    public static void Map(IEndpointRouteBuilder app)
    {
        var acs = app.MapGroup(IamPaths.Base);

        acs.MapGet("/users", ListUsers).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapGet("/users/{uid}", GetUser).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapPut("/users/{uid}", CreateUserAsync).Iam(PermissionAction.Create, UserBodyLimit);
        acs.MapPatch("/users/{uid}", UpdateUserAsync).Access(RouteAccess.PermissionThenObjects(Rids.Acs, PermissionAction.Update)).MaxBody(UserBodyLimit);
        acs.MapDelete("/users/{uid}", DeleteUserAsync).Iam(PermissionAction.Delete, NoBodyLimit);
        acs.MapGet("/users/{uid}/groups", UserGroups).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapGet("/users/{uid}/permissions", UserPermissions).Iam(PermissionAction.Read, NoBodyLimit);

        acs.MapGet("/groups", ListGroups).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapGet("/groups/{gid}", GetGroup).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapPut("/groups/{gid}", CreateGroupAsync).Iam(PermissionAction.Create, DescriptionBodyLimit);
        acs.MapPatch("/groups/{gid}", UpdateGroupAsync).Iam(PermissionAction.Update, DescriptionBodyLimit);
        acs.MapDelete("/groups/{gid}", DeleteGroupAsync).Iam(PermissionAction.Delete, NoBodyLimit);
        acs.MapGet("/groups/{gid}/users", GroupUsers).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapPut("/groups/{gid}/users/{uid}", AddMemberAsync).Iam(PermissionAction.Full, NoBodyLimit);
        acs.MapDelete("/groups/{gid}/users/{uid}", RemoveMemberAsync).Iam(PermissionAction.Delete, NoBodyLimit);
        acs.MapGet("/groups/{gid}/permissions", GroupPermissions).Iam(PermissionAction.Read, NoBodyLimit);

        acs.MapGet("/acls", ListAcls).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapGet("/acls/{rid}", GetAcl).Iam(PermissionAction.Read, NoBodyLimit);
        acs.MapPut("/acls/{rid}", CreateAclAsync).Iam(PermissionAction.Create, DescriptionBodyLimit);
        acs.MapPatch("/acls/{rid}", UpdateAclAsync).Iam(PermissionAction.Update, DescriptionBodyLimit);
        acs.MapDelete("/acls/{rid}", DeleteAclAsync).Iam(PermissionAction.Delete, NoBodyLimit);
        acs.MapGet("/acls/{rid}/permissions", AclPermissions).Iam(PermissionAction.Read, NoBodyLimit);
        foreach (var isGroup in new[] { false, true })
        {
            var kind = isGroup ? "groups" : "users";
            acs.MapGet($"/acls/{{rid}}/{kind}/{{id}}", (IamStore iam, string rid, string id) => PrincipalActions(iam, rid, id, isGroup))
                .Iam(PermissionAction.Read, NoBodyLimit);
            acs.MapDelete($"/acls/{{rid}}/{kind}/{{id}}", (IamStore iam, string rid, string id, CancellationToken ct) => RevokeAsync(iam, rid, id, null, isGroup, ct))
                .Iam(PermissionAction.Delete, NoBodyLimit);
            acs.MapGet($"/acls/{{rid}}/{kind}/{{id}}/{{action}}", (IamStore iam, string rid, string id, string action) => Allowed(iam, rid, id, action, isGroup))
                .Iam(PermissionAction.Read, NoBodyLimit);
            acs.MapPut($"/acls/{{rid}}/{kind}/{{id}}/{{action}}", (IamStore iam, string rid, string id, string action, CancellationToken ct) => GrantAsync(iam, rid, id, action, isGroup, ct))
                .Iam(PermissionAction.Full, NoBodyLimit);
            acs.MapDelete($"/acls/{{rid}}/{kind}/{{id}}/{{action}}", (IamStore iam, string rid, string id, string action, CancellationToken ct) => RevokeAsync(iam, rid, id, action, isGroup, ct))
                .Iam(PermissionAction.Delete, NoBodyLimit);
        }
    }

    private static RouteHandlerBuilder Iam(this RouteHandlerBuilder route, PermissionAction action, long maxBody) =>
        route.Access(RouteAccess.Permission(Rids.Acs, action)).MaxBody(maxBody);

    // ------------------------------------------------------------------ users

    private static IResult ListUsers(IamStore iam, string? type)
    {
        bool services;
        switch (type)
        {
            case null or "" or "user":
                services = false;
                break;
            case "service":
                services = true;
                break;
            default:
                return IamHttp.InvalidData($"Query parameter `type` must be `service` (service accounts) or absent (users), not `{type}`.");
        }

        var users = iam.Snapshot.Users.Values.Where(u => (u.Kind == AccountKind.Service) == services).Select(UserView).ToImmutableArray();
        return IamHttp.Json(new IamArray<IamUserView>(users), IamJsonContext.Default.IamArrayIamUserView);
    }

    private static IResult GetUser(IamStore iam, string uid) =>
        iam.Snapshot.Users.TryGetValue(uid, out var u)
            ? IamHttp.Json(UserView(u), IamJsonContext.Default.IamUserView)
            : IamHttp.Failure(IamResult.UnknownUser(uid));

    private static async Task<IResult> CreateUserAsync(HttpContext http, IamStore iam, string uid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: true, UserFields);
        if (error is not null)
        {
            return error;
        }

        if (!IamNames.IsValidId(uid, out var why))
        {
            return IamHttp.Failure(IamResult.Fail(IamError.InvalidUid, $"Invalid user ID `{uid}`: it {why}."));
        }

        var password = fields.GetValueOrDefault("password");
        var key = fields.GetValueOrDefault("public_key");
        if ((password is null) == (key is null))
        {
            return IamHttp.InvalidData("Exactly one of `password` (a user) and `public_key` (a service account) must be provided in the request body.");
        }

        if (CheckDescription(fields) is { } bad)
        {
            return bad;
        }

        IamUser user;
        if (password is not null)
        {
            if (!IamRules.IsValidPassword(password, out why))
            {
                return IamHttp.InvalidData($"`password` {why}.");
            }

            user = new IamUser { Uid = uid, Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(password), Description = fields.GetValueOrDefault("description") ?? "" };
        }
        else
        {
            if (!ServiceKeys.TryNormalize(key, out var pem, out why))
            {
                return IamHttp.Error(StatusCodes.Status400BadRequest, "ERR_INVALID_PUBLIC_KEY", $"`public_key` {why}.");
            }

            user = new IamUser { Uid = uid, Kind = AccountKind.Service, PublicKey = pem, Description = fields.GetValueOrDefault("description") ?? "" };
        }

        return IamHttp.Created(await iam.CreateUserAsync(user, ct));
    }

    private static async Task<IResult> UpdateUserAsync(HttpContext http, IamStore iam, string uid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: true, UserFields);
        if (error is not null)
        {
            return error;
        }

        if (fields.Count == 0)
        {
            return IamHttp.InvalidData("The request body names nothing to change: give `description`, `password` or `public_key`.");
        }

        var password = fields.GetValueOrDefault("password");
        var key = fields.GetValueOrDefault("public_key");
        if ((password is not null || key is not null) && !http.Allows(Rids.Acs, PermissionAction.Full))
        {
            // A new password or key takes the account over: that is handing out its power.
            return http.Forbidden(Rids.Acs, PermissionAction.Full);
        }

        if (password is not null && key is not null)
        {
            return IamHttp.InvalidData("Give either `password` (a user) or `public_key` (a service account), not both.");
        }

        if (CheckDescription(fields) is { } bad)
        {
            return bad;
        }

        if (password is not null && !IamRules.IsValidPassword(password, out var why))
        {
            return IamHttp.InvalidData($"`password` {why}.");
        }

        string? pem = null;
        if (key is not null && !ServiceKeys.TryNormalize(key, out pem, out why))
        {
            return IamHttp.Error(StatusCodes.Status400BadRequest, "ERR_INVALID_PUBLIC_KEY", $"`public_key` {why}.");
        }

        if (!iam.Snapshot.Users.ContainsKey(uid))
        {
            return IamHttp.Failure(IamResult.UnknownUser(uid)); // before hashing: an unknown uid costs nothing
        }

        return IamHttp.NoContent(await iam.UpdateUserAsync(uid, fields.GetValueOrDefault("description"), password, pem, ct));
    }

    private static async Task<IResult> DeleteUserAsync(IamStore iam, string uid, CancellationToken ct) =>
        IamHttp.NoContent(await iam.DeleteUserAsync(uid, ct));

    private static IResult UserGroups(IamStore iam, string uid)
    {
        var s = iam.Snapshot;
        if (!s.Users.ContainsKey(uid))
        {
            return IamHttp.Failure(IamResult.UnknownUser(uid));
        }

        var entries = s.GroupsOf(uid).Select(g => new IamUserGroupEntry { Group = GroupView(g), MembershipUrl = IamPaths.Membership(g.Gid, uid) }).ToImmutableArray();
        return IamHttp.Json(new IamArray<IamUserGroupEntry>(entries), IamJsonContext.Default.IamArrayIamUserGroupEntry);
    }

    private static IResult UserPermissions(IamStore iam, string uid)
    {
        var s = iam.Snapshot;
        if (!s.Users.ContainsKey(uid))
        {
            return IamHttp.Failure(IamResult.UnknownUser(uid));
        }

        var direct = DirectPermissions(s, uid, isGroup: false);
        var groups = s.GroupsOf(uid)
            .SelectMany(g => s.Acls.Values.Where(a => a.Groups.ContainsKey(g.Gid)).Select(a => new IamGroupPermissionEntry
            {
                Rid = a.Rid,
                Gid = g.Gid,
                Description = a.Description,
                AclUrl = IamPaths.Acl(a.Rid),
                MembershipUrl = IamPaths.Membership(g.Gid, uid),
                Actions = Actions(a.Rid, g.Gid, isGroup: true, a.Groups[g.Gid]),
            }))
            .ToImmutableArray();
        return IamHttp.Json(new IamUserPermissions { Direct = direct, Groups = groups }, IamJsonContext.Default.IamUserPermissions);
    }

    // ------------------------------------------------------------------ groups

    private static IResult ListGroups(IamStore iam) =>
        IamHttp.Json(new IamArray<IamGroupView>([.. iam.Snapshot.Groups.Values.Select(GroupView)]), IamJsonContext.Default.IamArrayIamGroupView);

    private static IResult GetGroup(IamStore iam, string gid) =>
        iam.Snapshot.Groups.TryGetValue(gid, out var g)
            ? IamHttp.Json(GroupView(g), IamJsonContext.Default.IamGroupView)
            : IamHttp.Failure(IamResult.UnknownGroup(gid));

    private static async Task<IResult> CreateGroupAsync(HttpContext http, IamStore iam, string gid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: false, DescriptionFields);
        return error ?? CheckDescription(fields) ?? IamHttp.Created(await iam.CreateGroupAsync(gid, fields.GetValueOrDefault("description") ?? "", ct));
    }

    private static async Task<IResult> UpdateGroupAsync(HttpContext http, IamStore iam, string gid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: true, DescriptionFields);
        if (error is not null)
        {
            return error;
        }

        return fields.GetValueOrDefault("description") is not { } description
            ? IamHttp.InvalidData("The request body names nothing to change: give `description`.")
            : CheckDescription(fields) ?? IamHttp.NoContent(await iam.UpdateGroupAsync(gid, description, ct));
    }

    private static async Task<IResult> DeleteGroupAsync(IamStore iam, string gid, CancellationToken ct) =>
        IamHttp.NoContent(await iam.DeleteGroupAsync(gid, ct));

    private static IResult GroupUsers(IamStore iam, string gid)
    {
        var s = iam.Snapshot;
        if (!s.Groups.TryGetValue(gid, out var g))
        {
            return IamHttp.Failure(IamResult.UnknownGroup(gid));
        }

        var entries = g.Members.Where(s.Users.ContainsKey)
            .Select(uid => new IamGroupUserEntry { MembershipUrl = IamPaths.Membership(gid, uid), User = UserView(s.Users[uid]) })
            .ToImmutableArray();
        return IamHttp.Json(new IamArray<IamGroupUserEntry>(entries), IamJsonContext.Default.IamArrayIamGroupUserEntry);
    }

    private static async Task<IResult> AddMemberAsync(IamStore iam, string gid, string uid, CancellationToken ct) =>
        IamHttp.NoContent(await iam.AddMemberAsync(gid, uid, ct));

    private static async Task<IResult> RemoveMemberAsync(IamStore iam, string gid, string uid, CancellationToken ct) =>
        IamHttp.NoContent(await iam.RemoveMemberAsync(gid, uid, ct));

    /// <summary>The permissions granted to the user or group <paramref name="id"/> itself (not through a group).</summary>
    private static ImmutableArray<IamPermissionEntry> DirectPermissions(IamSnapshot s, string id, bool isGroup) =>
        s.Acls.Values.Where(a => (isGroup ? a.Groups : a.Users).ContainsKey(id))
            .Select(a => new IamPermissionEntry { Rid = a.Rid, Description = a.Description, AclUrl = IamPaths.Acl(a.Rid), Actions = Actions(a.Rid, id, isGroup, (isGroup ? a.Groups : a.Users)[id]) })
            .ToImmutableArray();

    private static IResult GroupPermissions(IamStore iam, string gid)
    {
        var s = iam.Snapshot;
        if (!s.Groups.ContainsKey(gid))
        {
            return IamHttp.Failure(IamResult.UnknownGroup(gid));
        }

        var entries = DirectPermissions(s, gid, isGroup: true);
        return IamHttp.Json(new IamArray<IamPermissionEntry>(entries), IamJsonContext.Default.IamArrayIamPermissionEntry);
    }

    // ------------------------------------------------------------------ ACLs

    private static IResult ListAcls(IamStore iam) =>
        IamHttp.Json(new IamArray<IamAclView>([.. iam.Snapshot.Acls.Values.Select(AclView)]), IamJsonContext.Default.IamArrayIamAclView);

    private static IResult GetAcl(IamStore iam, string rid)
    {
        rid = IamPaths.DecodeRid(rid);
        return iam.Snapshot.Acls.TryGetValue(rid, out var a)
            ? IamHttp.Json(AclView(a), IamJsonContext.Default.IamAclView)
            : IamHttp.Failure(IamResult.UnknownAcl(rid));
    }

    private static async Task<IResult> CreateAclAsync(HttpContext http, IamStore iam, string rid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: false, DescriptionFields);
        return error ?? CheckDescription(fields) ?? IamHttp.Created(await iam.CreateAclAsync(IamPaths.DecodeRid(rid), fields.GetValueOrDefault("description") ?? "", ct));
    }

    private static async Task<IResult> UpdateAclAsync(HttpContext http, IamStore iam, string rid, CancellationToken ct)
    {
        var (fields, error) = await IamHttp.ReadBodyAsync(http, required: true, DescriptionFields);
        if (error is not null)
        {
            return error;
        }

        return fields.GetValueOrDefault("description") is not { } description
            ? IamHttp.InvalidData("The request body names nothing to change: give `description`.")
            : CheckDescription(fields) ?? IamHttp.NoContent(await iam.UpdateAclAsync(IamPaths.DecodeRid(rid), description, ct));
    }

    private static async Task<IResult> DeleteAclAsync(IamStore iam, string rid, CancellationToken ct) =>
        IamHttp.NoContent(await iam.DeleteAclAsync(IamPaths.DecodeRid(rid), ct));

    private static IResult AclPermissions(IamStore iam, string rid)
    {
        rid = IamPaths.DecodeRid(rid);
        if (!iam.Snapshot.Acls.TryGetValue(rid, out var a))
        {
            return IamHttp.Failure(IamResult.UnknownAcl(rid));
        }

        return IamHttp.Json(new IamAclPermissions
        {
            Users = [.. a.Users.Select(kv => new IamAclUserActions { Uid = kv.Key, UserUrl = IamPaths.User(kv.Key), Actions = Actions(rid, kv.Key, isGroup: false, kv.Value) })],
            Groups = [.. a.Groups.Select(kv => new IamAclGroupActions { Gid = kv.Key, GroupUrl = IamPaths.Group(kv.Key), Actions = Actions(rid, kv.Key, isGroup: true, kv.Value) })],
        }, IamJsonContext.Default.IamAclPermissions);
    }

    /// <summary><c>GET /acls/{rid}/users/{uid}</c> (or groups): the actions granted there directly.</summary>
    private static IResult PrincipalActions(IamStore iam, string rid, string id, bool isGroup)
    {
        rid = IamPaths.DecodeRid(rid);
        var s = iam.Snapshot;
        if (!s.Acls.TryGetValue(rid, out var a))
        {
            return IamHttp.Failure(IamResult.UnknownAcl(rid));
        }

        if (UnknownPrincipal(s, id, isGroup) is { } unknown)
        {
            return IamHttp.Failure(unknown);
        }

        if (!(isGroup ? a.Groups : a.Users).TryGetValue(id, out var held))
        {
            return IamHttp.Failure(isGroup
                ? IamResult.Fail(IamError.GroupNotInAcl, $"Group `{id}` is not part of ACL for resource `{rid}`")
                : IamResult.Fail(IamError.UserNotInAcl, $"User `{id}` is not part of ACL for resource `{rid}`"));
        }

        return IamHttp.Json(new IamArray<IamActionView>(Actions(rid, id, isGroup, held)), IamJsonContext.Default.IamArrayIamActionView);
    }

    /// <summary>
    /// <c>GET /acls/{rid}/users/{uid}/{action}</c>: whether the account may do the action on the resource, everything
    /// counted — its groups, grants on a parent resource, <c>dcos:superuser</c> — as the gate decides it. The resource
    /// needs no ACL of its own (<c>…:services:/team-a/web</c> is covered by a grant on <c>…:services:/team-a</c>).
    /// </summary>
    private static IResult Allowed(IamStore iam, string rid, string id, string action, bool isGroup)
    {
        rid = IamPaths.DecodeRid(rid);
        if (!IamStore.IsValidRid(rid, out var why))
        {
            return IamHttp.Failure(IamResult.Fail(IamError.InvalidRid, $"Invalid resource ID `{rid}`: it {why}."));
        }

        if (!TryParseAction(action, out var parsed, out var bad))
        {
            return bad;
        }

        var s = iam.Snapshot;
        if (UnknownPrincipal(s, id, isGroup) is { } unknown)
        {
            return IamHttp.Failure(unknown);
        }

        var allowed = isGroup ? s.GroupAllows(id, rid, parsed) : s.Allows(id, rid, parsed);
        return IamHttp.Json(new IamAllowed(allowed), IamJsonContext.Default.IamAllowed);
    }

    private static async Task<IResult> GrantAsync(IamStore iam, string rid, string id, string action, bool isGroup, CancellationToken ct)
    {
        if (!TryParseAction(action, out var parsed, out var bad))
        {
            return bad;
        }

        return IamHttp.NoContent(await iam.GrantAsync(IamPaths.DecodeRid(rid), id, isGroup, parsed, ct, createAcl: false));
    }

    /// <summary>Takes one action away, or (<paramref name="action"/> null) every action the user or group holds on the resource.</summary>
    private static async Task<IResult> RevokeAsync(IamStore iam, string rid, string id, string? action, bool isGroup, CancellationToken ct)
    {
        var parsed = PermissionAction.Full;
        if (action is not null && !TryParseAction(action, out parsed, out var bad))
        {
            return bad;
        }

        return IamHttp.NoContent(await iam.RevokeAsync(IamPaths.DecodeRid(rid), id, isGroup, parsed, ct, all: action is null));
    }

    // ------------------------------------------------------------------ views and checks

    private static IamUserView UserView(IamUser u) => new()
    {
        Uid = u.Uid,
        Url = IamPaths.User(u.Uid),
        Description = u.Description,
        IsService = u.Kind == AccountKind.Service,
        PublicKey = u.Kind == AccountKind.Service ? u.PublicKey : null,
    };

    private static IamGroupView GroupView(IamGroup g) => new() { Gid = g.Gid, Url = IamPaths.Group(g.Gid), Description = g.Description };

    private static IamAclView AclView(IamAcl a) => new() { Rid = a.Rid, Url = IamPaths.Acl(a.Rid), Description = a.Description };

    private static ImmutableArray<IamActionView> Actions(string rid, string principal, bool isGroup, PermissionAction held)
    {
        var basePath = isGroup ? IamPaths.AclGroup(rid, principal) : IamPaths.AclUser(rid, principal);
        return [.. PermissionActions.ToNames(held).Select(name => new IamActionView(name, $"{basePath}/{name}"))];
    }

    private static IamResult? UnknownPrincipal(IamSnapshot s, string id, bool isGroup) =>
        isGroup
            ? s.Groups.ContainsKey(id) ? null : IamResult.UnknownGroup(id)
            : s.Users.ContainsKey(id) ? null : IamResult.UnknownUser(id);

    private static bool TryParseAction(string text, out PermissionAction action, out IResult error)
    {
        if (PermissionActions.TryParse(text, out action) && text == text.ToLowerInvariant())
        {
            error = null!;
            return true;
        }

        error = IamHttp.InvalidData($"Action `{text}` is not one of {string.Join(", ", PermissionActions.Names)}.");
        return false;
    }

    private static IResult? CheckDescription(Dictionary<string, string> fields) =>
        fields.GetValueOrDefault("description") is { Length: > IamRules.MaxDescriptionLength }
            ? IamHttp.InvalidData($"`description` must be at most {IamRules.MaxDescriptionLength} characters.")
            : null;
}
