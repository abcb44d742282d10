using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Client.Marathon;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary><c>drover master --store etcd://…</c> as a real process on a real 3-member etcd.</summary>
public sealed class EtcdMasterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-etcd-master-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private EtcdCluster? _etcd;

    public async Task InitializeAsync() => _etcd = await EtcdCluster.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        if (_etcd is not null)
        {
            await _etcd.DisposeAsync();
        }

        _http.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Master_EtcdStore_StateSurvivesAMasterKilledAndStartedOnAnotherDataDir()
    {
        var (first, url) = StartMaster("m1", "/it-restart");
        using var client = new DroverClient(url);
        var marathon = new MarathonClient(url, _http);
        await Wait.UntilAsync(() => client.ListAgentsAsync(), _ => true, Timeout, "the master serves", retryOn: e => e is HttpRequestException);
        var task = await client.SubmitTaskAsync(new TaskSubmission { Name = "pending", Cmd = "sleep 1", Cpus = JsonSerializer.SerializeToElement(0.1m), Mem = JsonSerializer.SerializeToElement(32) });
        await marathon.CreateAppAsync(new JsonObject { ["id"] = "/web", ["cmd"] = "sleep 600", ["cpus"] = 0.1, ["mem"] = 32, ["instances"] = 2 });

        await first.KillAsync(ProcessSignal.Kill);
        var (_, url2) = StartMaster("m2", "/it-restart");
        using var client2 = new DroverClient(url2);
        var marathon2 = new MarathonClient(url2, _http);

        var restored = await Wait.UntilAsync(() => client2.GetTaskAsync(task.Id), _ => true, Timeout, "the task after the restart", retryOn: e => e is HttpRequestException);
        Assert.Equal("pending", restored.Name);
        var app = await marathon2.GetAppAsync("/web");
        Assert.Equal(2, (int)app["instances"]!);
        Assert.False(File.Exists(Path.Combine(_root, "m1", "state.db")), "the embedded store was not used");
    }

    private (DroverProcess Process, Uri Url) StartMaster(string name, string prefix)
    {
        var port = DevClusterFixture.FreePort();
        var process = DroverProcess.Start(name,
            ["master", "--data-dir", Path.Combine(_root, name), "--listen", $"127.0.0.1:{port}", "--store", _etcd!.StoreAddress, "--store-prefix", prefix, "--log-level", "warning"],
            logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return (process, new Uri($"http://127.0.0.1:{port}"));
    }
}
