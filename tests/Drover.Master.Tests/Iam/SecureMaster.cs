using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Testing;

namespace Drover.Master.Tests.Iam;

/// <summary>What the master answered: status, body (as text and, when it is JSON, parsed) and headers.</summary>
public sealed record Reply(HttpStatusCode Status, string Body, HttpResponseHeaders Headers)
{
    public JsonNode? Json => Body.Length > 0 && Body[0] is '{' or '[' ? JsonNode.Parse(Body) : null;

    /// <summary>The DC/OS error code of an error body.</summary>
    public string? Code => Json?["code"]?.GetValue<string>();

    public string? Description => Json?["description"]?.GetValue<string>();

    public override string ToString() => $"{(int)Status} {Body}";
}

/// <summary>
/// A real master in the test process with security on (no agents), its bootstrap <c>admin</c> logged in, and
/// helpers to call the IAM API as anyone.
/// </summary>
public sealed class SecureMaster : IAsyncDisposable
{
    private readonly HttpClient _http;

    private SecureMaster(InProcessCluster cluster, string adminPassword)
    {
        Cluster = cluster;
        AdminPassword = adminPassword;
        _http = new HttpClient { BaseAddress = cluster.Master.Url, Timeout = TimeSpan.FromSeconds(60) };
    }

    public InProcessCluster Cluster { get; }

    public string AdminPassword { get; }

    /// <summary>The bootstrap admin's login token.</summary>
    public string AdminToken { get; private set; } = "";

    public static async Task<SecureMaster> StartAsync()
    {
        var cluster = await InProcessCluster.StartAsync(secure: true);
        var password = (await File.ReadAllTextAsync(Path.Combine(cluster.Root, "master", "bootstrap-admin-password"))).Trim();
        var master = new SecureMaster(cluster, password);
        master.AdminToken = await master.LoginAsync("admin", password);
        return master;
    }

    public async Task<Reply> SendAsync(HttpMethod method, string path, string? token, string? json = null, string authScheme = "token=")
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authScheme + token);
        }

        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request);
        return new Reply(response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers);
    }

    public Task<Reply> AsAdmin(HttpMethod method, string path, string? json = null) => SendAsync(method, path, AdminToken, json);

    /// <summary>Calls as admin and asserts the status.</summary>
    public async Task<Reply> AdminExpect(HttpStatusCode status, HttpMethod method, string path, string? json = null)
    {
        var reply = await AsAdmin(method, path, json);
        Assert.True(reply.Status == status, $"{method} {path} {json}: expected {(int)status}, got {reply}");
        return reply;
    }

    public Task<Reply> LoginReplyAsync(string uid, string? password = null, string? token = null)
    {
        var body = new JsonObject { ["uid"] = uid };
        if (password is not null)
        {
            body["password"] = password;
        }

        if (token is not null)
        {
            body["token"] = token;
        }

        return SendAsync(HttpMethod.Post, "/acs/api/v1/auth/login", null, body.ToJsonString());
    }

    public async Task<string> LoginAsync(string uid, string password)
    {
        var reply = await LoginReplyAsync(uid, password);
        Assert.True(reply.Status == HttpStatusCode.OK, $"login {uid}: {reply}");
        return reply.Json!["token"]!.GetValue<string>();
    }

    /// <summary>Creates a password user through the API and returns its login token.</summary>
    public async Task<string> UserAsync(string uid, string password = "password-123")
    {
        await AdminExpect(HttpStatusCode.Created, HttpMethod.Put, "/acs/api/v1/users/" + uid, new JsonObject { ["password"] = password }.ToJsonString());
        return await LoginAsync(uid, password);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await Cluster.DisposeAsync();
    }
}

/// <summary>One secure master shared by the tests of a class (each uses its own uids).</summary>
public sealed class SecureMasterFixture : IAsyncLifetime
{
    public SecureMaster Master { get; private set; } = null!;

    public async Task InitializeAsync() => Master = await SecureMaster.StartAsync();

    public async Task DisposeAsync()
    {
        if (Master is not null)
        {
            await Master.DisposeAsync();
        }
    }
}
