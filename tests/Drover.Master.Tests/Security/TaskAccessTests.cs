using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Security;
using Drover.Master.Security;
using Drover.Testing;

namespace Drover.Master.Tests.Security;

/// <summary>What a task of <c>/drover/v1/tasks</c> needs beyond <c>drover:tasks</c>, by whose task it is.</summary>
public sealed class TaskAccessTests
{
    private static TaskView View(string? appId = null, string? frameworkId = null) => new()
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
    };

    [Theory]
    [InlineData(TaskOperation.Read, "dcos:service:marathon:marathon:services:/team-a/web", PermissionAction.Read)]
    [InlineData(TaskOperation.Kill, "dcos:service:marathon:marathon:services:/team-a/web", PermissionAction.Update)]
    [InlineData(TaskOperation.Sandbox, "dcos:mesos:agent:sandbox:app_id:/team-a/web", PermissionAction.Read)]
    public void Needs_AppInstance_TheAppsPermission(TaskOperation operation, string rid, PermissionAction action)
    {
        Assert.Equal(new Grant(rid, action), TaskAccess.Needs(View(appId: "/team-a/web"), operation));
    }

    [Theory]
    [InlineData(TaskOperation.Read, PermissionAction.Read)]
    [InlineData(TaskOperation.Sandbox, PermissionAction.Read)]
    [InlineData(TaskOperation.Kill, PermissionAction.Delete)]
    public void Needs_FrameworkTask_MesosOperatorAccess(TaskOperation operation, PermissionAction action)
    {
        Assert.Equal(new Grant(Rids.MesosOps, action), TaskAccess.Needs(View(frameworkId: "fw-1"), operation));
    }

    [Theory]
    [InlineData(TaskOperation.Read)]
    [InlineData(TaskOperation.Kill)]
    [InlineData(TaskOperation.Sandbox)]
    public void Needs_OneOffTask_Nothing(TaskOperation operation)
    {
        Assert.Null(TaskAccess.Needs(View(), operation));
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
