using System.Net;
using System.Net.Sockets;
using Drover.Cli.Hosting;
using Drover.Client;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>Starts <c>drover dev</c> as its own process, as a user would.</summary>
public sealed class DevClusterFixture : IAsyncLifetime
{
    public DroverProcess? Dev { get; private set; }

    public Uri Url { get; private set; } = null!;

    public string DataDir { get; } = Directory.CreateTempSubdirectory("drover-cli-").FullName;

    public bool Available { get; private set; }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task InitializeAsync()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var port = FreePort();
        Url = new Uri($"http://127.0.0.1:{port}");
        Dev = DroverProcess.Start("dev", ["dev", "--listen", $"127.0.0.1:{port}", "--data-dir", DataDir, "--log-level", "warning",
            "--resources", TestPorts.Resources("cpus:2;mem:2048;disk:1024")]);
        using var client = new DroverClient(Url);
        await Wait.UntilAsync(async () =>
        {
            try
            {
                return (await client.ListAgentsAsync()).Any(a => a.Status == "active");
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60), "drover dev to be up with an active agent");
        Available = true;
    }

    public async Task DisposeAsync()
    {
        if (Dev is not null)
        {
            await Dev.DisposeAsync();
        }

        try
        {
            Directory.Delete(DataDir, true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Runs the drover CLI against this cluster and returns what it printed and its exit code.</summary>
    public Task<ProcessResult> Cli(params string[] args) =>
        ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, "--master", Url.ToString(), .. args], TimeSpan.FromSeconds(60));
}

public sealed class CliTests(DevClusterFixture cluster) : IClassFixture<DevClusterFixture>
{
    [Fact]
    public async Task Dev_AfterLaunches_HoldsNoInotifyWatches()
    {
        if (!cluster.Available)
        {
            return;
        }

        // The host's defaults watched every directory under the working directory (and so every
        // sandbox of a data dir inside it) for appsettings changes.
        var r = await cluster.Cli("run", "--wait", "--mem", "32", "--", "true");
        Assert.True(r.ExitCode == 0, r.ToString());

        var inotify = Directory.GetFiles($"/proc/{cluster.Dev!.Pid}/fd")
            .Select(fd => new FileInfo(fd).LinkTarget)
            .Count(target => target == "anon_inode:inotify");
        Assert.Equal(0, inotify);
    }

    [Fact]
    public async Task RunWait_Echo_PrintsOutputAndExitsZero()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("run", "--wait", "--mem", "32", "--", "echo", "hello");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("hello\n", r.StdOut);
    }

    [Fact]
    public async Task RunWait_ExitSeven_ExitsSeven()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("run", "--wait", "--", "sh", "-c", "echo to-stderr >&2; exit 7");

        Assert.Equal(7, r.ExitCode);
        Assert.Contains("to-stderr", r.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunWait_OverMemoryLimit_FailsWithMemoryReason()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("run", "--wait", "--mem", "16", "--", "python3", "-c", "x = bytearray(256 * 1024 * 1024)");

        Assert.Equal(137, r.ExitCode);
        Assert.Contains("REASON_CONTAINER_LIMITATION_MEMORY", r.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NodeLs_ShowsAgentWithUsedAndTotal()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("node", "ls");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("CPUS used/total", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("/ 2048", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("active", r.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TaskShow_TaskTooBig_SaysWhyItWaits()
    {
        if (!cluster.Available)
        {
            return;
        }

        var submitted = await cluster.Cli("run", "--cpus", "64", "--", "true");
        Assert.True(submitted.ExitCode == 0, submitted.ToString());
        var id = submitted.StdOut.Trim();

        var shown = await Wait.UntilAsync(() => cluster.Cli("task", "show", id), r => r.StdOut.Contains("no agent has", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "task show to give the waiting reason");

        Assert.Contains("TASK_PENDING", shown.StdOut, StringComparison.Ordinal);
        Assert.Contains("no agent has 64 cpus free; the largest has 2", shown.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, (await cluster.Cli("task", "kill", id)).ExitCode);
    }

    [Fact]
    public async Task Run_BadInput_ExitsTwoNamingTheField()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("run", "--cpus", "0", "--ports", "1000", "--constraint", "rack:NEAR:x", "--", "true");

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("cpus: must be greater than 0", r.StdErr, StringComparison.Ordinal);
        Assert.Contains("ports: must be between 0 and 100", r.StdErr, StringComparison.Ordinal);
        Assert.Contains("constraints[0]: unknown operator 'NEAR'", r.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TaskLogsAndKill_RunningTask_FollowsThenKilled()
    {
        if (!cluster.Available)
        {
            return;
        }

        var id = (await cluster.Cli("run", "--", "sh", "-c", "echo started; sleep 1000")).StdOut.Trim();
        await Wait.UntilAsync(() => cluster.Cli("task", "logs", id), r => r.StdOut == "started\n", TimeSpan.FromSeconds(20), "the task's first line");

        var kill = await cluster.Cli("task", "kill", id);
        var follow = await cluster.Cli("task", "logs", "-f", id);   // returns once the task has ended
        var shown = await cluster.Cli("task", "ls", "--all", "--json");

        Assert.True(kill.ExitCode == 0, kill.ToString());
        Assert.Equal("started\n", follow.StdOut);
        Assert.Contains($"\"id\": \"{id}\"", shown.StdOut, StringComparison.Ordinal);
        Assert.Contains("TASK_KILLED", (await cluster.Cli("task", "show", id)).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownMaster_ClearErrorExitOne()
    {
        var r = await ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, "--master", $"http://127.0.0.1:{DevClusterFixture.FreePort()}", "node", "ls"]);

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot reach the master", r.StdErr, StringComparison.Ordinal);
    }
}

/// <summary>Ctrl-C on <c>drover dev</c> stops it cleanly and leaves no task process or cgroup behind.</summary>
public sealed class DevShutdownTests
{
    [Fact]
    public async Task DevInterrupt_WithRunningTask_NoProcessOrCgroupLeft()
    {
        await using var cluster = new DevClusterFixture();
        await cluster.InitializeAsync();
        if (!cluster.Available)
        {
            return;
        }

        var id = (await cluster.Cli("run", "--", "sh", "-c", "sleep 1000 & sleep 1001")).StdOut.Trim();
        using var client = new DroverClient(cluster.Url);
        await Wait.UntilAsync(() => client.GetTaskAsync(id), t => t.State == Core.TaskState.Running, TimeSpan.FromSeconds(20), "running");
        var agentCgroup = Path.Combine("/sys/fs/cgroup/memory", DroverHosts.CgroupNameFor(Path.Combine(cluster.DataDir, "agent")));
        var pids = await Wait.UntilAsync(() => Task.FromResult(File.ReadAllLines(Path.Combine(agentCgroup, id, "cgroup.procs"))), p => p.Length >= 2,
            TimeSpan.FromSeconds(10), "the task and its background child in the cgroup");

        Assert.True(cluster.Dev!.Signal(ProcessSignal.Interrupt));
        Assert.True(await cluster.Dev.WaitForExitAsync(TimeSpan.FromSeconds(20)), "drover dev exits on Ctrl-C");

        Assert.Equal(0, cluster.Dev.ExitCode);
        Assert.False(Directory.Exists(agentCgroup), $"agent cgroup {agentCgroup} removed");
        Assert.All(pids, p => Assert.True(!Directory.Exists($"/proc/{p}") || File.ReadAllText($"/proc/{p}/stat").Split(' ')[2] == "Z", $"process {p} outlived drover dev"));
    }
}

/// <summary><c>drover node drain|undrain</c> against its own <c>drover dev</c> (a drain would disturb other tests' tasks).</summary>
public sealed class NodeDrainCliTests(DevClusterFixture cluster) : IClassFixture<DevClusterFixture>
{
    [Fact]
    public async Task NodeDrain_DeadlineThreeSeconds_TaskKilledNodeDrainedThenUndrainTakesWorkAgain()
    {
        if (!cluster.Available)
        {
            return;
        }

        using var client = new DroverClient(cluster.Url);
        var agent = (await client.ListAgentsAsync()).Single().Id;
        var task = (await cluster.Cli("run", "--", "sleep", "1000")).StdOut.Trim();
        await Wait.UntilAsync(() => client.GetTaskAsync(task), t => t.State == Core.TaskState.Running, TimeSpan.FromSeconds(20), "the task running");

        var bad = await cluster.Cli("node", "drain", agent, "--deadline", "10x");
        var unknown = await cluster.Cli("node", "drain", "no-such-agent");
        var drain = await cluster.Cli("node", "drain", agent, "--deadline", "3s");
        var ls = await cluster.Cli("node", "ls");

        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--deadline: '10x' is not a duration", bad.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("no agent with id 'no-such-agent'", unknown.StdErr, StringComparison.Ordinal);
        Assert.True(drain.ExitCode == 0, drain.ToString());
        Assert.Contains($"{agent} (", drain.StdOut, StringComparison.Ordinal);
        Assert.Contains(": draining; what is left is killed at", drain.StdOut, StringComparison.Ordinal);
        Assert.Contains("draining", ls.StdOut, StringComparison.Ordinal);
        Assert.Equal(Core.TaskState.Running, (await client.GetTaskAsync(task)).State); // a plain task runs until the deadline

        var killed = await Wait.UntilAsync(() => client.GetTaskAsync(task), t => Core.TaskStates.IsTerminal(t.State), TimeSpan.FromSeconds(20), "the deadline kill");
        var drained = await Wait.UntilAsync(() => cluster.Cli("node", "ls"), r => r.StdOut.Contains("drained", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "node ls to show the agent drained");

        Assert.Equal(Core.TaskState.Killed, killed.State);
        Assert.Contains(killed.Statuses, s => s.State == Core.TaskState.Killing && s.Reason == Core.TaskReasons.AgentDraining);
        Assert.Equal(0, drained.ExitCode);

        var undrain = await cluster.Cli("node", "undrain", agent);
        var run = await cluster.Cli("run", "--wait", "--", "echo", "placed again");

        Assert.True(undrain.ExitCode == 0, undrain.ToString());
        Assert.Contains(": active", undrain.StdOut, StringComparison.Ordinal);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("placed again\n", run.StdOut);
    }

    [Fact]
    public async Task Secret_PutGetListRemove_ValueExactlyAsStoredAndGoneAfterRm()
    {
        if (!cluster.Available)
        {
            return;
        }

        var file = Path.Combine(cluster.DataDir, "value.txt");
        await File.WriteAllTextAsync(file, "s3cret value\nwith two lines");

        var put = await cluster.Cli("secret", "put", "cli-test/db", "--value-file", file, "--description", "the db");
        var get = await cluster.Cli("secret", "get", "cli-test/db");
        var ls = await cluster.Cli("secret", "ls", "cli-test");
        var rm = await cluster.Cli("secret", "rm", "cli-test/db");
        var gone = await cluster.Cli("secret", "get", "cli-test/db");
        File.Delete(file);

        Assert.True(put.ExitCode == 0, put.ToString());
        Assert.DoesNotContain("s3cret", put.StdOut, StringComparison.Ordinal);
        Assert.Equal("s3cret value\nwith two lines", get.StdOut); // no newline added
        Assert.Equal("cli-test/db\n", ls.StdOut);
        Assert.True(rm.ExitCode == 0, rm.ToString());
        Assert.Equal(2, gone.ExitCode);
        Assert.Contains("secret 'cli-test/db' does not exist", gone.StdErr, StringComparison.Ordinal);
    }
}
