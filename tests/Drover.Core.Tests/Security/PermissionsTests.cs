using System.Collections.Immutable;
using Drover.Core.Security;

namespace Drover.Core.Tests.Security;

public sealed class PermissionsTests
{
    [Theory]
    [InlineData("dcos:service:marathon:marathon:services:/team-a", "dcos:service:marathon:marathon:services:/team-a", true)]
    [InlineData("dcos:service:marathon:marathon:services:/team-a", "dcos:service:marathon:marathon:services:/team-a/web", true)]
    [InlineData("dcos:service:marathon:marathon:services:/team-a", "dcos:service:marathon:marathon:services:/team-a/x/y", true)]
    [InlineData("dcos:service:marathon:marathon:services:/team-a", "dcos:service:marathon:marathon:services:/team-ab", false)]
    [InlineData("dcos:service:marathon:marathon:services:/team-a", "dcos:service:marathon:marathon:services:/team-b/web", false)]
    [InlineData("dcos:service:marathon:marathon:services:/team-a/web", "dcos:service:marathon:marathon:services:/team-a", false)]
    [InlineData("dcos:service:marathon:marathon:services:/", "dcos:service:marathon:marathon:services:/anything/below", true)]
    [InlineData("dcos:mesos:master:task:user", "dcos:mesos:master:task:user:root", true)]
    [InlineData("dcos:mesos:master:task:user:nobody", "dcos:mesos:master:task:user:root", false)]
    [InlineData("dcos:mesos:master:task:user:nobody", "dcos:mesos:master:task:user:nobody2", false)]
    [InlineData("dcos:superuser", "dcos:mesos:master:task:user:root", true)]
    [InlineData("dcos:service:marathon", "dcos:service:marathonx", false)]
    [InlineData("drover:tasks", "drover:admin:tasks", false)] // a team's grant on its own one-off tasks is not the operators'
    [InlineData("drover:admin", "drover:admin:tasks", true)]
    public void Covers_GrantAndRequest_FollowsTheHierarchy(string granted, string requested, bool covers) =>
        Assert.Equal(covers, Rids.Covers(granted, requested));

    [Fact]
    public void Allows_ActionsFromTwoGrants_CombineButNeverExceedThem()
    {
        ImmutableArray<Grant> grants =
        [
            new(Rids.MarathonPath("/team-a"), PermissionAction.Read),
            new(Rids.MarathonPath("/team-a/web"), PermissionAction.Update),
        ];

        Assert.True(Policy.Allows(grants, Rids.MarathonPath("/team-a/web"), PermissionAction.Read | PermissionAction.Update));
        Assert.False(Policy.Allows(grants, Rids.MarathonPath("/team-a/db"), PermissionAction.Update));
        Assert.False(Policy.Allows(grants, Rids.MarathonPath("/team-a/web"), PermissionAction.Delete));
        Assert.False(Policy.Allows([], Rids.MarathonPath("/"), PermissionAction.Read));
    }

    [Theory]
    [InlineData("full", PermissionAction.Full)]
    [InlineData("READ", PermissionAction.Read)]
    [InlineData("delete", PermissionAction.Delete)]
    public void TryParse_DcosActionNames_Parse(string text, PermissionAction expected)
    {
        Assert.True(PermissionActions.TryParse(text, out var action));
        Assert.Equal(expected, action);
    }

    [Theory]
    [InlineData("")]
    [InlineData("write")]
    [InlineData(null)]
    public void TryParse_UnknownAction_Fails(string? text) => Assert.False(PermissionActions.TryParse(text, out _));

    [Theory]
    [InlineData("dcos:superuser", true)]
    [InlineData("dcos:service:marathon:marathon:services:/a b", false)]
    [InlineData("dcos::x", false)]
    [InlineData(":x", false)]
    [InlineData("", false)]
    public void IsValid_ResourceIds_AreChecked(string rid, bool valid) => Assert.Equal(valid, Rids.IsValid(rid, out _));
}

public sealed class AccessGateTests
{
    private static readonly Caller Alice = new(CallerKind.User, "alice");

    [Fact]
    public void Decide_NoRule_IsUndeclared() =>
        Assert.Equal(AccessOutcome.Undeclared, AccessGate.Decide(null, Alice, null, (_, _) => true).Outcome);

    [Fact]
    public void Decide_NoCaller_IsUnauthenticated() =>
        Assert.Equal(AccessOutcome.Unauthenticated, AccessGate.Decide(RouteAccess.Permission(Rids.Tasks, PermissionAction.Read), null, null, (_, _) => true).Outcome);

    [Fact]
    public void Decide_AnonymousRoute_AllowsNoCaller() =>
        Assert.Equal(AccessOutcome.Allowed, AccessGate.Decide(RouteAccess.Anonymous, null, null, (_, _) => false).Outcome);

    [Fact]
    public void Decide_UserWithoutEveryRequiredPermission_IsForbiddenNamingTheMissingOne()
    {
        var rule = RouteAccess.Permission(Rids.MarathonService, PermissionAction.Read).And(Rids.MarathonEvents, PermissionAction.Read);
        var decision = AccessGate.Decide(rule, Alice, null, (rid, _) => rid == Rids.MarathonService);
        Assert.Equal(AccessOutcome.Forbidden, decision.Outcome);
        Assert.Contains(Rids.MarathonEvents, decision.Reason, StringComparison.Ordinal);
        Assert.Equal(AccessOutcome.Allowed, AccessGate.Decide(rule, Alice, null, (_, _) => true).Outcome);
    }

    [Fact]
    public void Decide_AgentSpeakingForAnotherAgent_IsForbidden()
    {
        var agentA = new Caller(CallerKind.Agent, "a");
        Assert.Equal(AccessOutcome.Allowed, AccessGate.Decide(RouteAccess.Agent, agentA, "a", (_, _) => false).Outcome);
        Assert.Equal(AccessOutcome.Forbidden, AccessGate.Decide(RouteAccess.Agent, agentA, "b", (_, _) => false).Outcome);
    }

    [Fact]
    public void Decide_UserOnAgentOrMasterRoute_IsForbidden()
    {
        Assert.Equal(AccessOutcome.Forbidden, AccessGate.Decide(RouteAccess.Agent, Alice, null, (_, _) => true).Outcome);
        Assert.Equal(AccessOutcome.Forbidden, AccessGate.Decide(RouteAccess.Master, Alice, null, (_, _) => true).Outcome);
    }

    [Fact]
    public void Decide_AgentCertificateOnUserRoute_IsForbiddenEvenIfAPolicyWouldAllow()
    {
        var agent = new Caller(CallerKind.Agent, "a");
        Assert.Equal(AccessOutcome.Forbidden, AccessGate.Decide(RouteAccess.Permission(Rids.Tasks, PermissionAction.Read), agent, null, (_, _) => true).Outcome);
        Assert.Equal(AccessOutcome.Forbidden, AccessGate.Decide(RouteAccess.Authenticated, agent, null, (_, _) => true).Outcome);
    }

    [Fact]
    public void Decide_DevCaller_IsAllowedEverywhere() =>
        Assert.Equal(AccessOutcome.Allowed, AccessGate.Decide(RouteAccess.Master, Caller.Dev, null, (_, _) => false).Outcome);
}
