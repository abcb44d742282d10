using System.Globalization;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;

namespace Drover.Agent.Execution;

/// <summary>
/// What the agent keeps on disk about each task it launched, so a restarted agent can find its tasks
/// again: <c>{WorkDir}/meta/tasks/{taskId}/</c> holds
/// <list type="bullet">
/// <item><c>task.json</c>: the launch (spec and ports), written by the agent before the task is spawned;</item>
/// <item><c>shim</c>: the pid of the task's supervisor (the shim), written by the shim itself first thing;</item>
/// <item><c>exit</c>: the task's exit status in shell convention, written by the shim when the command ends.</item>
/// </list>
/// The directory is removed once the master has acknowledged the task's terminal update.
/// </summary>
/// <remarks>
/// Files are written without fsync: they must survive the agent process dying (they do, in the page
/// cache), not the machine crashing — a crashed machine takes the task processes with it, and a
/// task.json lost that way describes a task that no longer runs. Thread-safe: every method touches
/// only its task's directory, and one task is only ever launched once.
/// </remarks>
internal sealed class TaskCheckpoint
{
    private const string LaunchFile = "task.json";
    private const string ShimFile = "shim";
    private const string ExitFile = "exit";

    public TaskCheckpoint(string workDir)
    {
        Root = Path.Combine(Path.GetFullPath(workDir), "meta", "tasks");
        Directory.CreateDirectory(Root);
    }

    /// <summary><c>{WorkDir}/meta/tasks</c>.</summary>
    public string Root { get; }

    /// <summary>The task's checkpoint directory (the shim writes <c>shim</c> and <c>exit</c> into it).</summary>
    public string DirectoryOf(string taskId) => Path.Combine(Root, taskId);

    /// <summary>Records the launch before the task is spawned; clears what an earlier launch of the same id left.</summary>
    public void WriteLaunch(LaunchTask launch)
    {
        var dir = DirectoryOf(launch.Task.Id);
        Directory.CreateDirectory(dir);
        File.Delete(Path.Combine(dir, ShimFile));
        File.Delete(Path.Combine(dir, ExitFile));
        var tmp = Path.Combine(dir, LaunchFile + ".tmp");
        File.WriteAllBytes(tmp, JsonSerializer.SerializeToUtf8Bytes(launch, DroverJsonContext.Default.LaunchTask));
        File.Move(tmp, Path.Combine(dir, LaunchFile), overwrite: true);
    }

    /// <summary>Every checkpointed task, readable or not (an unreadable one has a null <see cref="Recovered.Launch"/>).</summary>
    public IEnumerable<Recovered> ReadAll()
    {
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            var id = Path.GetFileName(dir);
            LaunchTask? launch = null;
            try
            {
                launch = JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(dir, LaunchFile)), DroverJsonContext.Default.LaunchTask);
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                // An agent killed between creating the directory and renaming task.json: the task never started.
            }

            yield return new Recovered(id, launch is not null && launch.Task.Id == id ? launch : null, ReadInt(dir, ShimFile), ReadInt(dir, ExitFile));
        }
    }

    /// <summary>The exit status the shim recorded, or null when it did not (it was killed, or the task still runs).</summary>
    public int? ReadExit(string taskId) => ReadInt(DirectoryOf(taskId), ExitFile);

    /// <summary>Removes the task's checkpoint. Idempotent.</summary>
    public void Remove(string taskId)
    {
        if (!Ids.IsValidName(taskId))
        {
            return;
        }

        try
        {
            Directory.Delete(DirectoryOf(taskId), recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private static int? ReadInt(string dir, string file)
    {
        try
        {
            var text = File.ReadAllText(Path.Combine(dir, file)).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <param name="Launch">The launch, or null when task.json is missing or unreadable.</param>
    /// <param name="ShimPid">The supervisor's pid, or null when the shim never got to write it.</param>
    /// <param name="ExitCode">The command's exit status, or null when the shim has not recorded one.</param>
    public sealed record Recovered(string TaskId, LaunchTask? Launch, int? ShimPid, int? ExitCode);
}
