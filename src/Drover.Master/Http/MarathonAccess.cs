using Drover.Core.Marathon;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Http;

/// <summary>
/// The per-object checks of Marathon's <c>/v2</c> (after the gate's <see cref="Rids.MarathonService"/>):
/// apps and groups by path, <c>dcos:service:marathon:marathon:services:{path}</c>, with DC/OS Marathon's
/// actions — read to see, create to deploy a new app or group, update to change, scale, restart, kill
/// instances or roll back, delete to remove. Writing an app definition that names a <c>user</c> also
/// needs <see cref="Rids.TaskUser"/> create for it. A request that touches several apps is checked for
/// all of them before anything changes; a 403 names the first permission missing, in Marathon's
/// <c>{"message"}</c> shape. Listings leave out what the caller may not read.
/// </summary>
internal static class MarathonAccess
{
    /// <summary>Whether the caller may read the app or group at <paramref name="path"/>. Built once per request for listings.</summary>
    public static Func<string, bool> Reader(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return http.Caller().Kind == CallerKind.DevAnonymous
            ? static _ => true
            : path => http.Allows(Rids.MarathonPath(path), PermissionAction.Read);
    }

    /// <summary>A 403 when the caller lacks <paramref name="action"/> on the app or group at <paramref name="path"/>; null when it holds it.</summary>
    public static IResult? Require(HttpContext http, string path, PermissionAction action) =>
        http.Allows(Rids.MarathonPath(path), action) ? null : http.Forbidden(Rids.MarathonPath(path), action);

    /// <summary>
    /// The first check of a write that creates or updates depending on whether the app or group exists: the caller
    /// must hold read, create or update on <paramref name="path"/> before anything is looked up there. Else a 403
    /// naming <paramref name="path"/> (the caller's own words) with <paramref name="action"/>, the same whether
    /// or not anything exists at the path, so the answer tells nothing about paths the caller has no permission on.
    /// </summary>
    public static IResult? RequireSomeAccess(HttpContext http, string path, PermissionAction action = PermissionAction.Update)
    {
        var rid = Rids.MarathonPath(path);
        return http.Allows(rid, PermissionAction.Read) || http.Allows(rid, PermissionAction.Create) || http.Allows(rid, PermissionAction.Update)
            ? null
            : http.Forbidden(rid, action);
    }

    /// <summary>A 403 for the first of <paramref name="needs"/> the caller lacks; null when it holds them all.</summary>
    public static IResult? Require(HttpContext http, IEnumerable<Grant> needs)
    {
        ArgumentNullException.ThrowIfNull(needs);
        foreach (var need in needs)
        {
            if (!http.Allows(need.Rid, need.Actions))
            {
                return http.Forbidden(need.Rid, need.Actions);
            }
        }

        return null;
    }

    /// <summary>
    /// What writing <paramref name="app"/> (canonical: its id absolute and dot-free, so the check is on the
    /// path that is written) needs: create on its path when it is new, update when it exists, and the
    /// run-as permission when it names a user. Without <c>user</c> the task runs as the agent's
    /// <c>--default-task-user</c>, the unprivileged account any deployer gets: no run-as permission.
    /// </summary>
    public static IEnumerable<Grant> ToWrite(AppDefinition app, bool exists)
    {
        ArgumentNullException.ThrowIfNull(app);
        yield return new Grant(Rids.MarathonPath(app.Id!), exists ? PermissionAction.Update : PermissionAction.Create);
        if (app.User is { } user)
        {
            yield return new Grant(Rids.TaskUser(user), PermissionAction.Create);
        }
    }

    /// <summary>One permission on an app or group path.</summary>
    public static Grant On(string path, PermissionAction action) => new(Rids.MarathonPath(path), action);
}
