using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Enumeration;
using Drover.Core;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// Enforces the task's <c>disk</c> resource as Mesos' <c>disk/du</c> isolator does: the sandbox's usage (allocated
/// blocks, as <c>du</c> counts them) is measured periodically, and a task over its quota is killed with
/// <c>TASK_FAILED</c> <c>REASON_CONTAINER_LIMITATION_DISK</c> and Mesos' message, "Disk usage (…) exceeds quota (…)".
/// </summary>
/// <remarks>
/// One loop for all tasks (no thread or timer per task): every <see cref="ProcessExecutorOptions.DiskWatchInterval"/>
/// it measures the watched sandboxes one after another, visiting at most <see cref="EntriesPerPass"/> files in all (the
/// next pass starts where this one stopped), so the work is bounded whatever tasks write. The walk never follows a
/// link, never leaves the sandbox's filesystem, and opens every directory beneath the sandbox
/// (<c>openat2</c> with <c>RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS</c>), so a task swapping a directory for a link
/// mid-walk cannot send it elsewhere; a file linked several times counts once. A sandbox too large to finish within
/// a pass is judged on what was counted, a lower bound: over the quota already is over the quota. Private
/// <c>/tmp</c> and <c>/dev/shm</c> are tmpfs, counted against memory, not disk.
/// </remarks>
internal sealed partial class DiskQuotaStage : ILaunchStage, IAsyncDisposable
{
    /// <summary>Files and directories examined per pass, over all tasks.</summary>
    public const int EntriesPerPass = 200_000;

    private readonly ConcurrentDictionary<string, TaskRun> _watched = new(StringComparer.Ordinal);
    private readonly Func<TaskRun, TaskLimitation, bool> _limit;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private int _next;

    /// <param name="limit">Kills a task for a limitation; false when it is no longer running.</param>
    public DiskQuotaStage(TimeSpan interval, Func<TaskRun, TaskLimitation, bool> limit, TimeProvider time, ILogger logger)
    {
        _interval = interval > TimeSpan.Zero ? interval : TimeSpan.FromSeconds(15);
        _limit = limit;
        _time = time;
        _logger = logger;
        _loop = LoopAsync(_stopping.Token);
    }

    public string Name => "disk";

    /// <summary>Passes completed (for tests).</summary>
    internal long Passes { get; private set; }

    public string? Prepare(TaskRun run) => null;

    /// <summary>Watches the task once it runs, when it has a <c>disk</c> resource.</summary>
    public void AfterStart(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Spec.Resources.DiskMiB > 0 && run.Sandbox is not null)
        {
            _watched[run.Spec.Id] = run;
        }
    }

    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(run);
        _watched.TryRemove(run.Spec.Id, out _);
        return Task.CompletedTask;
    }

    public void Recover(TaskRun run) => AfterStart(run);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _stopping.Dispose();
    }

    /// <summary>A byte count as Mesos prints one: in the largest unit that loses nothing (<c>10MB</c>, <c>1536KB</c>, <c>7B</c>).</summary>
    internal static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        var unit = 0;
        while (bytes != 0 && bytes % 1024 == 0 && unit < units.Length - 1)
        {
            bytes /= 1024;
            unit++;
        }

        return string.Create(CultureInfo.InvariantCulture, $"{bytes}{units[unit]}");
    }

    /// <summary>
    /// Allocated bytes under <paramref name="sandbox"/> (directories included), visiting at most <paramref name="budget"/>
    /// entries (decremented); <paramref name="complete"/> is false when the budget ran out first. Null when the sandbox is gone.
    /// </summary>
    internal static long? Measure(string sandbox, ref int budget, out bool complete)
    {
        complete = false;
        var root = Native.OpenDirectory(sandbox);
        if (root < 0)
        {
            return null;
        }

        try
        {
            if (!Native.TryLstatAt(root, ".", out var top))
            {
                return null;
            }

            long total = top.Blocks * 512;
            var linked = new HashSet<ulong>();
            var pending = new Stack<string>();
            pending.Push("");
            while (pending.Count > 0)
            {
                var relative = pending.Pop();
                var dir = Native.OpenDirectoryBeneath(root, relative);
                if (dir < 0)
                {
                    continue; // gone, or replaced by a link: not ours to count
                }

                try
                {
                    // The directory is read through its descriptor (/proc/self/fd/N is that very directory).
                    var names = new FileSystemEnumerable<string>(
                        string.Create(CultureInfo.InvariantCulture, $"/proc/self/fd/{dir}"),
                        (ref FileSystemEntry entry) => entry.FileName.ToString(),
                        new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false });
                    foreach (var name in names)
                    {
                        if (--budget < 0)
                        {
                            return total;
                        }

                        if (!Native.TryLstatAt(dir, name, out var entry) || (entry.Links > 1 && !entry.IsDirectory && !linked.Add(entry.Inode)))
                        {
                            continue;
                        }

                        total += entry.Blocks * 512;
                        if (entry.IsDirectory && entry.Device == top.Device)
                        {
                            pending.Push(relative.Length == 0 ? name : relative + "/" + name);
                        }
                    }
                }
                finally
                {
                    Native.Close(dir);
                }
            }

            complete = true;
            return total;
        }
        finally
        {
            Native.Close(root);
        }
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(_interval, _time, cancellationToken).ConfigureAwait(false);
            try
            {
                Pass();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Never let one bad pass end the watch for every task.
                LogPassFailed(_logger, e);
            }

            Passes++;
        }
    }

    /// <summary>Measures the watched sandboxes, starting where the last pass ran out of budget.</summary>
    private void Pass()
    {
        var runs = _watched.Values.OrderBy(r => r.Spec.Id, StringComparer.Ordinal).ToArray();
        if (runs.Length == 0)
        {
            return;
        }

        var budget = EntriesPerPass;
        var start = _next % runs.Length;
        for (var i = 0; i < runs.Length; i++)
        {
            var run = runs[(start + i) % runs.Length];
            if (run.Phase != TaskPhase.Running)
            {
                continue;
            }

            var quota = run.Spec.Resources.DiskMiB * 1024 * 1024;
            var usage = Measure(run.Sandbox!, ref budget, out var complete);
            if (usage > quota)
            {
                var limitation = new TaskLimitation(TaskReasons.ContainerLimitationDisk,
                    $"Disk usage ({FormatBytes(usage.Value)}) exceeds quota ({FormatBytes(quota)})");
                if (_limit(run, limitation))
                {
                    LogOverQuota(_logger, run.Spec.Id, usage.Value, quota);
                }
            }
            else if (!complete)
            {
                LogIncomplete(_logger, run.Spec.Id);
            }

            if (budget < 0)
            {
                // The next pass starts with the task cut short, unless even a whole pass was not enough for it
                // (then it is judged on a lower bound each time, and the others get their turn).
                _next = start + i + (complete || i == 0 ? 1 : 0);
                return;
            }
        }

        _next = start;
    }

    [LoggerMessage(EventId = 160, Level = LogLevel.Warning, Message = "Task {TaskId} is over its disk quota ({Usage} > {Quota} bytes): killing it")]
    private static partial void LogOverQuota(ILogger logger, string taskId, long usage, long quota);

    [LoggerMessage(EventId = 161, Level = LogLevel.Warning, Message = "Measuring the disk usage of sandboxes failed")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 162, Level = LogLevel.Debug, Message = "The sandbox of task {TaskId} could not be measured completely")]
    private static partial void LogIncomplete(ILogger logger, string taskId);
}
