using System.Collections.Immutable;
using System.Net;
using Drover.Client;
using Drover.Testing.Clusters;
using Drover.Testing.Netns;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>A <see cref="FactAttribute"/> skipped where network-namespace tests cannot run (see <see cref="NetnsNetwork.SkipReason"/>).</summary>
public sealed class MultiHostFactAttribute : FactAttribute
{
    public MultiHostFactAttribute()
    {
        if (NetnsNetwork.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>A <see cref="TheoryAttribute"/> skipped where network-namespace tests cannot run.</summary>
public sealed class MultiHostTheoryAttribute : TheoryAttribute
{
    public MultiHostTheoryAttribute()
    {
        if (NetnsNetwork.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>
/// A healthy <see cref="MultiHostCluster"/> shared by the tests of one class (xunit creates one per class
/// that asks for it): one <c>drover master</c> (spread strategy) and three <c>drover agent</c>s, each in
/// its own network namespace, hostname host1..3, rack r1/r1/r2, region <c>reg</c> and zone z1..3.
/// Tests that kill processes or cut hosts off must not use it: they start a cluster of their own.
/// </summary>
public sealed class MultiHostFixture : IAsyncLifetime
{
    public const int AgentCount = 3;
    public const string Region = "reg";
    public const string AgentResources = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]";
    public static readonly ImmutableArray<string> Racks = ["r1", "r1", "r2"];

    public MultiHostCluster Cluster { get; private set; } = null!;

    public NetnsNetwork Network => Cluster.Network;

    public DroverClient Client => Cluster.Client;

    public DroverProcess Master => Cluster.Master;

    public IReadOnlyList<DroverProcess> Agents => Cluster.Agents;

    public Uri MasterUrl => Cluster.MasterUrl;

    /// <summary>Temporary directory holding the master's data, the agents' work dirs and the process logs.</summary>
    public string Root => Cluster.Root;

    public static string HostnameOf(int n) => MultiHostCluster.HostnameOf(n);

    /// <summary>The address of the agent named <paramref name="hostname"/>.</summary>
    public IPAddress AddressOf(string hostname) => Cluster.AddressOf(hostname);

    public async Task InitializeAsync()
    {
        if (NetnsNetwork.SkipReason is not null)
        {
            return; // every test is skipped
        }

        Cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            AgentCount = AgentCount,
            Strategy = "spread",
            AgentResources = AgentResources,
            Racks = Racks,
            Region = Region,
        });
    }

    /// <summary>The last output of the master and every agent, for failure messages.</summary>
    public string Diagnostics() => Cluster?.Diagnostics() ?? "(no cluster)";

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }
}
