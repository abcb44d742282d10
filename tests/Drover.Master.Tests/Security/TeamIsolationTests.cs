using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Security;

/// <summary>
/// Team isolation on a secure master: <c>alice</c> (group <c>team-a</c>, permissions on <c>/team-a</c>) tries to
/// reach <c>/team-b</c> through every Marathon route and <c>/drover/v1/tasks</c>, and to run as root. Each
/// attempt must be a 403 in the API's error shape and leave <c>/team-b</c> as it was; each listing must show
/// her <c>/team-a</c> and nothing of <c>/team-b</c>, which the admin sees in the same listing.
/// </summary>
public sealed class TeamIsolationTests(TeamClusterFixture f) : IClassFixture<TeamClusterFixture>
{
    private const string TeamBRid = "dcos:service:marathon:marathon:services:/team-b";

    [Theory]
    [InlineData("/v2/apps")]
    [InlineData("/v2/apps?embed=apps.tasks")]
    [InlineData("/v2/tasks")]
    [InlineData("/v2/queue")]
    [InlineData("/v2/deployments")]
    [InlineData("/v2/groups")]
    [InlineData("/v2/groups/")]
    [InlineData("/drover/v1/tasks")]
    public async Task Listing_TeamAUser_SeesTeamAOnly(string path)
    {
        var mine = await f.Alice.GetStringAsync(path);
        var all = await f.Admin.GetStringAsync(path);

        Assert.Contains("team-b", all, StringComparison.Ordinal); // there is something to hide
        Assert.DoesNotContain("team-b", mine, StringComparison.Ordinal);
        Assert.Contains("/team-a/web", mine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deployments_PlanOverBothTeams_ListedWithTeamAAppsOnly()
    {
        static string[] AppsOfSharedPlan(JsonArray plans) => [.. plans
            .Single(p => p!["affectedApps"]!.AsArray().Any(a => a!.GetValue<string>() == "/team-a/shared"))!["affectedApps"]!.AsArray()
            .Select(a => a!.GetValue<string>()).Order(StringComparer.Ordinal)];

        var mine = AppsOfSharedPlan((await f.Alice.GetFromJsonAsync<JsonArray>("/v2/deployments"))!);
        var all = AppsOfSharedPlan((await f.Admin.GetFromJsonAsync<JsonArray>("/v2/deployments"))!);

        Assert.Equal(["/team-a/shared", "/team-b/shared"], all);
        Assert.Equal(["/team-a/shared"], mine);
    }

    [Theory]
    [InlineData("GET", "/v2/apps/team-b/api", null, "read")]
    [InlineData("GET", "/v2/apps/team-b/api/tasks", null, "read")]
    [InlineData("GET", "/v2/apps/team-b/api/versions", null, "read")]
    [InlineData("GET", "/v2/apps/team-b/no-such-app", null, "read")] // no telling which apps exist
    [InlineData("PUT", "/v2/apps/team-b/api?force=true", """{"instances": 3}""", "update")]
    [InlineData("PATCH", "/v2/apps/team-b/api?force=true", """{"instances": 3}""", "update")]
    [InlineData("PUT", "/v2/apps/team-b/api?force=true&partialUpdate=false", """{"cmd": "cat /etc/shadow", "instances": 1}""", "update")]
    [InlineData("POST", "/v2/apps/team-b/api/restart?force=true", null, "update")]
    [InlineData("DELETE", "/v2/apps/team-b/api?force=true", null, "delete")]
    [InlineData("DELETE", "/v2/apps/team-b/api/tasks?scale=true", null, "update")]
    [InlineData("DELETE", "/v2/queue/team-b/api/delay", null, "update")]
    [InlineData("GET", "/v2/groups/team-b", null, "read")]
    [InlineData("GET", "/v2/groups/team-b/versions", null, "read")]
    [InlineData("PUT", "/v2/groups/team-b?force=true", """{"scaleBy": 3}""", "update")]
    [InlineData("DELETE", "/v2/groups/team-b?force=true", null, "delete")]
    public async Task TeamBApp_TeamAUser_403AndUnchanged(string method, string path, string? body, string action)
    {
        var before = await f.AppAsAdmin("/team-b/api");

        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : TeamClusterFixture.Body(body) };
        using var response = await f.Alice.SendAsync(request);

        await AssertMarathonForbidden(response, TeamBRid, action);
        var after = await f.AppAsAdmin("/team-b/api");
        Assert.NotNull(after);
        Assert.Equal(before!["version"]!.GetValue<string>(), after["version"]!.GetValue<string>());
        Assert.Equal(1, after["instances"]!.GetValue<int>());
        Assert.True(await f.TaskAlive(f.TeamBTask));
    }

    [Fact]
    public async Task KillTask_OfTeamB_403AndStillAlive()
    {
        using var response = await f.Alice.DeleteAsync($"/v2/apps/team-b/api/tasks/{f.TeamBTask}?scale=true");

        await AssertMarathonForbidden(response, TeamBRid, "update");
        Assert.True(await f.TaskAlive(f.TeamBTask));
    }

    [Fact]
    public async Task TasksDelete_TeamAAndTeamBTasks_403NamingOnlyTheTaskSentAndNeitherKilled()
    {
        var json = new JsonObject { ["ids"] = new JsonArray(f.TeamATask, f.TeamBTask) }.ToJsonString();

        using var response = await f.Alice.PostAsync("/v2/tasks/delete", TeamClusterFixture.Body(json));

        // The task's app is not hers to read: the answer names the task id she sent, not the app's permission.
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, text);
        var message = JsonNode.Parse(text)!["message"]!.GetValue<string>();
        Assert.Contains(f.TeamBTask, message, StringComparison.Ordinal);
        Assert.DoesNotContain("dcos:", message, StringComparison.Ordinal);
        Assert.DoesNotContain("/team-b", message, StringComparison.Ordinal);
        Assert.True(await f.TaskAlive(f.TeamATask));
        Assert.True(await f.TaskAlive(f.TeamBTask));
    }

    [Theory]
    [InlineData("PUT", "")]
    [InlineData("PUT", "?partialUpdate=false")]
    [InlineData("PATCH", "")]
    public async Task PutApp_TeamBAppExistingOrNot_SameForbidden(string method, string query)
    {
        using var existing = new HttpRequestMessage(new HttpMethod(method), "/v2/apps/team-b/api" + query) { Content = TeamClusterFixture.Body("{}") };
        using var missing = new HttpRequestMessage(new HttpMethod(method), "/v2/apps/team-b/no-such-app" + query) { Content = TeamClusterFixture.Body("{}") };

        using var forExisting = await f.Alice.SendAsync(existing);
        using var forMissing = await f.Alice.SendAsync(missing);

        // The same status and the same sentence but for the path she named: nothing tells whether the app exists.
        var (textExisting, textMissing) = (await forExisting.Content.ReadAsStringAsync(), await forMissing.Content.ReadAsStringAsync());
        Assert.True(forExisting.StatusCode == HttpStatusCode.Forbidden, textExisting);
        Assert.True(forMissing.StatusCode == HttpStatusCode.Forbidden, textMissing);
        Assert.Equal(textExisting.Replace("/team-b/api", "/team-b/APP", StringComparison.Ordinal), textMissing.Replace("/team-b/no-such-app", "/team-b/APP", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MultiAppPut_TeamBAppExistingOrNot_SameForbidden()
    {
        using var forExisting = await f.Alice.PutAsync("/v2/apps", TeamClusterFixture.Body("""[{"id": "/team-b/api"}]"""));
        using var forMissing = await f.Alice.PutAsync("/v2/apps", TeamClusterFixture.Body("""[{"id": "/team-b/no-such-app"}]"""));

        var (textExisting, textMissing) = (await forExisting.Content.ReadAsStringAsync(), await forMissing.Content.ReadAsStringAsync());
        Assert.True(forExisting.StatusCode == HttpStatusCode.Forbidden, textExisting);
        Assert.True(forMissing.StatusCode == HttpStatusCode.Forbidden, textMissing);
        Assert.Equal(textExisting.Replace("/team-b/api", "/team-b/APP", StringComparison.Ordinal), textMissing.Replace("/team-b/no-such-app", "/team-b/APP", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("""{"scaleBy": 2}""")]
    [InlineData("""{"version": "2000-01-01T00:00:00.000Z"}""")] // a rollback to before any app: would remove them all
    public async Task GroupScaleOrRollback_TeamBOrMissingGroup_SameForbiddenNamingOnlyTheGroup(string json)
    {
        using var teamB = await f.Alice.PutAsync("/v2/groups/team-b?force=true", TeamClusterFixture.Body(json));
        using var teamC = await f.Alice.PutAsync("/v2/groups/team-c?force=true", TeamClusterFixture.Body(json));

        var (textB, textC) = (await teamB.Content.ReadAsStringAsync(), await teamC.Content.ReadAsStringAsync());
        Assert.True(teamB.StatusCode == HttpStatusCode.Forbidden, textB);
        Assert.True(teamC.StatusCode == HttpStatusCode.Forbidden, textC);
        Assert.Equal(textB.Replace("/team-b", "/team-X", StringComparison.Ordinal), textC.Replace("/team-c", "/team-X", StringComparison.Ordinal));
        Assert.Contains($"'{TeamBRid}'", textB, StringComparison.Ordinal);
        Assert.DoesNotContain("/team-b/", textB, StringComparison.Ordinal); // no app of team B named
        Assert.Equal(1, (await f.AppAsAdmin("/team-b/api"))!["instances"]!.GetValue<int>());
        Assert.NotNull(await f.AppAsAdmin("/team-b/db"));
    }

    [Fact]
    public async Task GroupPut_BodyIdNamingTeamB_ForbiddenNamingOnlyThatGroup()
    {
        using var response = await f.Alice.PutAsync("/v2/groups/team-a?force=true", TeamClusterFixture.Body("""{"id": "/team-b", "apps": []}"""));

        var text = await response.Content.ReadAsStringAsync();
        await AssertMarathonForbidden(response, TeamBRid, "update");
        Assert.Contains($"'{TeamBRid}'", text, StringComparison.Ordinal);
        Assert.DoesNotContain("/team-b/", text, StringComparison.Ordinal);
        Assert.NotNull(await f.AppAsAdmin("/team-b/api"));
        Assert.NotNull(await f.AppAsAdmin("/team-b/db"));
    }

    [Fact]
    public async Task PutApp_CreateOnlyCallerWhoseAppWasCreatedWhileItsBodyCame_409AndNotOverwritten()
    {
        // carol may create apps under /team-a/race, not change them.
        var iam = f.Cluster.Master.Services.GetRequiredService<IamStore>();
        await iam.CreateUserAsync(new IamUser { Uid = "carol", Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(TeamClusterFixture.AlicePassword, iterations: 1000) }, CancellationToken.None);
        await iam.GrantAsync(Rids.MarathonService, "carol", isGroup: false, PermissionAction.Read, CancellationToken.None);
        await iam.GrantAsync(Rids.MarathonPath("/team-a/race"), "carol", isGroup: false, PermissionAction.Create, CancellationToken.None);
        using var carol = await f.LoginAsync("carol", TeamClusterFixture.AlicePassword);

        // Expect: 100-continue holds carol's body until the master reads it, which it does after deciding "create".
        var masterReads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, Expect100ContinueTimeout = TimeSpan.FromMinutes(5) }) { BaseAddress = f.Cluster.Master.Url };
        using var request = new HttpRequestMessage(HttpMethod.Put, "/v2/apps/team-a/race/app")
        {
            Content = new HeldContent(TeamClusterFixture.App("/team-a/race/app").Replace("sleep 600", "cat /etc/shadow", StringComparison.Ordinal), masterReads, release),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.ExpectContinue = true;
        request.Headers.TryAddWithoutValidation("Authorization", carol.DefaultRequestHeaders.GetValues("Authorization").Single());
        var sending = http.SendAsync(request);

        await masterReads.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using (var created = await f.Admin.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-a/race/app"))))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        release.SetResult();
        using var response = await sending;

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Conflict, text);
        Assert.Equal("sleep 600", (await f.AppAsAdmin("/team-a/race/app"))!["cmd"]!.GetValue<string>());
    }

    /// <summary>A body that is produced only when the server asks for it (after its 100 Continue), and then only once released.</summary>
    private sealed class HeldContent(string json, TaskCompletionSource asked, TaskCompletionSource release) : HttpContent
    {
        private readonly byte[] _bytes = System.Text.Encoding.UTF8.GetBytes(json);

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            asked.TrySetResult();
            await release.Task;
            await stream.WriteAsync(_bytes);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _bytes.Length;
            return true;
        }
    }

    [Fact]
    public async Task CancelDeployment_OfTeamB_403AndStillDeploying()
    {
        var plans = (await f.Admin.GetFromJsonAsync<JsonArray>("/v2/deployments"))!;
        var id = plans.First(p => p!["affectedApps"]!.AsArray().Any(a => a!.GetValue<string>() == "/team-b/db"))!["id"]!.GetValue<string>();

        using var response = await f.Alice.DeleteAsync("/v2/deployments/" + id);

        await AssertMarathonForbidden(response, TeamBRid, "update");
        var after = (await f.Admin.GetFromJsonAsync<JsonArray>("/v2/deployments"))!;
        Assert.Contains(after, p => p!["id"]!.GetValue<string>() == id);
        Assert.NotNull(await f.AppAsAdmin("/team-b/db"));
    }

    [Fact]
    public async Task MultiAppPut_TouchingTeamB_403AndNothingChanged()
    {
        var web = await f.AppAsAdmin("/team-a/web");
        var api = await f.AppAsAdmin("/team-b/api");
        var json = $"[{TeamClusterFixture.App("/team-a/web").Replace("\"instances\":1", "\"instances\":2", StringComparison.Ordinal)},"
            + $"{TeamClusterFixture.App("/team-b/api").Replace("\"instances\":1", "\"instances\":4", StringComparison.Ordinal)}]";

        using var response = await f.Alice.PutAsync("/v2/apps?force=true", TeamClusterFixture.Body(json));

        await AssertMarathonForbidden(response, TeamBRid, "update");
        Assert.Equal(web!["version"]!.GetValue<string>(), (await f.AppAsAdmin("/team-a/web"))!["version"]!.GetValue<string>());
        Assert.Equal(api!["version"]!.GetValue<string>(), (await f.AppAsAdmin("/team-b/api"))!["version"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/v2/apps", """{"id": "/team-a/../team-b/evil", "cmd": "sleep 600", "cpus": 0.01, "mem": 16}""")]
    [InlineData("/v2/groups", """{"id": "/team-a/../team-b", "apps": [{"id": "evil", "cmd": "sleep 600", "cpus": 0.01, "mem": 16}]}""")]
    [InlineData("/v2/groups", """{"id": "/team-a/../team-b/sub", "apps": [{"id": "../evil", "cmd": "sleep 600", "cpus": 0.01, "mem": 16}]}""")]
    public async Task Create_IdClimbingOutOfTeamA_403AndNotCreated(string path, string json)
    {
        using var response = await f.Alice.PostAsync(path, TeamClusterFixture.Body(json));

        await AssertMarathonForbidden(response, TeamBRid, "create");
        Assert.Null(await f.AppAsAdmin("/team-b/evil"));
    }

    [Fact]
    public async Task GroupPut_ReplacingTeamB_403AndTeamBKept()
    {
        var json = """{"apps": [{"id": "/team-b/api", "cmd": "sleep 1", "cpus": 0.01, "mem": 16}]}""";

        using var response = await f.Alice.PutAsync("/v2/groups/team-b?force=true", TeamClusterFixture.Body(json));

        await AssertMarathonForbidden(response, TeamBRid, "update");
        Assert.NotNull(await f.AppAsAdmin("/team-b/db"));
        Assert.Equal("sleep 600", (await f.AppAsAdmin("/team-b/api"))!["cmd"]!.GetValue<string>());
    }

    [Fact]
    public async Task DeleteRootGroup_TeamAUser_403()
    {
        using var response = await f.Alice.DeleteAsync("/v2/groups/?force=true");

        await AssertMarathonForbidden(response, "dcos:service:marathon:marathon:services:/", "delete");
        Assert.NotNull(await f.AppAsAdmin("/team-b/api"));
    }

    [Fact]
    public async Task App_UserRoot_403AndNotCreated_UserNobodyAllowed()
    {
        using var root = await f.Alice.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-a/as-root", user: "root")));
        using var nobody = await f.Alice.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-a/as-nobody", user: "nobody")));

        await AssertMarathonForbidden(root, "dcos:mesos:master:task:user:root", "create");
        Assert.Null(await f.AppAsAdmin("/team-a/as-root"));
        Assert.Equal(HttpStatusCode.Created, nobody.StatusCode);
    }

    [Fact]
    public async Task PatchOwnApp_ToUserRoot_403AndUserUnchanged()
    {
        using var response = await f.Alice.PatchAsync("/v2/apps/team-a/web?force=true", TeamClusterFixture.Body("""{"user": "root"}"""));

        await AssertMarathonForbidden(response, "dcos:mesos:master:task:user:root", "create");
        Assert.Null((await f.AppAsAdmin("/team-a/web"))!["user"]);
    }

    [Fact]
    public async Task OwnApp_TeamAUser_ReadsAndChangesIt()
    {
        using var create = await f.Alice.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-a/own")));
        using var get = await f.Alice.GetAsync("/v2/apps/team-a/own");
        using var scale = await f.Alice.PutAsync("/v2/apps/team-a/own?force=true", TeamClusterFixture.Body("""{"instances": 2}"""));
        using var restart = await f.Alice.PostAsync("/v2/apps/team-a/own/restart?force=true", null);
        using var delete = await f.Alice.DeleteAsync("/v2/apps/team-a/own?force=true");

        Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.OK, scale.StatusCode);
        Assert.Equal(HttpStatusCode.OK, restart.StatusCode);
        Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
    }

    [Theory]
    [InlineData("GET", "")]
    [InlineData("GET", "/logs")]
    [InlineData("GET", "/logs?stream=stderr")]
    [InlineData("GET", "/files/read?path=stdout")]
    [InlineData("POST", "/kill")]
    [InlineData("DELETE", "")]
    public async Task DroverTask_OfTeamB_403(string method, string suffix)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), $"/drover/v1/tasks/{f.TeamBTask}{suffix}");
        using var response = await f.Alice.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("forbidden", error["code"]!.GetValue<string>());
        Assert.Contains(suffix.StartsWith("/logs", StringComparison.Ordinal) || suffix.StartsWith("/files", StringComparison.Ordinal)
            ? "dcos:mesos:agent:sandbox:app_id:/team-b/api" : TeamBRid, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(await f.TaskAlive(f.TeamBTask));
    }

    [Fact]
    public async Task DroverTask_OfTeamA_ReadableWithItsSandbox()
    {
        using var get = await f.Alice.GetAsync("/drover/v1/tasks/" + f.TeamATask);
        using var logs = await f.Alice.GetAsync($"/drover/v1/tasks/{f.TeamATask}/logs");
        using var file = await f.Alice.GetAsync($"/drover/v1/tasks/{f.TeamATask}/files/read?path=stdout");

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.OK, logs.StatusCode); // not placed yet: nothing to read, but allowed
        Assert.Equal(HttpStatusCode.Conflict, file.StatusCode); // not placed on an agent yet; allowed
    }

    [Fact]
    public async Task SubmitTask_UserRoot_403_UserNobodyAllowed()
    {
        using var root = await f.Alice.PostAsync("/drover/v1/tasks", TeamClusterFixture.Body("""{"cmd": "cat /etc/shadow", "user": "root"}"""));
        using var nobody = await f.Alice.PostAsync("/drover/v1/tasks", TeamClusterFixture.Body("""{"cmd": "id", "user": "nobody"}"""));

        Assert.Equal(HttpStatusCode.Forbidden, root.StatusCode);
        Assert.Contains("dcos:mesos:master:task:user:root", await root.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Created, nobody.StatusCode);
        Assert.DoesNotContain((await f.Admin.GetFromJsonAsync<JsonObject>("/drover/v1/tasks"))!["tasks"]!.AsArray(),
            t => t!["cmd"]?.GetValue<string>() == "cat /etc/shadow");
    }

    [Fact]
    public async Task SubmitTask_CustomExecutor_NeedsMesosOperatorAccess()
    {
        var json = """{"cmd": "x", "executor": {"executorId": "e1", "frameworkId": "someone-elses-framework", "cmd": "sleep 600"}}""";

        using var response = await f.Alice.PostAsync("/drover/v1/tasks", TeamClusterFixture.Body(json));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("dcos:adminrouter:ops:mesos", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EventStream_TeamAUser_GetsTeamAEventsOnly()
    {
        var seen = new ConcurrentQueue<string>();
        await using var stream = await SseEventStream.OpenAsync(f.Alice, "/v2/events", (type, data, _) =>
        {
            seen.Enqueue(type + " " + data.ToJsonString());
            return Task.CompletedTask;
        });
        await using var adminStream = await OpenCountingStream(f.Admin, seen: out var adminSeen);

        // The bus keeps one order for all: team B's events are published before team A's.
        using var teamB = await f.Admin.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-b/events-probe")));
        Assert.Equal(HttpStatusCode.Created, teamB.StatusCode);
        using var teamA = await f.Alice.PostAsync("/v2/apps", TeamClusterFixture.Body(TeamClusterFixture.App("/team-a/events-probe")));
        Assert.Equal(HttpStatusCode.Created, teamA.StatusCode);

        await Wait.UntilAsync(() => Task.FromResult(seen.ToArray()), s => s.Any(e => e.Contains("/team-a/events-probe", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "alice's stream to show her new app");
        await Wait.UntilAsync(() => Task.FromResult(adminSeen.ToArray()), s => s.Any(e => e.Contains("/team-b/events-probe", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "the admin's stream to show team B's new app");
        Assert.DoesNotContain(seen, e => e.Contains("team-b", StringComparison.Ordinal));
    }

    private static Task<SseEventStream> OpenCountingStream(HttpClient client, out ConcurrentQueue<string> seen)
    {
        var events = seen = new ConcurrentQueue<string>();
        return SseEventStream.OpenAsync(client, "/v2/events", (type, data, _) =>
        {
            events.Enqueue(type + " " + data.ToJsonString());
            return Task.CompletedTask;
        });
    }

    /// <summary>A 403 in Marathon's shape, <c>{"message"}</c>, naming the permission that is missing.</summary>
    private static async Task AssertMarathonForbidden(HttpResponseMessage response, string rid, string action)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"expected 403, got {(int)response.StatusCode}: {text}");
        var message = JsonNode.Parse(text)!["message"]!.GetValue<string>();
        Assert.Contains($"'{rid}", message, StringComparison.Ordinal);
        Assert.Contains($"action '{action}'", message, StringComparison.Ordinal);
    }
}
