using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Core;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>
/// Save first, then act, on a real full disk (issue 14): a <c>drover master</c> process keeps its data dir on a
/// small tmpfs, a <c>drover agent</c> runs an app's instances; the tmpfs is filled. A write is then refused with 503
/// and Retry-After, nothing of it is listed or launched (the agent's processes are sampled throughout), and after the
/// space is freed and the master restarted every acknowledged write is there and nothing unacknowledged.
/// </summary>
public sealed class DiskFullTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-diskfull-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private TmpfsMount? _tmpfs;
    private HttpClient? _http;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync(); // the agent was started with --kill-tasks-on-stop: its tasks and cgroups go with it
        }

        _http?.Dispose();
        if (_tmpfs is not null)
        {
            await _tmpfs.DisposeAsync();
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task PostApp_MasterDataDirOnFullTmpfs_503RetryAfterNothingListedOrLaunchedAndAcknowledgedWritesKeptAfterRestart()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        _tmpfs = await TmpfsMount.MountAsync(megabytes: 3);
        var port = DevClusterFixture.FreePort();
        var masterUrl = $"http://127.0.0.1:{port}";
        string[] masterArgs = ["master", "--data-dir", Path.Combine(_tmpfs.Path, "master"), "--listen", $"127.0.0.1:{port}", "--insecure", "--log-level", "information"];
        var master = Start("master", masterArgs);
        Start("agent", ["agent", "--master", masterUrl, "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", Path.Combine(_root, "agent"),
            "--resources", TestPorts.Resources("cpus:4;mem:2048;disk:1024"), "--log-level", "information", "--kill-tasks-on-stop"]);
        _http = new HttpClient { BaseAddress = new Uri(masterUrl), Timeout = TimeSpan.FromSeconds(30) };
        using var client = new DroverClient(new Uri(masterUrl));
        await WaitForActiveAgentAsync(client);

        // Acknowledged before the disk fills: an app with two instances.
        var before = Marker("600.");
        Assert.Equal(HttpStatusCode.Created, (await PostAppAsync("/before", before, instances: 2)).StatusCode);
        await WaitForRunningAsync("/before", 2);
        var pidsBefore = await Wait.UntilAsync(() => Task.FromResult(SleepsWithMarker(before)), p => p.Count == 2, Timeout, "both /before instances run");

        // From here on, sample the machine's processes for anything of the refused writes.
        var ghostApp = Marker("601.");
        var ghostTask = Marker("602.");
        using var stopSampling = new CancellationTokenSource();
        var sampler = SampleAsync([ghostApp, ghostTask], stopSampling.Token);

        var filled = _tmpfs.Fill();
        Assert.True(filled > 0, "the tmpfs had room to fill");

        // A Marathon write: refused, retryable, in Marathon's error shape.
        using var refused = await PostAppAsync("/ghost", ghostApp, instances: 3);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!;
        Assert.Contains("could not be made durable and was not applied", (string?)error["message"], StringComparison.Ordinal);
        Assert.Contains("disk holding the state store is full", (string?)error["message"], StringComparison.Ordinal);

        // While it still serves, the master lists only what is saved. (Its audit log shares the full disk and may
        // stop it first; the restart below checks the same from the store.)
        if (await TryGetAsync("/v2/apps/ghost") is { } ghost)
        {
            Assert.Equal(HttpStatusCode.NotFound, ghost.StatusCode);
        }

        // A task submitted through /drover/v1: its write fails, so it is never placed on the agent; the master stops
        // acting (StoreFault) and exits.
        try
        {
            using var submitted = await _http.PostAsync("/drover/v1/tasks", Json($$"""{"name": "ghost-task", "cmd": "exec sleep {{ghostTask}}", "cpus": 0.1, "mem": 32}"""));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, submitted.StatusCode);
        }
        catch (HttpRequestException)
        {
            // The master had already stopped (see above): nothing was acknowledged either.
        }

        if (!await master.WaitForExitAsync(TimeSpan.FromSeconds(30)))
        {
            await master.KillAsync(ProcessSignal.Kill); // as a supervisor would, had it not stopped by itself
        }

        // Free the disk and restart the master on the same data dir: it re-reads the truth.
        _tmpfs.Free();
        Start("master-restarted", masterArgs);
        await WaitForActiveAgentAsync(client);

        var apps = await Wait.UntilAsync(() => _http.GetFromJsonAsync<JsonObject>("/v2/apps"), a => a is not null, Timeout, "the app list",
            retryOn: e => e is HttpRequestException);
        Assert.Equal(new[] { "/before" }, apps!["apps"]!.AsArray().Select(a => (string)a!["id"]!).ToArray());
        using (var gone = await _http.GetAsync("/v2/apps/ghost"))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        var tasks = await client.ListTasksAsync();
        Assert.DoesNotContain(tasks, t => t.Name == "ghost-task");
        await WaitForRunningAsync("/before", 2);
        Assert.Equal(pidsBefore, SleepsWithMarker(before)); // the same two processes, untouched

        // The restarted master takes writes again; once its app runs, nothing of the refused writes has run at any time.
        var after = Marker("603.");
        using (var created = await PostAppAsync("/after", after, instances: 1))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        await WaitForRunningAsync("/after", 1);
        await Wait.UntilAsync(() => Task.FromResult(SleepsWithMarker(after)), p => p.Count == 1, Timeout, "the /after instance runs");
        await stopSampling.CancelAsync();
        var seen = await sampler;
        Assert.True(seen.Count == 0, "processes of refused writes ran: " + string.Join(", ", seen));
        Assert.True(_tmpfs.FreeBytes > 0);
    }

    private DroverProcess Start(string name, string[] args)
    {
        var process = DroverProcess.Start(name, args, logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return process;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private Task<HttpResponseMessage> PostAppAsync(string id, string marker, int instances) =>
        _http!.PostAsync("/v2/apps", Json($$"""{"id": "{{id}}", "cmd": "exec sleep {{marker}}", "cpus": 0.1, "mem": 32, "instances": {{instances}}}"""));

    private async Task<HttpResponseMessage?> TryGetAsync(string path)
    {
        try
        {
            return await _http!.GetAsync(path);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private Task WaitForRunningAsync(string appId, int running) =>
        Wait.UntilAsync(() => _http!.GetFromJsonAsync<JsonObject>("/v2/apps" + appId), a => (int?)a?["app"]?["tasksRunning"] == running, Timeout,
            $"{appId} has {running} running", retryOn: e => e is HttpRequestException);

    private static Task WaitForActiveAgentAsync(DroverClient client) =>
        Wait.UntilAsync(() => client.ListAgentsAsync(), agents => agents.Any(a => a.Status == "active"), Timeout, "an active agent",
            retryOn: e => e is HttpRequestException);

    /// <summary>Every 50 ms until cancelled: which of <paramref name="markers"/> had a live process at any sample.</summary>
    private static async Task<HashSet<string>> SampleAsync(string[] markers, CancellationToken ct)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        do
        {
            foreach (var m in markers.Where(m => SleepsWithMarker(m).Count > 0))
            {
                seen.Add(m);
            }
        }
        while (await NextTickAsync(timer, ct));

        return seen;
    }

    private static async Task<bool> NextTickAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>A duration for <c>sleep</c> no other process on the machine has: <paramref name="seconds"/> then 8 random digits.</summary>
    private static string Marker(string seconds) => seconds + Random.Shared.Next(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);

    /// <summary>Pids (in the machine's PID namespace) of the live <c>sleep MARKER</c> processes, in order.</summary>
    private static List<int> SleepsWithMarker(string marker)
    {
        var cmdline = $"sleep\0{marker}\0";
        var pids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                    && File.ReadAllText(Path.Combine(dir, "cmdline")) == cmdline
                    && File.ReadAllText(Path.Combine(dir, "stat")) is var stat && stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z')
                {
                    pids.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        pids.Sort();
        return pids;
    }
}
