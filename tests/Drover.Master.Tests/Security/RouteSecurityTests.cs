using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Core;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Master.Security;
using Drover.Store;
using Drover.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Master.Tests.Security;

/// <summary>
/// Every route of the master, the agent and the executor API — enumerated from the endpoint data source of a
/// secure dev process (master and agent in one host), so a new endpoint cannot be forgotten — is called without
/// credentials, with tokens that must not work, and with a valid token that holds no permission.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class RouteSecurityTests : IAsyncLifetime
{
    /// <summary>The only routes anyone may call without credentials (issue 13: health, ping, login; and the public CA certificate).</summary>
    private static readonly string[] AllowList = ["/health", "/ping", LoginEndpoint.Path, "/agent/v1/health", "/drover/v1/ca", "{*path:nonfile}"];

    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private string _root = "";
    private RunningHost? _host;

    public async Task InitializeAsync()
    {
        _root = Directory.CreateTempSubdirectory("drover-routes-").FullName;
        var master = new MasterOptions { DataDir = Path.Combine(_root, "master") };
        var agent = new AgentSettings { WorkDir = Path.Combine(_root, "agent"), Hostname = "routes", Resources = Resources.Parse(TestPorts.Resources()) };
        _host = await DroverHosts.StartDevAsync(master, agent, new Uri("http://127.0.0.1:0"), LogLevel.Critical, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _http.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private IReadOnlyList<(string Method, string Path, RouteAccess? Access, string Pattern)> Routes()
    {
        var routes = new List<(string, string, RouteAccess?, string)>();
        foreach (var e in _host!.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            var pattern = e.RoutePattern.RawText ?? "";
            var path = "/" + string.Join('/', pattern.Trim('/').Split('/').Select(s => s.StartsWith('{') ? "x" : s));
            var methods = e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
            foreach (var m in methods)
            {
                routes.Add((m, path, e.Metadata.GetMetadata<RouteAccess>(), pattern));
            }
        }

        return routes;
    }

    private async Task<HttpResponseMessage> CallAsync(string method, string path, string? authorization)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(_host!.Url, path));
        if (method is not ("GET" or "HEAD"))
        {
            request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
        }

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    [Fact]
    public void EveryRoute_DeclaresAnAccessRule_AndOnlyTheAllowListIsAnonymous()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var routes = Routes();
        Assert.True(routes.Count > 30, $"only {routes.Count} routes were found: is the endpoint data source the whole app's?");
        Assert.Empty(routes.Where(r => r.Access is null).Select(r => $"{r.Method} {r.Pattern}"));
        var anonymous = routes.Where(r => r.Access!.Kind == AccessKind.Anonymous).Select(r => r.Pattern).Distinct().Order().ToList();
        Assert.Equal(AllowList.Order(), anonymous);
    }

    [Fact]
    public async Task EveryRoute_WithoutCredentials_Is401WithAChallenge()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var wrong = new List<string>();
        foreach (var (method, path, access, _) in Routes().Where(r => r.Access!.Kind != AccessKind.Anonymous))
        {
            using var response = await CallAsync(method, path, authorization: null);
            if (response.StatusCode != HttpStatusCode.Unauthorized || response.Headers.WwwAuthenticate.Count == 0)
            {
                wrong.Add($"{method} {path} ({access!.Kind}): {(int)response.StatusCode}, WWW-Authenticate '{response.Headers.WwwAuthenticate}'");
            }
        }

        Assert.Empty(wrong);
    }

    [Fact]
    public async Task EveryRoute_WithExpiredForgedUnsignedOrHs256Token_Is401()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var bad = await BadTokensAsync();
        var wrong = new List<string>();
        foreach (var (method, path, access, _) in Routes().Where(r => r.Access!.Kind != AccessKind.Anonymous))
        {
            foreach (var (name, token) in bad)
            {
                foreach (var header in new[] { "token=" + token, "Bearer " + token })
                {
                    using var response = await CallAsync(method, path, header);
                    if (response.StatusCode != HttpStatusCode.Unauthorized)
                    {
                        wrong.Add($"{method} {path} ({access!.Kind}) with the {name} token as '{header[..6]}…': {(int)response.StatusCode}");
                    }
                }
            }
        }

        Assert.Empty(wrong);
    }

    [Fact]
    public async Task EveryRoute_WithATokenWithoutPermissions_Is403()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var iam = _host!.Services.GetRequiredService<IamStore>();
        Assert.True((await iam.CreateUserAsync(new IamUser { Uid = "powerless", PasswordHash = PasswordHasher.Hash("powerless-pw") }, CancellationToken.None)).Succeeded);
        var token = await LoginAsync("powerless", "powerless-pw");
        var wrong = new List<string>();
        foreach (var (method, path, access, _) in Routes().Where(r => r.Access!.Kind != AccessKind.Anonymous))
        {
            using var response = await CallAsync(method, path, "token=" + token);
            // An executor route takes only an executor's own token, the join route only a join token: a user's is
            // neither (401, as Mesos answers).
            var expected = access!.Kind is AccessKind.Executor or AccessKind.JoinToken ? HttpStatusCode.Unauthorized : HttpStatusCode.Forbidden;
            if (access.Kind == AccessKind.Authenticated)
            {
                continue; // the scheduler API: checked per call by SchedulerAuthorizationTests (a SUBSCRIBE needs a role grant)
            }

            if (response.StatusCode != expected)
            {
                wrong.Add($"{method} {path} ({access.Kind}): {(int)response.StatusCode}, expected {(int)expected}");
            }
        }

        Assert.Empty(wrong);
    }

    [Fact]
    public async Task Login_WithTheBootstrapPassword_GivesATokenTheApiAccepts()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var passwordFile = Path.Combine(_root, "master", "bootstrap-admin-password");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(passwordFile));
        var token = await LoginAsync(IamStore.AdminUid, (await File.ReadAllTextAsync(passwordFile)).Trim());
        using var response = await CallAsync("GET", "/v2/apps", "token=" + token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        using var wrongPassword = await _http.PostAsJsonAsync(new Uri(_host!.Url, LoginEndpoint.Path), new { uid = IamStore.AdminUid, password = "not-it" });
        Assert.Equal(HttpStatusCode.Unauthorized, wrongPassword.StatusCode);
        Assert.Equal("ERR_INVALID_CREDENTIALS", JsonNode.Parse(await wrongPassword.Content.ReadAsStringAsync())!["code"]!.GetValue<string>());
    }

    private async Task<string> LoginAsync(string uid, string password)
    {
        using var response = await _http.PostAsJsonAsync(new Uri(_host!.Url, LoginEndpoint.Path), new { uid, password });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
    }

    /// <summary>Tokens for the superuser that must all be refused: each would grant everything if accepted.</summary>
    private async Task<IReadOnlyList<(string Name, string Token)>> BadTokensAsync()
    {
        var services = _host!.Services;
        var admin = services.GetRequiredService<IamStore>().Snapshot.Users[IamStore.AdminUid];
        var expired = services.GetRequiredService<TokenService>().Issue(admin, TimeSpan.FromMinutes(-5));

        var claims = new Dictionary<string, object> { [TokenService.UidClaim] = admin.Uid, [TokenService.CredentialVersionClaim] = admin.CredentialVersion };
        var expires = DateTime.UtcNow.AddHours(1);
        using var otherKey = RSA.Create(2048);
        var forged = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = TokenService.Issuer,
            Expires = expires,
            Claims = claims,
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(otherKey), SecurityAlgorithms.RsaSha256),
        });

        var payload = new JsonObject
        {
            ["iss"] = TokenService.Issuer,
            ["uid"] = admin.Uid,
            ["cv"] = admin.CredentialVersion,
            ["exp"] = new DateTimeOffset(expires).ToUnixTimeSeconds(),
        }.ToJsonString();
        var unsigned = Base64Url("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + Base64Url(payload) + ".";

        var privatePem = Encoding.UTF8.GetString((await services.GetRequiredService<IStateStore>().GetAsync(TokenService.KeyName))!.Value);
        using var real = RSA.Create();
        real.ImportFromPem(privatePem);
        var publicPem = real.ExportSubjectPublicKeyInfoPem();
        var hsInput = Base64Url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + Base64Url(payload);
        var hs256Pem = hsInput + "." + Base64UrlBytes(HMACSHA256.HashData(Encoding.UTF8.GetBytes(publicPem), Encoding.ASCII.GetBytes(hsInput)));
        var hs256Der = hsInput + "." + Base64UrlBytes(HMACSHA256.HashData(real.ExportSubjectPublicKeyInfo(), Encoding.ASCII.GetBytes(hsInput)));
        return [("expired", expired), ("forged", forged), ("alg:none", unsigned), ("HS256 with the PEM public key", hs256Pem), ("HS256 with the DER public key", hs256Der), ("garbage", "not.a.jwt")];
    }

    private static string Base64Url(string text) => Base64UrlBytes(Encoding.UTF8.GetBytes(text));

    private static string Base64UrlBytes(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
