using System.Threading.Channels;
using Drover.Core;
using Drover.Core.Protocol;

namespace Drover.Agent.Execution;

/// <summary>
/// Runs tasks on this machine as isolated processes and reports what happens to them.
/// Thread-safe. Launch and Kill are idempotent so the master may re-send them.
/// </summary>
/// <remarks>
/// Lifecycle of one task:
/// <code>
///  Launch ──▶ TASK_STARTING ──▶ TASK_RUNNING ──▶ TASK_FINISHED (exit 0)
///     │            │                 │     └──▶ TASK_FAILED   (exit ≠ 0, or memory limit)
///     │            │                 └─ Kill ─▶ TASK_KILLING ──▶ TASK_KILLED
///     └─ (bad spec / sandbox or cgroup failure) ─▶ TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED
/// </code>
/// A task stays "known" (in <see cref="KnownTaskIds"/>) after it ends until <see cref="Forget"/> is
/// called, which the agent does once the master acknowledged the terminal update.
/// </remarks>
public interface ITaskExecutor : IAsyncDisposable
{
    /// <summary>Every status change, in order per task. Each carries a fresh <see cref="TaskStatus.Uuid"/>.</summary>
    ChannelReader<TaskStatus> Updates { get; }

    /// <summary>Ids of tasks launched and not yet forgotten (running or ended-but-unacknowledged).</summary>
    IReadOnlyCollection<string> KnownTaskIds { get; }

    /// <summary>Starts the task unless its id is already known. Returns quickly; progress arrives on <see cref="Updates"/>.</summary>
    void Launch(LaunchTask launch);

    /// <summary>
    /// Starts the tasks of one task group (Mesos' LAUNCH_GROUP) together, skipping ids already known. By default
    /// each is launched on its own; a runner with custom executors hands a group to its executor in one piece.
    /// </summary>
    void LaunchGroup(LaunchTaskGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        foreach (var launch in group.Tasks)
        {
            Launch(launch);
        }
    }

    /// <summary>SIGTERM, then after the grace period SIGKILL to every process in the task's cgroup. No-op for unknown or ended tasks.</summary>
    void Kill(string taskId, TimeSpan? gracePeriod = null);

    /// <summary>
    /// The launch (spec and ports) of a known task, for a master that rebuilds its task records from agents
    /// (<see cref="AgentRegistration.Launches"/>); null for an unknown id.
    /// </summary>
    LaunchTask? LaunchOf(string taskId) => null;

    /// <summary>Drops an ended task from <see cref="KnownTaskIds"/>; its sandbox stays on disk for log reads.</summary>
    void Forget(string taskId);

    /// <summary>The task's sandbox directory (holds <c>stdout</c> and <c>stderr</c>), or null for an unknown id.</summary>
    string? SandboxPath(string taskId);
}
