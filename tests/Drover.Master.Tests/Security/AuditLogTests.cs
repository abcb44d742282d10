using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Drover.Master.Iam;
using Drover.Master.Security.Audit;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Security;

/// <summary>Mutating calls — allowed, denied and refused — land in the audit log with who, from where, what and how they ended.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class AuditLogTests
{
    [Fact]
    public async Task MutatingCalls_AllowedAndDenied_AreRecordedAndReadableByAdminOnly()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(secure: true);
        var services = cluster.Master.Services;
        var url = cluster.Master.Url;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var password = await cluster.BootstrapAdminPasswordAsync();
        var admin = await LoginAsync(http, url, IamStore.AdminUid, password);
        await services.GetRequiredService<IamStore>().CreateUserAsync(new IamUser { Uid = "mallory", PasswordHash = PasswordHasher.Hash("mallory-pw") }, CancellationToken.None);
        var mallory = await LoginAsync(http, url, "mallory", "mallory-pw");

        using (var created = await SendAsync(http, HttpMethod.Post, new Uri(url, "/v2/apps"), admin, """{"id":"/audited","cmd":"sleep 600","cpus":0.01,"mem":16,"instances":0}"""))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using (var denied = await SendAsync(http, HttpMethod.Delete, new Uri(url, "/v2/apps/audited"), mallory, null))
        {
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        }

        using (var anonymous = await SendAsync(http, HttpMethod.Post, new Uri(url, "/drover/v1/agents/x/undrain"), null, null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var log = services.GetRequiredService<AuditLog>();
        await log.FlushAsync(CancellationToken.None);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log.FilePath));

        using var page = await SendAsync(http, HttpMethod.Get, new Uri(url, "/drover/v1/audit"), admin, null);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var records = JsonNode.Parse(await page.Content.ReadAsStringAsync())!["records"]!.AsArray().Select(r => r!).ToList();
        var post = Assert.Single(records, r => r["method"]!.GetValue<string>() == "POST" && r["path"]!.GetValue<string>() == "/v2/apps");
        Assert.Equal("user:admin", post["caller"]!.GetValue<string>());
        Assert.Equal(201, post["status"]!.GetValue<int>());
        Assert.Equal("allowed", post["result"]!.GetValue<string>());
        Assert.StartsWith("127.0.0.1:", post["from"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.EndsWith("Z", post["time"]!.GetValue<string>(), StringComparison.Ordinal);
        var delete = Assert.Single(records, r => r["method"]!.GetValue<string>() == "DELETE");
        Assert.Equal(("user:mallory", "denied", 403), (delete["caller"]!.GetValue<string>(), delete["result"]!.GetValue<string>(), delete["status"]!.GetValue<int>()));
        Assert.DoesNotContain(records, r => r["path"]!.GetValue<string>() == "/drover/v1/agents/x/undrain");

        // Refused before authentication: in the separate log, so floods of them cannot rotate the real record away.
        using var unauthenticatedPage = await SendAsync(http, HttpMethod.Get, new Uri(url, "/drover/v1/audit?log=unauthenticated"), admin, null);
        var unauthenticated = JsonNode.Parse(await unauthenticatedPage.Content.ReadAsStringAsync())!["records"]!.AsArray().Select(r => r!).ToList();
        var undrain = Assert.Single(unauthenticated, r => r["path"]!.GetValue<string>() == "/drover/v1/agents/x/undrain");
        Assert.Equal(("anonymous", 401), (undrain["caller"]!.GetValue<string>(), undrain["status"]!.GetValue<int>()));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log.UnauthenticatedFilePath));
        Assert.Contains(records, r => r["path"]!.GetValue<string>() == LoginEndpoint.Path && r["detail"]?.GetValue<string>() == "uid=mallory");

        using var forbidden = await SendAsync(http, HttpMethod.Get, new Uri(url, "/drover/v1/audit"), mallory, null);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
    }

    private static async Task<string> LoginAsync(HttpClient http, Uri url, string uid, string password)
    {
        using var response = await http.PostAsJsonAsync(new Uri(url, LoginEndpoint.Path), new { uid, password });
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, Uri uri, string? token, string? json)
    {
        using var request = new HttpRequestMessage(method, uri);
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        }

        if (token is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "token=" + token);
        }

        return await http.SendAsync(request);
    }
}
