namespace Drover.Master.Http;

/// <summary>What a log reader does after a chunk.</summary>
internal enum LogStep
{
    /// <summary>Read the next chunk at once.</summary>
    Next,

    /// <summary>Nothing new yet: a follower polls again after a pause.</summary>
    Wait,

    /// <summary>Done: end of file reached, or the agent's answers do not advance.</summary>
    Stop,
}

/// <summary>
/// Where a reader of a task's sandbox file is, and when it stops. Without follow (and once the task has ended) the end is
/// the file size the agent reported at the first read: a task that keeps writing cannot keep a one-shot read going, and
/// a chunk that never reaches the size the agent reported cannot either. Whether following or not, a chunk that does not
/// advance (no data from a file said to be longer, or data from past the end the agent itself reports) ends the read, so
/// one request to the master makes a bounded number of requests to the agent. Not thread-safe: one per reader.
/// </summary>
internal sealed class LogCursor(long offset, bool follow)
{
    private long? _end;

    public long Offset { get; private set; } = offset;

    /// <summary>The length to ask for next: up to the fixed end, at most <see cref="SandboxReader.MaxChunk"/>.</summary>
    public int NextLength => _end is { } end ? (int)Math.Clamp(end - Offset, 0, SandboxReader.MaxChunk) : SandboxReader.MaxChunk;

    /// <summary>Takes the answer to a read at <see cref="Offset"/>: <paramref name="length"/> bytes from a file the agent says is <paramref name="size"/> long.</summary>
    /// <param name="ended">The task had ended before this read: its file no longer grows.</param>
    public LogStep Advance(int length, long size, bool ended)
    {
        if (!follow || ended)
        {
            _end ??= size;
        }

        if (length == 0)
        {
            // No data: the end (or, following a running task, nothing new yet). A file said to be longer that gives
            // nothing (a hole the agent cannot read, a file replaced under it) is not retried at once either.
            return follow && !ended ? LogStep.Wait : LogStep.Stop;
        }

        if (size <= Offset)
        {
            return LogStep.Stop; // data from at or past the end the agent reports: its answers do not advance
        }

        Offset += length;
        return _end is { } end && Offset >= end ? LogStep.Stop : LogStep.Next;
    }
}
