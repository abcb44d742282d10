using Drover.Core;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>Marathon's <c>user</c>: the task runs as that Unix user and owns its sandbox.</summary>
public sealed class RunAsUserTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("drover-test-user");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Launch_AsNobody_RunsWithNobodysIdsAndOwnsSandbox()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = _h.Launch(ExecutorHarness.Shell("id -u; id -g; echo $USER; touch mine") with { User = "nobody" });

        var end = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Finished, end.State);
        var lines = _h.ReadSandboxFile(spec.Id, "stdout").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("65534", lines[0]);
        Assert.Equal("nobody", lines[2]);
        var sandbox = _h.Executor.SandboxPath(spec.Id)!;
        Assert.True(File.Exists(Path.Combine(sandbox, "mine")), "the user can write to its sandbox");
    }

    [Fact]
    public async Task Launch_UnknownUser_FailsNamingTheUser()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = _h.Launch(ExecutorHarness.Shell("true") with { User = "no-such-user-drv" });

        var end = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, end.State);
        Assert.Equal(TaskReasons.ContainerLaunchFailed, end.Reason);
        Assert.Contains("no-such-user-drv", end.Message, StringComparison.Ordinal);
    }
}
