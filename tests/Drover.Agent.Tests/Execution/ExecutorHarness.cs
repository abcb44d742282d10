using System.Collections.Immutable;
using System.Globalization;
using System.Threading.Channels;
using Drover.Agent.Execution;
using Drover.Agent.Execution.Cgroups;
using Drover.Core;
using Drover.Core.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>Whether tests that need root and cgroups can run here.</summary>
internal static class Privileges
{
    public static bool IsRoot { get; } = ReadEuid() == 0;

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Root or CI: use real cgroups (and fail loudly under CI if they do not work).</summary>
    public static bool UseCgroups => IsRoot || IsCi;

    /// <summary>
    /// True when a root/cgroup test should run. Off CI and not root it logs why and returns false so the
    /// test returns early; under CI=true it always returns true, so missing privileges fail the test.
    /// </summary>
    public static bool RequireRoot(ITestOutputHelper output)
    {
        if (UseCgroups)
        {
            return true;
        }

        output.WriteLine("Skipped: needs root and cgroups (not root and CI is not 'true').");
        return false;
    }

    private static int ReadEuid()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                var fields = line.Split('\t', StringSplitOptions.RemoveEmptyEntries);
                return int.Parse(fields[2], CultureInfo.InvariantCulture);
            }
        }

        return -1;
    }
}

/// <summary>Polls a condition until a deadline instead of sleeping a fixed time.</summary>
internal static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}");
            }

            await Task.Delay(10);
        }
    }
}

/// <summary>Processes as the agent sees them (host pids), found by a marker in their command line.</summary>
internal static class HostProcesses
{
    /// <summary>
    /// A marker to put in a command line (as a <c>sleep</c> duration's fraction, e.g. <c>sleep 1000.4711</c>): tasks run
    /// in PID namespaces of their own, so the pids they see are not the agent's; the marker finds them from outside.
    /// </summary>
    public static string NewMarker() => "1000." + Random.Shared.Next(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);

    /// <summary>Live (not zombie) processes whose command line contains <paramref name="marker"/>.</summary>
    public static IReadOnlyList<int> WithMarker(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText($"{dir}/stat");
                if (File.ReadAllText($"{dir}/cmdline").Contains(marker, StringComparison.Ordinal)
                    && stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X'))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
            }
        }

        return found;
    }
}

/// <summary>One executor with a temp work dir, a per-class cgroup name, and every update it emits recorded.</summary>
internal sealed class ExecutorHarness : IAsyncDisposable
{
    private readonly List<TaskStatus> _updates = [];
    private readonly Task _pump;
    private bool _disposed;

    /// <param name="workDir">A work dir another harness used, to recover its tasks (new temp dir when null).</param>
    /// <param name="killTasksOnDispose">False: stopping the executor leaves its tasks running for the next one.</param>
    public ExecutorHarness(string cgroupName, TimeSpan? shutdownGrace = null, Func<ProcessExecutorOptions, ProcessExecutorOptions>? configure = null,
        string? workDir = null, bool killTasksOnDispose = true)
    {
        WorkDir = workDir ?? Path.Combine(Path.GetTempPath(), "drover-agent-tests", Guid.NewGuid().ToString("N"));
        CgroupName = $"drover-test/{cgroupName}-{Environment.ProcessId}";
        Options = new ProcessExecutorOptions
        {
            WorkDir = WorkDir,
            CgroupName = CgroupName,
            Hostname = "test-host.example",
            RequireCgroups = Privileges.UseCgroups,
            ShutdownGracePeriod = shutdownGrace ?? TimeSpan.FromSeconds(1),
            KillTasksOnDispose = killTasksOnDispose,
        };
        Options = configure?.Invoke(Options) ?? Options;
        Executor = new ProcessTaskExecutor(Options, NullLogger<ProcessTaskExecutor>.Instance, TimeProvider.System);
        _pump = PumpAsync(Executor.Updates);
    }

    public string WorkDir { get; }

    public string CgroupName { get; }

    public ProcessExecutorOptions Options { get; }

    public ProcessTaskExecutor Executor { get; }

    public Task Pump => _pump;

    public static TaskSpec Shell(string command, string? id = null, long memMiB = 64, decimal cpus = 0.1m) => new()
    {
        Id = id ?? Ids.NewTaskId("t"),
        Name = "t",
        Shell = command,
        Resources = Resources.Of(cpus: cpus, memMiB: memMiB),
    };

    public static TaskSpec Exec(params string[] args) => new()
    {
        Id = Ids.NewTaskId("t"),
        Name = "t",
        Args = [.. args],
        Resources = Resources.Of(cpus: 0.1m, memMiB: 64),
    };

    public TaskSpec Launch(TaskSpec spec, params int[] ports)
    {
        Executor.Launch(new LaunchTask { Task = spec, Ports = [.. ports] });
        return spec;
    }

    public ImmutableArray<TaskStatus> UpdatesFor(string taskId)
    {
        lock (_updates)
        {
            return [.. _updates.Where(u => u.TaskId == taskId)];
        }
    }

    public TaskState[] StatesFor(string taskId) => [.. UpdatesFor(taskId).Select(u => u.State)];

    public async Task<TaskStatus> WaitForStateAsync(string taskId, TaskState state, TimeSpan? timeout = null)
    {
        TaskStatus? found = null;
        await Eventually.TrueAsync(
            () => (found = UpdatesFor(taskId).FirstOrDefault(u => u.State == state)) is not null,
            $"{taskId} reports {state.WireName()} (saw {string.Join(", ", StatesFor(taskId).Select(s => s.WireName()))})",
            timeout);
        return found!;
    }

    public async Task<TaskStatus> WaitForTerminalAsync(string taskId, TimeSpan? timeout = null)
    {
        TaskStatus? found = null;
        await Eventually.TrueAsync(
            () => (found = UpdatesFor(taskId).FirstOrDefault(u => u.State.IsTerminal())) is not null,
            $"{taskId} ends (saw {string.Join(", ", StatesFor(taskId).Select(s => s.WireName()))})",
            timeout);
        return found!;
    }

    public string ReadSandboxFile(string taskId, string name) =>
        File.ReadAllText(Path.Combine(Executor.SandboxPath(taskId)!, name));

    /// <summary>Every cgroup directory a task uses (one per v1 controller), whether or not it exists now.</summary>
    public ImmutableArray<string> CgroupDirectories(string taskId) => Executor.CgroupOf(taskId)?.Directories ?? [];

    public IReadOnlyList<int> CgroupPids(string taskId) =>
        Executor.CgroupOf(taskId) is { } cgroup ? Executor.Cgroups!.ListPids(cgroup) : [];

    /// <summary>
    /// Stops the executor as an agent process stopping would (with <c>killTasksOnDispose: false</c> its tasks
    /// keep running), keeping the work dir and cgroups for a harness that recovers them.
    /// </summary>
    public async Task StopExecutorAsync()
    {
        await Executor.DisposeAsync();
        await _pump;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await Executor.DisposeAsync();
        await _pump;
        RemoveTestCgroups();
        try
        {
            Directory.Delete(WorkDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task PumpAsync(ChannelReader<TaskStatus> reader)
    {
        await foreach (var update in reader.ReadAllAsync())
        {
            lock (_updates)
            {
                _updates.Add(update);
            }
        }
    }

    /// <summary>Belt and braces after the executor's own cleanup: rmdir whatever test cgroups remain, deepest first.</summary>
    private void RemoveTestCgroups()
    {
        if (!Privileges.UseCgroups)
        {
            return;
        }

        var driver = CgroupDriver.Detect();
        foreach (var dir in driver.Open(CgroupName).Directories.Where(Directory.Exists))
        {
            foreach (var child in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(dir))
            {
                TryRmdir(child);
            }
        }

        // Shared by test classes running in parallel: only goes once the last one is done.
        foreach (var dir in driver.Open("drover-test").Directories)
        {
            TryRmdir(dir);
        }
    }

    private static void TryRmdir(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: false);
        }
        catch (IOException)
        {
        }
    }
}
