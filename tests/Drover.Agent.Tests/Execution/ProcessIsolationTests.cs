using System.Diagnostics;
using System.Globalization;
using Drover.Agent.Execution;
using Drover.Agent.Execution.Cgroups;
using Drover.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>Cgroup limits, kills and cleanup against the real kernel. Needs root (always runs under CI=true).</summary>
public sealed class ProcessIsolationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ExecutorHarness? _harness;

    private ExecutorHarness H => _harness ??= new ExecutorHarness("isolation");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_harness is not null)
        {
            await _harness.DisposeAsync();
        }
    }

    [Fact]
    public async Task Launch_MemoryHogOverLimit_FailsWithMemoryLimitationReason()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // tail must buffer everything since /dev/zero has no newlines: 200 MiB against a 32 MiB limit.
        var spec = H.Launch(ExecutorHarness.Shell("head -c 200M /dev/zero | tail > /dev/null", memMiB: 32));

        var terminal = await H.WaitForTerminalAsync(spec.Id, TimeSpan.FromSeconds(60));

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(TaskReasons.ContainerLimitationMemory, terminal.Reason);
        Assert.Equal("Memory limit exceeded: limit 32 MiB", terminal.Message);
        Assert.All(H.CgroupDirectories(spec.Id), d => Assert.False(Directory.Exists(d), d));
    }

    [Fact]
    public async Task Launch_WithinMemoryLimit_Finishes()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("head -c 8M /dev/zero | tail > /dev/null", memMiB: 64));

        Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(spec.Id)).State);
    }

    [Fact]
    public async Task Launch_WithCpusMemAndPidsLimit_CgroupFilesHoldLimitsAndTaskIsInside()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("sleep 1000", memMiB: 48, cpus: 0.5m) with { PidsLimit = 100 });
        await H.WaitForStateAsync(spec.Id, TaskState.Running);
        var pid = H.Executor.PidOf(spec.Id)!.Value;
        var dirs = H.CgroupDirectories(spec.Id);
        var pidText = pid.ToString(CultureInfo.InvariantCulture);
        await Eventually.TrueAsync(
            () => dirs.All(d => File.ReadAllLines(Path.Combine(d, "cgroup.procs")).Contains(pidText)), "the task joined every cgroup");

        string Read(string file) => File.ReadAllText(dirs.Select(d => Path.Combine(d, file)).Single(File.Exists)).Trim();
        if (H.Executor.Cgroups!.Version == CgroupVersion.V1)
        {
            Assert.Equal(
                new[] { "memory", "cpu", "pids", "freezer" }.Select(c => $"/sys/fs/cgroup/{c}/{H.CgroupName}/{spec.Id}"),
                dirs);
            Assert.Equal((48L * 1024 * 1024).ToString(CultureInfo.InvariantCulture), Read("memory.limit_in_bytes"));
            Assert.Equal("100000", Read("cpu.cfs_period_us"));
            Assert.Equal("50000", Read("cpu.cfs_quota_us"));
            Assert.Equal("512", Read("cpu.shares"));
            Assert.Equal("100", Read("pids.max"));
        }
        else
        {
            Assert.Equal((48L * 1024 * 1024).ToString(CultureInfo.InvariantCulture), Read("memory.max"));
            Assert.Equal("50000 100000", Read("cpu.max"));
            Assert.Equal("100", Read("pids.max"));
        }

        H.Executor.Kill(spec.Id, TimeSpan.Zero);
        Assert.Equal(TaskState.Killed, (await H.WaitForTerminalAsync(spec.Id)).State);
    }

    [Fact]
    public async Task Launch_ForkLoopOverPidsLimit_IsBoundedAndFails()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell(
            "i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done; echo all started") with { PidsLimit = 5 });

        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Contains("fork", H.ReadSandboxFile(spec.Id, "stderr"), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("all started", H.ReadSandboxFile(spec.Id, "stdout"), StringComparison.Ordinal);
        Assert.All(H.CgroupDirectories(spec.Id), d => Assert.False(Directory.Exists(d), d));
    }

    [Fact]
    public async Task Kill_ProcessTree_ReportsKillingThenKilledAndLeavesNoProcessOrCgroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("sleep 1000 & sleep 1000"));
        await H.WaitForStateAsync(spec.Id, TaskState.Running);
        await Eventually.TrueAsync(() => H.CgroupPids(spec.Id).Count >= 2, "both sleeps run");
        var pids = H.CgroupPids(spec.Id).ToList();
        var dirs = H.CgroupDirectories(spec.Id);
        Assert.NotEmpty(dirs);
        Assert.All(dirs, d => Assert.True(Directory.Exists(d), d));

        H.Executor.Kill(spec.Id);
        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, terminal.State);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Killing, TaskState.Killed], H.StatesFor(spec.Id));
        Assert.All(pids, p => Assert.False(IsAlive(p), $"pid {p} survived"));
        Assert.All(dirs, d => Assert.False(Directory.Exists(d), $"{d} was not removed"));
    }

    [Fact]
    public async Task Kill_TermIgnoringTask_IsSigkilledAfterGracePeriod()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("trap '' TERM; echo ready; sleep 1000; echo survived"));
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(H.WorkDir, "sandboxes", spec.Id, "stdout"))
            && H.ReadSandboxFile(spec.Id, "stdout").Contains("ready", StringComparison.Ordinal), "the trap is set");
        var pids = H.CgroupPids(spec.Id).ToList();

        H.Executor.Kill(spec.Id, TimeSpan.FromSeconds(1));
        var killing = await H.WaitForStateAsync(spec.Id, TaskState.Killing);
        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, terminal.State);
        Assert.Equal(128 + 9, terminal.ExitCode);
        Assert.True(terminal.Timestamp - killing.Timestamp >= 0.9, $"killed after {terminal.Timestamp - killing.Timestamp:0.000} s");
        Assert.DoesNotContain("survived", H.ReadSandboxFile(spec.Id, "stdout"), StringComparison.Ordinal);
        Assert.All(pids, p => Assert.False(IsAlive(p), $"pid {p} survived"));
        Assert.All(H.CgroupDirectories(spec.Id), d => Assert.False(Directory.Exists(d), d));
    }

    [Fact]
    public async Task Launch_FinishedTaskWithBackgroundChild_KillsTheChildAndRemovesCgroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // The child is found by a marker in its command line: in the task's PID namespace, $! is not the agent's pid.
        var marker = HostProcesses.NewMarker();
        var spec = H.Launch(ExecutorHarness.Shell($"sleep {marker} & echo started > bg"));

        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Finished, terminal.State);
        Assert.Equal("started\n", H.ReadSandboxFile(spec.Id, "bg"));
        Assert.Empty(HostProcesses.WithMarker(marker));
        Assert.All(H.CgroupDirectories(spec.Id), d => Assert.False(Directory.Exists(d), d));
    }

    [Fact]
    public async Task Launch_DaemonizingChild_CannotEscapeTheCgroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // A double-forked, setsid'ed daemon leaves the process group but not the cgroup. It is found by a marker in
        // its command line: in the task's PID namespace, $$ is not the agent's pid.
        var marker = HostProcesses.NewMarker();
        var spec = H.Launch(ExecutorHarness.Shell($"setsid sh -c 'echo started > daemon; exec sleep {marker}' & sleep 0.2; exit 3"));

        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(3, terminal.ExitCode);
        Assert.Equal("started\n", H.ReadSandboxFile(spec.Id, "daemon"));
        Assert.Empty(HostProcesses.WithMarker(marker));
    }

    [Fact]
    public async Task DisposeAsync_RunningTasks_KillsAllAndRemovesAgentCgroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var h = new ExecutorHarness("dispose", shutdownGrace: TimeSpan.FromMilliseconds(500));
        var specs = new[]
        {
            h.Launch(ExecutorHarness.Shell("sleep 1000")),
            h.Launch(ExecutorHarness.Shell("sleep 1000 & sleep 1000")),
            h.Launch(ExecutorHarness.Shell("trap '' TERM; sleep 1000")),
        };
        foreach (var spec in specs)
        {
            await h.WaitForStateAsync(spec.Id, TaskState.Running);
        }

        await Eventually.TrueAsync(() => specs.All(s => h.CgroupPids(s.Id).Count > 0), "all tasks joined their cgroups");
        var pids = specs.SelectMany(s => h.CgroupPids(s.Id)).ToList();
        var agentDirs = h.Executor.AgentCgroup!.Directories;

        await h.Executor.DisposeAsync();
        await h.Pump.WaitAsync(TimeSpan.FromSeconds(10)); // the update channel completes

        Assert.All(specs, s => Assert.Equal(TaskState.Killed, h.StatesFor(s.Id)[^1]));
        Assert.All(pids, p => Assert.False(IsAlive(p), $"pid {p} survived"));
        Assert.All(agentDirs, d => Assert.False(Directory.Exists(d), $"{d} was not removed"));
    }

    [Fact]
    public async Task Constructor_OrphanedTaskCgroupFromCrashedAgent_KillsAndRemovesIt()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var name = $"drover-test/orphans-{Environment.ProcessId}";
        var driver = CgroupDriver.Detect();
        var orphan = driver.Create($"{name}/old-task.1", CgroupLimits.None);
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "1000"))!;
        driver.AddProcess(orphan, sleeper.Id);

        var options = new ProcessExecutorOptions { WorkDir = Path.Combine(Path.GetTempPath(), "drover-orphans-" + Guid.NewGuid().ToString("N")), CgroupName = name };
        await using (var executor = new ProcessTaskExecutor(options, NullLogger<ProcessTaskExecutor>.Instance, TimeProvider.System))
        {
            await sleeper.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.All(orphan.Directories, d => Assert.False(Directory.Exists(d), d));
        }

        Directory.Delete(options.WorkDir, recursive: true);
    }

    [Fact]
    public async Task Launch_ManyShortTasks_AllFinishAndLeaveNoCgroups()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        const int count = 200;
        var specs = Enumerable.Range(0, count).Select(_ => ExecutorHarness.Shell("true")).ToList();
        var watch = Stopwatch.StartNew();
        foreach (var spec in specs)
        {
            H.Launch(spec);
        }

        var launched = watch.Elapsed;
        await Eventually.TrueAsync(
            () => specs.All(s => H.UpdatesFor(s.Id).Any(u => u.State.IsTerminal())), "all tasks end", TimeSpan.FromSeconds(120));
        var total = watch.Elapsed;

        output.WriteLine($"launched {count} in {launched.TotalMilliseconds:0} ms ({count / launched.TotalSeconds:0}/s); all ended after {total.TotalMilliseconds:0} ms");
        Assert.All(specs, s => Assert.Equal(TaskState.Finished, H.StatesFor(s.Id)[^1]));
        Assert.Empty(H.Executor.Cgroups!.ListChildren(H.CgroupName));
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            // A killed orphan may linger as a zombie until init reaps it; that is dead for our purposes.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
