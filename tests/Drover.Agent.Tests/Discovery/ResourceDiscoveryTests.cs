using Drover.Agent.Discovery;
using Drover.Core;

namespace Drover.Agent.Tests.Discovery;

public sealed class ResourceDiscoveryTests
{
    [Fact]
    public void Discover_ThisMachine_OffersPlausibleResourcesAndDefaultPorts()
    {
        var work = Path.Combine(Path.GetTempPath(), "drover-discovery-" + Guid.NewGuid().ToString("N"), "not-yet-created");

        var resources = ResourceDiscovery.Discover(work);

        Assert.InRange(resources.MilliCpus, 1, Environment.ProcessorCount * 1000L);
        Assert.True(resources.MemMiB > 0, resources.ToString());
        Assert.True(resources.DiskMiB > 0, resources.ToString());
        Assert.Equal(PortRanges.Range(31000, 32000), resources.Ports);
        Assert.Equal(0, resources.Gpus);
    }

    [Theory]
    [InlineData(500, 500)]
    [InlineData(1000, 1000)]
    [InlineData(2000, 2000)]
    [InlineData(4000, 3600)]
    [InlineData(8000, 7200)]
    [InlineData(64000, 63000)]
    public void OfferedMilliCpus_ByMachineSize_KeepsSmallReserve(long machine, long offered) =>
        Assert.Equal(offered, ResourceDiscovery.OfferedMilliCpus(machine));

    [Theory]
    [InlineData(400, 200)]
    [InlineData(1024, 768)]
    [InlineData(16384, 14746)]
    public void OfferedMemMiB_ByMachineSize_ReservesAtLeast256MiBOrTenPercent(long machine, long offered) =>
        Assert.Equal(offered, ResourceDiscovery.OfferedMemMiB(machine));

    [Theory]
    [InlineData(10_000, 9_000)]
    [InlineData(1_000_000, 1_000_000 - 5 * 1024)]
    [InlineData(0, 0)]
    public void OfferedDiskMiB_ByFreeSpace_ReservesTenPercentUpTo5GiB(long free, long offered) =>
        Assert.Equal(offered, ResourceDiscovery.OfferedDiskMiB(free));

    [Fact]
    public void Hostname_Always_IsNotEmpty() => Assert.False(string.IsNullOrWhiteSpace(ResourceDiscovery.Hostname()));
}
