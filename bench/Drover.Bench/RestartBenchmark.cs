using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;
using static Drover.Bench.BenchProcesses;

namespace Drover.Bench;

/// <summary>
/// Master restart with a full store: starts <c>drover master</c> and <c>drover agent</c> as separate
/// processes on a fresh data dir, fills the master's store with TASKS task records (RUNNING of them
/// <c>sleep 600</c> left running, the rest <c>true</c>, run to TASK_FINISHED), then SIGKILLs the master
/// and starts it again on the same data dir and port, RESTARTS times. For each restart it measures,
/// from the moment the new process is started: the API answering <c>GET /ping</c>, <c>GET
/// /drover/v1/tasks</c> listing every record, and the agent's first heartbeat to the new master. The same
/// start on an empty data dir is measured first, as the floor (process start, JIT, Kestrel). Fails if a
/// record is missing or a running task is not running after a restart.
/// </summary>
internal static class RestartBenchmark
{
    public static async Task<int> RunAsync(string droverDll, int total, int running, int restarts, TimeSpan timeout)
    {
        if (running > total || total > 10_000)
        {
            Console.Error.WriteLine("bench: RUNNING must be <= TASKS <= 10000 (the master keeps 10,000 ended tasks)");
            return 2;
        }

        var data = Directory.CreateTempSubdirectory("drover-restart-bench-").FullName;
        var masterPort = FreePort();
        var master = new Uri($"http://127.0.0.1:{masterPort}/");
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(60) };
        using var client = new DroverClient(master, http);
        string[] masterArgs = ["master", "--data-dir", Path.Combine(data, "master"), "--listen", $"127.0.0.1:{masterPort}", "--insecure", "--log-level", "warning"];
        Process? masterProcess = null, agent = null;
        try
        {
            // The floor: the same command on an empty data dir (its own port and dir), a few times.
            var floor = new List<double>();
            for (var i = 0; i < Math.Max(3, restarts); i++)
            {
                var emptyPort = FreePort();
                var emptyDir = Path.Combine(data, $"empty-{i}");
                var empty = new Uri($"http://127.0.0.1:{emptyPort}/");
                var clock = Stopwatch.StartNew();
                var p = Start(droverDll, ["master", "--data-dir", emptyDir, "--listen", $"127.0.0.1:{emptyPort}", "--insecure", "--log-level", "warning"], Path.Combine(data, "empty.log"));
                await UntilAsync(() => PingAsync(http, empty), timeout, "an empty master to answer /ping", p);
                floor.Add(clock.Elapsed.TotalSeconds);
                await StopAsync(p, kill: true);
            }

            masterProcess = Start(droverDll, masterArgs, Path.Combine(data, "master.log"));
            agent = Start(droverDll,
                ["agent", "--master", master.GetLeftPart(UriPartial.Authority), "--listen", $"127.0.0.1:{FreePort()}", "--work-dir", Path.Combine(data, "agent"),
                 "--hostname", "bench-agent", "--resources", "cpus:64;mem:49152;disk:10000;ports:[31000-32000]", "--log-level", "warning"],
                Path.Combine(data, "agent.log"));
            await UntilAsync(async () => (await client.ListAgentsAsync()).Any(a => a.Status == "active"), timeout, "the agent to register", masterProcess);

            // Fill the store: every task goes through the whole path (placed, launched as a process, statuses).
            var fill = Stopwatch.StartNew();
            var ids = new ConcurrentBag<string>();
            await Parallel.ForEachAsync(Enumerable.Range(0, total), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
            {
                var keep = i < running;
                var t = await client.SubmitTaskAsync(new TaskSubmission
                {
                    Name = keep ? $"running-{i}" : $"done-{i}",
                    Args = keep ? ["sleep", "600"] : ["true"],
                    Cpus = JsonSerializer.SerializeToElement(0.01m),
                    Mem = JsonSerializer.SerializeToElement(8),
                }, ct);
                ids.Add(t.Id);
            });
            var tasks = await UntilAsync(
                async () => await client.ListTasksAsync(),
                all => all.Length == total && all.All(t => t.State == TaskState.Running || t.State.IsTerminal())
                    && all.Count(t => t.State == TaskState.Running || t.State.IsTerminal() && t.Name.StartsWith("running-", StringComparison.Ordinal)) == running,
                TimeSpan.FromMinutes(10), $"{total} records: the {running} sleep tasks running (or ended), every other one ended", masterProcess,
                interval: TimeSpan.FromSeconds(1), // a listing of 10,000 tasks is work for the master: don't ask often
                describe: all => string.Join(", ", all.GroupBy(t => t.State).Select(g => $"{g.Count()} {g.Key.WireName()}")));
            var fillSeconds = fill.Elapsed.TotalSeconds;
            var runningIds = tasks.Where(t => t.State == TaskState.Running).Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
            var states = string.Join(", ", tasks.GroupBy(t => t.State).OrderByDescending(g => g.Count()).Select(g => $"{g.Count()} {g.Key.WireName()}"));
            foreach (var odd in tasks.Where(t => t.State is not (TaskState.Running or TaskState.Finished)).GroupBy(t => (t.State, t.Message)))
            {
                // Not what a `true` or a `sleep` should end as: say why, so the figures are read with it.
                Console.WriteLine($"note: {odd.Count()} tasks ended {odd.Key.State.WireName()}: {odd.Key.Message}, e.g. {odd.First().Id}: "
                    + string.Join(" -> ", odd.First().Statuses.Select(st => $"{st.State.WireName()}@{st.Timestamp:F3}")));
            }

            var storeFile = Path.Combine(data, "master", "state.db");
            var storeBytes = new FileInfo(storeFile).Length;
            var walBytes = File.Exists(storeFile + "-wal") ? new FileInfo(storeFile + "-wal").Length : 0;

            var loadBefore = LoadAverage();
            var ping = new List<double>();
            var listed = new List<double>();
            var heartbeat = new List<double>();
            var listCall = new List<double>();
            for (var i = 0; i < restarts; i++)
            {
                await StopAsync(masterProcess, kill: true);
                var started = DateTimeOffset.UtcNow;
                var clock = Stopwatch.StartNew();
                masterProcess = Start(droverDll, masterArgs, Path.Combine(data, "master.log"));
                await UntilAsync(() => PingAsync(http, master), timeout, "the restarted master to answer /ping", masterProcess);
                ping.Add(clock.Elapsed.TotalSeconds);
                var before = clock.Elapsed.TotalSeconds;
                var after = await client.ListTasksAsync();
                listCall.Add(clock.Elapsed.TotalSeconds - before);
                if (after.Length != total)
                {
                    Console.Error.WriteLine($"bench: after restart {i + 1} the master lists {after.Length} tasks, expected {total}");
                    return 1;
                }

                listed.Add(clock.Elapsed.TotalSeconds);
                await UntilAsync(async () => (await client.ListAgentsAsync()).Any(a => a.LastHeartbeatAt > started), timeout, "the agent to heartbeat to the restarted master", masterProcess);
                heartbeat.Add(clock.Elapsed.TotalSeconds);
                var nowRunning = (await client.ListTasksAsync(TaskState.Running)).Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
                if (!runningIds.SetEquals(nowRunning))
                {
                    Console.Error.WriteLine($"bench: after restart {i + 1}, {runningIds.Except(nowRunning).Count()} tasks that ran are not TASK_RUNNING");
                    return 1;
                }
            }

            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(inv, $"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}; load average {loadBefore} before the restarts, {LoadAverage()} after"));
            Console.WriteLine(string.Create(inv, $"store: {total} task records of {running} x [sleep 600] and {total - running} x [true], 1 agent: {states}; state.db {storeBytes / 1048576.0:F1} MiB + WAL {walBytes / 1048576.0:F1} MiB; filled in {fillSeconds:F1} s"));
            Console.WriteLine(string.Create(inv, $"empty data dir, start -> /ping:       {Ms(floor)}"));
            Console.WriteLine(string.Create(inv, $"after kill -9, start -> /ping:        {Ms(ping)}"));
            Console.WriteLine(string.Create(inv, $"after kill -9, start -> all {total} listed: {Ms(listed)}  (the GET itself: {Ms(listCall)})"));
            Console.WriteLine(string.Create(inv, $"after kill -9, start -> agent heartbeat: {Ms(heartbeat)}"));
            return 0;
        }
        finally
        {
            if (agent is not null)
            {
                await StopAsync(agent, kill: false); // kills its tasks and removes their cgroups
            }

            if (masterProcess is not null)
            {
                await StopAsync(masterProcess, kill: false);
            }

            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
