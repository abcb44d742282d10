using System.Text;
using System.Text.Json;
using Drover.Cli.Hosting;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Drover.Testing.Clusters;
using Drover.Testing.Processes;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// Issue 14, "refuse broken state" with real processes: a master refuses an empty, corrupt or foreign store with one
/// line (and the agents' tasks run on), <c>--recover-from-agents</c> starts a fresh store keeping the cluster id, an
/// agent refuses a master of another cluster, and a second process on a locked data or work dir exits at once.
/// </summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class BrokenStateTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-broken-").FullName;
    private readonly List<DroverProcess> _processes = [];

    private string MasterDir => Path.Combine(_root, "master");

    private string StorePath => Path.Combine(MasterDir, "state.db");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    // ------------------------------------------------------------------ the master refuses a broken store

    [Theory]
    [InlineData("empty", "is empty (0 bytes)")]
    [InlineData("corrupt", "is not a readable Drover store")]
    public async Task Master_EmptyOrCorruptStore_ExitsNonZeroWithOneLineNamingTheFileAndTheFix(string damage, string says)
    {
        var clusterId = await CreateStoreAsync();
        Damage(StorePath, damage);

        var r = await RunMasterAsync();

        AssertRefused(r, $"drover: refusing to start: {StorePath} {says}");
        Assert.Contains("--recover-from-agents", r.StdErr, StringComparison.Ordinal);
        Assert.Contains("backup", r.StdErr, StringComparison.Ordinal);
        Assert.Equal(clusterId, ClusterIdentity.ReadMarker(MasterDir)); // nothing touched
        Assert.Empty(Directory.GetFiles(MasterDir, "state.db.broken-*"));
    }

    [Fact]
    public async Task Master_StoreOfAnotherClusterThanItsDataDir_Refused()
    {
        var clusterId = await CreateStoreAsync();
        ClusterIdentity.WriteMarker(MasterDir, "another-cluster");

        var r = await RunMasterAsync();

        AssertRefused(r, $"drover: refusing to start: {StorePath} belongs to cluster {clusterId}, but {Path.Combine(MasterDir, "cluster-id")} says this master served cluster another-cluster");
    }

    [Fact]
    public async Task Master_ClusterIdFlagOfAnotherCluster_Refused()
    {
        var clusterId = await CreateStoreAsync();
        File.Delete(Path.Combine(MasterDir, ClusterIdentity.MarkerFile)); // only the store tells

        var r = await RunMasterAsync("--cluster-id", "another-cluster");

        AssertRefused(r, $"drover: refusing to start: {StorePath} belongs to cluster {clusterId}, not cluster another-cluster (--cluster-id)");
    }

    [Fact]
    public async Task Master_StoreDeletedButDataDirServedACluster_RefusedAsLost()
    {
        var clusterId = await CreateStoreAsync();
        File.Delete(StorePath);

        var r = await RunMasterAsync();

        AssertRefused(r, $"drover: refusing to start: {StorePath} has no cluster id, but {Path.Combine(MasterDir, "cluster-id")} says this master served cluster {clusterId}");
    }

    [Fact]
    public async Task Master_RecoverFromAgentsOnEmptyStore_StartsKeepsTheBrokenFileAsideAndTheClusterId()
    {
        var clusterId = await CreateStoreAsync();
        Damage(StorePath, "empty");
        var port = DevClusterFixture.FreePort();

        var master = Start("master", ["master", "--data-dir", MasterDir, "--listen", $"127.0.0.1:{port}", "--insecure", "--recover-from-agents", "--log-level", "warning"]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        await Wait.UntilAsync(async () => (await http.GetAsync(new Uri("/ping", UriKind.Relative))).IsSuccessStatusCode, ok => ok || master.HasExited, Timeout,
            "the recovering master to answer /ping", retryOn: e => e is HttpRequestException);
        Assert.False(master.HasExited, master.Tail());
        await master.KillAsync(ProcessSignal.Terminate);

        var aside = Assert.Single(Directory.GetFiles(MasterDir, "state.db.broken-*"));
        Assert.Equal(0, new FileInfo(aside).Length); // the broken file, kept as it was
        await using var store = SqliteStateStore.Open(StorePath);
        Assert.Equal(clusterId, Encoding.UTF8.GetString((await store.GetAsync(ClusterIdentity.Key))!.Value));
        Assert.Equal(clusterId, ClusterIdentity.ReadMarker(MasterDir));
    }

    // ------------------------------------------------------------------ one process per data / work dir

    [Fact]
    public async Task SecondDevMasterOrAgentOnTheSameDir_ExitsAtOnceNamingThePid_FirstOnesTasksUntouched()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var port = DevClusterFixture.FreePort();
        var devDir = Path.Combine(_root, "dev");
        var dev = Start("dev", ["dev", "--listen", $"127.0.0.1:{port}", "--data-dir", devDir, "--log-level", "warning",
            "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024")]);
        using var client = new DroverClient(new Uri($"http://127.0.0.1:{port}"));
        var task = await SubmitAsync(client, "sleeper", "exec sleep 600");
        await Wait.UntilAsync(() => client.GetTaskAsync(task), t => t.State == TaskState.Running, Timeout, "the task to run", retryOn: e => e is HttpRequestException);
        var agentCgroup = DroverHosts.CgroupNameFor(Path.Combine(devDir, "agent"));
        var before = await Wait.UntilAsync(() => Task.FromResult(LinuxProcesses.InCgroupTree(agentCgroup)), p => p.Count > 0, Timeout, "the task's processes");

        var secondDev = await RunDroverAsync("dev", "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--data-dir", devDir);
        var secondMaster = await RunDroverAsync("master", "--data-dir", Path.Combine(devDir, "master"), "--listen", "127.0.0.1:0", "--insecure");
        var secondAgent = await RunDroverAsync("agent", "--master", $"http://127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--work-dir", Path.Combine(devDir, "agent"));

        AssertRefused(secondDev, $"drover: {Path.Combine(devDir, "master")} is already in use by PID {dev.Pid}");
        AssertRefused(secondMaster, $"drover: {Path.Combine(devDir, "master")} is already in use by PID {dev.Pid}");
        AssertRefused(secondAgent, $"drover: {Path.Combine(devDir, "agent")} is already in use by PID {dev.Pid}");
        Assert.False(dev.HasExited, dev.Tail());
        Assert.Equal(before, LinuxProcesses.InCgroupTree(agentCgroup));
        Assert.True(before.All(p => p.IsAlive));
        Assert.Equal(TaskState.Running, (await client.GetTaskAsync(task)).State);
    }

    // ------------------------------------------------------------------ agents refuse a master of another cluster

    [Fact]
    public async Task Agent_MasterReplacedByAFreshClusterOnTheSameAddress_RefusesItKeepsItsTasksAndRejoinsItsOwn()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var port = DevClusterFixture.FreePort();
        var url = new Uri($"http://127.0.0.1:{port}");
        string[] masterArgs = ["master", "--data-dir", MasterDir, "--listen", $"127.0.0.1:{port}", "--insecure", "--log-level", "warning"];
        var masterX = Start("master-x", masterArgs);
        var workDir = Path.Combine(_root, "agent");
        var agent = Start("agent", ["agent", "--master", url.ToString(), "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", workDir,
            "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024"), "--log-level", "information"]);
        using var client = new DroverClient(url);
        var task = await SubmitAsync(client, "sleeper", "exec sleep 600");
        await Wait.UntilAsync(() => client.GetTaskAsync(task), t => t.State == TaskState.Running, Timeout, "the task to run", retryOn: e => e is HttpRequestException);
        var clusterX = ClusterIdentity.ReadMarker(MasterDir)!;
        Assert.Equal(clusterX, File.ReadAllText(Path.Combine(workDir, "meta", "cluster-id")).Trim());
        Assert.Equal(PrivateMode, File.GetUnixFileMode(Path.Combine(workDir, "meta", "cluster-id")));
        var cgroup = DroverHosts.CgroupNameFor(workDir);
        var before = await Wait.UntilAsync(() => Task.FromResult(LinuxProcesses.InCgroupTree(cgroup)), p => p.Count > 0, Timeout, "the task's processes");

        // A fresh master (a new, empty store: another cluster) takes the address. Without the check it would kill the
        // task the agent reports, which it does not know.
        await masterX.KillAsync(ProcessSignal.Terminate);
        var otherDir = Path.Combine(_root, "other-master");
        var masterY = Start("master-y", ["master", "--data-dir", otherDir, "--listen", $"127.0.0.1:{port}", "--insecure", "--log-level", "warning"]);
        var clusterY = await Wait.UntilAsync(() => Task.FromResult(ClusterIdentity.ReadMarker(otherDir)), id => id is not null, Timeout, "master Y's cluster id");
        Assert.NotEqual(clusterX, clusterY);
        var refusal = $"it serves cluster {clusterY}, but this agent belongs to cluster {clusterX}";
        // Refused more than once: the agent kept retrying (with backoff) and never took a command stream from it.
        await Wait.UntilAsync(() => Task.FromResult(Occurrences(agent.Tail(), refusal)), n => n >= 3, Timeout, "the agent to refuse master Y, again and again",
            describe: _ => agent.Tail());
        Assert.Equal(before, LinuxProcesses.InCgroupTree(cgroup));
        Assert.True(before.All(p => p.IsAlive));
        Assert.Equal(clusterX, File.ReadAllText(Path.Combine(workDir, "meta", "cluster-id")).Trim());

        // Its own master comes back: the agent rejoins, and the task is the same process, still running.
        await masterY.KillAsync(ProcessSignal.Terminate);
        Start("master-x-again", masterArgs);
        await Wait.UntilAsync(() => Task.FromResult(agent.Tail()), t => t.LastIndexOf("Registered as", StringComparison.Ordinal) > t.LastIndexOf(refusal, StringComparison.Ordinal),
            Timeout, "the agent to register with master X again", describe: t => t);
        await Wait.UntilAsync(() => client.ListAgentsAsync(), agents => agents.Any(a => a.Status == "active"), Timeout, "the agent active with master X",
            retryOn: e => e is HttpRequestException);
        Assert.Equal(TaskState.Running, (await client.GetTaskAsync(task)).State);
        Assert.Equal(before, LinuxProcesses.InCgroupTree(cgroup));
    }

    // ------------------------------------------------------------------ a multi-host cluster keeps running

    [MultiHostFact]
    public async Task TruncatedStore_MasterRestartRefused_AgentTasksStillRunning60SecondsLater()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 2 });
        await WithDiagnostics(cluster, async () =>
        {
            var tasks = new List<TaskView>();
            for (var n = 1; n <= 2; n++)
            {
                tasks.Add(await cluster.SubmitAsync($"keeper-{n}", "exec sleep 600", 0.5m, 32, $"hostname:IS:{MultiHostCluster.HostnameOf(n)}"));
            }

            var before = new Dictionary<string, IReadOnlyList<ProcessIdentity>>();
            foreach (var t in tasks)
            {
                await cluster.WaitForStateAsync(t.Id, TaskState.Running);
                before[t.Id] = await cluster.ProcessesOfAsync(t.Id);
            }

            await cluster.Master.KillAsync(ProcessSignal.Terminate);
            var store = Path.Combine(cluster.MasterDataDir, "state.db");
            File.WriteAllBytes(store, []);

            var r = await ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, .. cluster.MasterArguments()], Timeout);

            AssertRefused(r, $"drover: refusing to start: {store} is empty (0 bytes)");
            // What the issue asks: the agents, left without a master, keep every task for a good while.
            await Task.Delay(TimeSpan.FromSeconds(60));
            foreach (var t in tasks)
            {
                Assert.Equal(before[t.Id], cluster.TaskProcesses(t.Id));
                Assert.True(before[t.Id].All(p => p.IsAlive), $"task {t.Id}'s processes are gone");
            }

            Assert.All(cluster.Agents, a => Assert.False(a.HasExited, a.Tail()));
        });
    }

    // ------------------------------------------------------------------ helpers

    private const UnixFileMode PrivateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>A store for the master's data dir, as a master makes it (cluster id in the store and the marker), with a task record in it.</summary>
    private async Task<string> CreateStoreAsync()
    {
        Directory.CreateDirectory(MasterDir);
        await using var store = SqliteStateStore.Open(StorePath);
        var check = await ClusterIdentity.EnsureAsync(store, StorePath, MasterDir, null, false, CancellationToken.None);
        await store.PutAsync("/drover/tasks/t1", "{}"u8.ToArray());
        return check.ClusterId!;
    }

    private static void Damage(string path, string how)
    {
        if (how == "empty")
        {
            File.WriteAllBytes(path, []);
            return;
        }

        var garbage = new byte[4096];
        Random.Shared.NextBytes(garbage);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        file.Write(garbage);
    }

    private Task<ProcessResult> RunMasterAsync(params string[] flags) =>
        RunDroverAsync(["master", "--data-dir", MasterDir, "--listen", "127.0.0.1:0", "--insecure", .. flags]);

    private static Task<ProcessResult> RunDroverAsync(params string[] args) =>
        ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, .. args], Timeout);

    /// <summary>Exited non-zero with exactly one line on stderr, starting with <paramref name="line"/>: no stack trace.</summary>
    private static void AssertRefused(ProcessResult r, string line)
    {
        Assert.True(r.ExitCode != 0, r.ToString());
        var only = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith(line, only, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.StdErr + r.StdOut, StringComparison.Ordinal);
    }

    private DroverProcess Start(string name, string[] args)
    {
        var process = DroverProcess.Start(name, args, logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return process;
    }

    private static async Task<string> SubmitAsync(DroverClient client, string name, string cmd) =>
        (await Wait.UntilAsync(
            () => client.SubmitTaskAsync(new TaskSubmission
            {
                Name = name,
                Cmd = cmd,
                Cpus = JsonSerializer.SerializeToElement(0.1m),
                Mem = JsonSerializer.SerializeToElement(32),
            }),
            _ => true, Timeout, "the master to take a task", retryOn: e => e is HttpRequestException)).Id;

    private static int Occurrences(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}
