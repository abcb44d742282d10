using Drover.Core;
using Drover.Testing.Clusters;
using Drover.Testing.Netns;
using Drover.Testing.Processes;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>The fault-injection helpers of <see cref="MultiHostCluster"/> do what they say, and its teardown leaves nothing behind.</summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class MultiHostClusterTests
{
    [MultiHostFact]
    public async Task KillAgent_RunningTask_TaskOutlivesItsAgentAndTeardownRemovesEverything()
    {
        var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 2 });
        IReadOnlyList<ProcessIdentity> processes = [];
        string[] namespaces = [];
        string bridge = "", root = "", cgroup = "";
        try
        {
            await WithDiagnostics(cluster, async () =>
            {
                var task = await cluster.SubmitAsync("orphan", "sleep 600 & exec sleep 601", 0.1m, 16, "hostname:IS:host1");
                await cluster.WaitForStateAsync(task.Id, TaskState.Running);
                processes = await Drover.Testing.Wait.UntilAsync(
                    () => Task.FromResult(cluster.TaskProcesses(task.Id)),
                    p => p.Count >= 2,
                    TimeSpan.FromSeconds(10),
                    "the task and its background child in the task's cgroup");
                var agent = cluster.Agents[0];

                await cluster.KillAgentAsync(1);

                Assert.True(agent.HasExited);
                Assert.Equal(128 + 9, agent.ExitCode);
                Assert.All(processes, p => Assert.True(p.IsAlive, $"task process {p} died with its agent"));
                Assert.Equal(processes, cluster.AgentTaskProcesses(1));
                Assert.False(cluster.Agents[1].HasExited);
            });
            namespaces = [.. cluster.Network.Hosts.Select(h => h.Name)];
            bridge = cluster.Network.BridgeName;
            root = cluster.Root;
            cgroup = cluster.CgroupOf(1);
        }
        finally
        {
            await cluster.DisposeAsync();
        }

        Assert.All(processes, p => Assert.False(p.IsAlive, $"task process {p} of the killed agent outlived the cluster"));
        Assert.Empty(LinuxProcesses.InCgroupTree(cgroup));
        Assert.All(LinuxProcesses.CgroupMounts(), mount => Assert.False(Directory.Exists(Path.Combine(mount, cgroup)), $"cgroup {cgroup} left in {mount}"));
        var listed = (await ProcessRunner.CheckedAsync("ip", "netns", "list")).StdOut;
        Assert.All(namespaces, ns => Assert.DoesNotContain(ns, listed, StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine("/sys/class/net", bridge)), $"bridge {bridge} left behind");
        Assert.False(Directory.Exists(root), $"{root} left behind");
        Assert.Empty(Directory.EnumerateFiles(NetnsNetwork.StateDirectory, bridge[NetnsNetwork.BridgePrefix.Length..] + ".*"));
    }

    [MultiHostFact]
    public async Task RestartAgent_SameWorkDirAndNamespace_RegistersAgainAsTheSameAgent()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 2 });
        await WithDiagnostics(cluster, async () =>
        {
            var before = (await cluster.FindAgentAsync(2))!;
            var first = cluster.Agents[1];

            await cluster.RestartAgentAsync(2);

            var after = (await cluster.FindAgentAsync(2))!;
            Assert.NotEqual(first.Pid, cluster.Agents[1].Pid);
            Assert.Equal(128 + 9, first.ExitCode);
            Assert.Equal(before.Id, after.Id);
            Assert.Equal(before.Address, after.Address);
            Assert.Equal(before.Attributes, after.Attributes);
            Assert.Equal("active", after.Status);
            Assert.True(after.RegisteredAt > before.RegisteredAt, "the agent registered again");
            Assert.Equal(2, (await cluster.Client.ListAgentsAsync()).Length);
        });
    }
}
