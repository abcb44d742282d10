using Drover.Core.Mesos;

namespace Drover.Core.Tests;

public sealed class MesosTaskIdsTests
{
    [Fact]
    public void MesosTaskId_FrameworkTask_RoundTripsThroughTheDroverId()
    {
        var droverId = MesosTaskIds.ToDroverId("fw-0001", "web.1");
        var spec = new TaskSpec { Id = droverId, Name = "web", Resources = Resources.Of(1), FrameworkId = "fw-0001" };

        Assert.Equal("fw-0001.web.1", droverId);
        Assert.Equal("web.1", spec.MesosTaskId());
    }

    [Theory]
    [InlineData(null, "task.abc", "task.abc")]
    [InlineData("fw", "other.t", "other.t")]
    [InlineData("fw", "fw.", "fw.")]
    [InlineData("fw", "fwx.t", "fwx.t")]
    public void FromDroverId_NotThatFrameworksPrefix_Unchanged(string? framework, string droverId, string expected) =>
        Assert.Equal(expected, MesosTaskIds.FromDroverId(framework, droverId));
}
