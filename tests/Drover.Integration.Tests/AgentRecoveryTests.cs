using System.Globalization;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>
/// Agent crash recovery with real processes: <c>kill -9</c> the agent (or all of <c>drover dev</c>)
/// while tasks run and end, restart it on the same work dir, and check that nothing was restarted,
/// lost or misreported. Each test starts its own processes: they are killed on purpose.
/// </summary>
public sealed class AgentRecoveryTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-recovery-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private DroverClient? _client;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Newest first: the restarted agent kills every task (including adopted ones) on its way out.
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        _client?.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task KillAgent_RestartOnSameWorkDir_TasksKeepRunningAndEndedOnesReportRealStatus()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var (agent, agentArgs) = StartMasterAndAgent("--kill-tasks-on-stop");

        await CrashAndRecoverAsync(
            crash: () => agent.KillAsync(ProcessSignal.Kill),
            restart: () => Start("agent-restarted", agentArgs));
    }

    [Fact]
    public async Task StopAgent_Gracefully_TasksKeepRunningAndTheRestartedAgentRecoversThem()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var (agent, agentArgs) = StartMasterAndAgent();

        // As a Mesos agent or kubelet restart (an upgrade): SIGTERM leaves the tasks running by default.
        await CrashAndRecoverAsync(
            crash: () => agent.KillAsync(ProcessSignal.Terminate),
            restart: () => Start("agent-restarted", [.. agentArgs, "--kill-tasks-on-stop"]));
    }

    [Fact]
    public async Task KillDev_RestartOnSameDataDir_TasksKeepRunningAndEndedOnesReportRealStatus()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var port = DevClusterFixture.FreePort();
        string[] devArgs = ["dev", "--listen", $"127.0.0.1:{port}", "--data-dir", Path.Combine(_root, "dev"), "--log-level", "information",
            "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024")];
        var dev = Start("dev", devArgs);
        _client = new DroverClient(new Uri($"http://127.0.0.1:{port}"));

        await CrashAndRecoverAsync(
            crash: () => dev.KillAsync(ProcessSignal.Kill),
            restart: () => Start("dev-restarted", devArgs));
    }

    /// <summary>
    /// Three tasks: one runs throughout, one exits 7 while the agent is down, one is SIGKILLed while
    /// the agent is down. After the restart the first is RUNNING with the same process, the others
    /// report their real ends, the adopted task can still be killed, and new tasks launch.
    /// </summary>
    private async Task CrashAndRecoverAsync(Func<Task> crash, Func<DroverProcess> restart)
    {
        var client = _client!;
        await WaitForActiveAgentAsync(client);
        var agentId = (await client.ListAgentsAsync()).Single().Id;
        // Each task's sleep carries a marker in its duration, by which the test finds its process from outside: tasks
        // run in PID namespaces of their own, so a pid a task could tell (echo $$) is not the machine's.
        var markers = new[] { Marker("600."), Marker("4."), Marker("600.") };
        var longRunning = await SubmitAsync(client, "long", $"echo {markers[0]}; exec sleep {markers[0]}");
        var exits = await SubmitAsync(client, "exits", $"echo {markers[1]}; sleep {markers[1]}; exit 7");
        var signalled = await SubmitAsync(client, "signalled", $"echo {markers[2]}; exec sleep {markers[2]}");
        var pids = new Dictionary<string, int>();
        var markerOf = new Dictionary<string, string> { [longRunning] = markers[0], [exits] = markers[1], [signalled] = markers[2] };
        foreach (var id in new[] { longRunning, exits, signalled })
        {
            await client.WaitForTaskAsync(id, t => t.State == TaskState.Running).WaitAsync(Timeout);
            await Wait.UntilAsync(() => ReadStdoutAsync(client, id), text => text.Contains(markerOf[id], StringComparison.Ordinal), Timeout,
                $"{id} wrote its marker", retryOn: e => e is HttpRequestException);
            pids[id] = await Wait.UntilAsync(() => Task.FromResult(SleepWithMarker(markerOf[id])), pid => pid > 0, Timeout, $"{id}'s sleep runs");
        }

        await crash();

        // The agent is gone; its tasks are not.
        Assert.True(IsAlive(pids[longRunning]), "the running task died with the agent");
        Assert.True(IsAlive(pids[signalled]), "the running task died with the agent");
        System.Diagnostics.Process.GetProcessById(pids[signalled]).Kill();
        await Wait.UntilAsync(() => Task.FromResult(!IsAlive(pids[exits]) && !IsAlive(pids[signalled])), x => x, Timeout,
            "both tasks to end while the agent is down");

        _ = restart();
        var exited = await WaitForTaskAsync(client, exits, t => t.State.IsTerminal());
        Assert.Equal(TaskState.Failed, exited.State);
        Assert.Equal(7, exited.ExitCode);
        Assert.Equal("Command exited with status 7", exited.Message);

        var killed = await WaitForTaskAsync(client, signalled, t => t.State.IsTerminal());
        Assert.Equal(TaskState.Failed, killed.State);
        Assert.Equal(137, killed.ExitCode);
        Assert.Contains("SIGKILL", killed.Message, StringComparison.Ordinal);

        // Same agent, same process, never restarted nor reported ended.
        await WaitForActiveAgentAsync(client);
        Assert.Equal(agentId, (await client.ListAgentsAsync()).Single().Id);
        var running = await client.GetTaskAsync(longRunning);
        Assert.Equal(TaskState.Running, running.State);
        Assert.DoesNotContain(running.Statuses, s => s.State.IsTerminal());
        Assert.Equal(pids[longRunning], SleepWithMarker(markers[0]));
        Assert.True(IsAlive(pids[longRunning]));
        Assert.Single(running.Statuses, s => s.State == TaskState.Starting);

        // The adopted task is still under the agent's control, and the agent takes new work.
        await client.KillTaskAsync(longRunning);
        Assert.Equal(TaskState.Killed, (await client.WaitForTaskAsync(longRunning, t => t.State.IsTerminal()).WaitAsync(Timeout)).State);
        await Wait.UntilAsync(() => Task.FromResult(!IsAlive(pids[longRunning])), x => x, Timeout, "the killed task's process to be gone");
        var fresh = await SubmitAsync(client, "fresh", "exit 0");
        Assert.Equal(TaskState.Finished, (await client.WaitForTaskAsync(fresh, t => t.State.IsTerminal()).WaitAsync(Timeout)).State);
    }

    /// <summary>A <c>drover master</c> and one <c>drover agent</c> process on loopback; sets the client.</summary>
    private (DroverProcess Agent, string[] AgentArgs) StartMasterAndAgent(params string[] extraAgentArgs)
    {
        var masterPort = DevClusterFixture.FreePort();
        var masterUrl = $"http://127.0.0.1:{masterPort}";
        Start("master", ["master", "--data-dir", Path.Combine(_root, "master"), "--listen", $"127.0.0.1:{masterPort}", "--insecure", "--log-level", "warning"]);
        string[] agentArgs = ["agent", "--master", masterUrl, "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", Path.Combine(_root, "agent"),
            "--resources", TestPorts.Resources("cpus:2;mem:1024;disk:1024"), "--log-level", "information", .. extraAgentArgs];
        _client = new DroverClient(new Uri(masterUrl));
        return (Start("agent", agentArgs), agentArgs);
    }

    private DroverProcess Start(string name, string[] args)
    {
        var process = DroverProcess.Start(name, args, logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return process;
    }

    /// <summary>Polls the task until <paramref name="until"/> holds, riding out a master that is still starting.</summary>
    private static Task<TaskView> WaitForTaskAsync(DroverClient client, string id, Func<TaskView, bool> until) =>
        Wait.UntilAsync(() => client.GetTaskAsync(id), until, Timeout, $"task {id}", retryOn: e => e is HttpRequestException,
            describe: t => $"{t.State.WireName()} {t.Message}");

    private static Task WaitForActiveAgentAsync(DroverClient client) =>
        Wait.UntilAsync(() => client.ListAgentsAsync(), agents => agents.Any(a => a.Status == "active"), Timeout, "an active agent",
            retryOn: e => e is HttpRequestException);

    private static async Task<string> SubmitAsync(DroverClient client, string name, string cmd) =>
        (await client.SubmitTaskAsync(new TaskSubmission
        {
            Name = name,
            Cmd = cmd,
            Cpus = JsonSerializer.SerializeToElement(0.1m),
            Mem = JsonSerializer.SerializeToElement(32),
        })).Id;

    private static async Task<string> ReadStdoutAsync(DroverClient client, string taskId) => (await client.ReadFileAsync(taskId, "stdout", 0)).Data;

    /// <summary>A duration for <c>sleep</c> no other process on the machine has: <paramref name="seconds"/> then 8 random digits.</summary>
    private static string Marker(string seconds) => seconds + Random.Shared.Next(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);

    /// <summary>The pid (in the machine's PID namespace) of the live <c>sleep MARKER</c> process, or 0.</summary>
    private static int SleepWithMarker(string marker)
    {
        var cmdline = $"sleep\0{marker}\0";
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                    && File.ReadAllText(Path.Combine(dir, "cmdline")) == cmdline && IsAlive(pid))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
        }

        return 0;
    }

    /// <summary>Alive and not a zombie (a killed task reparented to a non-reaping init lingers as one).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
