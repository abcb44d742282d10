using Drover.Core.Mesos;
using Drover.Core.Security;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Mesos;

/// <summary>
/// Who sends a scheduler call, as the security gate authenticated them (HTTP Basic principal and secret, or a
/// login token). <see cref="Principal"/> null means a dev cluster without logins: nothing is checked and nothing
/// is changed, as a Mesos master without <c>--authenticate_http_frameworks</c> and without an authorizer.
/// </summary>
/// <param name="Principal">The authenticated uid: it must be the framework's <c>FrameworkInfo.principal</c>.</param>
/// <param name="Allows">Whether the principal holds an action on a resource id (read live from the IAM snapshot, so a revoked grant applies to the next call).</param>
internal sealed record SchedulerCaller(string? Principal, Func<string, PermissionAction, bool> Allows)
{
    /// <summary>A dev cluster without logins: every call allowed, as before security existed.</summary>
    public static SchedulerCaller Anyone { get; } = new(null, static (_, _) => true);
}

/// <summary>
/// Mesos 1.11's framework authentication and authorization (<c>--authenticate_http_frameworks</c> with an
/// authorizer), with DC/OS permission strings (<see cref="Rids"/>):
/// <list type="bullet">
/// <item>SUBSCRIBE: <c>FrameworkInfo.principal</c> must be the authenticated principal (400 before the stream); an
/// unset one is filled in from it. A known framework keeps the principal it registered with (persisted with its
/// record): another one gets an ERROR event. Each role needs <see cref="Rids.FrameworkRole"/> create and
/// <c>FrameworkInfo.user</c> needs <see cref="Rids.TaskUser"/> create (ERROR event: Mesos authorizes after the
/// stream started).</item>
/// <item>Every other call: the authenticated principal must be the framework's (400, as Mesos, without naming the framework's).</item>
/// <item>ACCEPT: each task's effective user (its command's user, else its executor's, else the framework's) needs
/// <see cref="Rids.TaskUser"/> create; a refused task gets TASK_ERROR with <c>REASON_TASK_UNAUTHORIZED</c> (a group,
/// <c>REASON_TASK_GROUP_UNAUTHORIZED</c> for each of its tasks) and uses nothing of the offer.</item>
/// </list>
/// </summary>
internal sealed partial class FrameworkManager
{
    /// <summary>Mesos' 400 for a SUBSCRIBE whose <c>FrameworkInfo.principal</c> is not the authenticated principal.</summary>
    internal static string PrincipalMismatch(string authenticated, string? inFrameworkInfo) =>
        $"Authenticated principal '{authenticated}' does not match principal '{inFrameworkInfo}' set in `FrameworkInfo`";

    /// <summary>Mesos' ERROR for a SUBSCRIBE with a known framework id and another principal.</summary>
    internal const string PrincipalChangeRefused = "Changing framework's principal is not allowed.";

    /// <summary>
    /// The SUBSCRIBE's framework info checked against the authenticated principal, before anything is touched:
    /// the 400 of a mismatch, or the info with the principal filled in.
    /// </summary>
    private (MFrameworkInfo Info, string? Error) AuthenticateSubscription(MFrameworkInfo info, SchedulerCaller caller)
    {
        if (caller.Principal is not { } principal)
        {
            return (info, null);
        }

        if (info.Principal is null)
        {
            LogPrincipalFilledIn(info.Name ?? "", principal);
            return (info with { Principal = principal }, null);
        }

        return info.Principal == principal
            ? (info, null)
            : (info, "Failed to validate scheduler::Call: " + PrincipalMismatch(principal, info.Principal));
    }

    /// <summary>
    /// Why an authenticated SUBSCRIBE may not register or take over a framework (the text of the ERROR event), or
    /// null. Called under the lock with the framework's current record (<paramref name="existing"/>, null for a new
    /// one). Mesos keeps <c>FrameworkInfo.user</c> of a known framework (<c>preserveImmutableFields</c>), so
    /// <paramref name="info"/> comes back with that user, and that is the user checked.
    /// </summary>
    private string? AuthorizeSubscriptionLocked(ref MFrameworkInfo info, Framework? existing, string? id, SchedulerCaller caller)
    {
        if (caller.Principal is not { } principal)
        {
            return null;
        }

        if (existing is not null)
        {
            if (existing.Info.Principal != info.Principal)
            {
                // The refused scheduler is not told the framework's principal; the master's log says both.
                LogPrincipalChangeRefused(existing.Id, existing.Info.Principal ?? "<none>", info.Principal ?? "<none>");
                return PrincipalChangeRefused;
            }

            if (existing.Info.User != info.User)
            {
                LogUserPreserved(existing.Id, existing.Info.User ?? "", info.User ?? "");
                info = info with { User = existing.Info.User };
            }
        }

        var framework = id is null ? "" : " " + id;
        var roles = Framework.RolesOf(info);
        foreach (var role in roles)
        {
            if (!caller.Allows(Rids.FrameworkRole(role), PermissionAction.Create))
            {
                return $"Not authorized to register framework{framework} with roles {{ {string.Join(", ", roles.Order(StringComparer.Ordinal))} }}: "
                    + Lacks(principal, Rids.FrameworkRole(role));
            }
        }

        var user = info.User ?? "";
        return caller.Allows(Rids.TaskUser(user), PermissionAction.Create)
            ? null
            : $"Not authorized to register framework{framework} with user '{user}' (its tasks' default user): " + Lacks(principal, Rids.TaskUser(user));
    }

    /// <summary>
    /// The 400 for a call (not SUBSCRIBE) on <paramref name="fw"/> from another principal than the framework's, or null.
    /// Mesos' sentence without the framework's principal: the caller named only the framework id, and who runs
    /// another principal's framework is not its business (the master's log has both).
    /// </summary>
    private string? CallPrincipalError(Framework fw, SchedulerCaller caller)
    {
        if (caller.Principal is not { } principal || fw.Info.Principal == principal)
        {
            return null;
        }

        LogCallPrincipalRefused(fw.Id, fw.Info.Principal ?? "<none>", principal);
        return CallPrincipalMismatch(principal);
    }

    /// <summary>The 400 of a call on a framework registered by another principal (Mesos' words, the framework's principal left out).</summary>
    internal static string CallPrincipalMismatch(string authenticated) =>
        $"Authenticated principal '{authenticated}' does not match the principal set in `FrameworkInfo`";

    /// <summary>
    /// The user a task runs as, as Mesos' authorizer sees it: the task's command user, else its executor's command
    /// user, else <c>FrameworkInfo.user</c>. An empty user counts as unset (it names no Unix user).
    /// </summary>
    internal static string? EffectiveUser(MTaskInfo task, MExecutorInfo? executor, MFrameworkInfo framework) =>
        NonEmpty(task.Command?.User) ?? NonEmpty(executor?.Command?.User) ?? NonEmpty(framework.User);

    /// <summary>Why the caller may not launch <paramref name="task"/> (its effective user is not granted), or null.</summary>
    private static string? LaunchAuthorizationError(Framework fw, MTaskInfo task, MExecutorInfo? executor, SchedulerCaller caller)
    {
        if (caller.Principal is not { } principal)
        {
            return null;
        }

        var user = EffectiveUser(task, executor, fw.Info) ?? "";
        return caller.Allows(Rids.TaskUser(user), PermissionAction.Create)
            ? null
            : $"Principal '{principal}' is not authorized to launch task {task.TaskId?.Value} of framework {fw.Id} under user '{user}': " + Lacks(principal, Rids.TaskUser(user));
    }

    private static string Lacks(string principal, string rid) => $"'{principal}' lacks permission '{rid}' with action 'create'";

    private static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Setting 'principal' in FrameworkInfo of framework '{Name}' to '{Principal}': it authenticated with that principal but did not set it")]
    private partial void LogPrincipalFilledIn(string name, string principal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Framework {FrameworkId}, registered by principal '{Registered}', was refused a (re-)subscription by principal '{Principal}'")]
    private partial void LogPrincipalChangeRefused(string frameworkId, string registered, string principal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Framework {FrameworkId}, registered by principal '{Registered}', was refused a call by principal '{Principal}'")]
    private partial void LogCallPrincipalRefused(string frameworkId, string registered, string principal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Framework {FrameworkId} keeps FrameworkInfo.user '{User}'; its re-subscription asked for '{Asked}', which Mesos does not allow to change")]
    private partial void LogUserPreserved(string frameworkId, string user, string asked);

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused the subscription of framework '{Name}': {Reason}")]
    private partial void LogSubscriptionRefused(string name, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Framework {FrameworkId}: task {TaskId} refused: {Reason}")]
    private partial void LogTaskUnauthorized(string frameworkId, string taskId, string reason);
}
