using Drover.Master.Services;

namespace Drover.Master.Tests.Services;

public sealed class RollingUpdateTests
{
    [Theory]
    [InlineData(10, 0.5, 0.0, 5, 10)]
    [InlineData(10, 1.0, 0.0, 10, 11)] // 1/0 would deadlock: one extra instance is allowed
    [InlineData(10, 1.0, 1.0, 10, 20)]
    [InlineData(3, 0.5, 0.0, 2, 3)]
    [InlineData(0, 1.0, 1.0, 0, 0)]
    public void Bounds_Capacities_FloorAndCeiling(int n, double minHc, double maxOc, int floor, int ceiling)
    {
        var (min, max) = RollingUpdate.Bounds(n, (decimal)minHc, (decimal)maxOc);

        Assert.Equal(floor, min);
        Assert.Equal(ceiling, max);
    }

    /// <summary>
    /// Simulates a whole rolling update step by step and checks the invariants at every step: new instances
    /// become healthy one step after they start; a killed instance ends at once, or (slow kill, a service
    /// draining for its kill grace) only after <paramref name="killSteps"/> steps, counting against the
    /// ceiling until then.
    /// </summary>
    [Theory]
    [InlineData(10, 0.5, 0.0, 0)]
    [InlineData(10, 1.0, 0.0, 0)]
    [InlineData(10, 1.0, 1.0, 0)]
    [InlineData(10, 0.0, 0.0, 0)]
    [InlineData(7, 0.6, 0.3, 0)]
    [InlineData(1, 1.0, 0.0, 0)]
    [InlineData(3, 0.5, 0.0, 2)]
    [InlineData(10, 0.5, 0.0, 3)]
    [InlineData(10, 1.0, 0.0, 2)]
    [InlineData(4, 0.5, 0.5, 2)]
    [InlineData(10, 1.0, 0.5, 3)]
    [InlineData(10, 0.0, 0.0, 3)]
    [InlineData(1, 1.0, 0.0, 5)]
    public void Next_SimulatedUpdate_NeverBelowFloorNeverAboveCeilingAndFinishes(int n, double minHc, double maxOc, int killSteps)
    {
        var (floor, ceiling) = RollingUpdate.Bounds(n, (decimal)minHc, (decimal)maxOc);
        int old = n, fresh = 0, freshHealthy = 0;
        var dying = new List<int>(); // steps left until each killed instance has ended
        for (var step = 0; step < 200; step++)
        {
            var state = new RollingState(n, old, old, freshHealthy, fresh, dying.Count);
            var target = RollingUpdate.Next(state, (decimal)minHc, (decimal)maxOc);
            Assert.InRange(target.Launch, 0, Math.Max(0, target.New - fresh));
            if (target.Done(state))
            {
                Assert.Equal(0, old);
                Assert.Equal(n, freshHealthy);
                return;
            }

            // Apply: kill old down to target (each then dies for killSteps steps), launch what the target
            // allows; started ones turn healthy next step.
            dying = [.. dying.Select(d => d - 1).Where(d => d > 0)];
            freshHealthy = fresh;
            var killed = Math.Max(0, old - target.Old);
            old -= killed;
            if (killSteps > 0)
            {
                dying.AddRange(Enumerable.Repeat(killSteps, killed));
            }

            fresh += target.Launch;
            Assert.True(old + freshHealthy >= Math.Min(floor, n), $"step {step}: {old} old + {freshHealthy} healthy new < floor {floor}");
            Assert.True(old + fresh + dying.Count <= ceiling, $"step {step}: {old} old + {fresh} new + {dying.Count} dying > ceiling {ceiling}");
        }

        Assert.Fail("the update did not finish in 200 steps");
    }

    [Fact]
    public void Next_SlowKillNoOverCapacity_NoNewInstanceUntilTheOldOneEnded()
    {
        // /chaos/c: 3 instances, minimumHealthCapacity 0.5, maximumOverCapacity 0. One old instance was
        // killed to make room and is still in its kill grace.
        var killing = RollingUpdate.Next(new RollingState(Instances: 3, OldAlive: 2, OldHealthy: 2, NewHealthy: 0, NewAlive: 0, Dying: 1), 0.5m, 0m);

        Assert.Equal(1, killing.New);
        Assert.Equal(0, killing.Launch);

        var ended = RollingUpdate.Next(new RollingState(3, 2, 2, 0, 0, 0), 0.5m, 0m);

        Assert.Equal(1, ended.Launch);
    }

    [Fact]
    public void Next_OldKilledThisPass_RoomFreedOnlyOnceItEnded()
    {
        // 3 old, none new: one old may go (floor 2) but its room is free only once it has ended.
        var first = RollingUpdate.Next(new RollingState(3, 3, 3, 0, 0, 0), 0.5m, 0m);

        Assert.Equal(2, first.Old);
        Assert.Equal(0, first.Launch);
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(4, 6)]
    [InlineData(10, 15)]
    public void Next_HalfOverCapacityWithDying_AtMostFloorOfOneAndAHalfLiveIncludingDying(int n, int ceiling)
    {
        for (var oldAlive = 0; oldAlive <= n; oldAlive++)
        {
            for (var newAlive = 0; newAlive <= n; newAlive++)
            {
                for (var dying = 0; dying <= n; dying++)
                {
                    var s = new RollingState(n, oldAlive, oldAlive, newAlive, newAlive, dying);
                    var target = RollingUpdate.Next(s, 0.5m, 0.5m);
                    var live = oldAlive + newAlive + dying;
                    Assert.True(live + target.Launch <= Math.Max(ceiling, live), $"{s}: launching {target.Launch} makes {live + target.Launch} > {ceiling}");
                }
            }
        }
    }

    [Theory]
    [InlineData(3, 0.0, 3)]
    [InlineData(3, 0.5, 4)]
    [InlineData(4, 0.5, 6)]
    [InlineData(10, 1.0, 20)]
    public void Ceiling_OutsideRollingUpdate_FloorOfOverCapacityNoExtraInstance(int n, double maxOc, int expected) =>
        Assert.Equal(expected, RollingUpdate.Ceiling(n, (decimal)maxOc));

    [Fact]
    public void Next_NewVersionNeverHealthy_KeepsFloorOfOldInstances()
    {
        var target = RollingUpdate.Next(new RollingState(Instances: 10, OldAlive: 10, OldHealthy: 10, NewHealthy: 0, NewAlive: 0, Dying: 0), 0.5m, 0m);

        Assert.Equal(5, target.Old);
        Assert.Equal(5, target.New);

        // However long the new ones stay unhealthy, old ones are not taken below the floor.
        var again = RollingUpdate.Next(new RollingState(10, 5, 5, 0, 5, 0), 0.5m, 0m);
        Assert.Equal(5, again.Old);
    }
}
