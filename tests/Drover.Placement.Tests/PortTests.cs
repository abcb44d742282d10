using Drover.Core;

namespace Drover.Placement.Tests;

public class PortTests
{
    [Fact]
    public void Place_PortsRequested_LowestFreePortsAssigned()
    {
        var ports = PortRanges.FromRanges([new PortRange(31005, 31010), new PortRange(31000, 31000), new PortRange(31002, 31002)]);
        var cluster = Build.Cluster(Build.Agent("a1", ports: ports));

        var plan = Build.Place(cluster, Build.Request(ports: 3));

        Assert.Equal([31000, 31002, 31005], Assert.Single(plan.Placed).Ports.ToArray());
    }

    [Fact]
    public void Place_NoPortsRequested_NoPortsAssigned()
    {
        var plan = Build.Place(Build.Cluster(Build.Agent("a1")), Build.Request(ports: 0));

        Assert.Empty(Assert.Single(plan.Placed).Ports);
    }

    [Fact]
    public void Place_PortsAcrossBatch_DistinctAndLowestFirst()
    {
        var ports = PortRanges.FromRanges([new PortRange(31000, 31002), new PortRange(31010, 31012)]);
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 8, ports: ports));

        var plan = Build.Place(cluster, Build.Requests(3, ports: 2));

        Assert.Empty(plan.Unplaced);
        Assert.Equal([31000, 31001], plan.Placed[0].Ports.ToArray());
        Assert.Equal([31002, 31010], plan.Placed[1].Ports.ToArray());
        Assert.Equal([31011, 31012], plan.Placed[2].Ports.ToArray());
    }

    [Fact]
    public void Place_PortsExhaustedInBatch_OverflowsToAgentWithPorts()
    {
        var cluster = Build.Cluster(
            Build.Agent("a1", cpus: 8, ports: PortRanges.Range(31000, 31002), total: Resources.Of(16, 8192)),
            Build.Agent("a2", cpus: 8, ports: PortRanges.Range(32000, 32009)));

        var plan = Build.Place(cluster, Build.Requests(2, ports: 2));

        // a1 is half used, so bin-packing prefers it until its ports run out.
        Assert.Equal("a1", plan.Placed[0].AgentId);
        Assert.Equal([31000, 31001], plan.Placed[0].Ports.ToArray());
        Assert.Equal("a2", plan.Placed[1].AgentId);
        Assert.Equal([32000, 32001], plan.Placed[1].Ports.ToArray());
    }

    [Fact]
    public void Place_TooFewPortsAfterBatch_ReasonNamesMostFreePorts()
    {
        var cluster = Build.Cluster(Build.Agent("a1", cpus: 8, ports: PortRanges.Range(31000, 31002)));

        var plan = Build.Place(cluster, Build.Requests(2, ports: 2));

        Assert.Single(plan.Placed);
        var failure = plan.SingleFailure();
        Assert.Equal("no agent has 2 free ports; the most is 1", failure.Reason);
        Assert.Equal(1, failure.RejectedBy["ports"]);
    }
}
