using Drover.Master.Http;

namespace Drover.Master.Tests;

/// <summary>
/// The log reader's loop bound (issue 14: one call made 928k requests to the agent when chunks never reached the size
/// it reported). Each test drives the cursor as <c>/drover/v1/tasks/{id}/logs</c> does against a simulated agent and counts reads.
/// </summary>
public sealed class LogCursorTests
{
    /// <summary>Runs the reader's loop against <paramref name="agent"/> (offset, length → bytes, reported size); returns the reads made.</summary>
    private static int Reads(LogCursor cursor, Func<long, int, (int Length, long Size)> agent, Func<int, bool> ended, int cap = 100_000)
    {
        for (var reads = 1; reads <= cap; reads++)
        {
            var (length, size) = agent(cursor.Offset, cursor.NextLength);
            if (cursor.Advance(length, size, ended(reads)) == LogStep.Stop)
            {
                return reads;
            }
        }

        return cap + 1;
    }

    [Fact]
    public void Advance_FileGrowingFasterThanRead_StopsAtTheSizeOfTheFirstRead()
    {
        // A task that writes without pause: every answer says the file is a chunk longer than before.
        long size = 10L * SandboxReader.MaxChunk;
        var reads = Reads(new LogCursor(0, follow: false), (offset, length) =>
        {
            size += SandboxReader.MaxChunk;
            return ((int)Math.Min(length, size - offset), size);
        }, _ => false);

        Assert.Equal(11, reads); // the first answer said 11 chunks; what was written after it is for the next call
    }

    [Fact]
    public void Advance_ChunksNeverReachTheReportedSize_Bounded()
    {
        // The agent reports 5 MiB but sends one byte per read and then nothing.
        var cursor = new LogCursor(0, follow: false);
        var reads = Reads(cursor, (offset, _) => (offset < 3 ? 1 : 0, 5L << 20), _ => false);

        Assert.Equal(4, reads);
        Assert.Equal(3, cursor.Offset);
    }

    [Fact]
    public void Advance_AgentIgnoresTheOffset_StopsWhenItsDataIsPastTheEndItReports()
    {
        // The agent sends the same 100 bytes whatever the offset, from a file it says is 100 bytes long.
        var reads = Reads(new LogCursor(0, follow: true), (_, _) => (100, 100), _ => false);

        Assert.Equal(2, reads);
    }

    [Fact]
    public void Advance_FollowingARunningTask_WaitsThenStopsOnceItEnded()
    {
        var cursor = new LogCursor(0, follow: true);
        Assert.Equal(LogStep.Next, cursor.Advance(10, 20, ended: false));
        Assert.Equal(SandboxReader.MaxChunk, cursor.NextLength);
        Assert.Equal(LogStep.Wait, cursor.Advance(0, 10, ended: false)); // nothing new yet
        Assert.Equal(LogStep.Next, cursor.Advance(10, 30, ended: true)); // the task ended at 30 bytes
        Assert.Equal(10, cursor.NextLength);
        Assert.Equal(LogStep.Stop, cursor.Advance(10, 30, ended: true));
        Assert.Equal(30, cursor.Offset);
    }

    [Fact]
    public void Advance_WholeSmallFile_OneRead()
    {
        var cursor = new LogCursor(0, follow: false);

        Assert.Equal(LogStep.Stop, cursor.Advance(12, 12, ended: false));
        Assert.Equal(12, cursor.Offset);
    }
}
