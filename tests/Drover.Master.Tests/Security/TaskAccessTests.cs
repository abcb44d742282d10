using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Security;
using Drover.Master.Security;
using Drover.Testing;

namespace Drover.Master.Tests.Security;

/// <summary>What a task of <c>/drover/v1/tasks</c> needs beyond <c>drover:tasks</c>, by whose task it is.</summary>
public sealed class TaskAccessTests
{
    private static readonly Caller Alice = new(CallerKind.User, "alice");

    private static TaskView View(string? appId = null, string? frameworkId = null, string? owner = null) => new()
    {
        Id = "t1",
        Name = "t1",
        State = TaskState.Running,
        Cpus = 0.1m,
        Mem = 32,
        Disk = 0,
        SubmittedAt = DateTimeOffset.UnixEpoch,
        AppId = appId,
        FrameworkId = frameworkId,
        Owner = owner,
    };

    [Theory]
    [InlineData(TaskOperation.Read, "dcos:service:marathon:marathon:services:/team-a/web", PermissionAction.Read)]
    [InlineData(TaskOperation.Kill, "dcos:service:marathon:marathon:services:/team-a/web", PermissionAction.Update)]
    [InlineData(TaskOperation.Sandbox, "dcos:mesos:agent:sandbox:app_id:/team-a/web", PermissionAction.Read)]
    public void Needs_AppInstance_TheAppsPermission(TaskOperation operation, string rid, PermissionAction action)
    {
        Assert.Equal(new Grant(rid, action), TaskAccess.Needs(View(appId: "/team-a/web", owner: "alice"), operation, Alice));
    }

    [Theory]
    [InlineData(TaskOperation.Read, PermissionAction.Read)]
    [InlineData(TaskOperation.Sandbox, PermissionAction.Read)]
    [InlineData(TaskOperation.Kill, PermissionAction.Delete)]
    public void Needs_FrameworkTask_MesosOperatorAccess(TaskOperation operation, PermissionAction action)
    {
        Assert.Equal(new Grant(Rids.MesosOps, action), TaskAccess.Needs(View(frameworkId: "fw-1", owner: "alice"), operation, Alice));
    }

    [Theory]
    [InlineData(TaskOperation.Read)]
    [InlineData(TaskOperation.Kill)]
    [InlineData(TaskOperation.Sandbox)]
    public void Needs_OwnOneOffTask_Nothing(TaskOperation operation)
    {
        Assert.Null(TaskAccess.Needs(View(owner: "alice"), operation, Alice));
        Assert.Null(TaskAccess.Needs(View(owner: "ci"), operation, new Caller(CallerKind.ServiceAccount, "ci")));
    }

    [Theory]
    [InlineData(TaskOperation.Read, PermissionAction.Read)]
    [InlineData(TaskOperation.Sandbox, PermissionAction.Read)]
    [InlineData(TaskOperation.Kill, PermissionAction.Delete)]
    public void Needs_OneOffTaskOfAnotherOrOfNoOwner_AdminTasks(TaskOperation operation, PermissionAction action)
    {
        var admin = new Grant(Rids.AdminTasks, action);

        Assert.Equal(admin, TaskAccess.Needs(View(owner: "bob"), operation, Alice));
        Assert.Equal(admin, TaskAccess.Needs(View(owner: "Alice"), operation, Alice)); // uids compare exactly
        Assert.Equal(admin, TaskAccess.Needs(View(), operation, Alice)); // submitted before owners were recorded
        Assert.Equal(admin, TaskAccess.Needs(View(owner: "alice"), operation, new Caller(CallerKind.Agent, "alice"))); // an agent id is no uid
        Assert.Equal(admin, TaskAccess.Needs(View(owner: "alice"), operation, new Caller(CallerKind.Executor, "alice")));
    }

    [Fact]
    public void AdminTasks_NotCoveredByAGrantOnTasks()
    {
        Assert.False(Policy.Allows([new Grant(Rids.Tasks, PermissionAction.Full)], Rids.AdminTasks, PermissionAction.Read));
        Assert.True(Policy.Allows([new Grant(Rids.Superuser, PermissionAction.Full)], Rids.AdminTasks, PermissionAction.Delete));
    }

    [Fact]
    public void NeedsToSubmit_UserAndExecutor_RunAsAndMesosOperatorAccess()
    {
        var plain = Build.Task();
        var withUser = plain with { User = "root" };
        var withExecutor = plain with { Executor = new ExecutorSpec { ExecutorId = "e", FrameworkId = "fw", Shell = "x" } };

        Assert.Empty(TaskAccess.NeedsToSubmit(plain));
        Assert.Equal(new Grant("dcos:mesos:master:task:user:root", PermissionAction.Create), Assert.Single(TaskAccess.NeedsToSubmit(withUser)));
        Assert.Equal(new Grant(Rids.MesosOps, PermissionAction.Create), Assert.Single(TaskAccess.NeedsToSubmit(withExecutor)));
    }
}
