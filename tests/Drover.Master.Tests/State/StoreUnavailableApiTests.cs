using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Master.State;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Tests.State;

/// <summary>
/// Store failures answer 503 with Retry-After on every API, in that API's error shape, and never 500 (issue 14). A real
/// master serves over loopback; its SQLite store sits behind <see cref="FailingStateStore"/>, which refuses every write.
/// </summary>
public sealed class StoreUnavailableApiTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-unavailable-").FullName;
    private FailingStateStore _store = null!;
    private RunningHost _master = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        var options = new MasterOptions { DataDir = Path.Combine(_dir, "master"), Security = Drover.Master.Security.SecurityOptions.Disabled };
        _store = new FailingStateStore(SqliteStateStore.Open(Path.Combine(_dir, "state.db")));
        _master = await DroverHosts.StartMasterAsync(options, new Uri("http://127.0.0.1:0"), LogLevel.Warning, CancellationToken.None,
            configure: s => s.AddSingleton<IStateStore>(_store));
        _http = new HttpClient { BaseAddress = _master.Url };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _master.DisposeAsync();
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<JsonObject> Expect503Async(HttpMethod method, string path, string body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{method} {path}: {(int)response.StatusCode} {text}");
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        return JsonNode.Parse(text)!.AsObject();
    }

    [Fact]
    public async Task Writes_StoreRefusesEveryWrite_503RetryAfterInEachApisShapeAndNothingChanged()
    {
        _store.FailWrites = true;

        // Marathon: {"message"} only.
        foreach (var (method, path, body) in new[]
        {
            (HttpMethod.Post, "/v2/apps", """{"id": "/a", "cmd": "sleep 600", "cpus": 0.1, "mem": 32}"""),
            (HttpMethod.Put, "/v2/apps/a", """{"cmd": "sleep 600", "cpus": 0.1, "mem": 32}"""),
            (HttpMethod.Post, "/v2/groups", """{"id": "/g", "apps": [{"id": "/g/a", "cmd": "sleep 600", "cpus": 0.1, "mem": 32}]}"""),
        })
        {
            var error = await Expect503Async(method, path, body);
            Assert.Equal(new[] { "message" }, error.Select(p => p.Key));
            Assert.Contains("could not be made durable and was not applied", (string?)error["message"], StringComparison.Ordinal);
        }

        // DC/OS IAM: {"title", "description", "code"}.
        var iam = await Expect503Async(HttpMethod.Put, "/acs/api/v1/groups/ops", """{"description": "operators"}""");
        Assert.Equal("503 Service Unavailable", (string?)iam["title"]);
        Assert.Equal("ERR_STORE_UNAVAILABLE", (string?)iam["code"]);

        // Drover's own error (secrets, the Mesos scheduler API, /drover/v1).
        foreach (var (method, path, body) in new[]
        {
            (HttpMethod.Put, "/drover/v1/secrets/db/password", """{"value": "s3cret"}"""),
            (HttpMethod.Post, "/api/v1/scheduler", """{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "fw"}}}"""),
            (HttpMethod.Post, "/drover/v1/tasks", """{"name": "t", "cmd": "sleep 600", "cpus": 0.1, "mem": 32}"""),
        })
        {
            var error = await Expect503Async(method, path, body);
            Assert.Equal("store_unavailable", (string?)error["code"]);
        }

        // Nothing of it is listed; the task's failed write stopped the master acting (StoreFault) after answering.
        var fault = _master.Services.GetRequiredService<StoreFault>();
        Assert.NotNull(fault.Reason);
        _store.FailWrites = false;
        Assert.Empty(await _store.ListAsync("/drover/apps/"));
        Assert.Empty(await _store.ListAsync("/drover/tasks/"));
        Assert.Empty(await _store.ListAsync("/drover/groups/"));
    }
}
