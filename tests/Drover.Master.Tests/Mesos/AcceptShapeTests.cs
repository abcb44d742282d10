using Drover.Core;
using Drover.Core.Mesos;
using Drover.Master.Mesos;

namespace Drover.Master.Tests.Mesos;

/// <summary>The shape and size checks of ACCEPT and SUBSCRIBE, run before anything is consumed or stored (pure).</summary>
public sealed class AcceptShapeTests
{
    private static MOperation Launch(MCommandInfo command, MLabels? labels = null) => new()
    {
        Type = "LAUNCH",
        Launch = new MLaunch([new MTaskInfo { TaskId = new MId("t"), Command = command, Labels = labels }]),
    };

    [Fact]
    public void AcceptShapeError_ValidCommand_Null() =>
        Assert.Null(FrameworkManager.AcceptShapeError([Launch(new MCommandInfo { Value = "true", Environment = new MEnvironment([new MEnvVariable("A", "b", null)]) })]));

    [Theory]
    [InlineData("", "name")]
    [InlineData("A=B", "name")]
    [InlineData("A\0B", "name")]
    public void AcceptShapeError_BadEnvName_NamesTheVariable(string name, string field) =>
        Assert.Contains($"variables[0].{field}", FrameworkManager.AcceptShapeError([Launch(new MCommandInfo { Value = "true", Environment = new MEnvironment([new MEnvVariable(name, "v", null)]) })]),
            StringComparison.Ordinal);

    [Fact]
    public void AcceptShapeError_ExecutorOfAGroupWithNulInArguments_NamesIt()
    {
        var op = new MOperation
        {
            Type = "LAUNCH_GROUP",
            LaunchGroup = new MLaunchGroup(new MExecutorInfo { Type = "CUSTOM", Command = new MCommandInfo { Value = "run", Shell = false, Arguments = ["run", "a\0"] } }, new MTaskGroupInfo([])),
        };

        Assert.Contains("launch_group.executor.command.arguments[1]", FrameworkManager.AcceptShapeError([op]), StringComparison.Ordinal);
    }

    [Fact]
    public void AcceptShapeError_TaskLabelsOver256KiB_Refused() =>
        Assert.Contains("labels", FrameworkManager.AcceptShapeError([Launch(new MCommandInfo { Value = "true" }, new MLabels([new MLabel("k", new string('v', 300 * 1024))]))]),
            StringComparison.Ordinal);

    [Fact]
    public void AcceptShapeError_TooManyTasks_Refused()
    {
        var tasks = Enumerable.Range(0, FrameworkManager.MaxTasksPerAccept + 1).Select(i => new MTaskInfo { TaskId = new MId($"t{i}"), Command = new MCommandInfo { Value = "true" } }).ToList();
        Assert.Contains("at most", FrameworkManager.AcceptShapeError([new MOperation { Type = "LAUNCH", Launch = new MLaunch(tasks) }]), StringComparison.Ordinal);
    }

    [Fact]
    public void FrameworkInfoSizeError_HugeNameOrLabels_NamesTheField()
    {
        Assert.StartsWith("name:", FrameworkManager.FrameworkInfoSizeError(new MFrameworkInfo { User = "u", Name = new string('n', InputLimits.MaxShortText + 1) }), StringComparison.Ordinal);
        Assert.StartsWith("labels:", FrameworkManager.FrameworkInfoSizeError(new MFrameworkInfo { User = "u", Name = "n", Labels = new MLabels([new MLabel("k", new string('v', 300 * 1024))]) }), StringComparison.Ordinal);
        Assert.Null(FrameworkManager.FrameworkInfoSizeError(new MFrameworkInfo { User = "u", Name = "n" }));
    }
}
