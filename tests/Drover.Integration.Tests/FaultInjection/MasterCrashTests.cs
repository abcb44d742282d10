using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Clusters;
using Drover.Testing.Processes;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// kill -9 of the master of a real multi-host cluster (separate <c>drover</c> processes, agents in their
/// own network namespaces) while it runs apps, a deployment and plain tasks; then a restart on the same
/// data dir and port.
/// </summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class MasterCrashTests
{
    private const string AppId = "/ft/web";

    [MultiHostFact]
    public async Task KillMaster_AppTasksAndDeploymentInFlight_NothingLostProcessesUntouchedDeploymentCompletes()
    {
        await using var cluster = await MultiHostCluster.StartAsync();
        await WithDiagnostics(cluster, async () =>
        {
            // Each agent has 2 cpus. A 1-cpu plain task pinned to each leaves 3 cpus: room for 6 app
            // instances of 0.5 cpu, so when the app is scaled from 3 to 9, 3 instances stay waiting and
            // the deployment stays in flight until the plain tasks go.
            var blockers = new List<TaskView>();
            for (var n = 1; n <= 3; n++)
            {
                blockers.Add(await cluster.SubmitAsync($"blocker-{n}", "exec sleep 600", 1m, 32, $"hostname:IS:{MultiHostCluster.HostnameOf(n)}"));
            }

            var finished = await cluster.SubmitAsync("finished", "echo done", 0.1m, 16);
            await cluster.WaitForStateAsync(finished.Id, TaskState.Finished);
            foreach (var b in blockers)
            {
                await cluster.WaitForStateAsync(b.Id, TaskState.Running);
            }

            await cluster.Marathon.CreateAppAsync(SleepApp(AppId, 3, 0.5m, 32));
            await Wait.UntilAsync(
                async () => (await cluster.AppTasksAsync(AppId), await cluster.Marathon.ListDeploymentsAsync()),
                x => x.Item1.Count(t => t.State == TaskState.Running) == 3 && x.Item2.Count == 0,
                StateTimeout,
                $"{AppId} to run 3 instances with no deployment left",
                describe: x => Describe(x.Item1));

            var scale = await cluster.Marathon.ScaleAppAsync(AppId, 9);
            Assert.NotNull(scale.DeploymentId);
            var placed = await Wait.UntilAsync(
                () => cluster.AppTasksAsync(AppId),
                tasks => tasks.Count(t => t.State == TaskState.Running) == 6 && tasks.Count(t => t.State == TaskState.Pending) == 3,
                StateTimeout,
                $"{AppId} scaled to 9: 6 running, 3 waiting for room",
                describe: Describe);

            // What the master knows and what runs, before the crash.
            var tasksBefore = (await cluster.Client.ListTasksAsync()).ToDictionary(t => t.Id);
            var deploymentsBefore = await cluster.Marathon.ListDeploymentsAsync();
            var deployment = Assert.Single(deploymentsBefore.Select(d => d!.AsObject()), d => d["id"]!.GetValue<string>() == scale.DeploymentId);
            Assert.Equal(AppId, Assert.Single(deployment["affectedApps"]!.AsArray())!.GetValue<string>());
            var appBefore = await cluster.Marathon.GetAppAsync(AppId);
            var versionsBefore = await cluster.Marathon.ListVersionsAsync(AppId);
            Assert.Equal(2, versionsBefore.Count); // created, then scaled
            var versionDefinitionsBefore = new Dictionary<string, string>();
            foreach (var v in versionsBefore)
            {
                versionDefinitionsBefore[v] = (await cluster.Marathon.GetAppVersionAsync(AppId, v)).ToJsonString();
            }

            var running = tasksBefore.Values.Where(t => t.State == TaskState.Running).ToList();
            Assert.Equal(9, running.Count); // 3 blockers + 6 instances
            var processesBefore = new Dictionary<string, IReadOnlyList<ProcessIdentity>>();
            foreach (var t in running)
            {
                processesBefore[t.Id] = await cluster.ProcessesOfAsync(t.Id);
            }

            await cluster.KillMasterAsync();

            Assert.Equal(128 + 9, cluster.Master.ExitCode);
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => cluster.Client.ListTasksAsync());
            Assert.All(processesBefore, kv => Assert.All(kv.Value, p => Assert.True(p.IsAlive, $"process {p} of task {kv.Key} died with the master")));

            var restartedAt = DateTimeOffset.UtcNow;
            var apiReady = await cluster.RestartMasterAsync(waitForAgents: false);

            // The API answers with every record it had, before any agent has reconnected or not.
            Assert.True(apiReady < TimeSpan.FromSeconds(30), $"the API answered {Seconds(apiReady)} after the restart");
            var tasksAfter = (await cluster.Client.ListTasksAsync()).ToDictionary(t => t.Id);
            Assert.Equal(tasksBefore.Keys.Order(), tasksAfter.Keys.Order());
            foreach (var (id, before) in tasksBefore)
            {
                var after = tasksAfter[id];
                Assert.True(Record(before) == Record(after), $"task {id} changed across the restart:\nbefore {Describe(before)}\nafter  {Describe(after)}");
            }

            Assert.Equal(
                deploymentsBefore.Select(d => d!.ToJsonString()),
                (await cluster.Marathon.ListDeploymentsAsync()).Select(d => d!.ToJsonString()));
            var appAfter = await cluster.Marathon.GetAppAsync(AppId);
            Assert.Equal(appBefore["version"]!.GetValue<string>(), appAfter["version"]!.GetValue<string>());
            Assert.Equal(9, appAfter["instances"]!.GetValue<int>());
            Assert.Equal(versionsBefore, await cluster.Marathon.ListVersionsAsync(AppId));
            foreach (var (v, definition) in versionDefinitionsBefore)
            {
                Assert.Equal(definition, (await cluster.Marathon.GetAppVersionAsync(AppId, v)).ToJsonString());
            }

            // The agents reconnect; every task keeps running, as the very same processes.
            await cluster.WaitForAgentsAsync(since: restartedAt);
            foreach (var t in running)
            {
                Assert.Equal(TaskState.Running, (await cluster.Client.GetTaskAsync(t.Id)).State);
                Assert.Equal(processesBefore[t.Id], cluster.TaskProcesses(t.Id));
            }

            // The deployment in flight resumes: once the plain tasks make room, the 3 waiting instances
            // start and it completes, without touching the 6 that were running.
            foreach (var b in blockers)
            {
                await cluster.Client.KillTaskAsync(b.Id);
            }

            foreach (var b in blockers)
            {
                await cluster.WaitForStateAsync(b.Id, TaskState.Killed);
            }

            var done = await Wait.UntilAsync(
                async () => (Tasks: await cluster.AppTasksAsync(AppId), Deployments: await cluster.Marathon.ListDeploymentsAsync()),
                x => x.Tasks.Count(t => t.State == TaskState.Running) == 9 && x.Deployments.Count == 0,
                StateTimeout,
                $"the scale deployment {scale.DeploymentId} to complete with 9 running instances",
                describe: x => $"deployments: {x.Deployments.ToJsonString()}\n{Describe(x.Tasks)}");

            Assert.Equal(9, done.Tasks.Length);
            Assert.Equal(placed.Select(t => t.Id).Order(), done.Tasks.Select(t => t.Id).Order());
            foreach (var t in running.Where(t => t.AppId == AppId))
            {
                Assert.Equal(processesBefore[t.Id], cluster.TaskProcesses(t.Id));
            }

            Assert.Equal(versionsBefore, await cluster.Marathon.ListVersionsAsync(AppId));
            Assert.Equal(TaskState.Finished, (await cluster.Client.GetTaskAsync(finished.Id)).State);
        });
    }

    /// <summary>What must survive a restart of the master unchanged.</summary>
    private static string Record(TaskView t) =>
        $"{t.State.WireName()} agent={t.AgentId} app={t.AppId} version={t.AppVersion} exit={t.ExitCode} ports={string.Join(',', t.Ports)} "
        + $"submitted={t.SubmittedAt:O} cmd={t.Cmd} statuses={string.Join(',', t.Statuses.Select(s => s.State.WireName()))}";
}
