using Drover.Agent.Execution;
using Drover.Agent.Execution.Runtime;
using Drover.Agent.Execution.Stages;
using Drover.Core;

namespace Drover.Agent.Tests.Execution;

/// <summary>The launch pipeline's contract: stage order, the runtime between Prepare and AfterStart, reverse cleanup, rollback, checkpointed stage state.</summary>
public sealed class LaunchPipelineTests : IDisposable
{
    private readonly string _workDir = Directory.CreateTempSubdirectory("drover-pipeline-").FullName;
    private readonly List<string> _calls = [];
    private readonly TaskCheckpoint _checkpoint;
    private readonly SandboxStage _sandbox;

    public LaunchPipelineTests()
    {
        _checkpoint = new TaskCheckpoint(_workDir);
        _sandbox = new SandboxStage(_workDir);
    }

    public void Dispose()
    {
        _checkpoint.Dispose();
        Directory.Delete(_workDir, recursive: true);
    }

    [Fact]
    public async Task Launch_EveryStagePrepares_StagesInOrderThenTheRuntimeThenAfterStartAndCleanupInReverse()
    {
        var pipeline = Pipeline(new Recording("a", _calls), new Recording("b", _calls));
        var run = Run("echo ran");

        var failure = pipeline.Launch(run, e => _calls.Add("fault " + e.Message));

        Assert.Null(failure);
        Assert.True(run.Pid > 0);
        Assert.Equal(0, await run.ShimExited!.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("ran\n", File.ReadAllText(Path.Combine(run.Sandbox!, "stdout")));
        await pipeline.CleanupAsync(run, CancellationToken.None);
        Assert.Equal(["a prepare", "b prepare", "a after-start pid", "b after-start pid", "b cleanup", "a cleanup"], _calls);
    }

    [Fact]
    public async Task Launch_StageRefuses_FailsWithItsSentenceStartsNothingAndCleansUpThePreparedStages()
    {
        var pipeline = Pipeline(new Recording("a", _calls), new Recording("b", _calls) { Refuse = "b says no" }, new Recording("c", _calls));
        var run = Run("echo ran");

        var failure = pipeline.Launch(run, e => _calls.Add("fault " + e.Message));

        Assert.Equal("b says no", failure);
        Assert.Equal(0, run.Pid);
        await WaitForAsync(() => _calls.Contains("a cleanup"));
        Assert.Equal(["a prepare", "b prepare", "b cleanup", "a cleanup"], _calls);
        _checkpoint.Dispose();
        using var reopened = new TaskCheckpoint(_workDir);
        Assert.Empty(reopened.Recovered);
    }

    [Fact]
    public async Task Launch_StageThrowsIOException_FailsNamingTheErrorAndCleansUpThatStageToo()
    {
        var pipeline = Pipeline(new Recording("a", _calls), new Recording("b", _calls) { Throw = true });
        var run = Run("echo ran");

        var failure = pipeline.Launch(run, e => _calls.Add("fault " + e.Message));

        Assert.Equal("Failed to launch task: b broke", failure);
        await WaitForAsync(() => _calls.Contains("a cleanup"));
        Assert.Equal(["a prepare", "b prepare", "fault b broke", "b cleanup", "a cleanup"], _calls);
    }

    [Fact]
    public async Task Launch_StageSavesState_TheStateIsCheckpointedWithTheLaunch()
    {
        var pipeline = Pipeline(new Recording("a", _calls) { State = "kept across restarts" });
        var run = Run("true");

        Assert.Null(pipeline.Launch(run, e => _calls.Add("fault " + e.Message)));
        // The task's shim writes into its sandbox until it exits: let it, so disposal removes a dir nobody writes to.
        Assert.Equal(0, await run.ShimExited!.WaitAsync(TimeSpan.FromSeconds(20)));
        _checkpoint.Dispose();

        using var reopened = new TaskCheckpoint(_workDir);
        var recovered = Assert.Single(reopened.Recovered);
        Assert.Equal("kept across restarts", recovered.StageState!["a"]);
    }

    private LaunchPipeline Pipeline(params ILaunchStage[] stages) =>
        new([_sandbox, .. stages], new ProcessRuntime(_checkpoint, setpriv: null), _checkpoint);

    private TaskRun Run(string shell)
    {
        var spec = new TaskSpec { Id = Ids.NewTaskId("t"), Name = "t", Shell = shell, Resources = Resources.Of(cpus: 0.1m) };
        var run = new TaskRun(spec, [], _sandbox.PathOf(spec.Id));
        run.Environment = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" };
        return run;
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        await Eventually.TrueAsync(condition, "the pipeline's background cleanup ran", TimeSpan.FromSeconds(20));
    }

    /// <summary>A stage that records each call (and can refuse, throw, or save state).</summary>
    private sealed class Recording(string name, List<string> calls) : ILaunchStage
    {
        public string? Refuse { get; init; }

        public bool Throw { get; init; }

        public string? State { get; init; }

        public string Name => name;

        public string? Prepare(TaskRun run)
        {
            Record("prepare");
            if (Throw)
            {
                throw new IOException($"{name} broke");
            }

            if (State is not null)
            {
                run.SaveStageState(name, State);
            }

            return Refuse;
        }

        public void AfterStart(TaskRun run) => Record(run.Pid > 0 ? "after-start pid" : "after-start without pid");

        public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken)
        {
            Record("cleanup");
            return Task.CompletedTask;
        }

        public void Recover(TaskRun run) => Record("recover");

        private void Record(string what)
        {
            lock (calls)
            {
                calls.Add($"{name} {what}");
            }
        }
    }
}
