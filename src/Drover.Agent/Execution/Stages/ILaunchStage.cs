namespace Drover.Agent.Execution.Stages;

/// <summary>
/// One concern of a task's launch (as a Mesos isolator or a Nomad task-runner hook): the
/// <see cref="LaunchPipeline"/> prepares every stage in order before the runtime starts the task, tells each
/// once the task's first process exists, and cleans them up in reverse order after the task ended.
/// </summary>
/// <remarks>
/// Contract, for every method:
/// <list type="bullet">
/// <item>It touches only what the stage owns (its fields of <see cref="TaskRun"/>, its files, cgroups or mounts).</item>
/// <item>It is idempotent: preparing what already exists, or cleaning up what is gone, is harmless.</item>
/// <item>An expected failure (a user that does not exist) is a returned sentence; an exception is an
/// infrastructure fault (an <see cref="IOException"/> from the kernel), which fails the launch with its message.</item>
/// <item>It is called on the launching thread with the run's lock held, except <see cref="CleanupAsync"/>,
/// which runs once the task's main process is gone or being killed, with no lock held.</item>
/// <item>It is cheap: it runs for every launch, and launches come in bursts of thousands (docs/benchmarks.md).
/// A stage starts no process and creates no file per task unless that is the concern it exists for.</item>
/// </list>
/// A stage whose state cannot be derived from the spec again puts it in <see cref="TaskRun.StageState"/> during
/// <see cref="Prepare"/>; it is checkpointed with the launch and handed back to <see cref="Recover"/>.
/// </remarks>
internal interface ILaunchStage
{
    /// <summary>The stage's name (in logs, and the key of its checkpointed state).</summary>
    string Name { get; }

    /// <summary>Before the task starts: makes what the task needs. Returns why the launch must fail, or null.</summary>
    string? Prepare(TaskRun run);

    /// <summary>
    /// The runtime has started the task's first process (<see cref="TaskRun.Pid"/>), which waits: the command runs only
    /// once every stage has returned from here. An exception keeps it from ever running (the task then fails as a
    /// launch failure).
    /// </summary>
    void AfterStart(TaskRun run);

    /// <summary>
    /// The task ended, was killed, or its launch failed after this stage prepared: undo what <see cref="Prepare"/>
    /// made (processes left behind included). Also called for recovered tasks once they end.
    /// </summary>
    Task CleanupAsync(TaskRun run, CancellationToken cancellationToken);

    /// <summary>
    /// The task was launched by a previous agent process (its checkpoint, with the stage state it saved, is in
    /// <paramref name="run"/>): rebuilds the stage's part of the run without touching the task.
    /// </summary>
    void Recover(TaskRun run);
}
