using System.Diagnostics;
using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>Readiness checks: polled from the start until the first success, reported once, then stopped.</summary>
public sealed class ReadinessCheckTests : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-ready");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static TaskSpec Ready(string shell, TaskReadinessCheck check, params HealthCheck[] healthChecks) =>
        ExecutorHarness.Shell(shell) with { ReadinessChecks = [check], HealthChecks = [.. healthChecks] };

    [Fact]
    public async Task ServerStartsLate_ReadyOnlyOnceItAnswers_OneUpdateThenChecksStop()
    {
        var watch = Stopwatch.StartNew();
        var spec = _h.Launch(Ready("sleep 2; " + HttpServer, QuickReadiness()), FreePort());

        await Eventually.TrueAsync(() => _h.ReadyUpdates(spec.Id).Length > 0, "the task reports ready");
        var elapsed = watch.Elapsed;
        var performed = _h.Executor.Health.ReadinessChecksPerformed;

        var ready = Assert.Single(_h.ReadyUpdates(spec.Id));
        Assert.True(elapsed >= TimeSpan.FromSeconds(1.9), $"ready after {elapsed}, before the server started");
        Assert.True(performed > 1, $"only {performed} readiness check(s) ran: the failures before the server started are missing");
        Assert.Equal(TaskState.Running, ready.State);
        Assert.True(ready.Ready);
        Assert.Null(ready.Healthy);
        Assert.Equal(TaskReadinessCheck.ReadyReason, ready.Reason);
        Assert.Equal("Readiness check 'readinessCheck' passed: HTTP 200", ready.Message);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running], _h.StatesFor(spec.Id));

        // Nothing left to check: no more readiness checks, no more updates.
        await HoldsForAsync(
            () => _h.Executor.Health.ReadinessChecksPerformed == performed && _h.UpdatesFor(spec.Id).Length == 3 && _h.Executor.Health.CheckedTaskCount == 0,
            TimeSpan.FromSeconds(0.7), "readiness checking stopped after the first success");
    }

    [Fact]
    public async Task StatusCodesForReady_404CountsAsReady()
    {
        var spec = _h.Launch(Ready(HttpServer, QuickReadiness("/missing") with { HttpStatusCodesForReady = [404] }), FreePort());

        await Eventually.TrueAsync(() => _h.ReadyUpdates(spec.Id).Length > 0, "the task reports ready");

        Assert.Equal("Readiness check 'readinessCheck' passed: HTTP 404", Assert.Single(_h.ReadyUpdates(spec.Id)).Message);
    }

    [Fact]
    public async Task NeverReady_KeepsCheckingAndNeverKills()
    {
        var spec = _h.Launch(Ready(HttpServer, QuickReadiness("/missing")), FreePort());

        await Eventually.TrueAsync(() => _h.Executor.Health.ReadinessChecksPerformed >= 10, "10 readiness checks ran");

        Assert.Empty(_h.ReadyUpdates(spec.Id));
        Assert.Equal([TaskState.Starting, TaskState.Running], _h.StatesFor(spec.Id));
        Assert.Equal(1, _h.Executor.Health.CheckedTaskCount);
    }

    [Fact]
    public async Task WithHealthCheck_ReadyAndHealthyReportedSeparately_HealthCheckingGoesOn()
    {
        var health = Quick(HealthCheckProtocol.Http) with { GracePeriod = TimeSpan.FromSeconds(20) };
        var spec = _h.Launch(Ready(HttpServer, QuickReadiness(), health), FreePort());

        await Eventually.TrueAsync(() => _h.ReadyUpdates(spec.Id).Length > 0, "the task reports ready");
        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);
        var readiness = _h.Executor.Health.ReadinessChecksPerformed;
        await _h.WaitForChecksAsync(_h.Executor.Health.ChecksPerformed, 3);

        Assert.Null(Assert.Single(_h.ReadyUpdates(spec.Id)).Healthy);
        Assert.Null(Assert.Single(_h.HealthUpdates(spec.Id)).Ready);
        Assert.Equal(readiness, _h.Executor.Health.ReadinessChecksPerformed);
        Assert.Equal(1, _h.Executor.Health.CheckedTaskCount);
    }

    [Fact]
    public async Task Launch_ReadinessPortIndexOutOfRange_FailsLaunch()
    {
        var spec = _h.Launch(Ready("sleep 1000", QuickReadiness() with { PortIndex = 1 }), FreePort());

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal("Invalid readiness check: portIndex 1 is out of range: the task has 1 port", terminal.Message);
    }
}
