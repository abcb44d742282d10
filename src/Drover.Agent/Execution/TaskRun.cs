using System.Collections.Immutable;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Execution.Spawn;
using Drover.Agent.Health;
using Drover.Core;

namespace Drover.Agent.Execution;

/// <summary>
/// One task of a <see cref="ProcessTaskExecutor"/>: its spec, what the launch stages and the runtime made for it,
/// and where it is in its lifecycle. Each field says who writes it; the stages and the runtime touch only their
/// own (see <c>Stages/README.md</c>). Guarded by <see cref="Gate"/> where it changes after the launch.
/// </summary>
internal sealed class TaskRun(TaskSpec spec, ImmutableArray<int> ports, string? sandbox)
{
    public Lock Gate { get; } = new();

    public TaskSpec Spec { get; } = spec;

    public ImmutableArray<int> Ports { get; } = ports;

    /// <summary>Sandbox stage. Null only for a task whose id is unusable as a directory name (it fails at launch).</summary>
    public string? Sandbox { get; } = sandbox;

    /// <summary>User stage: who the command runs as when it is not the agent's own user.</summary>
    public RunAsUser? RunAs { get; set; }

    /// <summary>
    /// Secrets stage: the values of the task's secrets (<see cref="TaskSpec.Secrets"/>), from the launch command, in
    /// memory only and only until the task's first process has them (cleared then, and on a failed launch).
    /// </summary>
    public ImmutableArray<Drover.Core.Protocol.SecretValue> SecretValues { get; set; } = [];

    /// <summary>Cgroups stage: the task's cgroup, or null without cgroups.</summary>
    public Cgroup? Cgroup { get; set; }

    /// <summary>Namespaces stage: the mount namespace to start the task in (with new PID and IPC namespaces), or null.</summary>
    public MountPlan? Mounts { get; set; }

    /// <summary>Namespaces stage: whether the task runs in namespaces of its own (its COMMAND checks enter them).</summary>
    public bool Isolated { get; set; }

    /// <summary>
    /// Executor: the whole environment of the command (and of its COMMAND checks), built once per launch; the user stage
    /// adds what depends on the user (<c>USER</c>, <c>LOGNAME</c>, the <c>PATH</c> it can use).
    /// </summary>
    public Dictionary<string, string> Environment { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Stage state to checkpoint with the launch (stage name → compact text), for stages whose state cannot be
    /// derived from the spec again after an agent restart; null while no stage has any (nothing extra is written).
    /// </summary>
    public Dictionary<string, string>? StageState { get; set; }

    /// <summary>Sets a stage's state in <see cref="StageState"/> (during its Prepare, before the launch is checkpointed).</summary>
    public void SaveStageState(string stage, string state) => (StageState ??= new(StringComparer.Ordinal))[stage] = state;

    /// <summary>Runtime: the exits log the task's shim appends its exit status to.</summary>
    public string? ExitsLog { get; set; }

    /// <summary>Runtime: the shim's pid (in the agent's PID namespace). It leads the task's session and process group.</summary>
    public int Pid { get; set; }

    /// <summary>Runtime: the write end of the pipe the shim waits on until every stage's AfterStart is done, or -1.</summary>
    public int ReleaseFd { get; set; } = -1;

    /// <summary>Runtime: the kernel would not let the agent mount the task's /proc, so its shim does (told so on release).</summary>
    public bool ShimMountsProc { get; set; }

    /// <summary>
    /// Runtime: completes when the shim exits, with its wait status when this process spawned it, with
    /// <see cref="ChildReaper.UnknownStatus"/> for a shim adopted from a previous agent process.
    /// </summary>
    public Task<int>? ShimExited { get; set; }

    /// <summary>Runtime: the command's exit status (128+n for signal n) once the task has ended, null when unknown.</summary>
    public int? ExitCode { get; set; }

    /// <summary>Set when the task ended because it went over a limit (memory, disk): what the terminal update says.</summary>
    public TaskLimitation? Limitation { get; set; }

    public TaskPhase Phase { get; set; } = TaskPhase.Launching;

    /// <summary>The task's health check registration, when it has a check.</summary>
    public HealthChecker.TaskHealth? Health { get; set; }

    /// <summary>Set when the task is being killed for failing its health check: why.</summary>
    public string? HealthFailure { get; set; }

    /// <summary>Set (once) with the grace period when a kill is requested.</summary>
    public TaskCompletionSource<TimeSpan> KillRequested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the task has ended and been cleaned up.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

internal enum TaskPhase
{
    Launching,
    Running,
    Killing,
    Exiting,
    Ended,
}

/// <summary>A user the task's command runs as (resolved through NSS when the task was launched).</summary>
/// <param name="Confined">
/// Capabilities dropped (all for a user other than root, all but a container's default set for root) and
/// <c>no_new_privs</c> set, so no setuid program or file capability gives more.
/// </param>
internal sealed record RunAsUser(string Name, uint Uid, uint Gid, bool Confined)
{
    /// <summary>The user's supplementary groups as setpriv takes them (<c>65534,100</c>), or null to look them up (NSS).</summary>
    public string? Groups { get; init; }
}

/// <summary>Why a task was stopped by the agent for exceeding a resource: the reason and message of its TASK_FAILED.</summary>
internal sealed record TaskLimitation(string Reason, string Message);
