using Drover.Core;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// The task's directory, <c>{WorkDir}/sandboxes/{taskId}</c>: its working directory, with the <c>stdout</c> and
/// <c>stderr</c> files its output is appended to. Sandboxes outlive their tasks (their logs stay readable after
/// the task ended and was forgotten); removing old ones is not this stage's job yet.
/// </summary>
internal sealed class SandboxStage : ILaunchStage
{
    public SandboxStage(string workDir)
    {
        Root = Path.Combine(Path.GetFullPath(workDir), "sandboxes");
        Directory.CreateDirectory(Root);
    }

    /// <summary><c>{WorkDir}/sandboxes</c>.</summary>
    public string Root { get; }

    public string Name => "sandbox";

    /// <summary>The sandbox path of a task id, or null for an id that is not a safe directory name.</summary>
    public string? PathOf(string taskId) => Ids.IsValidName(taskId) ? Path.Combine(Root, taskId) : null;

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        Directory.CreateDirectory(run.Sandbox!);
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
