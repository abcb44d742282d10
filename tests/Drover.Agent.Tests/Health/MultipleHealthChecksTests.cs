using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>Several health checks per task: healthy when all pass, killed when any reaches its own limit.</summary>
public sealed class MultipleHealthChecksTests : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-multi");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static HealthCheck Command(string command, int maxConsecutiveFailures = 0) =>
        Quick(HealthCheckProtocol.Command) with { Command = command, MaxConsecutiveFailures = maxConsecutiveFailures };

    [Fact]
    public async Task TwoChecks_BothPass_OneHealthyUpdateWithBothResults()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("true"), Command("true")));

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);
        await _h.WaitForChecksAsync(_h.Executor.Health.ChecksPerformed, 6);

        Assert.True(update.Healthy);
        Assert.Equal(TaskReasons.TaskHealthCheckStatusUpdated, update.Reason);
        Assert.StartsWith("All 2 health checks passed", update.Message, StringComparison.Ordinal);
        Assert.Equal(2, update.HealthResults!.Value.Length);
        Assert.All(update.HealthResults.Value, r => Assert.True(r.Alive));
        Assert.All(update.HealthResults.Value, r => Assert.Equal(0, r.ConsecutiveFailures));
        Assert.Single(_h.HealthUpdates(spec.Id));
        Assert.Equal(TaskState.Running, _h.UpdatesFor(spec.Id)[^1].State);
    }

    [Fact]
    public async Task TwoChecks_OneFails_UnhealthyAndKilledByTheFailingOnesLimit()
    {
        // The passing check would allow 100 failures; the failing one allows 2: its limit decides.
        var spec = _h.Launch(Checked("sleep 1000", Command("true", maxConsecutiveFailures: 100), Command("exit 3", maxConsecutiveFailures: 2)));

        var killed = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, killed.State);
        Assert.False(killed.Healthy);
        Assert.Equal(TaskReasons.TaskHealthCheckStatusUpdated, killed.Reason);
        Assert.Equal("Task killed: health check 2 of 2 failed 2 times in a row: command exited with status 3", killed.Message);

        // Never healthy (one check always fails), so exactly one health update: unhealthy.
        var unhealthy = Assert.Single(_h.HealthUpdates(spec.Id));
        Assert.False(unhealthy.Healthy);
        Assert.Equal("Health check 2 of 2 failed: command exited with status 3", unhealthy.Message);
        var results = unhealthy.HealthResults!.Value;
        Assert.Equal(2, results.Length);
        Assert.False(results[1].Alive);
        Assert.Equal(1, results[1].ConsecutiveFailures);
        Assert.Equal("command exited with status 3", results[1].LastFailureCause);
        Assert.Equal(0, results[0].ConsecutiveFailures);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running, TaskState.Killing, TaskState.Killed], _h.StatesFor(spec.Id));
        Assert.Equal(0, _h.Executor.Health.CheckedTaskCount);
    }

    [Fact]
    public async Task TwoChecks_OneFailsWithoutLimit_StaysUnhealthyAndRunning()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("true", maxConsecutiveFailures: 1), Command("exit 1")));

        Assert.False((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);
        await _h.WaitForChecksAsync(_h.Executor.Health.ChecksPerformed, 6);

        Assert.Single(_h.HealthUpdates(spec.Id));
        Assert.Equal(TaskState.Running, _h.UpdatesFor(spec.Id)[^1].State);
    }

    [Fact]
    public async Task TwoChecks_SecondTurnsFailingAndBack_OneUpdatePerChangeOfTheCombinedHealth()
    {
        // Grace until the first success: the file may not exist yet at the first check.
        var spec = _h.Launch(Checked("touch ok; sleep 1000", Command("true"), Command("test -f ok") with { GracePeriod = TimeSpan.FromSeconds(20) }));
        var ok = Path.Combine(_h.Executor.SandboxPath(spec.Id)!, "ok");

        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id, 1)).Healthy);
        File.Delete(ok);
        var unhealthy = await _h.WaitForHealthUpdateAsync(spec.Id, 2);
        await _h.WaitForChecksAsync(_h.Executor.Health.ChecksPerformed, 6);
        Assert.Equal(2, _h.HealthUpdates(spec.Id).Length);

        await File.WriteAllTextAsync(ok, "");
        var healthyAgain = await _h.WaitForHealthUpdateAsync(spec.Id, 3);
        await _h.WaitForChecksAsync(_h.Executor.Health.ChecksPerformed, 6);

        Assert.False(unhealthy.Healthy);
        Assert.Equal("Health check 2 of 2 failed: command exited with status 1", unhealthy.Message);
        Assert.True(unhealthy.HealthResults!.Value[0].Alive);
        Assert.False(unhealthy.HealthResults.Value[1].Alive);
        Assert.True(healthyAgain.Healthy);
        Assert.Equal([true, false, true], _h.HealthUpdates(spec.Id).Select(u => u.Healthy!.Value));
    }
}
