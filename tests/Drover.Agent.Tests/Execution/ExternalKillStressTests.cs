using System.Collections.Concurrent;
using System.Globalization;
using Drover.Agent.Execution;
using Drover.Core;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>
/// Issue 18: a task whose processes are killed from outside always ends with a terminal update and leaves
/// no process behind. Kills each task's supervisor (the shim), its command, or both, in every order, many
/// times, while other tasks launch, exit, get killed and get cleaned up at the same time and every core
/// is busy; also tasks adopted by an executor restarted in the same process (as the agent restarts of
/// <c>InProcessCluster</c> do), whose shims are then watched twice. Real processes and cgroups (root).
/// </summary>
public sealed class ExternalKillStressTests(ITestOutputHelper output)
{
    private const int Workers = 6;
    private const int TasksPerWorker = 18;
    private const int AdoptedTasks = 24;

    /// <summary>How long a condition may take on a loaded 2-core machine; never expected to be reached.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>The program exec'd directly under the shim, and a shell whose child is the program (the command is then the shell).</summary>
    private static readonly string[] Commands = ["sleep 1000", "sleep 1000; exit 3"];

    public enum KillOrder
    {
        ShimThenCommand,
        CommandThenShim,
        ShimOnly,
        CommandOnly,

        /// <summary>SIGKILL to the task's process group: shim and command at once.</summary>
        WholeGroup,

        /// <summary>The shim, right after <c>Launch</c> returned: usually before it has moved itself into its cgroups.</summary>
        ShimRightAfterLaunch,
    }

    [Fact]
    public async Task ExternalKill_EveryOrderManyTasksUnderLoad_EachEndsFailedOnceAndLeavesNoProcess()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var h = new ExecutorHarness("external-kill");
        var killedBeforeJoin = 0;
        var victims = new ConcurrentBag<Victim>();
        var bystanders = new ConcurrentBag<string>();
        using (CpuLoad.Start(Environment.ProcessorCount))
        {
            await Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
            {
                for (var i = 0; i < TasksPerWorker; i++)
                {
                    // A task that exits at once beside each victim: reaper and pid churn, exits racing the registration.
                    bystanders.Add(h.Launch(ExecutorHarness.Shell("exit 3", memMiB: 16)).Id);
                    var order = (KillOrder)((worker + i) % Enum.GetValues<KillOrder>().Length);
                    var spec = h.Launch(ExecutorHarness.Shell(Commands[(worker + (i / 6)) % Commands.Length], memMiB: 16));
                    var victim = await KillAsync(h, spec.Id, order);
                    if (order == KillOrder.ShimRightAfterLaunch && victim.CgroupWasEmpty)
                    {
                        Interlocked.Increment(ref killedBeforeJoin);
                    }

                    victims.Add(victim);
                    await h.WaitForTerminalAsync(spec.Id, Timeout);
                }
            })));
        }

        output.WriteLine($"{victims.Count} tasks killed from outside ({killedBeforeJoin} shims before they joined their cgroups), {bystanders.Count} exited by themselves");
        Assert.Equal(Workers * TasksPerWorker, victims.Count);
        foreach (var victim in victims)
        {
            var terminal = Assert.Single(h.UpdatesFor(victim.TaskId), u => u.State.IsTerminal());
            Assert.True(terminal.State == TaskState.Failed && terminal.ExitCode == 137,
                $"{victim.Order}: {terminal.State.WireName()} {terminal.ExitCode} {terminal.Message}");
            Assert.All(h.CgroupDirectories(victim.TaskId), d => Assert.False(Directory.Exists(d), $"{victim.Order}: {d} left"));
            await AssertGoneAsync(victim);
        }

        foreach (var id in bystanders)
        {
            var terminal = await h.WaitForTerminalAsync(id, Timeout);
            Assert.True(terminal.State == TaskState.Failed && terminal.ExitCode == 3, $"{terminal.State.WireName()} {terminal.ExitCode} {terminal.Message}");
        }
    }

    [Fact]
    public async Task ExternalKill_TasksAdoptedByExecutorRestartedInProcess_EachEndsFailedAndItsShimIsReaped()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // The first executor spawned the shims and watches them; the second, in the same process, adopts
        // them as foreign processes: each shim is watched twice until it exits.
        await using var first = new ExecutorHarness("external-kill-adopt", killTasksOnDispose: false);
        var ids = Enumerable.Range(0, AdoptedTasks).Select(i => first.Launch(ExecutorHarness.Shell(Commands[i % Commands.Length], memMiB: 16)).Id).ToList();
        foreach (var id in ids)
        {
            await Eventually.TrueAsync(() => CommandOf(first, id, first.Executor.PidOf(id)!.Value) is not null, $"{id}'s command runs in its cgroup", Timeout);
        }

        var shims = ids.ToDictionary(id => id, id => first.Executor.PidOf(id)!.Value);
        await first.StopExecutorAsync();
        await using var second = new ExecutorHarness("external-kill-adopt", workDir: first.WorkDir);
        Assert.All(ids, id => Assert.Equal(shims[id], second.Executor.PidOf(id)));

        Victim[] victims;
        using (CpuLoad.Start(Environment.ProcessorCount))
        {
            victims = await Task.WhenAll(ids.Select((id, i) => Task.Run(() =>
                KillAsync(second, id, (KillOrder)(i % (int)KillOrder.ShimRightAfterLaunch)))));
            foreach (var victim in victims)
            {
                var terminal = await second.WaitForTerminalAsync(victim.TaskId, Timeout);
                Assert.True(terminal.State == TaskState.Failed, $"{victim.Order}: {terminal.State.WireName()} {terminal.Message}");
            }
        }

        foreach (var victim in victims)
        {
            Assert.Single(second.UpdatesFor(victim.TaskId), u => u.State.IsTerminal());
            await AssertGoneAsync(victim);
        }
    }

    /// <summary>
    /// Kills the task's processes from outside in <paramref name="order"/>. Except right after the launch, it
    /// first waits until the shim and its command both run in the task's cgroup (the shim moves itself there
    /// after it is spawned, before it starts the command).
    /// </summary>
    private static async Task<Victim> KillAsync(ExecutorHarness h, string taskId, KillOrder order)
    {
        var shim = h.Executor.PidOf(taskId) ?? throw new InvalidOperationException($"{taskId} has no shim: {string.Join(", ", h.StatesFor(taskId))}");
        var shimStart = StartTimeOf(shim);
        if (order == KillOrder.ShimRightAfterLaunch)
        {
            var empty = h.CgroupPids(taskId).Count == 0;
            Assert.True(Native.Kill(shim, Native.SigKill));
            return new Victim(taskId, order, shim, shimStart, null, null, empty);
        }

        int? found = null;
        await Eventually.TrueAsync(() => (found = CommandOf(h, taskId, shim)) is not null, $"{taskId}'s shim and command in its cgroup", Timeout);
        var command = found!.Value;
        var commandStart = StartTimeOf(command);
        switch (order)
        {
            case KillOrder.ShimThenCommand:
                Native.Kill(shim, Native.SigKill);
                Native.Kill(command, Native.SigKill);
                break;
            case KillOrder.CommandThenShim:
                Native.Kill(command, Native.SigKill);
                Native.Kill(shim, Native.SigKill);
                break;
            case KillOrder.ShimOnly:
                Native.Kill(shim, Native.SigKill);
                break;
            case KillOrder.CommandOnly:
                Native.Kill(command, Native.SigKill);
                break;
            case KillOrder.WholeGroup:
                Native.KillGroup(shim, Native.SigKill);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(order), order, null);
        }

        return new Victim(taskId, order, shim, shimStart, command, commandStart, CgroupWasEmpty: false);
    }

    /// <summary>The shim is reaped (its own executor process is its parent) and the command no longer runs.</summary>
    private static async Task AssertGoneAsync(Victim victim)
    {
        await Eventually.TrueAsync(() => StartTimeOf(victim.Shim) != victim.ShimStart, $"{victim.Order}: shim {victim.Shim} of {victim.TaskId} reaped", Timeout);
        if (victim.Command is { } command)
        {
            // Gone from the cgroup before the terminal update; it may take a moment more to become a zombie.
            await Eventually.TrueAsync(() => StartTimeOf(command) != victim.CommandStart || IsZombie(command), $"{victim.Order}: command {command} of {victim.TaskId} ended", Timeout);
        }
    }

    /// <summary>The shim's child, once the task's cgroup holds the shim and the <c>sleep</c> (the command has been exec'd); else null.</summary>
    private static int? CommandOf(ExecutorHarness h, string taskId, int shim)
    {
        var pids = h.CgroupPids(taskId);
        if (!pids.Contains(shim) || !pids.Any(p => CommOf(p) == "sleep"))
        {
            return null;
        }

        var child = pids.FirstOrDefault(p => StatFields(p) is [_, var parent, ..] && parent == shim.ToString(CultureInfo.InvariantCulture));
        return child > 0 ? child : null;
    }

    private static string? CommOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The fields of /proc/PID/stat after "pid (comm) ": state, ppid, …; null when no process has the pid.</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Start time (field 22): tells a process from a later one with its pid.</summary>
    private static string? StartTimeOf(int pid) => StatFields(pid) is { Length: > 19 } f ? f[19] : null;

    private static bool IsZombie(int pid) => StatFields(pid) is ["Z" or "X", ..];

    private sealed record Victim(string TaskId, KillOrder Order, int Shim, string? ShimStart, int? Command, string? CommandStart, bool CgroupWasEmpty);

    /// <summary>Keeps every core busy with spinning threads until disposed.</summary>
    private sealed class CpuLoad : IDisposable
    {
        private readonly Thread[] _threads;
        private volatile bool _stop;

        private CpuLoad(int threads)
        {
            _threads = [.. Enumerable.Range(0, threads).Select(_ => new Thread(Spin) { IsBackground = true, Name = "cpu-load" })];
            foreach (var thread in _threads)
            {
                thread.Start();
            }
        }

        public static CpuLoad Start(int threads) => new(threads);

        public void Dispose()
        {
            _stop = true;
            foreach (var thread in _threads)
            {
                thread.Join();
            }
        }

        private void Spin()
        {
            while (!_stop)
            {
                Thread.SpinWait(1000);
            }
        }
    }
}
