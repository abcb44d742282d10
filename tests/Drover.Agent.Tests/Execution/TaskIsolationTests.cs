using System.Globalization;
using System.Net;
using Drover.Agent.Execution;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Host;
using Drover.Core;
using Drover.Core.Health;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>
/// Non-root, isolated tasks (Execution/README.md, "Isolation contract"), each tried as an attacker would: real tasks in
/// real namespaces and cgroups. Needs root (always runs under CI=true).
/// </summary>
public sealed class TaskIsolationTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Docker's default capability set as a bounding-set mask (CapBnd in /proc/PID/status).</summary>
    private const ulong ContainerCapabilities = 0x00000000a80425fb;

    private const int CapSysAdmin = 21;

    private ExecutorHarness? _harness;

    private ExecutorHarness H => _harness ??= new ExecutorHarness("isolated", configure: o => o with { DiskWatchInterval = TimeSpan.FromMilliseconds(100) });

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_harness is not null)
        {
            await _harness.DisposeAsync();
        }
    }

    [Fact]
    public async Task Launch_WithoutUser_RunsAsTheDefaultTaskUserWithoutCapabilitiesInASandboxOnlyItOwns()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("id -u; id -g; echo $USER; grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs):' /proc/self/status; touch mine"));

        var end = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Finished, end.State);
        var lines = H.ReadSandboxFile(spec.Id, "stdout").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        output.WriteLine(string.Join('\n', lines));
        Assert.Equal(["65534", "65534", "nobody"], lines[..3]);
        Assert.All(lines.Where(l => l.StartsWith("Cap", StringComparison.Ordinal)), l => Assert.EndsWith("0000000000000000", l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("NoNewPrivs:", StringComparison.Ordinal) && l.EndsWith('1'));

        var sandbox = H.Executor.SandboxPath(spec.Id)!;
        Assert.True(Native.TryStat(sandbox, out var dir));
        Assert.Equal((65534u, 65534u), (dir.Uid, dir.Gid));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, (UnixFileMode)(dir.Mode & 0x1ff));
        Assert.True(Native.TryStat(Path.Combine(sandbox, "mine"), out var mine) && mine.Uid == 65534, "the task writes its sandbox as itself");

        // The agent's directories around it are the agent's: no task can rename, replace or add a sandbox.
        Assert.True(Native.TryStat(Path.GetDirectoryName(sandbox)!, out var sandboxes));
        Assert.Equal(0u, sandboxes.Uid);
        Assert.Equal(0, sandboxes.Mode & 0x12); // not group- or other-writable
    }

    [Fact]
    public async Task Launch_OtherDefaultTaskUser_RunsAsThatUser()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var h = new ExecutorHarness("isolated-daemon", configure: o => o with { DefaultTaskUser = "daemon" });
        Assert.True(Native.TryGetUser("daemon", out var uid, out _));
        var spec = h.Launch(ExecutorHarness.Shell("id -u"));

        Assert.Equal(TaskState.Finished, (await h.WaitForTerminalAsync(spec.Id)).State);
        Assert.Equal(uid.ToString(CultureInfo.InvariantCulture) + "\n", h.ReadSandboxFile(spec.Id, "stdout"));
    }

    [Fact]
    public async Task Launch_TaskReadsAnotherTasksSandbox_FindsNothing()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // Both run as the default user, so file modes alone would not keep them apart: the victim's sandbox is not in
        // the attacker's mount namespace at all. Neither is the agent's checkpoint, which holds every task's environment.
        var victim = H.Launch(ExecutorHarness.Shell("echo s3cret-of-the-victim > secret; sleep 1000"));
        await H.WaitForStateAsync(victim.Id, TaskState.Running);
        var victimSandbox = H.Executor.SandboxPath(victim.Id)!;
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(victimSandbox, "secret")), "the victim wrote its secret");
        var meta = Path.Combine(H.WorkDir, "meta", "tasks", "tasks.log");
        var attacker = H.Launch(ExecutorHarness.Shell(
            $"cat {victimSandbox}/secret; ls -la {victimSandbox}; cat {meta}; ls {Path.GetDirectoryName(victimSandbox)}; " +
            $"cat /proc/*/root{victimSandbox}/secret /proc/*/cwd/secret; true"));

        Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(attacker.Id)).State);
        var seen = H.ReadSandboxFile(attacker.Id, "stdout") + H.ReadSandboxFile(attacker.Id, "stderr");
        output.WriteLine(seen);
        Assert.DoesNotContain("s3cret", seen, StringComparison.Ordinal);
        Assert.DoesNotContain(victim.Id, seen.Replace($"{victimSandbox}", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains($"{victimSandbox}/secret: No such file or directory", seen, StringComparison.Ordinal);
        Assert.Contains($"{meta}: No such file or directory", seen, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_RootTask_CannotLeaveItsCgroupNorRaiseItsMemoryLimit()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // Every way in we know of: the root cgroup's and the agent's cgroup.procs (host paths, and where a fresh
        // cgroupfs would show them), the task's own limit, remounting or mounting cgroupfs. (Not unmounting what hides
        // the cgroupfs: should isolation ever be off, that would unmount the machine's. No CAP_SYS_ADMIN covers it.)
        Assert.True(H.Executor.Isolates, "attacks are only ever tried against isolated tasks");
        var driver = H.Executor.Cgroups!;
        var memoryRoot = driver.Version == CgroupVersion.V1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup";
        var limitFile = driver.Version == CgroupVersion.V1 ? "memory.limit_in_bytes" : "memory.max";
        var script = string.Join("; ",
            "grep -E '^Cap(Bnd|Eff):' /proc/self/status",
            $"for f in {memoryRoot}/cgroup.procs {memoryRoot}/{H.CgroupName}/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do echo $$ > $f && echo \"LEFT via $f\"; done",
            $"echo 1073741824 > {memoryRoot}/{limitFile} && echo RAISED",
            $"echo 1073741824 > {memoryRoot}/{H.CgroupName}/{{}}/{limitFile} && echo RAISED",
            $"mount -o remount,rw {memoryRoot} && echo REMOUNTED",
            "mkdir -p /tmp/cg && mount -t cgroup -o memory none /tmp/cg && echo MOUNTED",
            "mount -t cgroup2 none /tmp/cg && echo MOUNTED",
            "echo tried; sleep 1000");
        var spec = H.Launch(ExecutorHarness.Shell(script.Replace("{}", "$MESOS_TASK_ID", StringComparison.Ordinal), memMiB: 64) with { User = "root" });
        await H.WaitForStateAsync(spec.Id, TaskState.Running);
        await Eventually.TrueAsync(() => H.ReadSandboxFile(spec.Id, "stdout").Contains("tried", StringComparison.Ordinal), "the task tried everything");

        var stdout = H.ReadSandboxFile(spec.Id, "stdout");
        output.WriteLine(stdout + H.ReadSandboxFile(spec.Id, "stderr"));
        foreach (var success in new[] { "LEFT", "RAISED", "REMOUNTED", "MOUNTED" })
        {
            Assert.DoesNotContain(success, stdout, StringComparison.Ordinal);
        }

        // Root keeps Docker's default capabilities and nothing more: no CAP_SYS_ADMIN, so no mount of any kind.
        var bounding = ulong.Parse(stdout.Split('\n').Single(l => l.StartsWith("CapBnd:", StringComparison.Ordinal))[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        Assert.Equal(ContainerCapabilities, bounding);
        Assert.Equal(0UL, bounding & (1UL << CapSysAdmin));

        // Seen from the host: still in its cgroup, limit unchanged.
        var cgroup = H.Executor.CgroupOf(spec.Id)!;
        Assert.NotEmpty(driver.ListPids(cgroup));
        var limit = File.ReadAllText(cgroup.Directories.Select(d => Path.Combine(d, limitFile)).First(File.Exists)).Trim();
        Assert.Equal((64L * 1024 * 1024).ToString(CultureInfo.InvariantCulture), limit);
        Assert.DoesNotContain(File.ReadAllLines(Path.Combine(memoryRoot, "cgroup.procs")), p => driver.ListPids(cgroup).Contains(int.Parse(p, CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task Launch_TaskListsProcesses_SeesOnlyItsOwn()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var marker = HostProcesses.NewMarker();
        var other = H.Launch(ExecutorHarness.Shell($"sleep {marker}"));
        await H.WaitForStateAsync(other.Id, TaskState.Running);
        await Eventually.TrueAsync(() => HostProcesses.WithMarker(marker).Count > 0, "the other task's sleep runs");

        var spec = H.Launch(ExecutorHarness.Shell("ps -e -o pid=,user=,args="));

        Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(spec.Id)).State);
        var ps = H.ReadSandboxFile(spec.Id, "stdout");
        output.WriteLine(ps);
        var rows = ps.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' ', 3, StringSplitOptions.RemoveEmptyEntries)).ToList();

        // Its shim as PID 1, the command, and ps: nothing of the agent, the machine or the other task.
        Assert.Equal("1", rows[0][0]);
        Assert.Contains("drover-shim", rows[0][2], StringComparison.Ordinal);
        Assert.InRange(rows.Count, 2, 3);
        Assert.DoesNotContain(marker, ps, StringComparison.Ordinal);
        Assert.DoesNotContain("dotnet", ps, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_KernelRefusesToMountProcForTheAgent_TheShimMountsItAndTheTaskStillSeesOnlyItself()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // Before Linux 6.18 the agent cannot mount another PID namespace's /proc (no pidns= option): the shim does.
        var spawner = Drover.Agent.Execution.Spawn.NamespaceSpawner.Instance;
        spawner.ShimMountsProc = true;
        try
        {
            var spec = H.Launch(ExecutorHarness.Shell("ps -e -o pid= | head -1; ps -e -o pid= | wc -l; grep -c ' /proc/sys ro,' /proc/self/mountinfo"));

            Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(spec.Id)).State);
            var lines = H.ReadSandboxFile(spec.Id, "stdout").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToList();
            output.WriteLine(string.Join('\n', lines) + H.ReadSandboxFile(spec.Id, "stderr"));
            Assert.Equal("1", lines[0]);                                                 // the shim is PID 1 of what ps sees
            Assert.InRange(int.Parse(lines[1], CultureInfo.InvariantCulture), 3, 6);     // shim, shell, ps, wc: not the machine's
            Assert.Equal("1", lines[2]);                                                 // /proc/sys read-only
        }
        finally
        {
            spawner.ShimMountsProc = false;
        }
    }

    [Fact]
    public async Task Kill_Graceful_DeliversSigtermToTheCommandInItsPidNamespace()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // Exec form: the program itself under the shim (PID 1), not a shell. It exits cleanly on SIGTERM.
        var spec = H.Launch(ExecutorHarness.Exec("python3", "-c",
            "import signal, sys, time\n" +
            "def term(*_):\n    print('got SIGTERM', flush=True)\n    sys.exit(0)\n" +
            "signal.signal(signal.SIGTERM, term)\nprint('ready', flush=True)\ntime.sleep(1000)") with { KillGracePeriod = TimeSpan.FromSeconds(60) });
        await Eventually.TrueAsync(() => H.ReadSandboxFile(spec.Id, "stdout").Contains("ready", StringComparison.Ordinal), "the handler is installed");

        H.Executor.Kill(spec.Id);
        var terminal = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Killed, terminal.State);
        Assert.Equal(0, terminal.ExitCode); // it exited by itself, well within the 60 s grace period: no SIGKILL
        Assert.Contains("got SIGTERM", H.ReadSandboxFile(spec.Id, "stdout"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_WritesToTmp_TmpIsPrivateAndChargedToTheTasksMemory()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var marker = HostProcesses.NewMarker();
        var spec = H.Launch(ExecutorHarness.Shell($"head -c 24M /dev/zero > /tmp/{marker}; head -c 8M /dev/zero > /dev/shm/{marker}; echo written; sleep 1000", memMiB: 64));
        await Eventually.TrueAsync(() => H.ReadSandboxFile(spec.Id, "stdout").Contains("written", StringComparison.Ordinal), "the task filled its /tmp and /dev/shm");
        var peer = H.Launch(ExecutorHarness.Shell($"ls /tmp /dev/shm; cat /tmp/{marker} /dev/shm/{marker} | wc -c"));

        Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(peer.Id)).State);

        // Private: neither the agent's machine nor another task sees it.
        Assert.False(File.Exists($"/tmp/{marker}"));
        Assert.False(File.Exists($"/dev/shm/{marker}"));
        Assert.DoesNotContain(marker, H.ReadSandboxFile(peer.Id, "stdout"), StringComparison.Ordinal);

        // Charged to the task: its cgroup's memory holds the 32 MiB (tmpfs pages are charged to whoever writes them).
        var cgroup = H.Executor.CgroupOf(spec.Id)!;
        var usageFile = cgroup.Directories.Select(d => Path.Combine(d, "memory.usage_in_bytes")).Append(Path.Combine(cgroup.Directories[0], "memory.current")).First(File.Exists);
        var usage = long.Parse(File.ReadAllText(usageFile).Trim(), CultureInfo.InvariantCulture);
        output.WriteLine($"{usageFile}: {usage}");
        Assert.True(usage >= 32L * 1024 * 1024, $"the task's cgroup uses {usage} bytes");
    }

    [Fact]
    public async Task Launch_FillsTmpPastItsMemory_GetsNoMoreThanItsMemory()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // The pages of /tmp are charged to the task: filling it past the task's memory either gets the writer killed by
        // the OOM killer (TASK_FAILED with the memory limitation), or its writes refused once the memory is full.
        var spec = H.Launch(ExecutorHarness.Shell("head -c 96M /dev/zero > /tmp/fill; wc -c < /tmp/fill > written", memMiB: 32));

        var terminal = await H.WaitForTerminalAsync(spec.Id, TimeSpan.FromSeconds(60));

        output.WriteLine($"{terminal.State} {terminal.Reason} {terminal.Message}\n{H.ReadSandboxFile(spec.Id, "stderr")}");
        var written = File.Exists(Path.Combine(H.Executor.SandboxPath(spec.Id)!, "written"))
            && long.TryParse(H.ReadSandboxFile(spec.Id, "written").Trim(), CultureInfo.InvariantCulture, out var bytes) ? bytes : (long?)null;
        Assert.True(terminal.Reason == TaskReasons.ContainerLimitationMemory || written < 32L * 1024 * 1024,
            $"the task got {written} bytes into /tmp with 32 MiB of memory ({terminal.State} {terminal.Reason})");
    }

    [Fact]
    public async Task CommandCheck_IsolatedTask_RunsAsTheTasksUserInItsNamespaces()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // The check sees the task's /tmp and processes, runs as its user, with its (lack of) capabilities.
        var check = new HealthCheck
        {
            Protocol = HealthCheckProtocol.Command,
            Command = "test -f /tmp/ready && [ \"$(id -u)\" = 65534 ] && [ \"$(ps -e -o pid= | wc -l)\" -le 10 ] && grep -q 'CapEff:.0000000000000000' /proc/self/status && grep -q 'NoNewPrivs:.1' /proc/self/status && [ \"$(id -G)\" = 65534 ]",
            Delay = TimeSpan.Zero,
            Interval = TimeSpan.FromSeconds(0.1),
            Timeout = TimeSpan.FromSeconds(5),
            GracePeriod = TimeSpan.Zero,
            MaxConsecutiveFailures = 0,
        };
        var spec = H.Launch(ExecutorHarness.Shell("touch /tmp/ready; sleep 1000") with { HealthChecks = [check] });

        await Eventually.TrueAsync(() => H.UpdatesFor(spec.Id).Any(u => u.Healthy == true), "the check passes");
    }

    [Fact]
    public async Task FilesEndpoint_StdoutReplacedByALinkToShadow_ServesNothing()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("ln -sf /etc/shadow stdout; ln -sf /etc/passwd stderr; mkfifo .fifo; echo linked >&2; sleep 1000"));
        await H.WaitForStateAsync(spec.Id, TaskState.Running);
        var sandbox = H.Executor.SandboxPath(spec.Id)!;
        await Eventually.TrueAsync(() => File.ResolveLinkTarget(Path.Combine(sandbox, "stderr"), false) is not null, "the task linked its logs");

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        AgentEndpoints.Map(app, H.Executor);
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        using var http = new HttpClient { BaseAddress = new Uri(url) };

        foreach (var name in new[] { "stdout", "stderr" })
        {
            using var answer = await http.GetAsync(new Uri($"/agent/v1/tasks/{spec.Id}/files/{name}", UriKind.Relative));
            var body = await answer.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
            Assert.DoesNotContain("root:", body, StringComparison.Ordinal);
        }

        // A regular file is still served; a FIFO (which would block the reader) is not a file to serve.
        Assert.Null(Native.OpenBeneath(sandbox, ".fifo"));
        var other = H.Launch(ExecutorHarness.Shell("echo plain"));
        await H.WaitForTerminalAsync(other.Id);
        Assert.Equal("plain\n", await http.GetStringAsync(new Uri($"/agent/v1/tasks/{other.Id}/files/stdout", UriKind.Relative)));
    }

    [Fact]
    public async Task Launch_WritingPastItsDisk_IsKilledWithTheDiskReason()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var within = H.Launch(ExecutorHarness.Shell("head -c 1M /dev/urandom > data; sleep 1000") with { Resources = Resources.Of(cpus: 0.1m, memMiB: 64, diskMiB: 4) });
        var over = H.Launch(ExecutorHarness.Shell("head -c 3M /dev/urandom > data; echo written; sleep 1000") with { Resources = Resources.Of(cpus: 0.1m, memMiB: 64, diskMiB: 2) });

        var terminal = await H.WaitForTerminalAsync(over.Id);

        Assert.Equal(TaskState.Failed, terminal.State);
        Assert.Equal(TaskReasons.ContainerLimitationDisk, terminal.Reason);
        Assert.Matches(@"^Disk usage \(\d+(KB|MB)\) exceeds quota \(2MB\)$", terminal.Message);
        Assert.DoesNotContain(TaskState.Killing, H.StatesFor(over.Id));
        Assert.All(H.CgroupDirectories(over.Id), d => Assert.False(Directory.Exists(d), d));

        // The task within its quota keeps running through more measurements.
        var passes = H.Executor.Disk.Passes;
        await Eventually.TrueAsync(() => H.Executor.Disk.Passes >= passes + 3, "three more disk measurements");
        Assert.Equal(TaskState.Running, H.StatesFor(within.Id)[^1]);
    }

    [Fact]
    public async Task Recover_AgentRestarted_AdoptsTheTaskWhoseChecksStillRunInsideAndWhichAKillStillReaches()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var h = new ExecutorHarness("isolated-restart", configure: o => o with { KillTasksOnDispose = false });
        var check = new HealthCheck
        {
            Protocol = HealthCheckProtocol.Command,
            Command = "test -f /tmp/ready && [ \"$(id -u)\" = 65534 ] && echo checked-inside",
            Delay = TimeSpan.Zero,
            Interval = TimeSpan.FromSeconds(0.1),
            Timeout = TimeSpan.FromSeconds(5),
            GracePeriod = TimeSpan.Zero,
            MaxConsecutiveFailures = 0,
        };
        var spec = h.Launch(ExecutorHarness.Shell("touch /tmp/ready; trap 'echo got SIGTERM; exit 0' TERM; while :; do sleep 0.1; done")
            with { HealthChecks = [check], KillGracePeriod = TimeSpan.FromSeconds(60) });
        await Eventually.TrueAsync(() => h.UpdatesFor(spec.Id).Any(u => u.Healthy == true), "the check passes before the restart");
        var shim = h.Executor.PidOf(spec.Id)!.Value;

        // The agent stops without killing (as after a kill -9: nothing is done on the way out), a new one takes over.
        await h.Executor.DisposeAsync();
        await using var after = new ProcessTaskExecutor(h.Options, Microsoft.Extensions.Logging.Abstractions.NullLogger<ProcessTaskExecutor>.Instance, TimeProvider.System);
        var updates = new List<TaskStatus>();
        var pump = Task.Run(async () =>
        {
            await foreach (var u in after.Updates.ReadAllAsync())
            {
                lock (updates)
                {
                    updates.Add(u);
                }
            }
        });

        Assert.Equal(shim, after.PidOf(spec.Id));
        var stderr = Path.Combine(h.Executor.SandboxPath(spec.Id)!, "stderr");
        var checksBefore = File.ReadAllText(stderr).Split("checked-inside").Length;
        await Eventually.TrueAsync(() => { lock (updates) { return updates.Any(u => u.Healthy == true); } }, "the adopted task's check passes, inside its namespaces as its user");
        Assert.True(File.ReadAllText(stderr).Split("checked-inside").Length > checksBefore, "the check ran after the restart");

        after.Kill(spec.Id);
        await Eventually.TrueAsync(() => { lock (updates) { return updates.Any(u => u.State.IsTerminal()); } }, "the adopted task ends");
        lock (updates)
        {
            var terminal = updates.Single(u => u.State.IsTerminal());
            Assert.Equal(TaskState.Killed, terminal.State);
            Assert.Equal(0, terminal.ExitCode);
        }

        Assert.Contains("got SIGTERM", h.ReadSandboxFile(spec.Id, "stdout"), StringComparison.Ordinal);
        await after.DisposeAsync();
        await pump;
    }

    [Fact]
    public void AgentCgroup_HasThePidsCapOfTheWholeSubtree()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var agent = H.Executor.AgentCgroup!;
        var pidsMax = agent.Directories.Select(d => Path.Combine(d, "pids.max")).First(File.Exists);
        Assert.Equal(H.Options.AgentPidsLimit.ToString(CultureInfo.InvariantCulture), File.ReadAllText(pidsMax).Trim());
        Assert.InRange(H.Options.AgentPidsLimit, 1, int.MaxValue);
    }
}
