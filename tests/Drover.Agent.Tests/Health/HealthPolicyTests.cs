using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>Grace period, kill after consecutive failures, and the end of checking, with COMMAND checks.</summary>
public sealed class HealthPolicyTests : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-policy");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static HealthCheck Command(string command) => Quick(HealthCheckProtocol.Command) with { Command = command };

    [Fact]
    public async Task FailingCheck_MaxConsecutiveFailuresReached_KillsTaskReportedKilledUnhealthy()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("exit 3") with { MaxConsecutiveFailures = 3 }));

        var killed = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, killed.State);
        Assert.False(killed.Healthy);
        Assert.Equal(TaskReasons.TaskHealthCheckStatusUpdated, killed.Reason);
        Assert.Equal("Task killed: health check failed 3 times in a row: command exited with status 3", killed.Message);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running, TaskState.Killing, TaskState.Killed], _h.StatesFor(spec.Id));
        Assert.False(Assert.Single(_h.HealthUpdates(spec.Id)).Healthy);
        Assert.Equal(3, _h.Executor.Health.ChecksPerformed);
        Assert.Equal(0, _h.Executor.Health.CheckedTaskCount);
    }

    [Fact]
    public async Task FailingCheck_WithinGracePeriod_IsIgnoredThenKillsOnceGraceEnds()
    {
        var grace = TimeSpan.FromSeconds(2);
        var check = Command("exit 1") with { GracePeriod = grace, MaxConsecutiveFailures = 1 };
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var spec = _h.Launch(Checked("sleep 1000", check));

        await _h.WaitForChecksAsync(0, 3);
        var checkedWithinGrace = watch.Elapsed < grace;
        var statesWithinGrace = _h.StatesFor(spec.Id);
        var killed = await _h.WaitForTerminalAsync(spec.Id);

        Assert.True(checkedWithinGrace, $"3 checks took {watch.Elapsed}, longer than the grace period");
        Assert.Equal([TaskState.Starting, TaskState.Running], statesWithinGrace);
        Assert.Equal(TaskState.Killed, killed.State);
        Assert.False(killed.Healthy);
        Assert.True(watch.Elapsed >= grace, $"killed after {watch.Elapsed}, within the grace period");
    }

    [Fact]
    public async Task FailingCheck_AfterFirstSuccessWithinGrace_CountsAndKills()
    {
        // Grace lasts only until the first success: failures after it count even though 60 s have not passed.
        var check = Command("test -f ok") with { GracePeriod = TimeSpan.FromSeconds(60), MaxConsecutiveFailures = 2 };
        var spec = _h.Launch(Checked("touch ok; sleep 1000", check));
        await Eventually.TrueAsync(() => _h.HealthUpdates(spec.Id).Any(u => u.Healthy == true), "the task turns healthy");

        File.Delete(Path.Combine(_h.Executor.SandboxPath(spec.Id)!, "ok"));
        var killed = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, killed.State);
        Assert.Equal("Task killed: health check failed 2 times in a row: command exited with status 1", killed.Message);
        Assert.Equal([true, false], _h.HealthUpdates(spec.Id).Select(u => u.Healthy!.Value));
    }

    [Fact]
    public async Task HealthyCheck_TaskExits_ChecksStop()
    {
        var spec = _h.Launch(Checked("while [ ! -f stop ]; do sleep 0.05; done", Command("echo x >> checks")));
        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);
        Assert.Equal(1, _h.Executor.Health.CheckedTaskCount);

        await File.WriteAllTextAsync(Path.Combine(_h.Executor.SandboxPath(spec.Id)!, "stop"), "");
        Assert.Equal(TaskState.Finished, (await _h.WaitForTerminalAsync(spec.Id)).State);
        var performed = _h.Executor.Health.ChecksPerformed;
        var lines = _h.ReadSandboxFile(spec.Id, "checks");

        Assert.Equal(0, _h.Executor.Health.CheckedTaskCount);
        await HoldsForAsync(
            () => _h.Executor.Health.ChecksPerformed == performed && _h.ReadSandboxFile(spec.Id, "checks") == lines,
            TimeSpan.FromSeconds(0.5), "no check runs after the task ended");
        Assert.Equal(TaskState.Finished, _h.UpdatesFor(spec.Id)[^1].State);
    }

    [Fact]
    public async Task HealthyCheck_TaskKilled_ChecksStopAndNoRunningFollowsKilling()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("true")));
        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);

        _h.Executor.Kill(spec.Id, TimeSpan.Zero);
        var killed = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(0, _h.Executor.Health.CheckedTaskCount);
        Assert.Null(killed.Healthy);
        Assert.Null(killed.Reason);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running, TaskState.Killing, TaskState.Killed], _h.StatesFor(spec.Id));
    }

    [Fact]
    public async Task Launch_HealthCheckPortIndexOutOfRange_FailsLaunch()
    {
        var spec = _h.Launch(Checked("sleep 1000", Quick(HealthCheckProtocol.Http) with { PortIndex = 1 }), FreePort());

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(TaskReasons.ContainerLaunchFailed, terminal.Reason);
        Assert.Equal("Invalid health check: portIndex 1 is out of range: the task has 1 port", terminal.Message);
    }

    [Fact]
    public async Task Dispose_WhileChecksRun_StopsChecksWithoutHealthKills()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("sleep 0.05; exit 1") with { MaxConsecutiveFailures = 1000 }));
        await _h.WaitForHealthUpdateAsync(spec.Id);

        await _h.DisposeAsync();

        var terminal = _h.UpdatesFor(spec.Id)[^1];
        Assert.Equal(TaskState.Killed, terminal.State);
        Assert.Null(terminal.Healthy);
    }
}
