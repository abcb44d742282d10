using Drover.Agent.Host;
using Drover.Core;
using Drover.Core.Protocol;

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

    private static ExecutorExit Exit(string executorId, int? status) => new()
    {
        FrameworkId = "fw-1",
        ExecutorId = executorId,
        ContainerId = executorId + ".c1",
        Status = status,
        Message = "Command exited with status 3",
        Uuid = Ids.NewUuid(),
        Timestamp = 1700000000.5,
    };

    [Fact]
    public void Reopen_UnacknowledgedExecutorExits_SurviveBesideUpdates_AndAcknowledgementsDropThem()
    {
        var u = Update("a", TaskState.Failed, exitCode: 3);
        var x1 = Exit("e1", 3 << 8);
        var x2 = Exit("e2", null);
        using (var log = new StatusUpdateLog(_workDir))
        {
            log.Append([u], [x1]);
            log.Append([], [x2]);
            log.Append([], [x1]); // a repeat is not logged twice
            log.Acknowledge([x2.Uuid]);
        }

        using (var reopened = new StatusUpdateLog(_workDir))
        {
            Assert.Equal([u.Uuid], reopened.Pending.Select(p => p.Uuid));
            var exit = Assert.Single(reopened.PendingExits);
            Assert.Equal(x1, exit);
            reopened.Acknowledge([u.Uuid!]);
            Assert.Single(reopened.PendingExits);
            Assert.True(new FileInfo(LogFile).Length > 0, "an exit still pending keeps the file");
            reopened.Acknowledge([x1.Uuid]);
            Assert.Empty(reopened.PendingExits);
            Assert.Equal(0, new FileInfo(LogFile).Length);
        }

        using var empty = new StatusUpdateLog(_workDir);
        Assert.Empty(empty.PendingExits);
        Assert.Empty(empty.Pending);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(7, 7 << 8)]
    [InlineData(128 + 9, 9)]
    [InlineData(128 + 15, 15)]
    public void WaitStatus_FromExitCode_AsWaitpid(int exitCode, int expected) =>
        Assert.Equal(expected, ExecutorExit.WaitStatus(exitCode));

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
