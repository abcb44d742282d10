using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Microsoft.Win32.SafeHandles;

namespace Drover.Agent.Execution;

/// <summary>
/// What the agent keeps on disk about the tasks it launched, so a restarted agent can find them again.
/// Two kinds of append-only log in <c>{WorkDir}/meta/tasks/</c>, no file per task:
/// <list type="bullet">
/// <item><c>tasks.log</c>, written by the agent: <c>L {generation} {launch json}</c> before a task is
/// spawned (followed by a tab and the launch stages' state as a JSON object when a stage has some: see
/// <c>Stages/ILaunchStage.cs</c>), <c>F {taskId}</c> once the master has acknowledged its terminal update
/// (forgotten).</item>
/// <item><c>exits.{generation}.log</c>, appended by the tasks' supervisors (shims): <c>{taskId} {status}</c>
/// when the command ends, status in shell convention (128+n for signal n). A shim names its exits
/// log on its command line; one <c>echo</c> is one <c>write(2)</c> to an <c>O_APPEND</c> file, so
/// lines from concurrent shims never interleave.</item>
/// </list>
/// </summary>
/// <remarks>
/// Why logs and not a file per task: creating and deleting several files per task dominated launch
/// bursts on ext4 without a journal, which skips every inode deleted in the last minute (five while
/// its block is dirty) when allocating one (docs/benchmarks.md, "Services"). Now a launch and its
/// end write no file of their own.
/// <para>
/// Bounded: <c>tasks.log</c> is rewritten with only the live launches when the agent starts and
/// whenever forgotten entries outnumber live ones (past <see cref="CompactAfter"/>); new launches
/// move to a new exits generation every <see cref="GenerationSize"/> launches, and a generation's
/// file is deleted once every task launched in it is forgotten (a shim may append to it until then).
/// </para>
/// <para>
/// Nothing is fsynced: the logs must survive the agent process dying (they do, in the page cache), not
/// the machine crashing — a crashed machine takes the task processes with it. A line cut short by the
/// agent dying is skipped on reading (a launch cut short was never spawned). Thread-safe: one lock
/// guards the writer and the in-memory state.
/// </para>
/// </remarks>
internal sealed class TaskCheckpoint : IDisposable
{
    /// <summary>Launches per exits generation.</summary>
    internal const int GenerationSize = 4096;

    /// <summary>Forgotten entries <c>tasks.log</c> may hold before it is compacted (also needs more forgotten than live).</summary>
    internal const int CompactAfter = 8192;

    private const string TasksLog = "tasks.log";

    private readonly Lock _gate = new();

    /// <summary>Live (not forgotten) launches, the exits generation each was launched in, and its stages' state.</summary>
    private readonly Dictionary<string, (LaunchTask Launch, int Generation, IReadOnlyDictionary<string, string>? StageState)> _live = new(StringComparer.Ordinal);

    /// <summary>Live tasks per exits generation: a generation's file goes when its count reaches 0.</summary>
    private readonly Dictionary<int, int> _generationUse = [];

    /// <summary>Exit statuses read so far, by task; and how far each generation's file has been read.</summary>
    private readonly Dictionary<string, int> _exits = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _exitsRead = [];

    /// <summary>Exits logs open for appending, by path: handed to shims that cannot reach them by path.</summary>
    private readonly Dictionary<string, SafeFileHandle> _exitsHandles = new(StringComparer.Ordinal);

    private FileStream _tasksLog;
    private int _generation;
    private int _launchesInGeneration;
    private int _forgottenInLog;
    private bool _disposed;

    /// <summary>Reads what an earlier agent process left (see <see cref="Recovered"/>) and compacts it.</summary>
    public TaskCheckpoint(string workDir)
    {
        Root = Path.Combine(Path.GetFullPath(workDir), "meta", "tasks");
        Directory.CreateDirectory(Root);

        // The agent's own: launch lines hold every task's environment, secrets included.
        Native.Chmod(Path.GetDirectoryName(Root)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Recovered = Load();
        _tasksLog = Rewrite();
    }

    /// <summary><c>{WorkDir}/meta/tasks</c>.</summary>
    public string Root { get; }

    /// <summary>The live launches found when this instance was created, each with its exit status if its shim recorded one.</summary>
    public IReadOnlyList<RecoveredTask> Recovered { get; }

    /// <summary>The exits log new launches' shims append to.</summary>
    public string CurrentExitsLog
    {
        get
        {
            lock (_gate)
            {
                return ExitsLogOf(_generation);
            }
        }
    }

    /// <summary>
    /// Records the launch (with the launch stages' state, if any) before the task is spawned and returns the
    /// exits log its shim must append to. A second launch of a live id replaces the first (its exit status is dropped).
    /// </summary>
    public string WriteLaunch(LaunchTask launch, IReadOnlyDictionary<string, string>? stageState = null)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(launch, DroverJsonContext.Default.LaunchTask);
        lock (_gate)
        {
            if (_launchesInGeneration >= GenerationSize)
            {
                if (_generationUse.GetValueOrDefault(_generation) == 0)
                {
                    // Every task of the generation ending now is already forgotten: no shim appends to it any more.
                    Retire(_generation);
                }

                _generation++;
                _launchesInGeneration = 0;
            }

            Drop(launch.Task.Id);
            Append(LaunchLine(_generation, json, stageState));
            _live[launch.Task.Id] = (launch, _generation, stageState);
            _generationUse[_generation] = _generationUse.GetValueOrDefault(_generation) + 1;
            _launchesInGeneration++;
            return ExitsLogOf(_generation);
        }
    }

    /// <summary>
    /// The exits log <paramref name="exitsLog"/> (as <see cref="WriteLaunch"/> returned it) open for appending with
    /// <c>O_APPEND</c>, for a shim to inherit: an isolated task's mount namespace hides the agent's work dir, so its shim
    /// records the exit status through this descriptor. Owned by the checkpoint; valid while a task of its generation lives.
    /// </summary>
    public SafeFileHandle ExitsHandle(string exitsLog)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_exitsHandles.TryGetValue(exitsLog, out var handle))
            {
                handle = Native.OpenAppend(exitsLog);
                _exitsHandles[exitsLog] = handle;
            }

            return handle;
        }
    }

    /// <summary>The exit status the task's shim recorded, or null when it did not (it was killed, or the task still runs).</summary>
    public int? ReadExit(string taskId)
    {
        lock (_gate)
        {
            if (_exits.TryGetValue(taskId, out var code))
            {
                return code;
            }

            if (!_live.TryGetValue(taskId, out var entry))
            {
                return null;
            }

            // The shim appends before it exits, and this is asked after it exited: its line is there.
            ReadExits(entry.Generation);
            return _exits.TryGetValue(taskId, out code) ? code : null;
        }
    }

    /// <summary>Forgets the task (after the master acknowledged its terminal update). Idempotent; an unknown id writes nothing.</summary>
    public void Remove(string taskId)
    {
        lock (_gate)
        {
            if (!_live.ContainsKey(taskId))
            {
                return;
            }

            Drop(taskId);
            Append(Encoding.UTF8.GetBytes($"F {taskId}\n"));
            _forgottenInLog++;
            if (_forgottenInLog > CompactAfter && _forgottenInLog > _live.Count && !_disposed)
            {
                _tasksLog.Dispose();
                _tasksLog = Rewrite();
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _tasksLog.Dispose();
            foreach (var handle in _exitsHandles.Values)
            {
                handle.Dispose();
            }

            _exitsHandles.Clear();
        }
    }

    private string ExitsLogOf(int generation) => Path.Combine(Root, string.Create(CultureInfo.InvariantCulture, $"exits.{generation}.log"));

    /// <summary>Removes a live task from memory; deletes its generation's exits log if it was the last one there. Lock held.</summary>
    private void Drop(string taskId)
    {
        if (!_live.Remove(taskId, out var entry))
        {
            return;
        }

        _exits.Remove(taskId);
        var left = _generationUse[entry.Generation] - 1;
        if (left > 0 || entry.Generation == _generation)
        {
            _generationUse[entry.Generation] = left;
            return;
        }

        Retire(entry.Generation);
    }

    /// <summary>Forgets an exits generation and deletes its file: no live task's shim appends to it. Lock held.</summary>
    private void Retire(int generation)
    {
        _generationUse.Remove(generation);
        _exitsRead.Remove(generation);
        if (_exitsHandles.Remove(ExitsLogOf(generation), out var handle))
        {
            handle.Dispose();
        }

        File.Delete(ExitsLogOf(generation));
    }

    /// <summary>
    /// <c>L {generation} {launch json}[\t{stage state json}]\n</c>, one line of <c>tasks.log</c> (compact JSON has
    /// no newline and no tab: both are escaped in strings).
    /// </summary>
    private static byte[] LaunchLine(int generation, byte[] json, IReadOnlyDictionary<string, string>? stageState)
    {
        var prefix = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"L {generation} "));
        if (stageState is null)
        {
            return [.. prefix, .. json, (byte)'\n'];
        }

        var state = JsonSerializer.SerializeToUtf8Bytes(stageState, CheckpointJsonContext.Default.IReadOnlyDictionaryStringString);
        return [.. prefix, .. json, (byte)'\t', .. state, (byte)'\n'];
    }

    private void Append(byte[] line)
    {
        if (_disposed)
        {
            // The executor is shutting down: an acknowledgement arriving now is written by the next
            // one (it recovers the task as ended and reports it again; the master acknowledges again).
            return;
        }

        _tasksLog.Write(line);
        _tasksLog.Flush();
    }

    /// <summary>Reads the lines appended to a generation's exits log since the last read (complete lines only). Lock held.</summary>
    private void ReadExits(int generation)
    {
        var offset = _exitsRead.GetValueOrDefault(generation);
        byte[] data;
        try
        {
            using var file = new FileStream(ExitsLogOf(generation), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (file.Length <= offset)
            {
                return;
            }

            file.Position = offset;
            data = new byte[file.Length - offset];
            file.ReadExactly(data);
        }
        catch (FileNotFoundException)
        {
            return;
        }

        var complete = Array.LastIndexOf(data, (byte)'\n') + 1;
        _exitsRead[generation] = offset + complete;
        foreach (var line in Encoding.UTF8.GetString(data, 0, complete).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0
                && int.TryParse(line.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var code)
                && _live.TryGetValue(line[..space], out var entry) && entry.Generation == generation)
            {
                _exits[line[..space]] = code;
            }
        }
    }

    /// <summary>Replays <c>tasks.log</c> and every exits log; deletes exits logs no live task uses.</summary>
    private List<RecoveredTask> Load()
    {
        var path = Path.Combine(Root, TasksLog);
        var lines = File.Exists(path) ? File.ReadAllText(path).Split('\n') : [];
        foreach (var line in lines)
        {
            if (line.StartsWith("F ", StringComparison.Ordinal))
            {
                _live.Remove(line[2..]);
                continue;
            }

            var parts = line.Split(' ', 3);
            if (parts is not ["L", var gen, var record] || !int.TryParse(gen, NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
            {
                continue;
            }

            try
            {
                var tab = record.IndexOf('\t', StringComparison.Ordinal);
                var json = tab < 0 ? record : record[..tab];
                var stageState = tab < 0 ? null : JsonSerializer.Deserialize(record.AsSpan(tab + 1), CheckpointJsonContext.Default.IReadOnlyDictionaryStringString);
                if (JsonSerializer.Deserialize(json, DroverJsonContext.Default.LaunchTask) is { } launch && Ids.IsValidName(launch.Task.Id))
                {
                    _live[launch.Task.Id] = (launch, generation, stageState);
                }
            }
            catch (JsonException)
            {
                // Cut short by the agent dying while writing it: that launch was never spawned.
            }
        }

        foreach (var (_, generation, _) in _live.Values)
        {
            _generationUse[generation] = _generationUse.GetValueOrDefault(generation) + 1;
            _generation = Math.Max(_generation, generation + 1);
        }

        foreach (var file in Directory.EnumerateFiles(Root, "exits.*.log"))
        {
            var name = Path.GetFileName(file);
            if (int.TryParse(name.AsSpan(6, name.Length - 10), NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
            {
                if (_generationUse.ContainsKey(generation))
                {
                    ReadExits(generation);
                    continue;
                }

                _generation = Math.Max(_generation, generation + 1);
            }

            File.Delete(file);
        }

        return [.. _live.Select(kv => new RecoveredTask(kv.Key, kv.Value.Launch, _exits.TryGetValue(kv.Key, out var code) ? code : null, ExitsLogOf(kv.Value.Generation))
        {
            StageState = kv.Value.StageState,
        })];
    }

    /// <summary>Writes <c>tasks.log</c> afresh with only the live launches (no partial line can follow) and opens it for appending. Lock held or constructing.</summary>
    private FileStream Rewrite()
    {
        var path = Path.Combine(Root, TasksLog);
        var tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            foreach (var (_, (launch, generation, stageState)) in _live)
            {
                file.Write(LaunchLine(generation, JsonSerializer.SerializeToUtf8Bytes(launch, DroverJsonContext.Default.LaunchTask), stageState));
            }
        }

        File.Move(tmp, path, overwrite: true);
        _forgottenInLog = 0;
        return new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }
}

/// <param name="ExitCode">The command's exit status, or null when the shim has not recorded one.</param>
/// <param name="ExitsLog">The exits log the task's shim appends to (its command line names it).</param>
internal sealed record RecoveredTask(string TaskId, LaunchTask Launch, int? ExitCode, string ExitsLog)
{
    /// <summary>What the launch stages checkpointed with the launch (stage name → state), or null.</summary>
    public IReadOnlyDictionary<string, string>? StageState { get; init; }
}

/// <summary>The checkpoint's own JSON: the launch stages' state.</summary>
[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class CheckpointJsonContext : JsonSerializerContext;
