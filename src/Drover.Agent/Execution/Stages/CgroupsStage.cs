using System.Globalization;
using Drover.Agent.Execution.Cgroups;
using Drover.Core;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// The task's cgroup <c>{hierarchy}/{CgroupName}/{taskId}</c> (v1 or v2, <c>Cgroups/</c>) with its memory, CPU and
/// pid limits; the memory limitation (OOM) at its end; and killing everything left in it. Owns the agent's own
/// cgroup too: created at start with a pids cap for the whole subtree, orphans of a crashed agent reaped, removed
/// when the executor stops.
/// </summary>
/// <remarks>
/// Without usable cgroups (<see cref="ProcessExecutorOptions.RequireCgroups"/> off, for unprivileged dev use)
/// it prepares nothing and its cleanup reaches only the task's process group.
/// </remarks>
internal sealed partial class CgroupsStage : ILaunchStage
{
    private readonly ILogger _logger;
    private readonly string _agentCgroup;

    public CgroupsStage(ProcessExecutorOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        _agentCgroup = CgroupDriver.Normalize(options.CgroupName);
        try
        {
            var driver = CgroupDriver.Detect(options.CgroupRoot);

            // The whole subtree's pids cap: all tasks together cannot exhaust the machine's pids (each has its own too).
            driver.Create(_agentCgroup, new CgroupLimits { PidsLimit = Math.Max(0, options.AgentPidsLimit) });
            Driver = driver;
            LogCgroupsReady(_logger, driver.Version, driver.Root, _agentCgroup);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (options.RequireCgroups)
            {
                throw new InvalidOperationException(
                    $"cgroups are not usable under {options.CgroupRoot} ({ex.Message}). Run the agent as root, "
                    + "or set RequireCgroups = false to run tasks without isolation.", ex);
            }

            LogCgroupsUnavailable(_logger, options.CgroupRoot, ex.Message);
        }
    }

    public string Name => "cgroups";

    /// <summary>The cgroup driver in use, or null when running without cgroups.</summary>
    public ICgroupDriver? Driver { get; }

    /// <summary>This agent's own cgroup (parent of the task cgroups), or null without cgroups.</summary>
    public Cgroup? AgentCgroup => Driver?.Open(_agentCgroup);

    /// <summary>The task's cgroup (its directories may no longer exist), or null without cgroups.</summary>
    public Cgroup? Open(string taskId) => Driver?.Open(TaskCgroupName(taskId));

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (Driver is not null)
        {
            run.Cgroup = Driver.Create(TaskCgroupName(run.Spec.Id), new CgroupLimits
            {
                MemoryMiB = run.Spec.Resources.MemMiB,
                MilliCpus = run.Spec.Resources.MilliCpus,
                PidsLimit = run.Spec.PidsLimit,
            });
        }

        return null;
    }

    /// <summary>
    /// Moves the task's first process into the task's cgroup, before it runs the command: its children are born there,
    /// and an isolated task, whose cgroupfs is read-only, could not join it itself.
    /// </summary>
    public void AfterStart(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Cgroup is { } cgroup)
        {
            Driver!.AddProcess(cgroup, run.Pid);
        }
    }

    /// <summary>
    /// Notes an OOM kill (when the task exited by itself), SIGKILLs whatever is left of the task and removes its
    /// cgroup; without cgroups, SIGKILLs the task's process group.
    /// </summary>
    public async Task CleanupAsync(TaskRun run, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(run);
        var exited = run.Phase == TaskPhase.Exiting;
        if (run.Cgroup is not { } cgroup)
        {
            // Without cgroups the process group is all we have; its id cannot be reused while the group exists.
            if (Native.KillGroup(run.Pid, Native.SigKill) && exited)
            {
                LogLeftoversKilled(_logger, run.Spec.Id);
            }

            return;
        }

        if (exited && run.ExitCode is var code
            && Driver!.WasOomKilled(cgroup, code is { } c && c - 128 == Native.SigKill))
        {
            run.Limitation ??= new TaskLimitation(TaskReasons.ContainerLimitationMemory,
                string.Create(CultureInfo.InvariantCulture, $"Memory limit exceeded: limit {run.Spec.Resources.MemMiB} MiB"));
        }

        if (!await Driver!.KillAllAsync(cgroup, cancellationToken).ConfigureAwait(false))
        {
            LogCgroupNotEmpty(_logger, run.Spec.Id, cgroup.Name);
        }

        if (!await Driver.RemoveAsync(cgroup, cancellationToken).ConfigureAwait(false))
        {
            LogCgroupRemoveFailed(_logger, cgroup.Name);
        }
    }

    public void Recover(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        run.Cgroup = Open(run.Spec.Id);
    }

    /// <summary>
    /// Rewrites a running task's limits to <paramref name="resources"/> (executor containers, whose limits follow
    /// their tasks). False without cgroups or when the kernel refused (memory below current use); the old limits stay.
    /// </summary>
    public bool TryUpdateLimits(TaskRun run, Resources resources)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Cgroup is not { } cgroup || Driver is null)
        {
            return false;
        }

        try
        {
            Driver.UpdateLimits(cgroup, new CgroupLimits
            {
                MemoryMiB = resources.MemMiB,
                MilliCpus = resources.MilliCpus,
                PidsLimit = run.Spec.PidsLimit,
            });
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogResizeFailed(_logger, run.Spec.Id, ex.Message);
            return false;
        }
    }

    /// <summary>
    /// SIGKILLs and removes task cgroups that belong to no task in <paramref name="isKnown"/>: left by a previous
    /// agent process whose checkpoint does not know them, they hold processes nobody supervises.
    /// </summary>
    public async Task ReapOrphansAsync(Func<string, bool> isKnown, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(isKnown);
        if (Driver is null)
        {
            return;
        }

        foreach (var child in Driver.ListChildren(_agentCgroup))
        {
            if (isKnown(child) || !Ids.IsValidName(child))
            {
                continue;
            }

            var cgroup = Driver.Open(TaskCgroupName(child));
            var pids = Driver.ListPids(cgroup).Count;
            await Driver.KillAllAsync(cgroup, cancellationToken).ConfigureAwait(false);
            await Driver.RemoveAsync(cgroup, cancellationToken).ConfigureAwait(false);
            LogOrphanReaped(_logger, cgroup.Name, pids);
        }
    }

    /// <summary>Removes the agent's own cgroup (once every task cgroup under it is gone).</summary>
    public async Task RemoveAgentCgroupAsync(CancellationToken cancellationToken)
    {
        if (Driver is not null && !await Driver.RemoveAsync(Driver.Open(_agentCgroup), cancellationToken).ConfigureAwait(false))
        {
            LogCgroupRemoveFailed(_logger, _agentCgroup);
        }
    }

    private string TaskCgroupName(string taskId) => $"{_agentCgroup}/{taskId}";

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Using cgroup {Version} at {Root}, agent cgroup {CgroupName}")]
    private static partial void LogCgroupsReady(ILogger logger, CgroupVersion version, string root, string cgroupName);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "cgroups unavailable under {Root} ({Error}); tasks run WITHOUT resource isolation")]
    private static partial void LogCgroupsUnavailable(ILogger logger, string root, string error);

    [LoggerMessage(EventId = 114, Level = LogLevel.Warning, Message = "Could not change the cgroup limits of {TaskId}: {Error}")]
    private static partial void LogResizeFailed(ILogger logger, string taskId, string error);

    [LoggerMessage(EventId = 123, Level = LogLevel.Debug, Message = "Killed leftover processes of task {TaskId}")]
    private static partial void LogLeftoversKilled(ILogger logger, string taskId);

    [LoggerMessage(EventId = 130, Level = LogLevel.Error, Message = "Processes of task {TaskId} remain in cgroup {Cgroup} after SIGKILL")]
    private static partial void LogCgroupNotEmpty(ILogger logger, string taskId, string cgroup);

    [LoggerMessage(EventId = 131, Level = LogLevel.Warning, Message = "Could not remove cgroup {Cgroup}")]
    private static partial void LogCgroupRemoveFailed(ILogger logger, string cgroup);

    [LoggerMessage(EventId = 133, Level = LogLevel.Warning, Message = "Killed orphaned cgroup {Cgroup} ({Pids} processes) left by a previous agent run")]
    private static partial void LogOrphanReaped(ILogger logger, string cgroup, int pids);
}
