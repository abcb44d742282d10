using Drover.Agent.Execution;
using Drover.Core;
using Drover.Core.Protocol;

namespace Drover.Agent.Tests.Execution;

public sealed class TaskCheckpointTests : IDisposable
{
    private readonly string _workDir = Directory.CreateTempSubdirectory("drover-checkpoint-").FullName;

    public void Dispose() => Directory.Delete(_workDir, recursive: true);

    [Fact]
    public void Reopen_AfterLaunchesExitAndForget_RecoversOnlyLiveLaunchesWithTheirExitStatus()
    {
        string exits;
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            exits = checkpoint.WriteLaunch(Launch("a", ports: [31000]));
            checkpoint.WriteLaunch(Launch("b"));
            checkpoint.WriteLaunch(Launch("c"));
            checkpoint.Remove("b");
            File.AppendAllText(exits, "a 143\n");
        }

        using var reopened = new TaskCheckpoint(_workDir);

        var recovered = reopened.Recovered.OrderBy(r => r.TaskId).ToList();
        Assert.Equal(["a", "c"], recovered.Select(r => r.TaskId));
        Assert.Equal(143, recovered[0].ExitCode);
        Assert.Equal([31000], recovered[0].Launch.Ports.ToArray());
        Assert.Equal("sleep 1", recovered[0].Launch.Task.Shell);
        Assert.Null(recovered[1].ExitCode);
        Assert.All(recovered, r => Assert.Equal(exits, r.ExitsLog));

        // New launches go to a new exits log: the recovered shims may still append to the old one.
        Assert.NotEqual(exits, reopened.CurrentExitsLog);
    }

    [Fact]
    public void ReadExit_LinesAppendedOverTime_ReadsEachTasksStatusIncrementally()
    {
        using var checkpoint = new TaskCheckpoint(_workDir);
        var exits = checkpoint.WriteLaunch(Launch("a"));
        checkpoint.WriteLaunch(Launch("b"));

        Assert.Null(checkpoint.ReadExit("a"));
        File.AppendAllText(exits, "a 0\nunknown 3\nb 1");   // b's line not complete yet
        Assert.Equal(0, checkpoint.ReadExit("a"));
        Assert.Null(checkpoint.ReadExit("b"));
        Assert.Null(checkpoint.ReadExit("unknown"));

        File.AppendAllText(exits, "37\n");
        Assert.Equal(137, checkpoint.ReadExit("b"));
    }

    [Fact]
    public void Reopen_LaunchCutShortByACrash_SkipsItAndLaterAppendsStayReadable()
    {
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            checkpoint.WriteLaunch(Launch("a"));
        }

        File.AppendAllText(Path.Combine(_workDir, "meta", "tasks", "tasks.log"), "L 0 {\"task\":{\"id\":\"b\",");
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            Assert.Equal(["a"], checkpoint.Recovered.Select(r => r.TaskId));
            checkpoint.WriteLaunch(Launch("c"));
        }

        using var third = new TaskCheckpoint(_workDir);
        Assert.Equal(["a", "c"], third.Recovered.Select(r => r.TaskId).Order());
    }

    [Fact]
    public void Remove_LastTaskOfAnOlderGeneration_DeletesItsExitsLog()
    {
        string oldExits;
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            oldExits = checkpoint.WriteLaunch(Launch("a"));
            checkpoint.WriteLaunch(Launch("b"));
            File.AppendAllText(oldExits, "a 0\n");
        }

        using var reopened = new TaskCheckpoint(_workDir);
        reopened.WriteLaunch(Launch("c"));

        reopened.Remove("a");
        Assert.True(File.Exists(oldExits), "b's shim may still append to it");
        reopened.Remove("b");
        Assert.False(File.Exists(oldExits));
    }

    [Fact]
    public void Reopen_ExitsLogOfNoLiveTask_IsDeleted()
    {
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            var exits = checkpoint.WriteLaunch(Launch("a"));
            File.AppendAllText(exits, "a 0\n");
            checkpoint.Remove("a");
        }

        using var reopened = new TaskCheckpoint(_workDir);

        Assert.Empty(reopened.Recovered);
        Assert.Empty(Directory.EnumerateFiles(reopened.Root, "exits.*"));
    }

    [Fact]
    public void WriteLaunch_MoreThanAGeneration_MovesNewLaunchesToANewExitsLog()
    {
        using var checkpoint = new TaskCheckpoint(_workDir);
        var first = checkpoint.WriteLaunch(Launch("t0"));
        for (var i = 1; i < TaskCheckpoint.GenerationSize; i++)
        {
            Assert.Equal(first, checkpoint.WriteLaunch(Launch($"t{i}")));
        }

        var next = checkpoint.WriteLaunch(Launch("last"));

        Assert.NotEqual(first, next);
        File.AppendAllText(first, "t7 0\n");
        File.AppendAllText(next, "last 9\n");
        Assert.Equal(0, checkpoint.ReadExit("t7"));
        Assert.Equal(9, checkpoint.ReadExit("last"));
    }

    [Fact]
    public void Remove_ManyForgotten_CompactsTheTaskLogToTheLiveLaunches()
    {
        var log = Path.Combine(_workDir, "meta", "tasks", "tasks.log");
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            checkpoint.WriteLaunch(Launch("keep"));
            for (var i = 0; i <= TaskCheckpoint.CompactAfter; i++)
            {
                checkpoint.WriteLaunch(Launch($"t{i}"));
                checkpoint.Remove($"t{i}");
            }

            Assert.Single(File.ReadAllLines(log));
            checkpoint.WriteLaunch(Launch("after"));
        }

        using var reopened = new TaskCheckpoint(_workDir);
        Assert.Equal(["after", "keep"], reopened.Recovered.Select(r => r.TaskId).Order());
    }

    [Fact]
    public void Remove_UnknownTask_WritesNothing()
    {
        using var checkpoint = new TaskCheckpoint(_workDir);
        var log = Path.Combine(checkpoint.Root, "tasks.log");

        checkpoint.Remove("never-launched");

        Assert.Equal(0, new FileInfo(log).Length);
    }

    [Fact]
    public void Reopen_LaunchWithStageState_RecoversTheStateAndKeepsItThroughCompaction()
    {
        var state = new Dictionary<string, string> { ["user"] = "65534:65534 with\ttab and \"quotes\"" };
        using (var checkpoint = new TaskCheckpoint(_workDir))
        {
            checkpoint.WriteLaunch(Launch("a"), state);
            checkpoint.WriteLaunch(Launch("b"));
        }

        // Opening rewrites tasks.log with the live launches; the state must survive that too.
        using (new TaskCheckpoint(_workDir))
        {
        }

        using var reopened = new TaskCheckpoint(_workDir);

        var recovered = reopened.Recovered.OrderBy(r => r.TaskId).ToList();
        Assert.Equal(["a", "b"], recovered.Select(r => r.TaskId));
        Assert.Equal(state, recovered[0].StageState);
        Assert.Equal("sleep 1", recovered[0].Launch.Task.Shell);
        Assert.Null(recovered[1].StageState);
    }

    private static LaunchTask Launch(string id, int[]? ports = null) => new()
    {
        Task = new TaskSpec { Id = id, Name = id, Shell = "sleep 1", Resources = Resources.Of(cpus: 0.1m) },
        Ports = ports is null ? [] : [.. ports],
    };
}
