using Drover.Core;
using Drover.Master.Services;

namespace Drover.Master.Tests.Services;

/// <summary>
/// An app's ceiling (<c>floor(instances × (1 + maximumOverCapacity))</c>) counts instances that were
/// killed but have not ended yet, as Marathon's TaskReplaceActor counts an old instance until it is
/// terminal: a service that drains on SIGTERM for its whole kill grace is not replaced while it still
/// runs when there is no room for both. The test plays agents that confirm kills late, or never.
/// </summary>
public sealed class SlowKillCapacityTests
{
    private readonly ControllerHarness _h = new();
    private readonly string _a;

    public SlowKillCapacityTests() => _a = _h.AddAgent("host-a");

    private static string App(int instances, decimal minimumHealth, decimal overCapacity, string env = "1", string extra = "") =>
        ControllerHarness.App("/slow", instances,
            $$""", "env": {"V": "{{env}}"}, "upgradeStrategy": {"minimumHealthCapacity": {{minimumHealth}}, "maximumOverCapacity": {{overCapacity}}}{{extra}}""");

    private string DeploySettled(int instances, decimal minimumHealth, decimal overCapacity, string extra = "")
    {
        var id = _h.Deploy(App(instances, minimumHealth, overCapacity, extra: extra));
        _h.Settle();
        Assert.Equal(instances, _h.LiveInstances(id).Count(ServiceController.IsHealthy));
        Assert.Null(_h.Registry.Get(id)!.Deployment);
        return id;
    }

    [Fact]
    public void RollingRestart_SlowKillNoOverCapacity_NoNewInstanceUntilTheOldOneEnded()
    {
        var id = DeploySettled(3, 0.5m, 0m);
        var originals = _h.Instances(id).Select(t => t.Id).ToHashSet();

        _h.Deploy(App(3, 0.5m, 0m, env: "2"));
        for (var i = 0; i < 5; i++)
        {
            _h.Step();
            _h.StartPlaced();
        }

        // One old instance may go (floor 2 of 3), and it is being killed; no new one while it runs.
        var all = _h.Instances(id);
        var dying = Assert.Single(all, t => t.State == TaskState.Killing);
        Assert.All(all, t => Assert.Contains(t.Id, originals));
        Assert.Equal(3, all.Length);

        _h.ConfirmKill(dying.Id);
        _h.Step();

        var fresh = Assert.Single(_h.Instances(id), t => !originals.Contains(t.Id));
        Assert.Equal(TaskState.Staging, fresh.State);
        Assert.Equal(3, _h.Instances(id).Length);
    }

    [Theory]
    [InlineData(3, 0.5, 0.0, 3)]
    [InlineData(4, 0.5, 0.5, 6)]
    [InlineData(4, 1.0, 0.5, 6)]
    [InlineData(3, 1.0, 0.0, 4)] // Marathon's one extra instance when the floor is the whole app
    [InlineData(5, 0.0, 0.0, 5)]
    public void RollingRestart_KillsEndTwoStepsLate_NeverAboveCeilingIncludingDyingAndFinishes(int n, double minimumHealth, double overCapacity, int ceiling)
    {
        var id = DeploySettled(n, (decimal)minimumHealth, (decimal)overCapacity);
        var originals = _h.Instances(id).Select(t => t.Id).ToHashSet();
        _h.Deploy(App(n, (decimal)minimumHealth, (decimal)overCapacity, env: "2"));

        var killingSince = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var step = 0; step < 100 && _h.Registry.Get(id)!.Deployment is not null; step++)
        {
            _h.Step();
            _h.StartPlaced();

            // Every instance not ended counts: placed or not, running, or killed and still in its grace.
            var all = _h.Instances(id);
            Assert.True(all.Length <= ceiling, $"step {step}: {all.Length} instances > {ceiling}: {string.Join(", ", all.Select(t => $"{t.Id} {t.State}"))}");

            foreach (var t in all.Where(t => t.State == TaskState.Killing))
            {
                killingSince.TryAdd(t.Id, step);
                if (step - killingSince[t.Id] >= 2)
                {
                    _h.ConfirmKill(t.Id);
                }
            }
        }

        Assert.Null(_h.Registry.Get(id)!.Deployment);
        _h.Settle();
        var final = _h.Instances(id);
        Assert.Equal(n, final.Length);
        Assert.All(final, t => Assert.DoesNotContain(t.Id, originals));
        Assert.Equal(n, killingSince.Count);
    }

    [Fact]
    public void ScaleDownThenUp_NoOverCapacity_WaitsForTheKilledInstanceToEnd()
    {
        var id = DeploySettled(3, 0.5m, 0m);

        _h.Deploy(App(2, 0.5m, 0m));
        _h.Step();
        var dying = Assert.Single(_h.Instances(id), t => t.State == TaskState.Killing);

        _h.Deploy(App(3, 0.5m, 0m));
        _h.Step();
        _h.Step();

        Assert.Equal(3, _h.Instances(id).Length); // 2 running + 1 dying: no launch yet

        _h.ConfirmKill(dying.Id);
        _h.Step();

        Assert.Equal(3, _h.Instances(id).Length);
        Assert.Single(_h.Instances(id), t => t.State == TaskState.Staging);
    }

    [Fact]
    public void FailedInstance_NoOverCapacity_ReplacedAtOnce()
    {
        var id = DeploySettled(3, 0.5m, 0m, extra: """, "backoffSeconds": 0""");
        var victim = _h.Instances(id)[0].Id;

        _h.Fail(victim);
        _h.Step();

        Assert.Equal(3, _h.Instances(id).Length);
        Assert.Single(_h.Instances(id), t => t.State == TaskState.Staging);
    }

    [Fact]
    public void RollingRestart_KillNeverCompletesBecauseTheAgentIsGone_DeploymentProceeds()
    {
        // "disabled": instances on an unreachable agent keep counting as the app's instances, so only
        // the dying one's place is in question.
        var id = DeploySettled(2, 0.5m, 0m, extra: """, "unreachableStrategy": "disabled" """);
        _h.Deploy(App(2, 0.5m, 0m, env: "2", extra: """, "unreachableStrategy": "disabled" """));
        _h.Step();
        var dying = Assert.Single(_h.Instances(id), t => t.State == TaskState.Killing);
        _h.Step();
        Assert.Equal(2, _h.Instances(id).Length);

        // Host A goes away before the kill is carried out: its tasks turn TASK_UNREACHABLE, and the
        // unconfirmed kill no longer holds the new version's room.
        var b = _h.AddAgent("host-b");
        _h.Partition(_a);
        Assert.Equal(TaskState.Unreachable, _h.State.GetTask(dying.Id)!.State);
        _h.Step();

        var fresh = Assert.Single(_h.OnAgent(id, b));
        Assert.Equal(TaskState.Staging, fresh.State);
    }
}
