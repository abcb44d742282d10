using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Drover.Integration.Tests;

/// <summary>
/// What a web page open in the browser of a <c>drover dev</c> user could make the browser send to the dev
/// cluster (no logins on loopback): a form-like <c>text/plain</c> POST, a cross-site <c>fetch</c>, and a
/// DNS-rebound request under the page's own host name. Each is refused and changes nothing; the same
/// request sent properly succeeds, so the refusals are the protections and not a broken request.
/// </summary>
public sealed class BrowserProtectionTests(DevClusterFixture cluster) : IClassFixture<DevClusterFixture>
{
    private static string App(string id) => $$"""{"id": "{{id}}", "cmd": "sleep 600", "cpus": 0.01, "mem": 16, "instances": 0}""";

    private async Task<HttpResponseMessage> PostAppAsync(string id, string contentType, Action<HttpRequestMessage>? tweak = null)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cluster.Url, "/v2/apps"))
        {
            Content = new StringContent(App(id), Encoding.UTF8),
        };
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        tweak?.Invoke(request);
        return await http.SendAsync(request);
    }

    private async Task<bool> AppExistsAsync(string id)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var apps = JsonNode.Parse(await http.GetStringAsync(new Uri(cluster.Url, "/v2/apps")))!["apps"]!.AsArray();
        return apps.Any(a => a!["id"]!.GetValue<string>() == id);
    }

    [Fact]
    public async Task DevCluster_TextPlainPost_Is415AndCreatesNothing()
    {
        if (!cluster.Available)
        {
            return;
        }

        using var response = await PostAppAsync("/csrf-text", "text/plain");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("Content-Type", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await AppExistsAsync("/csrf-text"));

        using var form = await PostAppAsync("/csrf-form", "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        Assert.False(await AppExistsAsync("/csrf-form"));
    }

    [Fact]
    public async Task DevCluster_ForeignOrigin_Is403AndCreatesNothing()
    {
        if (!cluster.Available)
        {
            return;
        }

        using var response = await PostAppAsync("/csrf-origin", "application/json", r => r.Headers.Add("Origin", "http://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Origin", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await AppExistsAsync("/csrf-origin"));
    }

    [Fact]
    public async Task DevCluster_ReboundHostName_Is403AndCreatesNothing()
    {
        if (!cluster.Available)
        {
            return;
        }

        using var response = await PostAppAsync("/csrf-rebind", "application/json", r => r.Headers.Host = $"evil.example:{cluster.Url.Port}");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Host", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await AppExistsAsync("/csrf-rebind"));

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var read = new HttpRequestMessage(HttpMethod.Get, new Uri(cluster.Url, "/v2/apps"));
        read.Headers.Host = "evil.example";
        Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(read)).StatusCode);
    }

    [Fact]
    public async Task DevCluster_SameRequestSentProperly_IsCreated()
    {
        if (!cluster.Available)
        {
            return;
        }

        using var response = await PostAppAsync("/browser-control", "application/json; charset=utf-8", r => r.Headers.Add("Origin", cluster.Url.GetLeftPart(UriPartial.Authority)));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.True(await AppExistsAsync("/browser-control"));
    }
}
