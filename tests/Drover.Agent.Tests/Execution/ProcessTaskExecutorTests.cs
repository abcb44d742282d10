using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Protocol;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>Process lifecycle and status reporting; runs with or without cgroups.</summary>
public sealed class ProcessTaskExecutorTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("basic");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Launch_EchoCommand_WritesSandboxStdoutAndFinishesWithExitZero()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("echo hello; echo oops >&2"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Finished, terminal.State);
        Assert.Equal(0, terminal.ExitCode);
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Finished], _h.StatesFor(spec.Id));
        Assert.Equal("hello\n", _h.ReadSandboxFile(spec.Id, "stdout"));
        Assert.Equal("oops\n", _h.ReadSandboxFile(spec.Id, "stderr"));
    }

    [Fact]
    public async Task Launch_AnyTask_EveryUpdateHasFreshUuidTimestampAndSource()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("true"));
        await _h.WaitForTerminalAsync(spec.Id);

        var updates = _h.UpdatesFor(spec.Id);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.Equal(updates.Length, updates.Select(u => u.Uuid).Distinct().Count());
        Assert.All(updates, u =>
        {
            Assert.False(string.IsNullOrEmpty(u.Uuid));
            Assert.InRange(u.Timestamp, now - 60, now + 60);
            Assert.Contains(u.Source, new[] { TaskSources.Executor, TaskSources.Agent });
            Assert.Equal(spec.Id, u.TaskId);
        });
    }

    [Fact]
    public async Task Launch_ExitSeven_FailsWithExitCodeAndMessage()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("exit 7"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(7, terminal.ExitCode);
        Assert.Equal("Command exited with status 7", terminal.Message);
        Assert.Null(terminal.Reason);
    }

    [Fact]
    public async Task Launch_DiesBySignal_FailsNamingTheSignal()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("kill -SEGV $$"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(128 + 11, terminal.ExitCode);
        Assert.Contains("SIGSEGV", terminal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_WithPortsAndEnv_TaskSeesDroverVariables()
    {
        Environment.SetEnvironmentVariable("DROVER_TEST_AGENT_ONLY", "1");
        var spec = ExecutorHarness.Shell("env") with
        {
            Env = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, new Dictionary<string, string>
            {
                ["CUSTOM"] = "a value with $HOME and 'quotes'",
                ["PORT0"] = "1", // the executor's own value wins
            }),
        };
        _h.Launch(spec, 31001, 31005);

        Assert.Equal(TaskState.Finished, (await _h.WaitForTerminalAsync(spec.Id)).State);

        var env = _h.ReadSandboxFile(spec.Id, "stdout").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1]);
        var sandbox = _h.Executor.SandboxPath(spec.Id);
        Assert.Equal("31001", env["PORT0"]);
        Assert.Equal("31005", env["PORT1"]);
        Assert.Equal("31001", env["PORT"]);
        Assert.Equal("31001,31005", env["PORTS"]);
        Assert.Equal("test-host.example", env["HOST"]);
        Assert.Equal(sandbox, env["MESOS_SANDBOX"]);
        Assert.Equal(sandbox, env["DROVER_SANDBOX"]);
        Assert.Equal(sandbox, env["PWD"]);
        Assert.Equal(spec.Id, env["MESOS_TASK_ID"]);
        Assert.Equal(spec.Id, env["DROVER_TASK_ID"]);
        Assert.Equal("a value with $HOME and 'quotes'", env["CUSTOM"]);
        Assert.True(env.ContainsKey("PATH"));
        Assert.False(env.ContainsKey("DROVER_TEST_AGENT_ONLY"), "the agent's environment leaked into the task");
    }

    [Fact]
    public async Task Launch_ExecFormWithSpacesAndQuotes_PassesArgumentsVerbatim()
    {
        var spec = _h.Launch(ExecutorHarness.Exec("printf", "[%s]", "a b", "it's \"quoted\"", "$HOME; rm -rf /", "*"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Finished, terminal.State);
        Assert.Equal("[a b][it's \"quoted\"][$HOME; rm -rf /][*]", _h.ReadSandboxFile(spec.Id, "stdout"));
    }

    [Fact]
    public async Task Launch_ShellFormWithShellSyntax_RunsThroughShell()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("for i in 1 2 3; do printf \"$i\"; done | tr 1 x > out.txt"));

        Assert.Equal(TaskState.Finished, (await _h.WaitForTerminalAsync(spec.Id)).State);
        Assert.Equal("x23", _h.ReadSandboxFile(spec.Id, "out.txt"));
    }

    [Fact]
    public async Task Launch_MissingProgram_FailsWithStatus127()
    {
        var spec = _h.Launch(ExecutorHarness.Exec("/nonexistent/program"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(127, terminal.ExitCode);
    }

    [Fact]
    public async Task Launch_TaskProcess_RunsUnderItsSupervisorInTheSessionAndProcessGroupItLeads()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("cut -d' ' -f4,5,6 /proc/$$/stat > ids; echo $$ > pid; sleep 30"));
        await _h.WaitForStateAsync(spec.Id, TaskState.Running);
        var pidFile = Path.Combine(_h.Executor.SandboxPath(spec.Id)!, "pid");
        await Eventually.TrueAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).EndsWith('\n'), "the task wrote its ids and pid");

        // The shim (the task's supervisor, PidOf) is the command's parent and leads its session and
        // process group, so a signal to the group reaches the whole task.
        var shim = _h.Executor.PidOf(spec.Id)!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var pid = _h.ReadSandboxFile(spec.Id, "pid").Trim();
        var command = File.ReadAllText($"/proc/{shim}/task/{shim}/children").Trim();
        Assert.NotEqual(shim, command);
        var stat = File.ReadAllText($"/proc/{command}/stat");
        Assert.Equal($"{shim} {shim} {shim}", string.Join(' ', stat[(stat.LastIndexOf(')') + 4)..].Split(' ')[..3]));

        // From inside, in its own PID namespace, the task sees the same: the shim is its PID 1.
        var self = _h.Executor.Isolates ? "1" : shim;
        Assert.NotEqual(self, pid);
        Assert.Equal($"{self} {self} {self}", _h.ReadSandboxFile(spec.Id, "ids").Trim());

        // A restarted agent finds the shim by the exit file its command line names.
        var identity = new Drover.Agent.Execution.ProcessTaskExecutor.ShimIdentity(_h.Executor.Checkpoint.CurrentExitsLog, spec.Id);
        Assert.Equal(shim, Drover.Agent.Execution.ProcessTaskExecutor.FindShims()[identity].ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Launch_PlainShellCommand_RunsTheProgramDirectlyUnderTheShim()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("sleep 30"));
        await _h.WaitForStateAsync(spec.Id, TaskState.Running);
        var shim = _h.Executor.PidOf(spec.Id)!.Value;

        // No `sh -c` in between: the shim's only child is the program itself, with the command's words as argv.
        var children = $"/proc/{shim}/task/{shim}/children";
        await Eventually.TrueAsync(() => File.ReadAllText(children).Trim().Length > 0, "the shim started the command");
        var child = File.ReadAllText(children).Trim();
        Assert.DoesNotContain(' ', child);
        await Eventually.TrueAsync(() => File.ReadAllText($"/proc/{child}/cmdline") == "sleep\u000030\u0000", "the child has exec'd sleep");

        _h.Executor.Kill(spec.Id);
        var terminal = await _h.WaitForTerminalAsync(spec.Id);
        Assert.Equal(TaskState.Killed, terminal.State);
    }

    [Fact]
    public async Task Launch_PlainShellCommandNotFound_FailsWithStatus127LikeTheShell()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("drover-no-such-program --flag"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(127, terminal.ExitCode);

        // Said by the shell, or by setpriv when the command runs as a user of its own (isolated tasks always do).
        Assert.Contains(_h.Executor.Isolates ? "failed to execute drover-no-such-program: No such file or directory" : "drover-no-such-program: not found",
            _h.ReadSandboxFile(spec.Id, "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_NeitherShellNorArgs_FailsWithLaunchFailedReason()
    {
        var spec = _h.Launch(new TaskSpec { Id = Ids.NewTaskId("bad"), Name = "bad", Resources = Resources.Of(cpus: 0.1m) });

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(TaskReasons.ContainerLaunchFailed, terminal.Reason);
        Assert.Equal([TaskState.Failed], _h.StatesFor(spec.Id));
    }

    [Fact]
    public async Task Launch_PathTraversalId_FailsWithoutTouchingTheFilesystem()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("true", id: "../escape"));

        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskReasons.ContainerLaunchFailed, terminal.Reason);
        Assert.Null(_h.Executor.SandboxPath(spec.Id));
        Assert.False(Directory.Exists(Path.Combine(_h.WorkDir, "escape")));
    }

    [Fact]
    public async Task Launch_SameIdTwice_StartsOneProcess()
    {
        var spec = ExecutorHarness.Shell("echo started >> runs; sleep 1000");
        _h.Launch(spec);
        _h.Launch(spec);
        _h.Launch(spec with { Shell = "echo other >> runs" });

        await _h.WaitForStateAsync(spec.Id, TaskState.Running);
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(_h.Executor.SandboxPath(spec.Id)!, "runs")), "the task ran");
        _h.Executor.Kill(spec.Id, TimeSpan.Zero);
        await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal("started\n", _h.ReadSandboxFile(spec.Id, "runs"));
        Assert.Single(_h.StatesFor(spec.Id), TaskState.Starting);
    }

    [Fact]
    public async Task Forget_EndedTask_DropsItFromKnownIdsButKeepsSandbox()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("echo kept"));
        Assert.Contains(spec.Id, _h.Executor.KnownTaskIds);
        await _h.WaitForTerminalAsync(spec.Id);

        _h.Executor.Forget(spec.Id);

        Assert.DoesNotContain(spec.Id, _h.Executor.KnownTaskIds);
        Assert.Equal("kept\n", _h.ReadSandboxFile(spec.Id, "stdout"));
        Assert.Null(_h.Executor.SandboxPath("never-launched"));
    }

    [Fact]
    public async Task Forget_RunningTask_IsIgnored()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("sleep 1000"));
        await _h.WaitForStateAsync(spec.Id, TaskState.Running);

        _h.Executor.Forget(spec.Id);

        Assert.Contains(spec.Id, _h.Executor.KnownTaskIds);
    }

    [Fact]
    public async Task Kill_UnknownOrEndedTask_IsNoOp()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("true"));
        await _h.WaitForTerminalAsync(spec.Id);

        _h.Executor.Kill(spec.Id);
        _h.Executor.Kill("no-such-task");

        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Finished], _h.StatesFor(spec.Id));
    }

    [Fact]
    public async Task Kill_TermRespectingTask_EndsKilledWithoutWaitingForGrace()
    {
        var spec = _h.Launch(ExecutorHarness.Shell("sleep 1000") with { KillGracePeriod = TimeSpan.FromSeconds(60) });
        await _h.WaitForStateAsync(spec.Id, TaskState.Running);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        _h.Executor.Kill(spec.Id);
        var terminal = await _h.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, terminal.State);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Killing, TaskState.Killed], _h.StatesFor(spec.Id));
        output.WriteLine($"killed in {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task Launch_AfterDispose_Throws()
    {
        await _h.DisposeAsync();

        Assert.Throws<ObjectDisposedException>(() => _h.Executor.Launch(new LaunchTask { Task = ExecutorHarness.Shell("true") }));
    }
}
