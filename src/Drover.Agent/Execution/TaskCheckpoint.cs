using System.Globalization;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;

namespace Drover.Agent.Execution;

/// <summary>
/// What the agent keeps on disk about each task it launched, so a restarted agent can find its tasks
/// again: <c>{WorkDir}/meta/tasks/</c> holds, per task,
/// <list type="bullet">
/// <item><c>{taskId}.json</c>: the launch (spec and ports), written by the agent before the task is spawned;</item>
/// <item><c>{taskId}.exit</c>: the task's exit status in shell convention, written by the task's
/// supervisor (the shim) when the command ends.</item>
/// </list>
/// Both are removed once the master has acknowledged the task's terminal update. The shim's pid is not
/// recorded: a restarted agent finds a live shim by its command line, which names its exit file.
/// </summary>
/// <remarks>
/// Two files in one shared directory, not a directory per task: on ext4 every inode created costs a
/// search past recently deleted ones, which dominated launch bursts (docs/benchmarks.md, "Services").
/// Files are written without fsync: they must survive the agent process dying (they do, in the page
/// cache), not the machine crashing — a crashed machine takes the task processes with it, and a
/// launch lost that way describes a task that no longer runs. Thread-safe: every method touches
/// only its task's files, and one task is only ever launched once.
/// </remarks>
internal sealed class TaskCheckpoint
{
    private const string LaunchSuffix = ".json";
    private const string ExitSuffix = ".exit";

    public TaskCheckpoint(string workDir)
    {
        Root = Path.Combine(Path.GetFullPath(workDir), "meta", "tasks");
        Directory.CreateDirectory(Root);
    }

    /// <summary><c>{WorkDir}/meta/tasks</c>.</summary>
    public string Root { get; }

    /// <summary>Where the task's shim records the command's exit status (it names it on its command line).</summary>
    public string ExitFileOf(string taskId) => Path.Combine(Root, taskId + ExitSuffix);

    /// <summary>
    /// Records the launch before the task is spawned; clears an exit status an earlier launch of the
    /// same id left. Written in place, not renamed into place: a launch cut short by the agent dying is
    /// unreadable, which <see cref="ReadAll"/> reports as a launch that never started — and it did not,
    /// as the task is spawned only after this returns.
    /// </summary>
    public void WriteLaunch(LaunchTask launch)
    {
        File.Delete(ExitFileOf(launch.Task.Id));
        File.WriteAllBytes(Path.Combine(Root, launch.Task.Id + LaunchSuffix), JsonSerializer.SerializeToUtf8Bytes(launch, DroverJsonContext.Default.LaunchTask));
    }

    /// <summary>Every checkpointed task, readable or not (an unreadable one has a null <see cref="Recovered.Launch"/>).</summary>
    public IEnumerable<Recovered> ReadAll()
    {
        foreach (var file in Directory.EnumerateFiles(Root, "*" + LaunchSuffix))
        {
            var id = Path.GetFileNameWithoutExtension(file);
            LaunchTask? launch = null;
            try
            {
                launch = JsonSerializer.Deserialize(File.ReadAllBytes(file), DroverJsonContext.Default.LaunchTask);
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                // An agent killed while writing the launch: the task never started.
            }

            yield return new Recovered(id, launch is not null && launch.Task.Id == id ? launch : null, ReadExit(id));
        }

        // An exit status whose launch is gone: an agent killed inside Remove.
        foreach (var file in Directory.EnumerateFiles(Root, "*" + ExitSuffix))
        {
            if (!File.Exists(Path.ChangeExtension(file, LaunchSuffix)))
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>The exit status the shim recorded, or null when it did not (it was killed, or the task still runs).</summary>
    public int? ReadExit(string taskId)
    {
        try
        {
            var text = File.ReadAllText(ExitFileOf(taskId)).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes the task's checkpoint, the launch first: what an agent killed in between leaves is an
    /// exit status without a launch, which describes no task (<see cref="ReadAll"/> deletes it).
    /// Idempotent.
    /// </summary>
    public void Remove(string taskId)
    {
        if (!Ids.IsValidName(taskId))
        {
            return;
        }

        File.Delete(Path.Combine(Root, taskId + LaunchSuffix));
        File.Delete(ExitFileOf(taskId));
    }

    /// <param name="Launch">The launch, or null when its file is unreadable.</param>
    /// <param name="ExitCode">The command's exit status, or null when the shim has not recorded one.</param>
    public sealed record Recovered(string TaskId, LaunchTask? Launch, int? ExitCode);
}
