using System.Net;
using System.Text.Json.Nodes;

namespace Drover.Master.Tests.Iam;

/// <summary>The last account holding <c>dcos:superuser</c> cannot be removed or lose it (DC/OS' <c>ERR_NO_MORE_SUPERUSERS</c>).</summary>
public sealed class SuperuserTests : IAsyncLifetime
{
    private SecureMaster _m = null!;

    public async Task InitializeAsync() => _m = await SecureMaster.StartAsync();

    public async Task DisposeAsync() => await _m.DisposeAsync();

    private async Task AssertLastSuperuserAsync(HttpMethod method, string path)
    {
        var reply = await _m.AsAdmin(method, path);
        Assert.True(reply.Status == HttpStatusCode.BadRequest, $"{method} {path}: {reply}");
        Assert.Equal("ERR_NO_MORE_SUPERUSERS", reply.Code);
        Assert.Contains("dcos:superuser", reply.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LastSuperuser_CannotBeDeletedRevokedOrLoseItsAcl_UntilAnotherHoldsIt()
    {
        await AssertLastSuperuserAsync(HttpMethod.Delete, "/acs/api/v1/users/admin");
        await AssertLastSuperuserAsync(HttpMethod.Delete, "/acs/api/v1/acls/dcos:superuser/users/admin/full");
        await AssertLastSuperuserAsync(HttpMethod.Delete, "/acs/api/v1/acls/dcos:superuser/users/admin/read");
        await AssertLastSuperuserAsync(HttpMethod.Delete, "/acs/api/v1/acls/dcos:superuser/users/admin");
        await AssertLastSuperuserAsync(HttpMethod.Delete, "/acs/api/v1/acls/dcos:superuser");
        Assert.Equal(HttpStatusCode.OK, (await _m.AsAdmin(HttpMethod.Get, "/acs/api/v1/users/admin")).Status);

        // A superusers group whose only member is bob: admin may go now, and bob is then the last one.
        await _m.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, "/acs/api/v1/users/bob", new JsonObject { ["password"] = "bob-password" }.ToJsonString());
        await _m.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, "/acs/api/v1/groups/superusers");
        await _m.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, "/acs/api/v1/acls/dcos:superuser/groups/superusers/full");
        await _m.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, "/acs/api/v1/groups/superusers/users/bob");
        await _m.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, "/acs/api/v1/users/admin");

        var bob = await _m.LoginAsync("bob", "bob-password");
        async Task Refused(HttpMethod method, string path)
        {
            var reply = await _m.SendAsync(method, path, bob);
            Assert.True(reply.Code == "ERR_NO_MORE_SUPERUSERS", $"{method} {path}: {reply}");
        }

        await Refused(HttpMethod.Delete, "/acs/api/v1/groups/superusers/users/bob");
        await Refused(HttpMethod.Delete, "/acs/api/v1/groups/superusers");
        await Refused(HttpMethod.Delete, "/acs/api/v1/acls/dcos:superuser/groups/superusers/full");
        await Refused(HttpMethod.Delete, "/acs/api/v1/users/bob");
        Assert.Equal(HttpStatusCode.OK, (await _m.SendAsync(HttpMethod.Get, "/acs/api/v1/users/bob", bob)).Status);
    }
}
