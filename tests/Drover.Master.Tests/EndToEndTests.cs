using System.Text;
using System.Text.Json;
using Drover.Cli.Hosting;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;

namespace Drover.Master.Tests;

/// <summary>A real master and a real agent in this process, running real tasks in cgroups (needs root).</summary>
[Collection(RealClusterCollection.Name)]
public sealed class EndToEndTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private InProcessCluster? _cluster;

    public async Task InitializeAsync()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        _cluster = await InProcessCluster.StartAsync();
        await _cluster.AddAgentAsync("e2e-host", TestPorts.Resources());
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    private static JsonElement Num(decimal n) => JsonSerializer.SerializeToElement(n);

    private async Task<TaskView> RunToEnd(TaskSubmission submission)
    {
        var task = await _cluster!.Client.SubmitTaskAsync(submission);
        return await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.State.IsTerminal(), Timeout, $"task {task.Id} to end");
    }

    private async Task<string> Stdout(string taskId, bool stderr = false)
    {
        using var buffer = new MemoryStream();
        await _cluster!.Client.CopyLogsAsync(taskId, buffer, stderr, follow: true);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    [Fact]
    public async Task Run_Echo_FinishedWithOutput()
    {
        if (_cluster is null)
        {
            return;
        }

        var t = await RunToEnd(new TaskSubmission { Args = ["echo", "hello from drover"] });

        Assert.Equal(TaskState.Finished, t.State);
        Assert.Equal(0, t.ExitCode);
        Assert.Equal("hello from drover\n", await Stdout(t.Id));
        Assert.Equal([TaskState.Staging, TaskState.Starting, TaskState.Running, TaskState.Finished], t.Statuses.Select(s => s.State).Distinct().ToArray());
    }

    [Fact]
    public async Task Run_ExitSeven_FailedWithExitCodeAndStderr()
    {
        if (_cluster is null)
        {
            return;
        }

        var t = await RunToEnd(new TaskSubmission { Cmd = "echo oops >&2; exit 7" });

        Assert.Equal(TaskState.Failed, t.State);
        Assert.Equal(7, t.ExitCode);
        Assert.Contains("7", t.Message, StringComparison.Ordinal);
        Assert.Equal("oops\n", await Stdout(t.Id, stderr: true));
    }

    [Fact]
    public async Task Run_MemoryHog_FailedWithMemoryReason()
    {
        if (_cluster is null)
        {
            return;
        }

        var t = await RunToEnd(new TaskSubmission { Args = ["python3", "-c", "x = bytearray(256 * 1024 * 1024); print(len(x))"], Mem = Num(32) });

        Assert.Equal(TaskState.Failed, t.State);
        Assert.Equal(TaskReasons.ContainerLimitationMemory, t.Reason);
    }

    [Fact]
    public async Task Run_WithPorts_PortEnvMatchesAssignment()
    {
        if (_cluster is null)
        {
            return;
        }

        var t = await RunToEnd(new TaskSubmission { Cmd = "echo $PORT0 $PORT1 $PORT $HOST", Ports = Num(2) });

        Assert.Equal(TaskState.Finished, t.State);
        Assert.Equal(2, t.Ports.Length);
        Assert.Equal($"{t.Ports[0]} {t.Ports[1]} {t.Ports[0]} e2e-host\n", await Stdout(t.Id));
    }

    [Fact]
    public async Task Kill_TaskWithBackgroundChild_KilledNoProcessOrCgroupLeft()
    {
        if (_cluster is null)
        {
            return;
        }

        var task = await _cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "sleep 1000 & sleep 1001" });
        await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.State == TaskState.Running, Timeout, "running");
        var cgroup = Path.Combine("/sys/fs/cgroup/memory", DroverHosts.CgroupNameFor(Path.Combine(_cluster.Root, "e2e-host")), task.Id);
        Assert.True(Directory.Exists(cgroup), $"expected the task's memory cgroup at {cgroup}");
        var pids = await Wait.UntilAsync(() => Task.FromResult(File.ReadAllLines(Path.Combine(cgroup, "cgroup.procs"))), p => p.Length >= 2,
            Timeout, "the task and its background child in the cgroup");

        await _cluster.Client.KillTaskAsync(task.Id);
        var t = await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.State.IsTerminal(), Timeout, "killed");

        Assert.Equal(TaskState.Killed, t.State);
        Assert.False(Directory.Exists(cgroup), "the task's cgroup is removed");
        Assert.All(pids, p => Assert.True(!Directory.Exists($"/proc/{p}") || File.ReadAllText($"/proc/{p}/stat").Split(' ')[2] == "Z", $"process {p} outlived its task"));
    }

    [Fact]
    public async Task Running_TaskHoldsResources_ShownInNodeAndState()
    {
        if (_cluster is null)
        {
            return;
        }

        var task = await _cluster.Client.SubmitTaskAsync(new TaskSubmission { Args = ["sleep", "1000"], Cpus = Num(0.5m), Mem = Num(100) });
        await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.State == TaskState.Running, Timeout, "running");

        var agent = Assert.Single(await _cluster.Client.ListAgentsAsync());
        Assert.True(agent.Used.Cpus >= 0.5m);
        Assert.True(agent.Used.Mem >= 100);
        using var state = JsonDocument.Parse(await _cluster.Client.GetStringAsync("master/state"));
        var tasks = state.RootElement.GetProperty("frameworks")[0].GetProperty("tasks").EnumerateArray();
        Assert.Contains(tasks, x => x.GetProperty("id").GetString() == task.Id && x.GetProperty("state").GetString() == "TASK_RUNNING"
            && x.GetProperty("slave_id").GetString() == agent.Id);

        await _cluster.Client.KillTaskAsync(task.Id);
        await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.State.IsTerminal(), Timeout, "killed");
    }

    [Fact]
    public async Task Logs_Follow_StreamsUntilTaskEnds()
    {
        if (_cluster is null)
        {
            return;
        }

        var task = await _cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "for i in 1 2 3; do echo line$i; sleep 0.3; done" });

        var output = await Stdout(task.Id);

        Assert.Equal("line1\nline2\nline3\n", output);
        Assert.True((await _cluster.Client.GetTaskAsync(task.Id)).State.IsTerminal());
    }
}
