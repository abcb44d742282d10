namespace Drover.Core.Tests;

public class TaskStatesTests
{
    [Theory]
    [InlineData(TaskState.Pending, false, false)]
    [InlineData(TaskState.Staging, false, true)]
    [InlineData(TaskState.Starting, false, true)]
    [InlineData(TaskState.Running, false, true)]
    [InlineData(TaskState.Killing, false, true)]
    [InlineData(TaskState.Finished, true, false)]
    [InlineData(TaskState.Failed, true, false)]
    [InlineData(TaskState.Killed, true, false)]
    [InlineData(TaskState.Error, true, false)]
    [InlineData(TaskState.Lost, true, false)]
    [InlineData(TaskState.Dropped, true, false)]
    [InlineData(TaskState.Unreachable, false, true)]
    [InlineData(TaskState.Gone, true, false)]
    [InlineData(TaskState.GoneByOperator, true, false)]
    [InlineData(TaskState.Unknown, false, false)]
    public void IsTerminalAndHoldsResources_EachState_MatchMesosSemantics(TaskState state, bool terminal, bool holds)
    {
        Assert.Equal(terminal, state.IsTerminal());
        Assert.Equal(holds, state.HoldsResources());
    }

    [Fact]
    public void HoldsResources_AnyTerminalState_IsFalse()
    {
        Assert.Equal(15, Enum.GetValues<TaskState>().Length);
        foreach (var state in Enum.GetValues<TaskState>())
        {
            Assert.False(state.IsTerminal() && state.HoldsResources(), state.ToString());
        }
    }

    [Theory]
    [InlineData(TaskState.Pending, "TASK_PENDING")]
    [InlineData(TaskState.Staging, "TASK_STAGING")]
    [InlineData(TaskState.Starting, "TASK_STARTING")]
    [InlineData(TaskState.Running, "TASK_RUNNING")]
    [InlineData(TaskState.Killing, "TASK_KILLING")]
    [InlineData(TaskState.Finished, "TASK_FINISHED")]
    [InlineData(TaskState.Failed, "TASK_FAILED")]
    [InlineData(TaskState.Killed, "TASK_KILLED")]
    [InlineData(TaskState.Error, "TASK_ERROR")]
    [InlineData(TaskState.Lost, "TASK_LOST")]
    [InlineData(TaskState.Dropped, "TASK_DROPPED")]
    [InlineData(TaskState.Unreachable, "TASK_UNREACHABLE")]
    [InlineData(TaskState.Gone, "TASK_GONE")]
    [InlineData(TaskState.GoneByOperator, "TASK_GONE_BY_OPERATOR")]
    [InlineData(TaskState.Unknown, "TASK_UNKNOWN")]
    public void WireName_EachState_IsMesosName(TaskState state, string wire)
    {
        Assert.Equal(wire, state.WireName());
        Assert.True(TaskStates.TryParse(wire, out var parsed));
        Assert.Equal(state, parsed);
    }

    [Theory]
    [InlineData("TASK_RUNNING", TaskState.Running)]
    [InlineData("running", TaskState.Running)]
    [InlineData("Running", TaskState.Running)]
    [InlineData("task_killed", TaskState.Killed)]
    [InlineData("KILLED", TaskState.Killed)]
    [InlineData("gone_by_operator", TaskState.GoneByOperator)]
    [InlineData("TASK_GONE_BY_OPERATOR", TaskState.GoneByOperator)]
    [InlineData("unreachable", TaskState.Unreachable)]
    [InlineData("pending", TaskState.Pending)]
    public void TryParse_WireOrShortName_ParsesCaseInsensitively(string text, TaskState expected)
    {
        Assert.True(TaskStates.TryParse(text, out var state));
        Assert.Equal(expected, state);
    }

    [Theory]
    [InlineData("")]
    [InlineData("TASK_")]
    [InlineData("RUN")]
    [InlineData("sleeping")]
    [InlineData("GoneByOperator")]
    [InlineData("TASK_TASK_RUNNING")]
    [InlineData(" running")]
    public void TryParse_UnknownName_IsFalse(string text)
    {
        Assert.False(TaskStates.TryParse(text, out _));
    }
}
