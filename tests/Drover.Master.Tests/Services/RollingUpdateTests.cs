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
    /// Simulates a whole rolling update step by step (new instances become healthy one step after they
    /// start; kills take effect at once) and checks the invariants at every step.
    /// </summary>
    [Theory]
    [InlineData(10, 0.5, 0.0)]
    [InlineData(10, 1.0, 0.0)]
    [InlineData(10, 1.0, 1.0)]
    [InlineData(10, 0.0, 0.0)]
    [InlineData(7, 0.6, 0.3)]
    [InlineData(1, 1.0, 0.0)]
    public void Next_SimulatedUpdate_NeverBelowFloorNeverAboveCeilingAndFinishes(int n, double minHc, double maxOc)
    {
        var (floor, ceiling) = RollingUpdate.Bounds(n, (decimal)minHc, (decimal)maxOc);
        int old = n, fresh = 0, freshHealthy = 0;
        for (var step = 0; step < 100; step++)
        {
            var state = new RollingState(n, old, old, freshHealthy);
            var target = RollingUpdate.Next(state, (decimal)minHc, (decimal)maxOc);
            if (target.Done(state))
            {
                Assert.Equal(0, old);
                Assert.Equal(n, freshHealthy);
                return;
            }

            // Apply: kill old down to target, start new up to target; started ones turn healthy next step.
            freshHealthy = fresh;
            old = Math.Min(old, target.Old);
            fresh = Math.Max(fresh, target.New);
            Assert.True(old + freshHealthy >= Math.Min(floor, n), $"step {step}: {old} old + {freshHealthy} healthy new < floor {floor}");
            Assert.True(old + fresh <= ceiling, $"step {step}: {old} + {fresh} > ceiling {ceiling}");
        }

        Assert.Fail("the update did not finish in 100 steps");
    }

    [Fact]
    public void Next_NewVersionNeverHealthy_KeepsFloorOfOldInstances()
    {
        var target = RollingUpdate.Next(new RollingState(Instances: 10, OldAlive: 10, OldHealthy: 10, NewHealthy: 0), 0.5m, 0m);

        Assert.Equal(5, target.Old);
        Assert.Equal(5, target.New);

        // However long the new ones stay unhealthy, old ones are not taken below the floor.
        var again = RollingUpdate.Next(new RollingState(10, 5, 5, 0), 0.5m, 0m);
        Assert.Equal(5, again.Old);
    }
}
