using System.Collections.Immutable;

namespace Drover.Core.Security;

/// <summary>
/// What a grant allows on a resource, as DC/OS names its actions. <see cref="Full"/> is every action.
/// Drover's routes map onto these: reading is <see cref="Read"/>, deploying a new app <see cref="Create"/>,
/// changing one (scale, restart, update) <see cref="Update"/>, removing or killing <see cref="Delete"/>.
/// </summary>
[Flags]
public enum PermissionAction
{
    None = 0,
    Create = 1,
    Read = 2,
    Update = 4,
    Delete = 8,
    Full = Create | Read | Update | Delete,
}

public static class PermissionActions
{
    /// <summary>The DC/OS action names, in the order they are listed.</summary>
    public static readonly ImmutableArray<string> Names = ["create", "read", "update", "delete", "full"];

    public static bool TryParse(string? text, out PermissionAction action)
    {
        action = text?.ToLowerInvariant() switch
        {
            "create" => PermissionAction.Create,
            "read" => PermissionAction.Read,
            "update" => PermissionAction.Update,
            "delete" => PermissionAction.Delete,
            "full" => PermissionAction.Full,
            _ => PermissionAction.None,
        };
        return action != PermissionAction.None;
    }

    /// <summary>The names of the actions in <paramref name="actions"/>: <c>full</c> alone when all are there.</summary>
    public static ImmutableArray<string> ToNames(PermissionAction actions)
    {
        if ((actions & PermissionAction.Full) == PermissionAction.Full)
        {
            return ["full"];
        }

        var names = ImmutableArray.CreateBuilder<string>();
        foreach (var (flag, name) in new[] { (PermissionAction.Create, "create"), (PermissionAction.Read, "read"), (PermissionAction.Update, "update"), (PermissionAction.Delete, "delete") })
        {
            if ((actions & flag) != 0)
            {
                names.Add(name);
            }
        }

        return names.ToImmutable();
    }

    public static string Describe(PermissionAction action) => string.Join(",", ToNames(action));
}

/// <summary>Actions granted on one resource id (a DC/OS permission string such as <c>dcos:service:marathon:marathon:services:/team-a</c>).</summary>
public sealed record Grant(string Rid, PermissionAction Actions);

/// <summary>
/// Resource ids (DC/OS permission strings) and how a grant on one covers another.
/// <para>
/// Hierarchy: a grant on <c>R</c> covers <c>R</c> itself and every id that continues <c>R</c> after a
/// <c>:</c> or a <c>/</c> — so <c>…:services:/team-a</c> covers <c>…:services:/team-a/web</c> but not
/// <c>…:services:/team-ab</c>, and <c>dcos:mesos:master:task:user</c> covers every user. A grant on a
/// path ending in <c>/</c> (<c>…:services:/</c>) covers everything below it. <see cref="Superuser"/>
/// covers every id. Ids compare case-sensitively, as app ids and user names do.
/// </para>
/// </summary>
public static class Rids
{
    public const string Superuser = "dcos:superuser";

    /// <summary>The Marathon API (<c>/v2</c>) as a whole, as Admin Router guards it; apps are then checked one by one.</summary>
    public const string MarathonService = "dcos:adminrouter:service:marathon";

    /// <summary>Mesos' read endpoints and operator API (<c>/master/state</c>, <c>/api/v1</c>), as Admin Router guards them.</summary>
    public const string MesosOps = "dcos:adminrouter:ops:mesos";

    /// <summary>The master's Prometheus metrics (as Mesos' endpoint permission names <c>/metrics/snapshot</c>).</summary>
    public const string Metrics = "dcos:mesos:master:endpoint:path:/metrics";

    /// <summary>Users, groups, service accounts and permissions (<c>/acs/api/v1</c>), as Admin Router guards them.</summary>
    public const string Acs = "dcos:adminrouter:acs";

    /// <summary>Agents: drain (delete) and undrain (update), as DC/OS names agent drain and reactivation.</summary>
    public const string Agents = "dcos:mesos:master:agent";

    /// <summary>Issuing join tokens for new agents (create); covered by a grant on <see cref="Agents"/>.</summary>
    public const string AgentJoin = "dcos:mesos:master:agent:join";

    /// <summary>Marathon's <c>/v2/info</c> (read).</summary>
    public const string MarathonConfig = "dcos:service:marathon:marathon:admin:config";

    /// <summary>Marathon's event stream <c>/v2/events</c> (read).</summary>
    public const string MarathonEvents = "dcos:service:marathon:marathon:admin:events";

    /// <summary>Marathon's <c>/v2/leader</c> (read).</summary>
    public const string MarathonLeader = "dcos:service:marathon:marathon:admin:leader";

    /// <summary>
    /// One-off tasks submitted through <c>/drover/v1/tasks</c> (they belong to no app): submitting (create), and
    /// seeing, reading the sandbox of (read) and killing (delete) one's own.
    /// </summary>
    public const string Tasks = "drover:tasks";

    /// <summary>
    /// Every one-off task, whoever submitted it (read: see it and read its sandbox; delete: kill it) — for operators.
    /// Deliberately not below <see cref="Tasks"/>: every team gets a grant on <c>drover:tasks</c> for its own tasks,
    /// and that grant must not cover other people's (a grant covers the ids that continue it after a <c>:</c>).
    /// </summary>
    public const string AdminTasks = "drover:admin:tasks";

    /// <summary>The audit log.</summary>
    public const string Audit = "drover:audit";

    /// <summary>An app or group of Marathon's, by path: create/read/update/delete.</summary>
    public static string MarathonPath(string appOrGroupPath) => "dcos:service:marathon:marathon:services:" + appOrGroupPath;

    /// <summary>Reading the sandbox (logs, files) of an app's tasks.</summary>
    public static string SandboxOfApp(string appPath) => "dcos:mesos:agent:sandbox:app_id:" + appPath;

    /// <summary>Running a task as a Unix user (create).</summary>
    public static string TaskUser(string user) => "dcos:mesos:master:task:user:" + user;

    /// <summary>Registering a framework in a role (create).</summary>
    public static string FrameworkRole(string role) => "dcos:mesos:master:framework:role:" + role;

    /// <summary>Making reservations for a role (create).</summary>
    public static string ReservationRole(string role) => "dcos:mesos:master:reservation:role:" + role;

    /// <summary>Tearing down a framework registered by a principal (delete).</summary>
    public static string FrameworkPrincipal(string principal) => "dcos:mesos:master:framework:principal:" + principal;

    /// <summary>A secret, by path: create/read (the value)/update/delete.</summary>
    public static string Secret(string path) => "dcos:secrets:default:" + (path.StartsWith('/') ? path : "/" + path);

    /// <summary>Listing the names of the secrets under a path prefix (read); <c>""</c> or <c>"/"</c> is every secret.</summary>
    public static string SecretList(string prefix) => "dcos:secrets:list:default:/" + prefix.Trim('/');

    /// <summary>Whether a grant on <paramref name="granted"/> covers <paramref name="requested"/>.</summary>
    public static bool Covers(string granted, string requested)
    {
        ArgumentNullException.ThrowIfNull(granted);
        ArgumentNullException.ThrowIfNull(requested);
        if (granted == Superuser || granted == requested)
        {
            return true;
        }

        if (!requested.StartsWith(granted, StringComparison.Ordinal))
        {
            return false;
        }

        var last = granted[^1];
        if (last is '/' or ':')
        {
            return true;
        }

        var next = requested[granted.Length];
        return next is ':' or '/';
    }

    /// <summary>
    /// A resource id is ASCII without control characters or whitespace, at most 1,024 characters, made of
    /// <c>:</c>-separated non-empty parts (a trailing path part may contain <c>/</c>).
    /// </summary>
    public static bool IsValid(string? rid, out string reason)
    {
        if (string.IsNullOrEmpty(rid))
        {
            reason = "is empty";
            return false;
        }

        if (rid.Length > 1024)
        {
            reason = "is longer than 1024 characters";
            return false;
        }

        foreach (var c in rid)
        {
            if (c <= ' ' || c >= 0x7f)
            {
                reason = "may contain only printable ASCII characters without spaces";
                return false;
            }
        }

        if (rid.StartsWith(':') || rid.Contains("::", StringComparison.Ordinal))
        {
            reason = "has an empty ':'-separated part";
            return false;
        }

        reason = "";
        return true;
    }
}

/// <summary>Evaluates grants: pure, allocation-free on the hot path.</summary>
public static class Policy
{
    /// <summary>Whether any grant covers <paramref name="rid"/> with every action of <paramref name="action"/>.</summary>
    public static bool Allows(ImmutableArray<Grant> grants, string rid, PermissionAction action)
    {
        var missing = action;
        foreach (var g in grants)
        {
            if ((g.Actions & missing) != 0 && Rids.Covers(g.Rid, rid))
            {
                missing &= ~g.Actions;
                if (missing == PermissionAction.None)
                {
                    return true;
                }
            }
        }

        return missing == PermissionAction.None;
    }
}
