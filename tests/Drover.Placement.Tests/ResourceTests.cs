using Drover.Core;

namespace Drover.Placement.Tests;

public class ResourceTests
{
    [Fact]
    public void Place_RequestEqualsFreeExactly_Placed()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 1.5m, mem: 1024, disk: 100, gpus: 1));

        var plan = Build.Place(cluster, Build.Request(cpus: 1.5m, mem: 1024, disk: 100, gpus: 1));

        Assert.Empty(plan.Unplaced);
        Assert.Equal("a1", Assert.Single(plan.Placed).AgentId);
    }

    public static TheoryData<string, decimal, long, long, int> OneUnitTooMuch => new()
    {
        { "cpus", 1.501m, 1024, 100, 1 },
        { "mem", 1.5m, 1025, 100, 1 },
        { "disk", 1.5m, 1024, 101, 1 },
        { "gpus", 1.5m, 1024, 100, 2 },
    };

    [Theory]
    [MemberData(nameof(OneUnitTooMuch))]
    public void Place_RequestExceedsFreeByOneUnit_RejectedByResources(string dimension, decimal cpus, long mem, long disk, int gpus)
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 1.5m, mem: 1024, disk: 100, gpus: 1));

        var plan = Build.Place(cluster, Build.Request(cpus: cpus, mem: mem, disk: disk, gpus: gpus));

        Assert.Empty(plan.Placed);
        var failure = plan.SingleFailure();
        Assert.Equal(1, failure.RejectedBy["resources"]);
        Assert.Contains(dimension == "mem" ? "memory" : dimension, failure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Place_ThreeOneCpuTasksOnTwoCpuAgent_TwoPlacedThirdUnplaced()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 2));

        var plan = Build.Place(cluster, Build.Requests(3, cpus: 1));

        Assert.Equal(["task-1", "task-2"], plan.Placed.Select(d => d.TaskId));
        Assert.All(plan.Placed, d => Assert.Equal("a1", d.AgentId));
        var failure = plan.SingleFailure();
        Assert.Equal("task-3", failure.TaskId);
        Assert.Equal("no agent has 1 cpus free; the largest has 0", failure.Reason);
        Assert.Equal(1, failure.RejectedBy["resources"]);
    }

    [Fact]
    public void Place_FractionalCpusAcrossBatch_ConsumedExactly()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 1));

        var plan = Build.Place(cluster, Build.Request("t1", cpus: 0.3m), Build.Request("t2", cpus: 0.3m), Build.Request("t3", cpus: 0.3m),
            Build.Request("t4", cpus: 0.2m), Build.Request("t5", cpus: 0.1m));

        Assert.Equal(["t1", "t2", "t3", "t5"], plan.Placed.Select(d => d.TaskId));
        Assert.Equal("no agent has 0.2 cpus free; the largest has 0.1", plan.SingleFailure().Reason);
    }

    [Fact]
    public void Place_MemoryAcrossBatch_ConsumedExactly()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 8, mem: 1000));

        var plan = Build.Place(cluster, Build.Request("t1", mem: 600), Build.Request("t2", mem: 400), Build.Request("t3", mem: 1));

        Assert.Equal(["t1", "t2"], plan.Placed.Select(d => d.TaskId));
        Assert.Equal("no agent has 1 MiB of memory free; the largest has 0 MiB", plan.SingleFailure().Reason);
    }

    public static TheoryData<string, PlacementRequest> HalfOfEachDimension => new()
    {
        { "cpus", Build.Request(cpus: 2, mem: 0) },
        { "memory", Build.Request(cpus: 0, mem: 2048) },
        { "disk", Build.Request(cpus: 0, mem: 0, disk: 5000) },
        { "gpus", Build.Request(cpus: 0, mem: 0, gpus: 2) },
    };

    [Theory]
    [MemberData(nameof(HalfOfEachDimension))]
    public void Place_BatchConsumesEachDimension_ThirdRequestUnplaced(string dimension, PlacementRequest half)
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 4, mem: 4096, disk: 10_000, gpus: 4));

        var plan = Build.Place(cluster, half with { TaskId = "t1" }, half with { TaskId = "t2" }, half with { TaskId = "t3" });

        Assert.Equal(["t1", "t2"], plan.Placed.Select(d => d.TaskId));
        Assert.Contains(dimension, plan.SingleFailure().Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Place_FirstAgentFilledInBatch_OverflowsToNextAgent()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 2, mem: 1024), Build.Agent("a2", cpus: 1, mem: 1024));

        var plan = Build.Place(cluster, Build.Requests(3, cpus: 1));

        Assert.Empty(plan.Unplaced);
        Assert.Equal(new Dictionary<string, int> { ["a1"] = 2, ["a2"] = 1 }, plan.PerAgent());
    }

    [Fact]
    public void Place_UnschedulableAgent_Skipped()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 64, schedulable: false),
            Build.Agent("a2", cpus: 2));

        var plan = Build.Place(cluster, Build.Requests(3, cpus: 1));

        Assert.All(plan.Placed, d => Assert.Equal("a2", d.AgentId));
        Assert.Equal(2, plan.Placed.Length);
        var failure = plan.SingleFailure();
        Assert.Equal(1, failure.RejectedBy["schedulable"]);
        Assert.Equal(1, failure.RejectedBy["resources"]);
    }

    [Fact]
    public void Place_SnapshotNotMutated_SecondPassSeesOriginalFree()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 1));
        var engine = new PlacementEngine(new PlacementOptions());

        var first = engine.Place(cluster, [Build.Request()]);
        var second = engine.Place(cluster, [Build.Request()]);

        Assert.Single(first.Placed);
        Assert.Single(second.Placed);
        Assert.Equal(Resources.Of(1, 4096, 10_000, ports: PortRanges.Range(31000, 31099)), cluster.Agents[0].Free);
    }
}
