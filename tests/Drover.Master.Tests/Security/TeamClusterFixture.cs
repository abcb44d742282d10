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
/// A real master with security on (no agents: app instances stay pending, deployments stay in progress, so
/// every listing has something in it) and two teams. The bootstrap <c>admin</c> deployed <c>/team-b/api</c>,
/// <c>/team-b/db</c> and one plan over <c>/team-a/shared</c> and <c>/team-b/shared</c>; <c>alice</c>, a member of
/// IAM group <c>team-a</c>, deployed <c>/team-a/web</c>. Group <c>team-a</c> holds: the Marathon API
/// (<see cref="Rids.MarathonService"/> read) and its event stream, everything on <c>/team-a</c>, the sandboxes
/// of <c>/team-a</c>, one-off tasks (<c>drover:tasks</c>) and running tasks as <c>nobody</c>.
/// </summary>
public sealed class TeamClusterFixture : IAsyncLifetime
{
    public const string AlicePassword = "alice-password-1";

    public InProcessCluster Cluster { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public HttpClient Alice { get; private set; } = null!;

    /// <summary>The id of a pending instance of <c>/team-b/api</c>.</summary>
    public string TeamBTask { get; private set; } = null!;

    /// <summary>The id of a pending instance of <c>/team-a/web</c>.</summary>
    public string TeamATask { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Cluster = await InProcessCluster.StartAsync(secure: true);
        Admin = await Cluster.LoginAsync("admin");

        var iam = Cluster.Master.Services.GetRequiredService<IamStore>();
        var ct = CancellationToken.None;
        Ok(await iam.CreateUserAsync(new IamUser { Uid = "alice", Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(AlicePassword, iterations: 1000) }, ct));
        Ok(await iam.CreateGroupAsync("team-a", "team A", ct));
        Ok(await iam.AddMemberAsync("team-a", "alice", ct));
        foreach (var (rid, action) in new[]
        {
            (Rids.MarathonService, PermissionAction.Read),
            (Rids.MarathonEvents, PermissionAction.Read),
            (Rids.MarathonPath("/team-a"), PermissionAction.Full),
            (Rids.SandboxOfApp("/team-a"), PermissionAction.Read),
            (Rids.Tasks, PermissionAction.Full),
            (Rids.TaskUser("nobody"), PermissionAction.Create),
        })
        {
            Ok(await iam.GrantAsync(rid, "team-a", isGroup: true, action, ct));
        }

        Alice = await LoginAsync("alice", AlicePassword);

        await Created(Admin, "/v2/apps", App("/team-b/api"));
        await Created(Admin, "/v2/apps", App("/team-b/db"));
        var plan = await Admin.PutAsync("/v2/apps", Body($"[{App("/team-a/shared")},{App("/team-b/shared")}]"));
        Assert.Equal(HttpStatusCode.OK, plan.StatusCode);
        await Created(Alice, "/v2/apps", App("/team-a/web"));

        TeamBTask = await InstanceOf("/team-b/api");
        TeamATask = await InstanceOf("/team-a/web");
    }

    public async Task DisposeAsync()
    {
        Admin?.Dispose();
        Alice?.Dispose();
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>A minimal app definition: one instance of a shell command, small enough for any agent.</summary>
    public static string App(string id, string? user = null) =>
        new JsonObject { ["id"] = id, ["cmd"] = "sleep 600", ["cpus"] = 0.01, ["mem"] = 16, ["instances"] = 1, ["user"] = user }.ToJsonString();

    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>A client for the master carrying <paramref name="uid"/>'s login token (the DC/OS header form).</summary>
    public Task<HttpClient> LoginAsync(string uid, string password) => Cluster.LoginAsync(uid, password);

    /// <summary>The app as the admin sees it (null when it does not exist).</summary>
    public async Task<JsonObject?> AppAsAdmin(string id)
    {
        using var response = await Admin.GetAsync("/v2/apps" + id);
        return response.StatusCode == HttpStatusCode.NotFound ? null : (await response.Content.ReadFromJsonAsync<JsonObject>())!["app"]!.AsObject();
    }

    /// <summary>Whether the task is still alive (not killed), as the admin sees it.</summary>
    public async Task<bool> TaskAlive(string id)
    {
        var task = await Admin.GetFromJsonAsync<JsonObject>("/drover/v1/tasks/" + id);
        return task!["state"]!.GetValue<string>() is "TASK_PENDING" or "TASK_STAGING" or "TASK_STARTING" or "TASK_RUNNING"
            && task["killRequested"]?.GetValue<bool>() != true;
    }

    private static async Task Created(HttpClient client, string path, string json)
    {
        using var response = await client.PostAsync(path, Body(json));
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST {path} {json}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task<string> InstanceOf(string app)
    {
        var tasks = await Wait.UntilAsync(
            async () => (await Admin.GetFromJsonAsync<JsonObject>("/drover/v1/tasks"))!["tasks"]!.AsArray(),
            list => list.Any(t => t!["appId"]?.GetValue<string>() == app),
            TimeSpan.FromSeconds(30),
            $"an instance of {app}");
        return tasks.First(t => t!["appId"]?.GetValue<string>() == app)!["id"]!.GetValue<string>();
    }

    private static void Ok(IamResult result) => Assert.True(result.Succeeded, result.Message);
}
