using System.Net;
using Drover.Client;
using Drover.Client.Auth;
using Drover.Client.Iam;

namespace Drover.Integration.Tests;

/// <summary>
/// A stand-in for a follower master: answers every request with a 307 to the leader (same path and query), as
/// <c>LeaderEndpoints.MapDroverFollower</c> does, and counts what it saw.
/// </summary>
public sealed class RedirectingServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private int _requests;
    private int _withToken;

    public RedirectingServer(Uri leader)
    {
        var port = DevClusterFixture.FreePort();
        Url = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Url.AbsoluteUri);
        _listener.Start();
        _loop = Task.Run(async () =>
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                Interlocked.Increment(ref _requests);
                if (context.Request.Headers["Authorization"] is { Length: > 0 })
                {
                    Interlocked.Increment(ref _withToken);
                }

                context.Response.StatusCode = 307;
                context.Response.RedirectLocation = new Uri(leader, context.Request.RawUrl).AbsoluteUri;
                context.Response.Close();
            }
        });
    }

    public Uri Url { get; }

    public int Requests => Volatile.Read(ref _requests);

    public int RequestsWithToken => Volatile.Read(ref _withToken);

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(10));
    }
}

/// <summary>The handler every CLI command talks through: the token reaches the leader through a follower's redirect; a 401 says what to do.</summary>
public sealed class MasterHttpTests(SecureMasterFixture master) : IClassFixture<SecureMasterFixture>
{
    private async Task<string> AdminTokenAsync()
    {
        using var anonymous = new IamClient(master.Url, MasterHttp.Create(master.Url, token: null));
        return await anonymous.LoginAsync("admin", (await File.ReadAllTextAsync(master.AdminPasswordFile)).Trim());
    }

    [Fact]
    public async Task ThroughAFollowersRedirect_TheTokenReachesTheLeaderForReadsAndWrites()
    {
        var token = await AdminTokenAsync();
        using var follower = new RedirectingServer(master.Url);
        // The user named both masters (--master follower,leader): the token may follow the redirect to the leader.
        using var iam = new IamClient(follower.Url, MasterHttp.Create(follower.Url, token, loginRequiredOn401: true, namedMasters: [master.Url]));
        using var drover = new DroverClient(follower.Url, MasterHttp.Create(follower.Url, token, loginRequiredOn401: true, namedMasters: [master.Url]));

        var users = await iam.ListUsersAsync(serviceAccounts: false);
        await iam.CreateGroupAsync("via-follower", "created through a redirect"); // a PUT with a body, replayed to the leader
        var agents = await drover.ListAgentsAsync();

        Assert.Contains(users, u => u.Uid == "admin");
        Assert.Equal("created through a redirect", (await iam.FindGroupAsync("via-follower"))!.Description);
        Assert.Empty(agents);
        Assert.True(follower.Requests >= 3, $"{follower.Requests} requests reached the follower");
        Assert.Equal(follower.Requests, follower.RequestsWithToken);
    }

    [Fact]
    public async Task RedirectToAnUnnamedHost_RefusedAndTheTokenNeverSent()
    {
        var token = await AdminTokenAsync();
        using var elsewhere = new RedirectingServer(master.Url); // records what reaches it
        using var follower = new RedirectingServer(elsewhere.Url);
        using var iam = new IamClient(follower.Url, MasterHttp.Create(follower.Url, token, loginRequiredOn401: true));

        var refused = await Assert.ThrowsAsync<MasterRedirectRefusedException>(() => iam.ListUsersAsync(serviceAccounts: false));

        Assert.Equal(elsewhere.Url.Port, refused.To.Port);
        Assert.Contains("--master", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, elsewhere.Requests);
        Assert.Equal(1, follower.RequestsWithToken);
    }

    [Fact]
    public async Task Unauthorized_ThrowsLoginRequired_SayingWhetherATokenWasRefused()
    {
        using var none = new IamClient(master.Url, MasterHttp.Create(master.Url, token: null, loginRequiredOn401: true));
        using var forged = new IamClient(master.Url, MasterHttp.Create(master.Url, token: "eyJhbGciOiJub25lIn0.eyJ1aWQiOiJhZG1pbiJ9.", loginRequiredOn401: true));

        var withoutToken = await Assert.ThrowsAsync<MasterLoginRequiredException>(() => none.ListGroupsAsync());
        var refused = await Assert.ThrowsAsync<MasterLoginRequiredException>(() => forged.ListGroupsAsync());

        Assert.False(withoutToken.TokenSent);
        Assert.Contains("not logged in", withoutToken.Message, StringComparison.Ordinal);
        Assert.True(refused.TokenSent);
        Assert.Contains("refused the login token", refused.Message, StringComparison.Ordinal);
    }
}
