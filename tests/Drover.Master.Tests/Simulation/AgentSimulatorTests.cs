using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Drover.Core;
using Drover.Testing;
using Drover.Testing.Simulation;

namespace Drover.Master.Tests.Simulation;

/// <summary>
/// The agent simulator (tests/Drover.Testing/Simulation) against a real master in this process, over
/// HTTP: simulated agents must be indistinguishable from real ones as far as the master can tell.
/// </summary>
public sealed class AgentSimulatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static readonly AgentSimulatorOptions Small = new()
    {
        Resources = Resources.Parse("cpus:4;mem:4096;disk:1000;ports:[31000-31100]"),
        HostnamePrefix = "simtest",
    };

    private static MasterOptions FastHeartbeats() => new()
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(500),
        AgentUnreachableTimeout = TimeSpan.FromSeconds(5),
    };

    private static JsonObject App(string id, int instances) => new()
    {
        ["id"] = id,
        ["cmd"] = "sleep 3600",
        ["cpus"] = 0.01,
        ["mem"] = 8,
        ["instances"] = instances,
        ["constraints"] = new JsonArray(new JsonArray("hostname", "MAX_PER", "3")),
    };

    [Fact]
    public async Task Simulator_200Agents_AppRunsKillEndsKilledAndNoHeartbeatTimeout()
    {
        await using var cluster = await InProcessCluster.StartAsync(FastHeartbeats());
        await using var sim = AgentSimulator.Start(cluster.Master.Url, 200, Small);
        await sim.WaitRegisteredAsync(Timeout);

        var agents = await cluster.Client.ListAgentsAsync();
        Assert.Equal(200, agents.Count(a => a.Status == "active" && a.Hostname.StartsWith("simtest-", StringComparison.Ordinal)));
        Assert.Contains(agents, a => a.Zone == "zone-2");

        using var marathon = new MarathonClient(cluster.Master.Url);
        await marathon.CreateAppAsync(App("/sim/web", 500));
        await Wait.UntilAsync(() => marathon.GetAppAsync("/sim/web"), a => a["tasksRunning"]!.GetValue<int>() == 500, Timeout,
            "500 instances running", describe: a => $"{a["tasksRunning"]} running, {a["tasksStaged"]} staged");

        // The master's view and the agents' view agree task by task.
        var tasks = await marathon.ListAppTasksAsync("/sim/web");
        var ids = tasks.Select(t => t!["id"]!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(500, ids.Count);
        Assert.True(ids.SetEquals(sim.TaskIds()), "the simulated agents hold exactly the app's instances");
        Assert.Equal(500, sim.RunningTasks);
        Assert.True(tasks.GroupBy(t => t!["host"]!.GetValue<string>()).All(g => g.Count() <= 3), "MAX_PER 3 held on simulated hosts");

        // A kill goes down a command stream and comes back as TASK_KILLED. Kill-and-scale kills exactly
        // the instance named: the controller never sees the app scaled down with the victim still live
        // (it would kill a second instance), so several in a row each cost one kill.
        foreach (var victim in ids.Take(10))
        {
            await marathon.KillAppTaskAsync("/sim/web", victim, scale: true);
            var killed = await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(victim), t => t.State.IsTerminal(), Timeout, $"{victim} to end");
            Assert.Equal(TaskState.Killed, killed.State);
            await Wait.UntilAsync(() => Task.FromResult(sim.TaskIds().Contains(victim)), held => !held, Timeout, "the agent to forget the acknowledged kill");
        }

        Assert.Equal(10, sim.Kills);

        // Several heartbeat intervals later nobody timed out: every agent is still active, every task running.
        var heartbeats = sim.Heartbeats;
        await Wait.UntilAsync(() => Task.FromResult(sim.Heartbeats), n => n >= heartbeats + 1000, Timeout, "five more rounds of heartbeats");
        agents = await cluster.Client.ListAgentsAsync();
        Assert.All(agents, a => Assert.Equal("active", a.Status));
        Assert.Equal(0, sim.HeartbeatFailures);
        Assert.Equal(0, sim.Reregistrations);
        var app = await marathon.GetAppAsync("/sim/web");
        Assert.Equal(490, app["tasksRunning"]!.GetValue<int>());
        Assert.Equal(490, app["instances"]!.GetValue<int>());
        Assert.Equal(10, sim.Kills);
        Assert.Equal(500, sim.Launches);
    }

    [Fact]
    public async Task Simulator_MasterLosesItsState_OrphansKeepRunningThroughTheGraceAndAreKilledAfterIt()
    {
        await using var cluster = await InProcessCluster.StartAsync(FastHeartbeats());
        await using var sim = AgentSimulator.Start(cluster.Master.Url, 20, Small);
        await sim.WaitRegisteredAsync(Timeout);
        using (var marathon = new MarathonClient(cluster.Master.Url))
        {
            await marathon.CreateAppAsync(App("/sim/orphans", 30));
            await Wait.UntilAsync(() => Task.FromResult(sim.RunningTasks), n => n == 30, Timeout, "30 instances running on the agents");
        }

        // A master that comes back without its data does not know the agents: they get 404s and register
        // again listing the tasks they hold. It has no record of those tasks, but does not kill them on
        // sight: it lists them on each agent and waits out --unknown-task-grace (15 minutes by default).
        await cluster.RestartMasterAsync(() =>
        {
            Directory.Delete(Path.Combine(cluster.Root, "master"), recursive: true);
            return Task.CompletedTask;
        });

        await Wait.UntilAsync(() => Task.FromResult(sim.Reregistrations), n => n >= 20, Timeout, "every agent to register again");
        var unknown = await Wait.UntilAsync(
            async () => (await cluster.Client.ListAgentsAsync()).Sum(a => a.UnknownTasks.Length), n => n == 30, Timeout, "30 unknown tasks listed on the agents");
        Assert.Equal(30, unknown);
        Assert.Equal((0, 30), (sim.Kills, sim.RunningTasks));

        // A master with a short grace (it keeps no memory of first sightings across a restart): killed after it.
        await cluster.RestartMasterAsync(change: o => o with { UnknownTaskGrace = TimeSpan.FromSeconds(1) });
        await Wait.UntilAsync(() => Task.FromResult(sim.RunningTasks), n => n == 0, Timeout, "the orphaned tasks to be killed after the grace");
        Assert.Equal(30, sim.Kills);
        var agents = await cluster.Client.ListAgentsAsync();
        Assert.Equal(20, agents.Count(a => a.Status == "active"));
    }
}
