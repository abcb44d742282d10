using System.Globalization;
using Drover.Agent.Execution;
using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using Xunit.Abstractions;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>COMMAND health checks: real /bin/sh processes in the task's sandbox, environment and cgroup.</summary>
public sealed class CommandHealthCheckTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-cmd");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static HealthCheck Command(string command) => Quick(HealthCheckProtocol.Command) with { Command = command };

    [Fact]
    public async Task CommandCheck_ExitZero_ReportsHealthyAndSeesTaskEnvironmentAndSandbox()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("env > check-env; pwd > check-pwd")), 31007, 31009);

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.True(update.Healthy);
        Assert.Equal("Health check passed: command exited with status 0", update.Message);
        var env = _h.ReadSandboxFile(spec.Id, "check-env").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1]);
        var sandbox = _h.Executor.SandboxPath(spec.Id);
        Assert.Equal("31007", env["PORT0"]);
        Assert.Equal("31009", env["PORT1"]);
        Assert.Equal("31007", env["PORT"]);
        Assert.Equal("test-host.example", env["HOST"]);
        Assert.Equal(sandbox, env["MESOS_SANDBOX"]);
        Assert.Equal(spec.Id, env["MESOS_TASK_ID"]);
        Assert.Equal(sandbox + "\n", _h.ReadSandboxFile(spec.Id, "check-pwd"));
    }

    [Fact]
    public async Task CommandCheck_ExitOne_ReportsUnhealthyWithStatus()
    {
        var spec = _h.Launch(Checked("sleep 1000", Command("echo checking; exit 1")));

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.False(update.Healthy);
        Assert.Equal("Health check failed: command exited with status 1", update.Message);
        Assert.Contains("checking\n", _h.ReadSandboxFile(spec.Id, "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CommandCheck_Timeout_CountsAsFailureAndKillsTheCheckProcessGroup()
    {
        // The check's shell and its child are found by a marker in their command lines: a check runs in its task's PID
        // namespace, where $$ and $! are not the agent's pids.
        var marker = HostProcesses.NewMarker();
        var check = Command($"echo started > check; sleep {marker} & wait") with { Timeout = TimeSpan.FromSeconds(0.3) };
        var spec = _h.Launch(Checked("sleep 1000", check));

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.False(update.Healthy);
        Assert.Equal("Health check failed: command did not exit within 0.3 s and was killed", update.Message);
        Assert.Equal("started\n", _h.ReadSandboxFile(spec.Id, "check"));
        await Eventually.TrueAsync(() => HostProcesses.WithMarker(marker).Count == 0, "the check's shell and sleep are dead", TimeSpan.FromSeconds(5));

        Assert.Equal(TaskState.Running, _h.UpdatesFor(spec.Id)[^1].State);
    }

    [Fact]
    public async Task CommandCheck_WithCgroups_RunsInsideTheTaskCgroup()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = _h.Launch(Checked("sleep 1000", Command("cat /proc/self/cgroup > check-cgroup")));

        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id)).Healthy);

        var cgroups = _h.ReadSandboxFile(spec.Id, "check-cgroup");
        output.WriteLine(cgroups);
        Assert.Contains($"/{_h.CgroupName}/{spec.Id}\n", cgroups, StringComparison.Ordinal);
    }
}
