using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>TCP health checks against real task processes.</summary>
public sealed class TcpHealthCheckTests : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-tcp");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task TcpCheck_TaskListensOnPort_ReportsHealthy()
    {
        var check = Quick(HealthCheckProtocol.Tcp) with { GracePeriod = TimeSpan.FromSeconds(20) };
        var port = FreePort();
        var spec = _h.Launch(Checked(HttpServer, check), port);

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.True(update.Healthy);
        Assert.Equal($"Health check passed: TCP 127.0.0.1:{port}: connected", update.Message);
    }

    [Fact]
    public async Task TcpCheck_NothingListensAndNeverKill_ReportsUnhealthyOnceAndKeepsRunning()
    {
        var port = FreePort();
        var spec = _h.Launch(Checked("sleep 1000", Quick(HealthCheckProtocol.Tcp)), port);

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);
        var checks = _h.Executor.Health.ChecksPerformed;
        await _h.WaitForChecksAsync(checks, 5);

        Assert.False(update.Healthy);
        Assert.Equal($"Health check failed: TCP 127.0.0.1:{port}: connection refused", update.Message);
        Assert.Single(_h.HealthUpdates(spec.Id));
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running], _h.StatesFor(spec.Id));
    }

    [Fact]
    public async Task TcpCheck_FixedPortWinsOverPortIndex_ChecksThatPort()
    {
        var listening = FreePort();
        var check = Quick(HealthCheckProtocol.Tcp) with { Port = listening, PortIndex = 1, GracePeriod = TimeSpan.FromSeconds(20) };

        // PORT0 is served; PORT1 (the index) is not, and the fixed port is PORT0's number.
        var spec = _h.Launch(Checked(HttpServer, check), listening, FreePort());

        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);
    }
}
