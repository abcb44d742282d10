using Drover.Core;
using Drover.Core.Api;
using Drover.Master.Events;

namespace Drover.Master.Tests.Events;

public sealed class KilledForHealthTests
{
    private static TaskView Killed(params TaskStatus[] statuses) => new()
    {
        Id = "app.1",
        Name = "/app",
        State = TaskState.Killed,
        Cpus = 0.1m,
        Mem = 32,
        Disk = 0,
        SubmittedAt = DateTimeOffset.UnixEpoch,
        AppId = "/app",
        // The record's Reason is sticky: earlier health updates set it.
        Reason = TaskReasons.TaskHealthCheckStatusUpdated,
        Healthy = true,
        Statuses = [.. statuses],
    };

    private static TaskStatus S(TaskState state, string? reason = null, bool? healthy = null) =>
        new() { TaskId = "app.1", State = state, Reason = reason, Healthy = healthy };

    [Fact]
    public void KilledForHealth_OrdinaryKillAfterHealthUpdates_False() =>
        Assert.False(EventFactory.KilledForHealth(Killed(
            S(TaskState.Running, TaskReasons.TaskHealthCheckStatusUpdated, healthy: true),
            S(TaskState.Killing),
            S(TaskState.Killed))));

    [Fact]
    public void KilledForHealth_AgentKilledForFailingChecks_True() =>
        Assert.True(EventFactory.KilledForHealth(Killed(
            S(TaskState.Running, TaskReasons.TaskHealthCheckStatusUpdated, healthy: false),
            S(TaskState.Killing),
            S(TaskState.Killed, TaskReasons.TaskHealthCheckStatusUpdated, healthy: false))));
}
