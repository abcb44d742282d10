using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Master.Iam;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Security;

/// <summary>Cheap requests that would cost the master dear: password guessing, oversized bodies.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class AbuseTests
{
    [Fact]
    public async Task Login_ManyFailuresFromOneAddress_Is429WithRetryAfterAndNoHashing()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(secure: true);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var login = new Uri(cluster.Master.Url, LoginEndpoint.Path);
        for (var i = 0; i < CredentialThrottle.MaxFailures; i++)
        {
            using var failed = await http.PostAsJsonAsync(login, new { uid = "admin", password = $"guess-{i}" });
            Assert.Equal(HttpStatusCode.Unauthorized, failed.StatusCode);
        }

        // Even the right password is refused now: the address is out of attempts for the window.
        var password = await cluster.BootstrapAdminPasswordAsync();
        using var blocked = await http.PostAsJsonAsync(login, new { uid = "admin", password });
        Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
        Assert.True(blocked.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal("ERR_TOO_MANY_REQUESTS", JsonNode.Parse(await blocked.Content.ReadAsStringAsync())!["code"]!.GetValue<string>());

        // Basic credentials on any route share the same budget.
        using var basic = new HttpRequestMessage(HttpMethod.Get, new Uri(cluster.Master.Url, "/v2/apps"));
        basic.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + password)));
        using var basicBlocked = await http.SendAsync(basic);
        Assert.Equal(HttpStatusCode.TooManyRequests, basicBlocked.StatusCode);
    }

    [Fact]
    public async Task Post_BodyOverTheDefaultLimit_Is413AndChangesNothing()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var big = "{\"id\":\"/big\",\"cmd\":\"sleep 1\",\"instances\":0,\"labels\":{\"x\":\"" + new string('a', (int)Drover.Master.Security.RouteSecurity.DefaultMaxBody) + "\"}}";
        using var response = await http.PostAsync(new Uri(cluster.Master.Url, "/v2/apps"), new StringContent(big, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Null(cluster.Master.Services.GetRequiredService<Drover.Master.Services.ServiceRegistry>().Get("/big"));
    }

    [Fact]
    public async Task Post_BodyOverAConfiguredLimit_Is413InEachApisShapeAndUnderItAccepted()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(new MasterOptions { MaxRequestBodyBytes = 4096 });
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        string App(string id, int pad) => "{\"id\":\"" + id + "\",\"cmd\":\"sleep 1\",\"instances\":0,\"labels\":{\"x\":\"" + new string('a', pad) + "\"}}";

        using var marathon = await http.PostAsync(new Uri(cluster.Master.Url, "/v2/apps"), new StringContent(App("/over", 8192), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, marathon.StatusCode);
        Assert.Contains("at most 4096", JsonNode.Parse(await marathon.Content.ReadAsStringAsync())!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        using var mesos = await http.PostAsync(new Uri(cluster.Master.Url, "/api/v1/scheduler"), new StringContent(App("/over", 8192), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, mesos.StatusCode);
        Assert.StartsWith("text/plain", mesos.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal); // Mesos answers errors in plain text

        // Chunked (no length): cut off at the limit as it is read.
        var chunked = new StringContent(App("/chunked", 8192), Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.Master.Url, "/drover/v1/tasks")) { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using var drover = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, drover.StatusCode);
        Assert.Equal("payload_too_large", JsonNode.Parse(await drover.Content.ReadAsStringAsync())!["code"]!.GetValue<string>());

        using var under = await http.PostAsync(new Uri(cluster.Master.Url, "/v2/apps"), new StringContent(App("/under", 1024), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, under.StatusCode);
    }
}
