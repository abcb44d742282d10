using Drover.Agent.Host;
using Drover.Core;

namespace Drover.Agent.Tests.Host;

public sealed class StatusUpdateLogTests : IDisposable
{
    private readonly string _workDir = Path.Combine(Path.GetTempPath(), "drover-update-log-tests", Guid.NewGuid().ToString("N"));

    private string LogFile => Path.Combine(_workDir, "meta", "updates.log");

    public void Dispose()
    {
        try
        {
            Directory.Delete(_workDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private static TaskStatus Update(string taskId, TaskState state, int? exitCode = null) => new()
    {
        TaskId = taskId,
        State = state,
        Uuid = Ids.NewUuid(),
        ExitCode = exitCode,
        Message = $"{taskId} {state.WireName()}",
    };

    [Fact]
    public void Reopen_UnacknowledgedUpdates_ReturnedInOriginalOrder()
    {
        var a1 = Update("a", TaskState.Running);
        var b1 = Update("b", TaskState.Running);
        var a2 = Update("a", TaskState.Failed, exitCode: 7);
        using (var log = new StatusUpdateLog(_workDir))
        {
            log.Append([a1, b1]);
            log.Append([a2]);
            log.Acknowledge([b1.Uuid!]);
        }

        using var reopened = new StatusUpdateLog(_workDir);

        Assert.Equal([a1.Uuid, a2.Uuid], reopened.Pending.Select(u => u.Uuid));
        var failed = reopened.Pending.Last();
        Assert.Equal(TaskState.Failed, failed.State);
        Assert.Equal(7, failed.ExitCode);
        Assert.Equal("a TASK_FAILED", failed.Message);
    }

    [Fact]
    public void Acknowledge_Everything_TruncatesTheFile()
    {
        var u = Update("a", TaskState.Running);
        using var log = new StatusUpdateLog(_workDir);
        log.Append([u]);
        Assert.True(new FileInfo(LogFile).Length > 0);

        log.Acknowledge([u.Uuid!, "unknown-uuid"]);

        Assert.Empty(log.Pending);
        Assert.Equal(0, new FileInfo(LogFile).Length);
        var next = Update("a", TaskState.Finished);
        log.Append([next]);
        log.Dispose();
        using var reopened = new StatusUpdateLog(_workDir);
        Assert.Equal([next.Uuid], reopened.Pending.Select(p => p.Uuid));
    }

    [Fact]
    public void Reopen_TornLastRecord_KeepsEverythingBeforeItAndAppendsCleanly()
    {
        var first = Update("a", TaskState.Running);
        using (var log = new StatusUpdateLog(_workDir))
        {
            log.Append([first]);
        }

        // An agent killed in the middle of a write leaves half a line.
        File.AppendAllText(LogFile, "U {\"taskId\":\"b\",\"sta");
        var later = Update("b", TaskState.Running);
        using (var log = new StatusUpdateLog(_workDir))
        {
            Assert.Equal([first.Uuid], log.Pending.Select(p => p.Uuid));
            log.Append([later]);
        }

        using var reopened = new StatusUpdateLog(_workDir);
        Assert.Equal([first.Uuid, later.Uuid], reopened.Pending.Select(p => p.Uuid));
    }

    [Fact]
    public void Append_SameUuidTwice_KeptOnce()
    {
        var u = Update("a", TaskState.Running);
        using var log = new StatusUpdateLog(_workDir);

        log.Append([u]);
        log.Append([u]);

        Assert.Single(log.Pending);
    }
}
