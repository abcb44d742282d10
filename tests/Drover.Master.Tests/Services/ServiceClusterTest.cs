using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>
/// Base of the service tests: a real in-process master and one agent (needs root: instances are real
/// processes), and a raw HTTP client for Marathon's API, so the tests exercise the wire shapes.
/// Without root (and not in CI) <see cref="Cluster"/> stays null and tests return early.
/// </summary>
public abstract class ServiceClusterTest(string hostname, string scalars, int portCount) : IAsyncLifetime
{
    protected InProcessCluster? Cluster { get; private set; }

    protected HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        Cluster = await InProcessCluster.StartAsync();
        await Cluster.AddAgentAsync(hostname, TestPorts.Resources(scalars, portCount));
        Http = NewClient();
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>After the master restarted (same port): a fresh client for it.</summary>
    protected void Reconnect()
    {
        Http.Dispose();
        Http = NewClient();
    }

    /// <summary>No client-side timeout: event streams stay open, and every test waits with its own deadline.</summary>
    private HttpClient NewClient() => new() { BaseAddress = Cluster!.Master.Url, Timeout = System.Threading.Timeout.InfiniteTimeSpan };

    protected async Task<(HttpStatusCode Status, JsonNode? Body)> Send(HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = json is null ? null : new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    /// <summary><c>GET /v2/apps{id}</c>'s app object.</summary>
    protected async Task<JsonObject> App(string id) => (await Send(HttpMethod.Get, "/v2/apps" + id)).Body!["app"]!.AsObject();
}
