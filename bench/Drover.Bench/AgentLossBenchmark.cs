using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Client.Marathon;
using Drover.Core;
using static Drover.Bench.BenchProcesses;

namespace Drover.Bench;

/// <summary>
/// Agent loss → replacement running: <c>drover master</c> and two <c>drover agent</c>s as separate
/// processes on loopback, one Marathon app of INSTANCES × <c>sleep 600</c>, all on one agent (the other
/// joins once they run). Each round SIGKILLs the agent holding them and times, from the kill: the
/// master marking them TASK_UNREACHABLE (the unreachable timeout), and the app back at INSTANCES running
/// instances on the other agent. The killed agent is then restarted (its old copies come back and are
/// killed as surplus), ready to take them over in the next round.
/// </summary>
internal static class AgentLossBenchmark
{
    public static async Task<int> RunAsync(string droverDll, int instances, double unreachableSeconds, int rounds, TimeSpan timeout)
    {
        var data = Directory.CreateTempSubdirectory("drover-agent-loss-bench-").FullName;
        var masterPort = FreePort();
        var master = new Uri($"http://127.0.0.1:{masterPort}/");
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        using var client = new DroverClient(master, http);
        using var marathon = new MarathonClient(master, http);
        var masterProcess = Start(droverDll,
            ["master", "--data-dir", Path.Combine(data, "master"), "--listen", $"127.0.0.1:{masterPort}", "--strategy", "spread",
             "--agent-timeout", unreachableSeconds.ToString(CultureInfo.InvariantCulture), "--heartbeat-interval", "0.5", "--insecure", "--log-level", "warning"],
            Path.Combine(data, "master.log"));
        var agentArgs = new string[2][];
        var agents = new Process?[2];
        for (var i = 0; i < 2; i++)
        {
            agentArgs[i] = ["agent", "--master", master.GetLeftPart(UriPartial.Authority), "--listen", $"127.0.0.1:{FreePort()}",
                "--work-dir", Path.Combine(data, $"agent{i}"), "--hostname", $"bench-agent-{i}",
                "--resources", "cpus:16;mem:16384;disk:10000;ports:[31000-32000]", "--log-level", "warning", "--kill-tasks-on-stop"];
        }

        try
        {
            agents[0] = Start(droverDll, agentArgs[0], Path.Combine(data, "agent0.log"));
            await UntilAsync(async () => (await client.ListAgentsAsync()).Count(a => a.Status == "active") == 1, timeout, "the first agent to register", masterProcess);
            await marathon.CreateAppAsync(new JsonObject
            {
                ["id"] = "/bench/loss",
                ["cmd"] = "exec sleep 600",
                ["cpus"] = 0.01,
                ["mem"] = 8,
                ["instances"] = instances,
                ["taskKillGracePeriodSeconds"] = 1,
            });

            await UntilAsync(() => RunningAsync(client), t => t.Count == instances, timeout, $"{instances} instances running", masterProcess,
                TimeSpan.FromMilliseconds(100), t => $"{t.Count} running");
            agents[1] = Start(droverDll, agentArgs[1], Path.Combine(data, "agent1.log"));
            await UntilAsync(async () => (await client.ListAgentsAsync()).Count(a => a.Status == "active") == 2, timeout, "the second agent to register", masterProcess);

            var toUnreachable = new List<double>();
            var toReplaced = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var running = await UntilAsync(() => RunningAsync(client), t => t.Count == instances && t.Select(x => x.Hostname).Distinct().Count() == 1,
                    timeout, $"{instances} instances running on one agent", masterProcess, TimeSpan.FromMilliseconds(100), t => $"{t.Count} running");
                var victimHost = running[0].Hostname!;
                var victim = int.Parse(victimHost[^1..], CultureInfo.InvariantCulture);
                var lost = instances;

                var clock = Stopwatch.StartNew();
                await StopAsync(agents[victim]!, kill: true);
                await UntilAsync(async () => (await client.ListTasksAsync(TaskState.Unreachable)).Count(t => t.AppId == "/bench/loss") == lost,
                    ok => ok, timeout, $"{lost} instances TASK_UNREACHABLE", masterProcess, TimeSpan.FromMilliseconds(20));
                toUnreachable.Add(clock.Elapsed.TotalSeconds);
                await UntilAsync(async () => (await RunningAsync(client)).Count(t => t.Hostname != victimHost) == instances,
                    ok => ok, timeout, $"{instances} instances running on the surviving agent", masterProcess, TimeSpan.FromMilliseconds(20));
                toReplaced.Add(clock.Elapsed.TotalSeconds);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round + 1}: {lost} instances lost; unreachable after {toUnreachable[^1]:F2} s, all {instances} running again after {toReplaced[^1]:F2} s (load {LoadAverage()})"));

                // The agent returns: its old copies are surplus and killed; it is empty for the next round.
                agents[victim] = Start(droverDll, agentArgs[victim], Path.Combine(data, $"agent{victim}.log"));
                await UntilAsync(async () => (await client.ListAgentsAsync()).Count(a => a.Status == "active") == 2, timeout, "the agent to come back", masterProcess);
                await UntilAsync(async () => (await client.ListTasksAsync()).Count(t => t.AppId == "/bench/loss" && !t.State.IsTerminal()) == instances,
                    ok => ok, timeout, "the returning copies to be killed", masterProcess, TimeSpan.FromMilliseconds(100));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"agent loss, {instances} instances, unreachable timeout {unreachableSeconds} s:"));
            Console.WriteLine($"  kill -9 → TASK_UNREACHABLE: {Ms(toUnreachable)}");
            Console.WriteLine($"  kill -9 → all instances running again: {Ms(toReplaced)}");
            Console.WriteLine($"  replacement after the unreachable mark: {Ms([.. toReplaced.Zip(toUnreachable, (r, u) => r - u)])}");
            return 0;
        }
        finally
        {
            foreach (var a in agents)
            {
                if (a is not null)
                {
                    await StopAsync(a, kill: false);
                }
            }

            await StopAsync(masterProcess, kill: false);
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<List<Drover.Core.Api.TaskView>> RunningAsync(DroverClient client) =>
        [.. (await client.ListTasksAsync(TaskState.Running)).Where(t => t.AppId == "/bench/loss")];
}
