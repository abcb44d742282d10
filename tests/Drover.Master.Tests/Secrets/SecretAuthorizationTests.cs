using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Secrets;

/// <summary>
/// A secure master with <c>team-b/db</c> stored by the admin and <c>alice</c> (group <c>team-a</c>) holding every action on
/// <c>team-a</c>'s secrets and apps only. She tries to read, list, overwrite and delete team-b's secret through both
/// APIs, and to deploy apps (alone, several at once, in a group, by update) that would hand it to a task she controls.
/// </summary>
public sealed class SecretAuthorizationTests : IAsyncLifetime
{
    private const string TeamBValue = "team-b-db-password-e41d";
    private InProcessCluster _cluster = null!;
    private HttpClient _admin = null!;
    private HttpClient _alice = null!;

    public async Task InitializeAsync()
    {
        _cluster = await InProcessCluster.StartAsync(secure: true);
        _admin = await _cluster.LoginAsync("admin");
        var iam = _cluster.Master.Services.GetRequiredService<IamStore>();
        var ct = CancellationToken.None;
        Assert.True((await iam.CreateUserAsync(new IamUser { Uid = "alice", Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash("alice-password-1", iterations: 1000) }, ct)).Succeeded);
        Assert.True((await iam.CreateGroupAsync("team-a", "team A", ct)).Succeeded);
        Assert.True((await iam.AddMemberAsync("team-a", "alice", ct)).Succeeded);
        foreach (var (rid, action) in new[]
        {
            (Rids.MarathonService, PermissionAction.Read),
            (Rids.MarathonPath("/team-a"), PermissionAction.Full),
            (Rids.Secret("team-a"), PermissionAction.Full),
            (Rids.SecretList("team-a"), PermissionAction.Read),
        })
        {
            Assert.True((await iam.GrantAsync(rid, "team-a", isGroup: true, action, ct)).Succeeded);
        }

        _alice = await LoginAsync("alice", "alice-password-1");
        using var stored = await _admin.PutAsync("/drover/v1/secrets/team-b/db", Json(new { value = TeamBValue }));
        Assert.Equal(HttpStatusCode.Created, stored.StatusCode);
        using var own = await _alice.PutAsync("/drover/v1/secrets/team-a/db", Json(new { value = "team-a-pw" }));
        Assert.Equal(HttpStatusCode.Created, own.StatusCode);
    }

    public async Task DisposeAsync()
    {
        _admin.Dispose();
        _alice.Dispose();
        await _cluster.DisposeAsync();
    }

    [Theory]
    [InlineData("GET", "/drover/v1/secrets/team-b/db", null, "dcos:secrets:default:/team-b/db", "read")]
    [InlineData("GET", "/drover/v1/secrets/team-b/no-such", null, "dcos:secrets:default:/team-b/no-such", "read")] // no telling what exists
    [InlineData("GET", "/drover/v1/secrets?prefix=team-b", null, "dcos:secrets:list:default:/team-b", "read")]
    [InlineData("GET", "/drover/v1/secrets", null, "dcos:secrets:list:default:/", "read")]
    [InlineData("PUT", "/drover/v1/secrets/team-b/db", """{"value": "overwritten"}""", "dcos:secrets:default:/team-b/db", "create,update")] // not "update": that would say it exists
    [InlineData("PUT", "/drover/v1/secrets/team-b/new", """{"value": "planted"}""", "dcos:secrets:default:/team-b/new", "create,update")]
    [InlineData("DELETE", "/drover/v1/secrets/team-b/db", null, "dcos:secrets:default:/team-b/db", "delete")]
    [InlineData("GET", "/secrets/v1/secret/default/team-b/db", null, "dcos:secrets:default:/team-b/db", "read")]
    [InlineData("GET", "/secrets/v1/secret/default/team-b?list=true", null, "dcos:secrets:list:default:/team-b", "read")]
    [InlineData("PATCH", "/secrets/v1/secret/default/team-b/db", """{"value": "overwritten"}""", "dcos:secrets:default:/team-b/db", "update")]
    [InlineData("DELETE", "/secrets/v1/secret/default/team-b/db", null, "dcos:secrets:default:/team-b/db", "delete")]
    public async Task TeamBSecret_TeamAUser_403NamingThePermissionAndUnchanged(string method, string path, string? body, string rid, string action)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await _alice.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal($"'alice' lacks permission '{rid}' with action '{action}'", JsonNode.Parse(text)!["message"]!.GetValue<string>());
        Assert.DoesNotContain(TeamBValue, text, StringComparison.Ordinal);
        Assert.Equal(TeamBValue, (await _admin.GetFromJsonAsync<JsonObject>("/drover/v1/secrets/team-b/db"))!["value"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await _admin.GetAsync("/drover/v1/secrets/team-b/new")).StatusCode);
    }

    [Fact]
    public async Task OwnSecret_TeamAUser_ReadsItBackAndListsNamesOnly()
    {
        var secret = await _alice.GetFromJsonAsync<JsonObject>("/drover/v1/secrets/team-a/db");
        var list = await _alice.GetStringAsync("/drover/v1/secrets?prefix=team-a");
        var dcos = await _alice.GetFromJsonAsync<JsonObject>("/secrets/v1/secret/default/team-a/db");

        Assert.Equal("team-a-pw", secret!["value"]!.GetValue<string>());
        Assert.Equal("alice", secret["author"]!.GetValue<string>());
        Assert.Equal("""{"secrets":["team-a/db"]}""", list);
        Assert.Equal("team-a-pw", dcos!["value"]!.GetValue<string>());
    }

    [Fact]
    public async Task Deploy_AppUsingTeamBsSecret_422NamingTheFieldAndNothingDeployed()
    {
        using var response = await _alice.PostAsync("/v2/apps", Json(App("/team-a/leak", "team-b/db")));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("/secrets/pw/source", body["details"]![0]!["path"]!.GetValue<string>());
        Assert.Contains("lacks permission 'dcos:secrets:default:/team-b/db' with action 'read'", body["details"]![0]!["errors"]![0]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _admin.GetAsync("/v2/apps/team-a/leak")).StatusCode);
    }

    [Fact]
    public async Task Deploy_SeveralAppsOrAGroupWithOneUsingTeamBsSecret_422AndNoneDeployed()
    {
        using var multi = await _alice.PutAsync("/v2/apps", Json(new[] { App("/team-a/fine", "team-a/db"), App("/team-a/leak2", "/team-b/db") }));
        using var group = await _alice.PostAsync("/v2/groups", Json(new { id = "/team-a/g", apps = new[] { App("/team-a/g/leak", "team-b/db") } }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, multi.StatusCode);
        Assert.Contains("(/team-a/leak2)/secrets/pw/source", await multi.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, group.StatusCode);
        Assert.Contains("/apps(/team-a/g/leak)/secrets/pw/source", await group.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await _admin.GetAsync("/v2/apps/team-a/fine")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _admin.GetAsync("/v2/apps/team-a/g/leak")).StatusCode);
    }

    [Fact]
    public async Task Update_OwnAppToUseTeamBsSecret_422AndTheAppUnchanged()
    {
        using var created = await _alice.PostAsync("/v2/apps", Json(App("/team-a/web", "team-a/db")));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using var patched = await _alice.PatchAsync("/v2/apps/team-a/web?force=true", Json(new { secrets = new { pw = new { source = "team-b/db" } } }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, patched.StatusCode);
        var app = (await _admin.GetFromJsonAsync<JsonObject>("/v2/apps/team-a/web"))!["app"]!;
        Assert.Equal("team-a/db", app["secrets"]!["pw"]!["source"]!.GetValue<string>());
    }

    [Fact]
    public async Task Deploy_AppUsingAMissingSecret_422()
    {
        using var response = await _alice.PostAsync("/v2/apps", Json(App("/team-a/missing", "team-a/not-stored")));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var detail = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["details"]![0]!;
        Assert.Equal("/secrets/pw/source", detail["path"]!.GetValue<string>());
        Assert.Equal("secret 'team-a/not-stored' does not exist", detail["errors"]![0]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/drover/v1/secrets/team-a/a%20b", """{"value": "x"}""", "path")]
    [InlineData("/drover/v1/secrets/team-a/..%2Fteam-b", """{"value": "x"}""", "path")]
    [InlineData("/drover/v1/secrets/team-a/x", """{"value": "x", "data": "eA=="}""", "value")]
    [InlineData("/drover/v1/secrets/team-a/x", """{}""", "value")]
    public async Task Put_BadPathOrValue_400NamingTheField(string path, string body, string field)
    {
        using var response = await _alice.PutAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(field, error["details"]![0]!["field"]!.GetValue<string>());
    }

    [Fact]
    public async Task Put_ValueOverTheLimit_400()
    {
        using var response = await _alice.PutAsync("/drover/v1/secrets/team-a/big", Json(new { data = new byte[Drover.Core.Secrets.SecretPaths.MaxValueBytes + 1] }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("a secret holds at most", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static object App(string id, string source) => new
    {
        id,
        cmd = "echo $PW",
        cpus = 0.01,
        mem = 16,
        instances = 0,
        secrets = new { pw = new { source } },
        env = new { PW = new { secret = "pw" } },
    };

    private static StringContent Json<T>(T value) => new(System.Text.Json.JsonSerializer.Serialize(value), Encoding.UTF8, "application/json");

    private Task<HttpClient> LoginAsync(string uid, string password) => _cluster.LoginAsync(uid, password);
}
