using Drover.Core;

namespace Drover.Placement.Tests;

public class FailureReasonTests
{
    [Fact]
    public void Place_NoAgents_EveryRequestSaysNoAgentsRegistered()
    {
        var plan = Build.Place(ClusterSnapshot.Empty, Build.Requests(2));

        Assert.Empty(plan.Placed);
        Assert.Equal(["task-1", "task-2"], plan.Unplaced.Select(f => f.TaskId));
        Assert.All(plan.Unplaced, f => Assert.Equal("no agents are registered", f.Reason));
        Assert.All(plan.Unplaced, f => Assert.Empty(f.RejectedBy));
    }

    public static TheoryData<PlacementRequest, string> TooLarge => new()
    {
        { Build.Request(cpus: 64), "no agent has 64 cpus free; the largest has 2" },
        { Build.Request(cpus: 2.25m), "no agent has 2.25 cpus free; the largest has 2" },
        { Build.Request(mem: 4096), "no agent has 4096 MiB of memory free; the largest has 1024 MiB" },
        { Build.Request(disk: 500), "no agent has 500 MiB of disk free; the largest has 100 MiB" },
        { Build.Request(gpus: 2), "no agent has 2 gpus free; the largest has 1" },
        { Build.Request(ports: 3), "no agent has 3 free ports; the most is 1" },
        { Build.Request(cpus: 64, mem: 4096), "no agent has 64 cpus free; the largest has 2" },
    };

    [Theory]
    [MemberData(nameof(TooLarge))]
    public void Place_LargerThanAnySchedulableAgent_NamesDimensionAndLargest(PlacementRequest request, string reason)
    {
        // The unschedulable giant does not count as "the largest".
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 2, mem: 512, disk: 100, gpus: 1, ports: PortRanges.Of(31000)),
            Build.Agent("a2", cpus: 1, mem: 1024, disk: 50, gpus: 0, ports: PortRanges.Empty),
            Build.Agent("giant", cpus: 128, mem: 1 << 20, disk: 1 << 20, gpus: 8, schedulable: false));

        var plan = Build.Place(cluster, request);

        Assert.Empty(plan.Placed);
        Assert.Equal(reason, plan.SingleFailure().Reason);
    }

    [Fact]
    public void Place_ConstraintAndUnschedulable_SummaryCountsEachFilter()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", hostname: "h1"),
            Build.Agent("a2", hostname: "h2"),
            Build.Agent("a3", hostname: "foo", schedulable: false));

        var failure = Build.Place(cluster, Build.Request(constraints: "hostname:IS:foo")).SingleFailure();

        Assert.Equal("0 of 3 agents fit: 2 rejected by constraint hostname:IS:foo, 1 not schedulable", failure.Reason);
        Assert.Equal(new Dictionary<string, int> { ["constraints"] = 2, ["schedulable"] = 1 }, failure.RejectedBy);
    }

    [Fact]
    public void Place_BigAgentFailsConstraintSmallLacksCpus_SummaryNotLargestMessage()
    {
        var cluster = Build.Cluster(
            Build.Agent("big", cpus: 64, attributes: "rack:r1"),
            Build.Agent("small", cpus: 2, attributes: "rack:r9"),
            Build.Agent("small2", cpus: 2, attributes: "rack:r9"));

        var failure = Build.Place(cluster, Build.Request(cpus: 32, constraints: "rack:IS:r9")).SingleFailure();

        Assert.Equal("0 of 3 agents fit: 2 without 32 cpus free, 1 rejected by constraint rack:IS:r9", failure.Reason);
        Assert.Equal(new Dictionary<string, int> { ["resources"] = 2, ["constraints"] = 1 }, failure.RejectedBy);
    }

    [Fact]
    public void Place_AgentFailingSeveralFilters_CountedOnceByFirstFilter()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 1, ports: PortRanges.Empty, schedulable: false), // fails all four
            Build.Agent("a2", cpus: 1, ports: PortRanges.Empty), // resources, ports, constraint
            Build.Agent("a3", cpus: 8, ports: PortRanges.Empty), // ports, constraint
            Build.Agent("a4", cpus: 8), // constraint only
            Build.Agent("a5", cpus: 8, hostname: "other")); // constraint only

        var failure = Build.Place(cluster, Build.Request(cpus: 4, ports: 1, constraints: "hostname:IS:nowhere")).SingleFailure();

        Assert.Equal(new Dictionary<string, int> { ["schedulable"] = 1, ["resources"] = 1, ["ports"] = 1, ["constraints"] = 2 }, failure.RejectedBy);
        Assert.Equal(
            "0 of 5 agents fit: 2 rejected by constraint hostname:IS:nowhere, 1 not schedulable, 1 without 4 cpus free, 1 without 1 free ports",
            failure.Reason);
    }

    [Fact]
    public void Place_SeveralConstraints_EachNamedWithItsOwnCount()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", attributes: "rack:r1", zone: "z1"),
            Build.Agent("a2", attributes: "rack:r2", zone: "z1"),
            Build.Agent("a3", attributes: "rack:r2", zone: "z2"));

        var failure = Build.Place(cluster, Build.Request(constraints: ["rack:IS:r2", "@zone:IS:z9"])).SingleFailure();

        Assert.Equal("0 of 3 agents fit: 2 rejected by constraint @zone:IS:z9, 1 rejected by constraint rack:IS:r2", failure.Reason);
        Assert.Equal(3, failure.RejectedBy["constraints"]);
    }

    [Fact]
    public void Place_SingleUnschedulableAgent_SingularSummary()
    {
        var failure = Build.Place(Build.Cluster(Build.Agent("a1", schedulable: false)), Build.Request()).SingleFailure();

        Assert.Equal("0 of 1 agent fits: 1 not schedulable", failure.Reason);
        Assert.Equal(new Dictionary<string, int> { ["schedulable"] = 1 }, failure.RejectedBy);
    }

    [Fact]
    public void Place_MemoryShortOnSomeAgents_SummaryUsesMiBWording()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", mem: 8192, hostname: "h1"),
            Build.Agent("a2", mem: 512, hostname: "h2"));

        var failure = Build.Place(cluster, Build.Request(mem: 1024, constraints: "hostname:IS:h2")).SingleFailure();

        Assert.Equal("0 of 2 agents fit: 1 without 1024 MiB of memory free, 1 rejected by constraint hostname:IS:h2", failure.Reason);
    }

    [Fact]
    public void Place_SameRequestFailsAgainAfterAPlacement_ReasonReflectsNewState()
    {
        // Totals of 3,000 millicpus and 3,000 MiB make 4 cpus/0 MiB and 2 cpus/2,000 MiB the same size, so
        // largest-first keeps their order: t1 and t2 fail, t3 is placed, then t4 (the same as t1) fails again.
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 2, mem: 2000), Build.Agent("a2", cpus: 1, mem: 1000));

        var plan = Build.Place(cluster,
            Build.Request("t1", cpus: 4, mem: 0), Build.Request("t2", cpus: 4, mem: 0), Build.Request("t3", cpus: 2, mem: 2000), Build.Request("t4", cpus: 4, mem: 0));

        Assert.Equal("a1", plan.Where()["t3"]);
        Assert.Equal(
            ["no agent has 4 cpus free; the largest has 2", "no agent has 4 cpus free; the largest has 2", "no agent has 4 cpus free; the largest has 1"],
            plan.Unplaced.Select(f => f.Reason));
        Assert.Equal(["t1", "t2", "t4"], plan.Unplaced.Select(f => f.TaskId));
    }

    [Fact]
    public void Place_MixedSizes_LargestPlacedFirstSoTheSmallFillTheGaps()
    {
        // In request order, binpack puts the 1-cpu task on a2 (fuller after), the first 2-cpu task on a1,
        // and the second finds 1 cpu free on each. Largest first: 2 → a2, 2 → a1, 1 → a1.
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 3), Build.Agent("a2", cpus: 2));

        var plan = Build.Place(cluster, Build.Request("small", cpus: 1), Build.Request("large-1", cpus: 2), Build.Request("large-2", cpus: 2));

        Assert.Empty(plan.Unplaced);
        Assert.Equal(new Dictionary<string, string> { ["large-1"] = "a2", ["large-2"] = "a1", ["small"] = "a1" }, plan.Where());
        Assert.Equal(["large-1", "large-2", "small"], plan.Placed.Select(d => d.TaskId));
    }
}
