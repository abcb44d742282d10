using Drover.Core;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// The task's directory, <c>{WorkDir}/sandboxes/{taskId}</c>: its working directory, with the <c>stdout</c> and
/// <c>stderr</c> files its output is appended to. Sandboxes outlive their tasks (their logs stay readable after
/// the task ended and was forgotten); removing old ones is not this stage's job yet.
/// </summary>
/// <remarks>
/// A sandbox is mode 0700 (the user stage gives it to the task's user); <c>{WorkDir}/sandboxes</c> is the agent's,
/// 0755, so no task can rename, replace or add a sandbox. The agent reads sandbox files without following links
/// (<see cref="Native.OpenBeneath"/>): the task owns everything in its sandbox.
/// </remarks>
internal sealed class SandboxStage : ILaunchStage
{
    public SandboxStage(string workDir)
    {
        Root = Path.Combine(Path.GetFullPath(workDir), "sandboxes");
        Directory.CreateDirectory(Root);
        Native.Chmod(Root, SandboxesMode);
    }

    /// <summary><c>{WorkDir}/sandboxes</c>.</summary>
    public string Root { get; }

    /// <summary>rwx------: the task's user only (the agent is root).</summary>
    public const UnixFileMode SandboxMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>rwxr-xr-x: the agent's directory of sandboxes, which tasks may enter and never change.</summary>
    public const UnixFileMode SandboxesMode = SandboxMode | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    public string Name => "sandbox";

    /// <summary>The sandbox path of a task id, or null for an id that is not a safe directory name.</summary>
    public string? PathOf(string taskId) => Ids.IsValidName(taskId) ? Path.Combine(Root, taskId) : null;

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        Native.Mkdir(run.Sandbox!, SandboxMode);
        Touch(Path.Combine(run.Sandbox!, "stdout"));
        Touch(Path.Combine(run.Sandbox!, "stderr"));
        return null;
    }

    public void AfterStart(TaskRun run)
    {
    }

    /// <remarks>Nothing: the sandbox stays for log reads.</remarks>
    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <remarks>Nothing: the path follows from the task id.</remarks>
    public void Recover(TaskRun run)
    {
    }

    private static void Touch(string path)
    {
        // A bare handle, not a FileStream: this runs twice per launch, and FileStream's set-up showed in profiles.
        using var _ = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
    }
}
