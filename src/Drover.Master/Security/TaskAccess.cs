using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Security;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Security;

/// <summary>What is done to a task through <c>/drover/v1/tasks</c>.</summary>
public enum TaskOperation
{
    /// <summary>See it: in a listing, or by its id.</summary>
    Read,

    /// <summary>Kill it.</summary>
    Kill,

    /// <summary>Read its sandbox: logs and files.</summary>
    Sandbox,
}

/// <summary>
/// The one place that decides what a task of <c>/drover/v1/tasks</c> needs beyond the route's
/// <see cref="Rids.Tasks"/> permission, by whose task it is:
/// <list type="bullet">
/// <item>an instance of a Marathon app belongs to the app: reading it needs read on the app
/// (<see cref="Rids.MarathonPath"/>), killing it update on the app (as Marathon's kill), its logs and
/// files read on the app's sandbox (<see cref="Rids.SandboxOfApp"/>);</item>
/// <item>a task that lives in a Mesos framework's executor namespace (<see cref="TaskView.FrameworkId"/>
/// set: a framework's task, or a one-off task run by a custom executor) is the operators':
/// <see cref="Rids.MesosOps"/> read to see it or its sandbox, delete to kill it;</item>
/// <item>a one-off task belongs to whoever submitted it (<see cref="TaskSpec.Owner"/>, the caller's uid): its owner
/// needs nothing more; anyone else needs <see cref="Rids.AdminTasks"/> (read to see it or its sandbox, delete to
/// kill it), which a grant on <c>drover:tasks</c> does not cover. A task without a recorded owner (submitted
/// before owners were recorded) is the admins' alone.</item>
/// </list>
/// Submitting needs the run-as permission for a named <c>user</c> (<see cref="Rids.TaskUser"/>, create),
/// and <see cref="Rids.MesosOps"/> create for a custom executor, since its framework id could name a
/// framework's executor. A task without <c>user</c> runs as the agent's <c>--default-task-user</c>
/// (default <c>nobody</c>), the unprivileged account every submitter gets; it needs no run-as permission.
/// On a dev cluster without logins every caller is <see cref="Caller.Dev"/> (owner <c>anonymous</c>) and allowed everything.
/// </summary>
public static class TaskAccess
{
    /// <summary>What <paramref name="operation"/> on <paramref name="task"/> by <paramref name="caller"/> needs beyond the route's permission; null for nothing.</summary>
    public static Grant? Needs(TaskView task, TaskOperation operation, Caller caller)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(caller);
        if (task.AppId is { } app)
        {
            return operation switch
            {
                TaskOperation.Read => new Grant(Rids.MarathonPath(app), PermissionAction.Read),
                TaskOperation.Kill => new Grant(Rids.MarathonPath(app), PermissionAction.Update),
                _ => new Grant(Rids.SandboxOfApp(app), PermissionAction.Read),
            };
        }

        if (task.FrameworkId is not null)
        {
            return new Grant(Rids.MesosOps, operation == TaskOperation.Kill ? PermissionAction.Delete : PermissionAction.Read);
        }

        return IsOwner(task, caller) ? null : new Grant(Rids.AdminTasks, operation == TaskOperation.Kill ? PermissionAction.Delete : PermissionAction.Read);
    }

    /// <summary>Whether <paramref name="caller"/> submitted the one-off task: a user or service account whose uid is its owner.</summary>
    public static bool IsOwner(TaskView task, Caller caller)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(caller);
        return task.Owner is { } owner && caller.IsPerson && string.Equals(owner, caller.Id, StringComparison.Ordinal);
    }

    /// <summary>What submitting <paramref name="spec"/> needs beyond the route's permission (empty: nothing).</summary>
    public static ImmutableArray<Grant> NeedsToSubmit(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var needs = ImmutableArray.CreateBuilder<Grant>(2);
        if (spec.User is { } user)
        {
            needs.Add(new Grant(Rids.TaskUser(user), PermissionAction.Create));
        }

        if (spec.Executor is not null)
        {
            needs.Add(new Grant(Rids.MesosOps, PermissionAction.Create));
        }

        return needs.ToImmutable();
    }

    /// <summary>A 403 (in the route's error shape) when the caller may not do <paramref name="operation"/> on <paramref name="task"/>; null when it may.</summary>
    public static IResult? Check(HttpContext http, TaskView task, TaskOperation operation) =>
        Needs(task, operation, http.Caller()) is { } need && !http.Allows(need.Rid, need.Actions) ? http.Forbidden(need.Rid, need.Actions) : null;

    /// <summary>A 403 for the first permission submitting <paramref name="spec"/> needs that the caller lacks; null when it holds them all.</summary>
    public static IResult? CheckSubmit(HttpContext http, TaskSpec spec)
    {
        foreach (var need in NeedsToSubmit(spec))
        {
            if (!http.Allows(need.Rid, need.Actions))
            {
                return http.Forbidden(need.Rid, need.Actions);
            }
        }

        return null;
    }

    /// <summary>The tasks the caller may see, in their order: a listing leaves the others out.</summary>
    public static ImmutableArray<TaskView> Visible(HttpContext http, ImmutableArray<TaskView> tasks)
    {
        ArgumentNullException.ThrowIfNull(http);
        var caller = http.Caller();
        if (caller.Kind == CallerKind.DevAnonymous)
        {
            return tasks;
        }

        var visible = ImmutableArray.CreateBuilder<TaskView>(tasks.Length);
        foreach (var t in tasks)
        {
            if (Needs(t, TaskOperation.Read, caller) is not { } need || http.Allows(need.Rid, need.Actions))
            {
                visible.Add(t);
            }
        }

        return visible.DrainToImmutable();
    }
}
