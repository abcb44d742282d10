using System.ComponentModel;
using Drover.Agent.Execution.Runtime;
using Drover.Core.Protocol;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// A task's launch as an ordered list of stages followed by a runtime (<c>Stages/README.md</c>): every stage
/// prepares in order, the launch is checkpointed (with the stages' state), the runtime starts the task's first
/// process, every stage is told it started (the process waits meanwhile), then the runtime releases it to run the
/// command; after the task ends every stage cleans up, in reverse order. Command tasks and
/// custom executors' containers go through the same pipeline (each <see cref="ProcessTaskExecutor"/> builds one).
/// </summary>
internal sealed class LaunchPipeline(IReadOnlyList<ILaunchStage> stages, ProcessRuntime runtime, TaskCheckpoint checkpoint)
{
    /// <summary>The stages, in launch order.</summary>
    public IReadOnlyList<ILaunchStage> Stages { get; } = stages;

    public ProcessRuntime Runtime { get; } = runtime;

    /// <summary>
    /// Prepares every stage, checkpoints the launch and starts the task. Returns null once its first process runs,
    /// or why the launch failed; then the stages that prepared (and the one that failed) are cleaned up again, in
    /// the background: this runs with the run's lock held. Exceptions other than the kernel's refusals are bugs and
    /// propagate.
    /// </summary>
    public string? Launch(TaskRun run, Action<Exception> logFault)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(logFault);
        var prepared = 0;
        try
        {
            for (; prepared < Stages.Count; prepared++)
            {
                if (Stages[prepared].Prepare(run) is { } refused)
                {
                    // The stage that refused may have made part of what it owns: it cleans up too.
                    _ = CleanupAsync(run, prepared + 1, logFault);
                    return refused;
                }
            }

            run.ExitsLog = checkpoint.WriteLaunch(new LaunchTask { Task = run.Spec, Ports = run.Ports }, run.StageState);
            Runtime.Start(run);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Win32Exception or InvalidOperationException)
        {
            logFault(ex);

            // Likewise the stage that threw (all of them when the runtime did).
            _ = CleanupAsync(run, Math.Min(prepared + 1, Stages.Count), logFault);
            return $"Failed to launch task: {ex.Message}";
        }

        // The shim waits until every stage has placed it (the cgroups stage moves it into the task's cgroup); if one
        // cannot, the shim is not released and ends as a launch failure, reported when it exits.
        var placed = true;
        foreach (var stage in Stages)
        {
            try
            {
                stage.AfterStart(run);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Win32Exception)
            {
                logFault(ex);
                placed = false;
                break;
            }
        }

        ProcessRuntime.Release(run, placed);
        return null;
    }

    /// <summary>Cleans up every stage, last first. Called once the task's main process has exited or is being killed.</summary>
    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken) => CleanupAsync(run, Stages.Count, cancellationToken);

    /// <summary>Rebuilds every stage's part of a task a previous agent process launched.</summary>
    public void Recover(TaskRun run)
    {
        foreach (var stage in Stages)
        {
            stage.Recover(run);
        }
    }

    private async Task CleanupAsync(TaskRun run, int count, CancellationToken cancellationToken)
    {
        for (var i = count - 1; i >= 0; i--)
        {
            await Stages[i].CleanupAsync(run, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Cleanup after a failed launch: best effort, its faults logged, never thrown (nobody awaits it).</summary>
    private async Task CleanupAsync(TaskRun run, int count, Action<Exception> logFault)
    {
        try
        {
            await CleanupAsync(run, count, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logFault(ex);
        }
    }
}
