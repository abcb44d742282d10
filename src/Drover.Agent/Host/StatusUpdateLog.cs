using System.Text;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;

namespace Drover.Agent.Host;

/// <summary>
/// The agent's status updates on disk until the master acknowledges them, so a restarted agent
/// re-sends what the master may never have received, in the original order. One append-only file,
/// <c>{WorkDir}/meta/updates.log</c>, one record a line: <c>U {json status}</c> for an update,
/// <c>X {json exit}</c> for an executor exit, <c>A uuid,uuid,…</c> for acknowledgements (of either).
/// </summary>
/// <remarks>
/// <see cref="Append"/> fsyncs once per batch (group commit), so an update sent to the master is on
/// disk first, surviving even a machine crash. Acknowledgements are not fsynced: losing one only
/// re-sends an update, which the master acknowledges again (delivery is at least once).
/// The file is rewritten with just the pending updates on open, and truncated whenever nothing is
/// pending, so it stays small. Not thread-safe: the agent's single update loop owns it.
/// </remarks>
internal sealed class StatusUpdateLog : IDisposable
{
    private const long CompactAbove = 16 * 1024 * 1024;

    private readonly string _path;
    private readonly LinkedList<TaskStatus> _pending = new();
    private readonly Dictionary<string, LinkedListNode<TaskStatus>> _byUuid = new(StringComparer.Ordinal);
    private readonly LinkedList<ExecutorExit> _exits = new();
    private readonly Dictionary<string, LinkedListNode<ExecutorExit>> _exitsByUuid = new(StringComparer.Ordinal);
    private FileStream _file;

    public StatusUpdateLog(string workDir)
    {
        var dir = Path.Combine(Path.GetFullPath(workDir), "meta");
        Directory.CreateDirectory(dir);
        _path = Path.Combine(dir, "updates.log");
        if (File.Exists(_path))
        {
            Load();
        }

        _file = Rewrite();
    }

    /// <summary>Updates not yet acknowledged, oldest first.</summary>
    public IReadOnlyCollection<TaskStatus> Pending => _pending;

    /// <summary>Executor exits not yet acknowledged, oldest first.</summary>
    public IReadOnlyCollection<ExecutorExit> PendingExits => _exits;

    /// <summary>Adds updates (each must carry a uuid) and executor exits, and makes them durable before returning.</summary>
    public void Append(IReadOnlyList<TaskStatus> updates, IReadOnlyList<ExecutorExit>? exits = null)
    {
        exits ??= [];
        if (updates.Count == 0 && exits.Count == 0)
        {
            return;
        }

        var buffer = new MemoryStream();
        foreach (var exit in exits)
        {
            if (_exitsByUuid.ContainsKey(exit.Uuid))
            {
                continue;
            }

            WriteExit(buffer, exit);
            _exitsByUuid[exit.Uuid] = _exits.AddLast(exit);
        }

        foreach (var update in updates)
        {
            if (update.Uuid is not { } uuid || _byUuid.ContainsKey(uuid))
            {
                continue;
            }

            buffer.Write("U "u8);
            buffer.Write(JsonSerializer.SerializeToUtf8Bytes(update, DroverJsonContext.Default.TaskStatus));
            buffer.WriteByte((byte)'\n');
            _byUuid[uuid] = _pending.AddLast(update);
        }

        _file.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        _file.Flush(flushToDisk: true);
    }

    /// <summary>Drops acknowledged updates (unknown uuids are ignored).</summary>
    public void Acknowledge(IEnumerable<string> uuids)
    {
        var acked = new List<string>();
        foreach (var uuid in uuids)
        {
            if (_byUuid.Remove(uuid, out var node))
            {
                _pending.Remove(node);
                acked.Add(uuid);
            }
            else if (_exitsByUuid.Remove(uuid, out var exit))
            {
                _exits.Remove(exit);
                acked.Add(uuid);
            }
        }

        if (acked.Count == 0)
        {
            return;
        }

        if (_pending.Count == 0 && _exits.Count == 0)
        {
            _file.SetLength(0);
            _file.Position = 0;
            return;
        }

        if (_file.Length > CompactAbove)
        {
            _file.Dispose();
            _file = Rewrite();
            return;
        }

        _file.Write(Encoding.UTF8.GetBytes("A " + string.Join(',', acked) + "\n"));
        _file.Flush(flushToDisk: false);
    }

    public void Dispose() => _file.Dispose();

    private static void WriteExit(Stream to, ExecutorExit exit)
    {
        to.Write("X "u8);
        to.Write(JsonSerializer.SerializeToUtf8Bytes(exit, DroverJsonContext.Default.ExecutorExit));
        to.WriteByte((byte)'\n');
    }

    private void Load()
    {
        foreach (var line in File.ReadLines(_path))
        {
            if (line.StartsWith("U ", StringComparison.Ordinal))
            {
                TaskStatus? update;
                try
                {
                    update = JsonSerializer.Deserialize(line.AsSpan(2), DroverJsonContext.Default.TaskStatus);
                }
                catch (JsonException)
                {
                    continue; // a record torn by a crash mid-write: it was never sent
                }

                if (update?.Uuid is { } uuid && !_byUuid.ContainsKey(uuid))
                {
                    _byUuid[uuid] = _pending.AddLast(update);
                }
            }
            else if (line.StartsWith("X ", StringComparison.Ordinal))
            {
                ExecutorExit? exit;
                try
                {
                    exit = JsonSerializer.Deserialize(line.AsSpan(2), DroverJsonContext.Default.ExecutorExit);
                }
                catch (JsonException)
                {
                    continue; // torn by a crash mid-write, as above
                }

                if (exit is not null && !_exitsByUuid.ContainsKey(exit.Uuid))
                {
                    _exitsByUuid[exit.Uuid] = _exits.AddLast(exit);
                }
            }
            else if (line.StartsWith("A ", StringComparison.Ordinal))
            {
                foreach (var uuid in line[2..].Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (_byUuid.Remove(uuid, out var node))
                    {
                        _pending.Remove(node);
                    }
                    else if (_exitsByUuid.Remove(uuid, out var exit))
                    {
                        _exits.Remove(exit);
                    }
                }
            }
        }
    }

    /// <summary>Writes the pending updates to a new file that atomically replaces the log; returns it open for appends.</summary>
    private FileStream Rewrite()
    {
        var tmp = _path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var update in _pending)
            {
                file.Write("U "u8);
                file.Write(JsonSerializer.SerializeToUtf8Bytes(update, DroverJsonContext.Default.TaskStatus));
                file.WriteByte((byte)'\n');
            }

            foreach (var exit in _exits)
            {
                WriteExit(file, exit);
            }

            file.Flush(flushToDisk: true);
        }

        File.Move(tmp, _path, overwrite: true);
        // Not FileMode.Append: an append-mode stream cannot be truncated when nothing is pending.
        var log = new FileStream(_path, FileMode.Open, FileAccess.Write, FileShare.Read);
        log.Seek(0, SeekOrigin.End);
        return log;
    }
}
