using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Security;

/// <summary>
/// A real master with security on (no agents: tasks stay pending) and one-off tasks of three submitters:
/// <c>alice</c> and <c>bob</c>, members of group <c>devs</c> (<see cref="Rids.Tasks"/> full, tasks as <c>nobody</c>),
/// and the bootstrap <c>admin</c> (a task as <c>root</c>). <c>carol</c> runs operations: <see cref="Rids.Tasks"/>
/// full and <see cref="Rids.AdminTasks"/> full.
/// </summary>
public sealed class OwnerClusterFixture : IAsyncLifetime
{
    public const string Password = "owner-test-password-1";

    public InProcessCluster Cluster { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public HttpClient Alice { get; private set; } = null!;

    public HttpClient Bob { get; private set; } = null!;

    public HttpClient Carol { get; private set; } = null!;

    /// <summary>A pending one-off task alice submitted.</summary>
    public string AliceTask { get; private set; } = null!;

    /// <summary>A pending one-off task the admin submitted to run as root.</summary>
    public string AdminRootTask { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Cluster = await InProcessCluster.StartAsync(secure: true);
        Admin = await Cluster.LoginAsync("admin");
        var iam = Cluster.Master.Services.GetRequiredService<IamStore>();
        var ct = CancellationToken.None;
        Ok(await iam.CreateGroupAsync("devs", "developers", ct));
        Ok(await iam.GrantAsync(Rids.Tasks, "devs", isGroup: true, PermissionAction.Full, ct));
        Ok(await iam.GrantAsync(Rids.TaskUser("nobody"), "devs", isGroup: true, PermissionAction.Create, ct));
        foreach (var uid in new[] { "alice", "bob", "carol" })
        {
            Ok(await iam.CreateUserAsync(new IamUser { Uid = uid, Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(Password, iterations: 1000) }, ct));
        }

        Ok(await iam.AddMemberAsync("devs", "alice", ct));
        Ok(await iam.AddMemberAsync("devs", "bob", ct));
        Ok(await iam.GrantAsync(Rids.Tasks, "carol", isGroup: false, PermissionAction.Full, ct));
        Ok(await iam.GrantAsync(Rids.AdminTasks, "carol", isGroup: false, PermissionAction.Full, ct));

        Alice = await LoginAsync(Cluster, "alice", Password);
        Bob = await LoginAsync(Cluster, "bob", Password);
        Carol = await LoginAsync(Cluster, "carol", Password);
        AliceTask = await SubmitAsync(Alice, """{"name": "alice-job", "cmd": "sleep 600"}""");
        AdminRootTask = await SubmitAsync(Admin, """{"name": "root-job", "cmd": "cat /etc/shadow; sleep 600", "user": "root"}""");
    }

    public async Task DisposeAsync()
    {
        foreach (var client in new[] { Admin, Alice, Bob, Carol })
        {
            client?.Dispose();
        }

        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }

    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>A client for the master carrying <paramref name="uid"/>'s login token.</summary>
    public static Task<HttpClient> LoginAsync(InProcessCluster cluster, string uid, string password) => cluster.LoginAsync(uid, password);

    /// <summary>Submits a one-off task as the client's user; its id.</summary>
    public static async Task<string> SubmitAsync(HttpClient client, string json)
    {
        using var response = await client.PostAsync("/drover/v1/tasks", Body(json));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!["id"]!.GetValue<string>();
    }

    /// <summary>The task as the admin sees it.</summary>
    public async Task<JsonObject> TaskAsAdmin(string id) => (await Admin.GetFromJsonAsync<JsonObject>("/drover/v1/tasks/" + id))!;

    /// <summary>Whether the task is still alive and no kill was asked for, as the admin sees it.</summary>
    public async Task<bool> TaskAlive(string id)
    {
        var task = await TaskAsAdmin(id);
        return task["state"]!.GetValue<string>() == "TASK_PENDING" && task["killRequested"]?.GetValue<bool>() != true;
    }

    private static void Ok(IamResult result) => Assert.True(result.Succeeded, result.Message);
}

/// <summary>
/// One-off tasks belong to whoever submitted them: other holders of <c>drover:tasks</c> try to list, read, read the
/// logs and files of, and kill them (another team's, the admin's root task) and must get 403 / not see them; only
/// the owner and holders of <c>drover:admin:tasks</c> may.
/// </summary>
public sealed class OneOffTaskOwnerTests(OwnerClusterFixture f) : IClassFixture<OwnerClusterFixture>
{
    [Theory]
    [InlineData("GET", "", "read")]
    [InlineData("GET", "/logs", "read")]
    [InlineData("GET", "/logs?stream=stderr", "read")]
    [InlineData("GET", "/files/read?path=stdout", "read")]
    [InlineData("POST", "/kill", "delete")]
    [InlineData("DELETE", "", "delete")]
    public async Task OneOffTask_OfAnotherUser_403AndStillAlive(string method, string suffix, string action)
    {
        foreach (var (who, client, task) in new[] { ("bob on alice's task", f.Bob, f.AliceTask), ("alice on the admin's root task", f.Alice, f.AdminRootTask) })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), $"/drover/v1/tasks/{task}{suffix}");
            using var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{who}: {(int)response.StatusCode} {text}");
            var error = JsonNode.Parse(text)!;
            Assert.Equal("forbidden", error["code"]!.GetValue<string>());
            Assert.Contains($"'{Rids.AdminTasks}' with action '{action}'", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.DoesNotContain("sleep 600", text, StringComparison.Ordinal);
            Assert.True(await f.TaskAlive(task), who);
        }
    }

    [Fact]
    public async Task Listing_DevsUser_SeesOwnOneOffTasksOnly_AdminAndOperatorSeeAll()
    {
        var bobs = await OwnerClusterFixture.SubmitAsync(f.Bob, """{"name": "bob-job", "cmd": "sleep 600"}""");

        async Task<string[]> Ids(HttpClient client, string query = "") =>
            [.. (await client.GetFromJsonAsync<JsonObject>("/drover/v1/tasks" + query))!["tasks"]!.AsArray().Select(t => t!["id"]!.GetValue<string>())];

        foreach (var query in new[] { "", "?state=TASK_PENDING" })
        {
            var bobSees = await Ids(f.Bob, query);
            Assert.Contains(bobs, bobSees);
            Assert.DoesNotContain(f.AliceTask, bobSees);
            Assert.DoesNotContain(f.AdminRootTask, bobSees);

            var aliceSees = await Ids(f.Alice, query);
            Assert.Contains(f.AliceTask, aliceSees);
            Assert.DoesNotContain(bobs, aliceSees);
            Assert.DoesNotContain(f.AdminRootTask, aliceSees);

            foreach (var all in new[] { await Ids(f.Admin, query), await Ids(f.Carol, query) })
            {
                Assert.Contains(f.AliceTask, all);
                Assert.Contains(f.AdminRootTask, all);
                Assert.Contains(bobs, all);
            }
        }
    }

    [Fact]
    public async Task OneOffTask_Owner_SeesItWithItsOwnerReadsItsSandboxAndKillsIt()
    {
        var mine = await OwnerClusterFixture.SubmitAsync(f.Alice, """{"name": "alice-kill-me", "cmd": "sleep 600"}""");

        var view = (await f.Alice.GetFromJsonAsync<JsonObject>("/drover/v1/tasks/" + mine))!;
        using var logs = await f.Alice.GetAsync($"/drover/v1/tasks/{mine}/logs");
        using var file = await f.Alice.GetAsync($"/drover/v1/tasks/{mine}/files/read?path=stdout");
        using var kill = await f.Alice.PostAsync($"/drover/v1/tasks/{mine}/kill", null);

        Assert.Equal("alice", view["owner"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, logs.StatusCode); // not placed yet: nothing to read, but allowed
        Assert.Equal(HttpStatusCode.Conflict, file.StatusCode); // not placed on an agent yet; allowed
        Assert.Equal(HttpStatusCode.Accepted, kill.StatusCode);
        Assert.False(await f.TaskAlive(mine));
        Assert.Equal("admin", (await f.TaskAsAdmin(f.AdminRootTask))["owner"]!.GetValue<string>());
    }

    [Fact]
    public async Task OneOffTask_AdminTasksHolder_ReadsAndKillsAnothersTask()
    {
        var bobs = await OwnerClusterFixture.SubmitAsync(f.Bob, """{"name": "bob-for-ops", "cmd": "sleep 600"}""");

        using var get = await f.Carol.GetAsync("/drover/v1/tasks/" + bobs);
        using var logs = await f.Carol.GetAsync($"/drover/v1/tasks/{bobs}/logs");
        using var kill = await f.Carol.DeleteAsync("/drover/v1/tasks/" + bobs);

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("bob", (await get.Content.ReadFromJsonAsync<JsonObject>())!["owner"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, logs.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, kill.StatusCode);
        Assert.False(await f.TaskAlive(bobs));
    }

    [Fact]
    public async Task Submit_OwnerInTheBody_IgnoredTheCallerOwnsTheTask()
    {
        var forged = await OwnerClusterFixture.SubmitAsync(f.Bob, """{"name": "forged", "cmd": "sleep 600", "owner": "alice"}""");

        Assert.Equal("bob", (await f.TaskAsAdmin(forged))["owner"]!.GetValue<string>());
        using var aliceGet = await f.Alice.GetAsync("/drover/v1/tasks/" + forged);
        using var aliceKill = await f.Alice.PostAsync($"/drover/v1/tasks/{forged}/kill", null);
        Assert.Equal(HttpStatusCode.Forbidden, aliceGet.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, aliceKill.StatusCode);
        Assert.True(await f.TaskAlive(forged));
    }
}

/// <summary>The owner of a one-off task is part of its desired spec: it survives a master restart; a dev cluster's caller owns everything as before.</summary>
public sealed class OneOffTaskOwnerRecoveryTests
{
    [Fact]
    public async Task Owner_AfterMasterRestart_StillOnlyTheOwner()
    {
        await using var cluster = await InProcessCluster.StartAsync(secure: true);
        var iam = cluster.Master.Services.GetRequiredService<IamStore>();
        foreach (var uid in new[] { "alice", "bob" })
        {
            Assert.True((await iam.CreateUserAsync(new IamUser { Uid = uid, Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(OwnerClusterFixture.Password, iterations: 1000) }, CancellationToken.None)).Succeeded);
            Assert.True((await iam.GrantAsync(Rids.Tasks, uid, isGroup: false, PermissionAction.Full, CancellationToken.None)).Succeeded);
        }

        using var alice = await OwnerClusterFixture.LoginAsync(cluster, "alice", OwnerClusterFixture.Password);
        var task = await OwnerClusterFixture.SubmitAsync(alice, """{"cmd": "sleep 600"}""");

        await cluster.RestartMasterAsync();

        using var aliceAgain = await OwnerClusterFixture.LoginAsync(cluster, "alice", OwnerClusterFixture.Password);
        using var bob = await OwnerClusterFixture.LoginAsync(cluster, "bob", OwnerClusterFixture.Password);
        using var bobKill = await bob.PostAsync($"/drover/v1/tasks/{task}/kill", null);
        var view = (await aliceAgain.GetFromJsonAsync<JsonObject>("/drover/v1/tasks/" + task))!;
        Assert.Equal(HttpStatusCode.Forbidden, bobKill.StatusCode);
        Assert.Equal("alice", view["owner"]!.GetValue<string>());
        Assert.Equal("TASK_PENDING", view["state"]!.GetValue<string>());
        Assert.NotEqual(true, view["killRequested"]?.GetValue<bool>());
    }

    [Fact]
    public async Task DevCluster_OneOffTask_OwnedByAnonymousAndSharedAsBefore()
    {
        await using var cluster = await InProcessCluster.StartAsync();
        using var http = new HttpClient { BaseAddress = cluster.Master.Url };

        var task = await OwnerClusterFixture.SubmitAsync(http, """{"cmd": "sleep 600"}""");
        var listed = (await http.GetFromJsonAsync<JsonObject>("/drover/v1/tasks"))!["tasks"]!.AsArray().Single(t => t!["id"]!.GetValue<string>() == task)!;
        using var kill = await http.PostAsync($"/drover/v1/tasks/{task}/kill", null);

        Assert.Equal("anonymous", listed["owner"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Accepted, kill.StatusCode);
    }
}
