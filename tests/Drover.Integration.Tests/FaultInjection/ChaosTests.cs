using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Drover.Core;
using Drover.Testing;
using Drover.Testing.Clusters;
using Drover.Testing.Processes;
using Xunit.Abstractions;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// Issue 4's chaos run: for a few minutes, one fault at a time chosen at random (seeded) — kill -9 an
/// agent and restart it, kill -9 the master and restart it, cut an agent off and heal it — over three
/// apps, while a client keeps creating apps. Afterwards every app converges to its instance count, no
/// app creation that was acknowledged is missing, and no instance ran twice (on hosts the network could
/// reach) for longer than the replacement window.
/// </summary>
/// <remarks>
/// <c>DROVER_CHAOS_SECONDS</c> sets the length (default 180) and <c>DROVER_CHAOS_SEED</c> replays a run;
/// the seed and every fault are written to the test output.
/// </remarks>
[Collection(FaultInjectionCollection.Name)]
public sealed class ChaosTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan UnreachableAfter = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long two live copies of one instance may coexist on reachable hosts: an agent down for up to
    /// 5 s has its instances replaced after the 3 s timeout; its copies are killed once it is back
    /// (restart, registration, kill with a 1 s grace), all on 2 busy cores.
    /// </summary>
    private static readonly TimeSpan ReplacementWindow = TimeSpan.FromSeconds(25);

    private static readonly (string Id, int Instances)[] Apps = [("/chaos/a", 3), ("/chaos/b", 2), ("/chaos/c", 2)];

    [MultiHostFact]
    public async Task Chaos_RandomCrashesAndPartitions_AppsConvergeNoAcknowledgedWriteLostNoLongDuplicates()
    {
        var duration = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("DROVER_CHAOS_SECONDS"), CultureInfo.InvariantCulture, out var s) ? s : 180);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("DROVER_CHAOS_SEED"), CultureInfo.InvariantCulture, out var given) ? given : Environment.TickCount;
        var log = new StringBuilder();
        void Log(string line)
        {
            var stamped = $"{DateTime.UtcNow:HH:mm:ss.fff} {line}";
            lock (log)
            {
                log.AppendLine(stamped);
            }

            output.WriteLine(stamped);
        }

        Log($"chaos seed {seed}, {duration.TotalSeconds} s");
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            HeartbeatInterval = Heartbeat,
            AgentUnreachableTimeout = UnreachableAfter,
            AgentRemovalTimeout = TimeSpan.FromMinutes(30),
        });
        try
        {
            foreach (var (id, instances) in Apps)
            {
                var app = SleepApp(id, instances, 0.1m, 16);
                app["taskKillGracePeriodSeconds"] = 1;
                await cluster.Marathon.CreateAppAsync(app);
            }

            await WaitForConvergenceAsync(cluster, TimeSpan.FromSeconds(60));
            Log("apps running; chaos starts");

            var cutOff = new ConcurrentDictionary<int, bool>();
            using var stop = new CancellationTokenSource();
            var sampler = SampleDuplicatesAsync(cluster, cutOff, Log, stop.Token);
            var writer = CreateAppsAsync(cluster, Log, stop.Token);
            await InjectFaultsAsync(cluster, new Random(seed), duration, cutOff, Log);
            Log("chaos over");

            // Convergence is judged with the writer still running: the cluster must settle under load.
            await WaitForConvergenceAsync(cluster, TimeSpan.FromSeconds(120));
            await stop.CancelAsync();
            var violations = await sampler;
            var acknowledged = await writer;
            Log($"converged; {acknowledged.Count} app creations acknowledged during the run");

            foreach (var id in acknowledged)
            {
                Assert.True(await cluster.Marathon.FindAppAsync(id) is not null, $"app {id} was acknowledged (201) and is missing\n{log}");
            }

            Assert.True(violations.Count == 0, $"instances ran twice for longer than {Seconds(ReplacementWindow)}:\n{string.Join("\n", violations)}\n\n{log}");
            var deployments = await cluster.Http.GetStringAsync(new Uri(cluster.MasterUrl, "v2/deployments"));
            Assert.Equal(0, JsonNode.Parse(deployments)!.AsArray().Count(d => d!["affectedApps"]!.AsArray().Any(a => a!.GetValue<string>().StartsWith("/chaos/", StringComparison.Ordinal) && !a.GetValue<string>().StartsWith("/chaos/w/", StringComparison.Ordinal))));
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"{e.GetType().Name}: {e.Message}\n{e.StackTrace}\n\n{log}\n{cluster.Diagnostics()}");
        }
    }

    /// <summary>One fault at a time, each healed before the next, with a pause between them.</summary>
    private static async Task InjectFaultsAsync(MultiHostCluster cluster, Random random, TimeSpan duration, ConcurrentDictionary<int, bool> cutOff, Action<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            var agent = random.Next(1, cluster.Options.AgentCount + 1);
            var outage = TimeSpan.FromMilliseconds(random.Next(500, 6000));
            switch (random.Next(3))
            {
                case 0:
                    log($"kill -9 agent {agent} for {Seconds(outage)}");
                    await cluster.KillAgentAsync(agent);
                    await Task.Delay(outage);
                    await cluster.RestartAgentAsync(agent);
                    log($"agent {agent} back");
                    break;
                case 1:
                    log($"kill -9 master for {Seconds(outage)}");
                    await cluster.KillMasterAsync();
                    await Task.Delay(outage);
                    var ready = await cluster.RestartMasterAsync();
                    log($"master back (API after {Seconds(ready)})");
                    break;
                default:
                    outage += TimeSpan.FromSeconds(2);
                    log($"cut off agent {agent} for {Seconds(outage)}");
                    cutOff[agent] = true;
                    await cluster.CutOffAsync(agent);
                    await Task.Delay(outage);
                    await cluster.HealAsync(agent);
                    cutOff.TryRemove(agent, out _);
                    log($"agent {agent} healed");
                    break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(2000, 6000)));
        }
    }

    /// <summary>
    /// Every 250 ms, counts each app's live copies from the agents' cgroups (ground truth, whatever the
    /// master believes) on hosts not cut off, and reports each stretch of surplus copies that lasted
    /// longer than the replacement window.
    /// </summary>
    private static async Task<List<string>> SampleDuplicatesAsync(MultiHostCluster cluster, ConcurrentDictionary<int, bool> cutOff, Action<string> log, CancellationToken ct)
    {
        var violations = new List<string>();
        var surplusSince = new Dictionary<string, (DateTime Since, string Tasks)>();
        while (!ct.IsCancellationRequested)
        {
            var now = DateTime.UtcNow;
            var live = new List<string>();
            for (var n = 1; n <= cluster.Options.AgentCount; n++)
            {
                if (!cutOff.ContainsKey(n))
                {
                    live.AddRange(LiveTaskIds(cluster, n));
                }
            }

            foreach (var (id, instances) in Apps)
            {
                var prefix = id.Trim('/').Replace('/', '_') + ".";
                var copies = live.Where(t => t.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                if (copies.Count > instances)
                {
                    if (!surplusSince.ContainsKey(id))
                    {
                        surplusSince[id] = (now, string.Join(", ", copies));
                    }
                }
                else if (surplusSince.Remove(id, out var stretch))
                {
                    var lasted = now - stretch.Since;
                    log($"{id}: surplus copies for {Seconds(lasted)} ({stretch.Tasks})");
                    if (lasted > ReplacementWindow)
                    {
                        violations.Add($"{id}: {Seconds(lasted)} from {stretch.Since:HH:mm:ss.fff} ({stretch.Tasks})");
                    }
                }
            }

            try
            {
                await Task.Delay(250, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        foreach (var (id, stretch) in surplusSince)
        {
            violations.Add($"{id}: still surplus at the end, since {stretch.Since:HH:mm:ss.fff} ({stretch.Tasks})");
        }

        return violations;
    }

    /// <summary>Task ids with at least one live process in agent n's cgroup subtree.</summary>
    private static IEnumerable<string> LiveTaskIds(MultiHostCluster cluster, int n)
    {
        foreach (var mount in LinuxProcesses.CgroupMounts())
        {
            var root = Path.Combine(mount, cluster.CgroupOf(n));
            if (!Directory.Exists(root))
            {
                continue;
            }

            string[] tasks;
            try
            {
                tasks = [.. Directory.EnumerateDirectories(root).Select(Path.GetFileName).OfType<string>()];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            return tasks.Where(t => LinuxProcesses.InCgroupTree(cluster.CgroupOf(n) + "/" + t).Count > 0).ToList();
        }

        return [];
    }

    /// <summary>Creates small apps (0 instances) until cancelled; returns the ids whose creation was acknowledged.</summary>
    private static async Task<List<string>> CreateAppsAsync(MultiHostCluster cluster, Action<string> log, CancellationToken ct)
    {
        var acknowledged = new List<string>();
        var failed = 0;
        for (var i = 0; !ct.IsCancellationRequested; i++)
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"/chaos/w/app-{i}");
            try
            {
                await cluster.Marathon.CreateAppAsync(SleepApp(id, 0, 0.01m, 8), ct: ct);
                acknowledged.Add(id);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or MarathonApiException && !ct.IsCancellationRequested)
            {
                failed++; // not acknowledged: it may or may not exist
            }
            catch (OperationCanceledException)
            {
                break;
            }

            try
            {
                await Task.Delay(300, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        log($"writer: {acknowledged.Count} acknowledged, {failed} failed or unanswered");
        return acknowledged;
    }

    /// <summary>Every app has exactly its instance count running, per the API and per the agents' cgroups.</summary>
    private static Task WaitForConvergenceAsync(MultiHostCluster cluster, TimeSpan timeout) =>
        Wait.UntilAsync(
            async () =>
            {
                var tasks = await cluster.Client.ListTasksAsync();
                var live = Enumerable.Range(1, cluster.Options.AgentCount).SelectMany(n => LiveTaskIds(cluster, n)).ToList();
                return Apps.Select(a =>
                {
                    var prefix = a.Id.Trim('/').Replace('/', '_') + ".";
                    var active = tasks.Where(t => t.AppId == a.Id && !t.State.IsTerminal()).ToList();
                    return (a.Id, a.Instances, Running: active.Count(t => t.State == TaskState.Running), Active: active.Count,
                        Live: live.Count(t => t.StartsWith(prefix, StringComparison.Ordinal)));
                }).ToList();
            },
            apps => apps.All(a => a.Running == a.Instances && a.Active == a.Instances && a.Live == a.Instances),
            timeout,
            "every app to converge to its instance count",
            interval: TimeSpan.FromMilliseconds(500),
            retryOn: e => e is HttpRequestException or TaskCanceledException,
            describe: apps => string.Join("; ", apps.Select(a => $"{a.Id}: {a.Running}/{a.Instances} running, {a.Active} active, {a.Live} live")));
}
