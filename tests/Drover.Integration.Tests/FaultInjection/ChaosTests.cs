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
/// Issue 14's chaos run. For five minutes (seeded at random) agents are killed -9 and restarted later,
/// restarted at once, or cut off the network and healed, one agent at a time; independently the master
/// is killed -9 and restarted. Meanwhile a writer keeps changing three Marathon apps (scale, and env/cmd
/// changes that start rolling deployments), each app's writes in sequence. It checks:
/// <list type="number">
/// <item>every acknowledged (2xx) write is present at the end: each app's definition is its last
/// acknowledged write, or a later write whose answer was lost (which may legitimately have landed);</item>
/// <item>sampled every second, the app's live task processes on reachable hosts — read from the agents'
/// cgroups, not from the master — never exceed <c>floor(instances × (1 + maximumOverCapacity))</c>;</item>
/// <item>at the end, after the faults stop: every app runs exactly its instances (master and cgroups agree),
/// and no process lives in an agent's cgroup subtree that no active task of the master owns.</item>
/// </list>
/// </summary>
/// <remarks>
/// <c>DROVER_CHAOS_SEED</c> replays a run's fault and write choices (the timing still varies);
/// <c>DROVER_CHAOS_SECONDS</c> sets the length (default 300); <c>DROVER_CHAOS_SLOW_KILL=1</c> makes every
/// app's tasks drain slowly (by default only <c>/chaos/c</c>'s). The seed, every fault and every write
/// are written to the test output, and a failure message carries them with the violations.
/// </remarks>
[Collection(FaultInjectionCollection.Name)]
public sealed class ChaosTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan UnreachableAfter = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long after a host comes back (agent restarted, network healed) its processes start to count
    /// for the capacity invariant: the agent re-registers (a heartbeat, a TLS handshake, on 2 busy cores)
    /// and the master then delivers the kills it recorded while the host was away (1 s grace). Copies
    /// that a host brings back were legitimately replaced while it was away (see the apps' unreachableStrategy).
    /// </summary>
    private static readonly TimeSpan HostSettle = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a superseded instance count still bounds the app: a scale-down's surplus is killed with a
    /// 1 s grace once the master acted on it (after a master restart, counted from the restart).
    /// </summary>
    private static readonly TimeSpan TargetSettle = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The workload. Instance counts are chosen so that Marathon's floor(n × (1 + maximumOverCapacity))
    /// and n + ceil(n × maximumOverCapacity) agree. <c>/chaos/c</c> allows no extra instance at all.
    /// <para>
    /// unreachableStrategy, by Marathon 1.10's semantics: with <c>"disabled"</c> an instance on an
    /// unreachable agent is never replaced (it still counts as one of the app's instances), so the app's
    /// copies never legitimately exceed the bound anywhere; only a deployment that kills an unreachable
    /// old instance (Marathon expunges it and goes on) leaves a copy on the absent host, which the host
    /// settle window covers. <c>/chaos/c</c> keeps Marathon's default <c>{0, 0}</c>: its instances are
    /// replaced as soon as their agent is unreachable, so a returning host legitimately brings back
    /// surplus copies, which the master must kill (checked by the final cgroup sweep).
    /// </para>
    /// <para>
    /// <c>/chaos/c</c>'s tasks also drain slowly (see <see cref="SlowCommands"/>), so its strict bound is
    /// checked against instances launched while the ones they replace are still dying.
    /// </para>
    /// </summary>
    private static readonly ChaosApp[] Apps =
    [
        new("/chaos/a", [2, 4], MinimumHealthCapacity: 1m, MaximumOverCapacity: 0.5m, Unreachable: JsonValue.Create("disabled"), SlowKill: SlowKillAll),
        new("/chaos/b", [2, 4], MinimumHealthCapacity: 0.5m, MaximumOverCapacity: 0.5m, Unreachable: JsonValue.Create("disabled"), SlowKill: SlowKillAll),
        new("/chaos/c", [2, 3, 4], MinimumHealthCapacity: 0.5m, MaximumOverCapacity: 0m, Unreachable: new JsonObject { ["inactiveAfterSeconds"] = 0, ["expungeAfterSeconds"] = 0 }, SlowKill: true),
    ];

    /// <summary><c>DROVER_CHAOS_SLOW_KILL=1</c>: every app's tasks drain slowly, not only <c>/chaos/c</c>'s.</summary>
    private static bool SlowKillAll => Environment.GetEnvironmentVariable("DROVER_CHAOS_SLOW_KILL") == "1";

    /// <summary>
    /// The two commands the writer alternates between for an app whose tasks stop at once: a <c>sleep</c> ends
    /// at SIGTERM, so an instance being killed is gone within milliseconds.
    /// </summary>
    private static readonly string[] FastCommands = ["exec sleep 600", "exec sleep 601"];

    /// <summary>
    /// The same for an app whose tasks ignore SIGTERM and live out their 1 s kill grace, as a service that
    /// drains on SIGTERM does: the capacity check then also sees instances launched while the ones they
    /// replace are still dying (Marathon's TaskReplaceActor counts an old instance against maxCapacity
    /// until it is terminal, and so does the master).
    /// </summary>
    private static readonly string[] SlowCommands = ["trap '' TERM; exec sleep 600", "trap '' TERM; exec sleep 601"];

    [MultiHostFact]
    public async Task RandomFaults_FiveMinutes_KeepsInvariants()
    {
        var duration = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("DROVER_CHAOS_SECONDS"), CultureInfo.InvariantCulture, out var s) ? s : 300);
        var seed = int.TryParse(Environment.GetEnvironmentVariable("DROVER_CHAOS_SEED"), CultureInfo.InvariantCulture, out var given) ? given : Environment.TickCount & int.MaxValue;
        var run = new ChaosRun(output);
        run.Log($"chaos seed {seed} (DROVER_CHAOS_SEED={seed} replays it), {duration.TotalSeconds} s, task commands {string.Join(", ", Apps.Select(a => $"{a.Id} '{a.Commands[0]}'"))}");
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions
        {
            HeartbeatInterval = Heartbeat,
            AgentUnreachableTimeout = UnreachableAfter,
            AgentRemovalTimeout = TimeSpan.FromMinutes(30),
        });
        run.Hosts = new HostStates(cluster.Options.AgentCount);
        try
        {
            var writes = Apps.ToDictionary(a => a.Id, _ => new List<Write>());
            foreach (var app in Apps)
            {
                var first = new Write(0, app.Sizes[0], app.Commands[0], "0", Force: false);
                writes[app.Id].Add(first with { Acknowledged = true, SentAt = DateTime.UtcNow, AnsweredAt = DateTime.UtcNow });
                await cluster.Marathon.CreateAppAsync(app.Definition(first));
            }

            await WaitForSettledAsync(cluster, TimeSpan.FromSeconds(90));
            run.Log("apps running; chaos starts");

            using var stop = new CancellationTokenSource();
            var sampler = SampleCapacityAsync(cluster, run, writes, stop.Token);
            var writers = Apps.Select((a, i) => WriteAsync(cluster, run, a, writes[a.Id], new Random(HashCode.Combine(seed, 10 + i)), stop.Token)).ToList();
            await Task.WhenAll(
                AgentFaultsAsync(cluster, run, new Random(HashCode.Combine(seed, 1)), duration),
                MasterFaultsAsync(cluster, run, new Random(HashCode.Combine(seed, 2)), duration));
            run.Log("faults over; writers stop");
            await stop.CancelAsync();
            await Task.WhenAll(writers);

            // The capacity sampler keeps running while the cluster settles.
            using var stopSampler = new CancellationTokenSource();
            var sampling = SampleCapacityAsync(cluster, run, writes, stopSampler.Token);
            await sampler;
            Exception? settleError = null;
            try
            {
                await WaitForSettledAsync(cluster, TimeSpan.FromSeconds(90));
                run.Log("settled");
            }
            catch (TimeoutException e)
            {
                settleError = e;
            }

            await stopSampler.CancelAsync();
            await sampling;

            // (a) every acknowledged write is present.
            foreach (var app in Apps)
            {
                var definition = await cluster.Marathon.GetAppAsync(app.Id);
                var seen = Write.Observed(definition);
                var history = writes[app.Id];
                var lastAck = history.FindLastIndex(w => w.Acknowledged);
                var allowed = history.Skip(lastAck).Where(w => w.Acknowledged || w.MaybeApplied).ToList();
                var match = allowed.FirstOrDefault(w => w.Matches(seen));
                if (match is null)
                {
                    run.Violation($"{app.Id}: acknowledged write #{history[lastAck].Seq} ({history[lastAck]}) is not in effect; "
                        + $"the app shows {seen}; unanswered writes after it: {string.Join(", ", allowed.Skip(1).Select(w => "#" + w.Seq))}");
                }
                else
                {
                    run.Log($"{app.Id}: in effect is write #{match.Seq} ({match}){(match.Acknowledged ? "" : ", unanswered but applied")}; {history.Count(w => w.Acknowledged)} of {history.Count} writes acknowledged");
                }
            }

            if (settleError is not null)
            {
                run.Violation("(c) the cluster did not settle after the faults: " + settleError.Message);
            }

            Assert.True(run.Violations.IsEmpty, run.Report(seed, cluster));
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            run.Violation($"{e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            Assert.Fail(run.Report(seed, cluster));
        }
    }

    // ------------------------------------------------------------------ faults

    /// <summary>
    /// One agent fault at a time (so two agents always run): kill -9 and restart after 1–8 s, restart at
    /// once, or cut off for 2–10 s and heal; 2–6 s between faults.
    /// </summary>
    private static async Task AgentFaultsAsync(MultiHostCluster cluster, ChaosRun run, Random random, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(2000, 6000)));
            var n = random.Next(1, cluster.Options.AgentCount + 1);
            switch (random.Next(3))
            {
                case 0:
                {
                    var outage = TimeSpan.FromMilliseconds(random.Next(1000, 8000));
                    run.Hosts.Down(n);
                    run.Log($"FAULT kill -9 agent {n} for {Seconds(outage)}");
                    await cluster.KillAgentAsync(n);
                    await Task.Delay(outage);
                    await cluster.RestartAgentAsync(n, waitForRegistration: false);
                    run.Hosts.Up(n);
                    run.Log($"FAULT agent {n} started again");
                    break;
                }

                case 1:
                    run.Hosts.Down(n);
                    run.Log($"FAULT restart agent {n}");
                    await cluster.RestartAgentAsync(n, waitForRegistration: false);
                    run.Hosts.Up(n);
                    run.Log($"FAULT agent {n} restarted");
                    break;
                default:
                {
                    var outage = TimeSpan.FromMilliseconds(random.Next(2000, 10000));
                    run.Hosts.Down(n);
                    run.Log($"FAULT cut off agent {n} for {Seconds(outage)}");
                    await cluster.CutOffAsync(n);
                    await Task.Delay(outage);
                    await cluster.HealAsync(n);
                    run.Hosts.Up(n);
                    run.Log($"FAULT agent {n} healed");
                    break;
                }
            }
        }
    }

    /// <summary>The master killed -9 every 8–30 s, down 0.5–6 s, independently of the agent faults.</summary>
    private static async Task MasterFaultsAsync(MultiHostCluster cluster, ChaosRun run, Random random, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var pause = TimeSpan.FromMilliseconds(random.Next(8000, 30000));
            if (clock.Elapsed + pause >= duration)
            {
                return;
            }

            await Task.Delay(pause);
            var outage = TimeSpan.FromMilliseconds(random.Next(500, 6000));
            run.Hosts.MasterDown();
            run.Log($"FAULT kill -9 master for {Seconds(outage)}");
            await cluster.KillMasterAsync();
            await Task.Delay(outage);
            var ready = await cluster.RestartMasterAsync(waitForAgents: false);
            run.Hosts.MasterUp();
            run.Log($"FAULT master back (API after {Seconds(ready)})");
        }
    }

    // ------------------------------------------------------------------ workload

    /// <summary>
    /// Changes one app every 1–4 s, in sequence (a write starts after the previous one's answer): a scale,
    /// or an env change (a rolling restart), sometimes also the cmd, sometimes with <c>force</c> (which
    /// overrides a running deployment; without it a busy app answers 409). Each write carries its number
    /// in env <c>CHAOS_WRITE</c> unless it only scales.
    /// </summary>
    private static async Task WriteAsync(MultiHostCluster cluster, ChaosRun run, ChaosApp app, List<Write> history, Random random, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(1000, 4000)), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Write previous;
            lock (history)
            {
                previous = history.FindLast(w => w.Acknowledged)!;
            }

            var seq = history.Count;
            var instances = app.Sizes[random.Next(app.Sizes.Length)];
            var next = random.Next(3) switch
            {
                0 => previous with { Instances = instances == previous.Instances ? app.Sizes.First(x => x != instances) : instances },
                1 => previous with { Instances = instances, Env = seq.ToString(CultureInfo.InvariantCulture) },
                _ => previous with { Instances = instances, Env = seq.ToString(CultureInfo.InvariantCulture), Cmd = previous.Cmd == app.Commands[0] ? app.Commands[1] : app.Commands[0] },
            };
            next = next with { Seq = seq, Force = random.Next(2) == 0, SentAt = DateTime.UtcNow, Acknowledged = false, MaybeApplied = false, Outcome = "" };
            lock (history)
            {
                history.Add(next);
            }

            // A lost answer may mean the write landed: it bounds the app from now on, until a later write is acknowledged.
            string outcome;
            var acknowledged = false;
            var maybe = false;
            try
            {
                var deployment = await cluster.Marathon.PutAppAsync(app.Id, app.Definition(next), force: next.Force, partialUpdate: false, ct: CancellationToken.None);
                acknowledged = true;
                outcome = "acknowledged, deployment " + deployment.DeploymentId;
            }
            catch (MarathonApiException e) when (e.StatusCode is >= 400 and < 500)
            {
                outcome = $"refused {e.StatusCode}: {e.Message}";
            }
            catch (MarathonApiException e)
            {
                maybe = true;
                outcome = $"failed {e.StatusCode}: {e.Message}";
            }
            catch (HttpRequestException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
            {
                outcome = "refused: the master is down";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                maybe = true;
                outcome = $"unanswered ({e.GetType().Name}: {e.Message})";
            }

            lock (history)
            {
                history[seq] = next with { Acknowledged = acknowledged, MaybeApplied = maybe, AnsweredAt = DateTime.UtcNow, Outcome = outcome };
            }

            run.Log($"WRITE {app.Id} #{seq} {next}: {outcome}");
        }
    }

    // ------------------------------------------------------------------ invariants

    /// <summary>
    /// Every second: each app's live task processes on counted hosts (see <see cref="HostStates.Counted"/>)
    /// against the largest bound any instance count that may be in effect allows.
    /// </summary>
    private static async Task SampleCapacityAsync(MultiHostCluster cluster, ChaosRun run, Dictionary<string, List<Write>> writes, CancellationToken ct)
    {
        var reported = new HashSet<string>();
        while (!ct.IsCancellationRequested)
        {
            var now = DateTime.UtcNow;
            var counted = Enumerable.Range(1, cluster.Options.AgentCount).Where(n => run.Hosts.Counted(n, now, HostSettle)).ToList();
            var live = counted.SelectMany(n => LiveTasks(cluster, n).Select(t => (Host: n, Task: t.Key, Pids: t.Value))).ToList();
            foreach (var app in Apps)
            {
                List<Write> history;
                lock (writes[app.Id])
                {
                    history = [.. writes[app.Id]];
                }

                var bound = PossibleTargets(history, run.Hosts, now).Max(app.MaxTotal);
                var copies = live.Where(t => t.Task.StartsWith(app.TaskPrefix, StringComparison.Ordinal)).ToList();
                if (copies.Count > bound && reported.Add(string.Join(",", copies.Select(c => c.Task).Order())))
                {
                    var master = await MasterViewAsync(cluster);
                    run.Violation($"(b) {app.Id}: {copies.Count} live copies on hosts {string.Join(",", counted)} > bound {bound} "
                        + $"(possible instance counts {string.Join("/", PossibleTargets(history, run.Hosts, now))}): "
                        + string.Join(", ", copies.Select(c => $"{c.Task}@host{c.Host} ({master.GetValueOrDefault(c.Task, "master: unknown or down")})")));
                }
            }

            try
            {
                await Task.Delay(1000, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>What the master says of each task (state, kill asked), for violation messages; empty while it is down.</summary>
    private static async Task<Dictionary<string, string>> MasterViewAsync(MultiHostCluster cluster)
    {
        try
        {
            return (await cluster.Client.ListTasksAsync()).ToDictionary(
                t => t.Id, t => $"master: {t.State.WireName()}{(t.KillRequested ? ", kill asked" : "")}", StringComparer.Ordinal);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            return [];
        }
    }

    /// <summary>
    /// The instance counts that may be in effect now: the last acknowledged write's, any later write's
    /// whose answer was lost, and earlier ones superseded less than <see cref="TargetSettle"/> ago (on a
    /// master that has been up that long).
    /// </summary>
    private static IEnumerable<int> PossibleTargets(List<Write> history, HostStates hosts, DateTime now)
    {
        var lastAck = history.FindLastIndex(w => w.Acknowledged);
        for (var i = 0; i < history.Count; i++)
        {
            var w = history[i];
            if (i >= lastAck && (w.Acknowledged || w.MaybeApplied || w.AnsweredAt is null))
            {
                yield return w.Instances;
                continue;
            }

            // Superseded when a later write was sent (it may take effect from then on).
            var supersededAt = history.Skip(i + 1).Select(x => x.SentAt).FirstOrDefault();
            if ((w.Acknowledged || w.MaybeApplied) && !hosts.MasterSettledSince(supersededAt, now, TargetSettle))
            {
                yield return w.Instances;
            }
        }
    }

    /// <summary>
    /// (c) and convergence: every app runs exactly its instance count in effect (master's running and active
    /// tasks, and live task cgroups on the agents), no chaos deployment is left, and every process under an
    /// agent's cgroup subtree is in the cgroup of a task the master lists as active.
    /// </summary>
    private static async Task WaitForSettledAsync(MultiHostCluster cluster, TimeSpan timeout)
    {
        await Wait.UntilAsync(
            async () =>
            {
                var problems = new List<string>();
                var tasks = await cluster.Client.ListTasksAsync();
                var active = tasks.Where(t => !t.State.IsTerminal()).Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
                var live = Enumerable.Range(1, cluster.Options.AgentCount).SelectMany(n => LiveTasks(cluster, n).Select(t => (Host: n, Task: t.Key, Pids: t.Value))).ToList();
                foreach (var app in Apps)
                {
                    var definition = await cluster.Marathon.GetAppAsync(app.Id);
                    var wanted = definition["instances"]!.GetValue<int>();
                    var appTasks = tasks.Where(t => t.AppId == app.Id && !t.State.IsTerminal()).ToList();
                    var running = appTasks.Count(t => t.State == TaskState.Running);
                    var copies = live.Count(t => t.Task.StartsWith(app.TaskPrefix, StringComparison.Ordinal));
                    if (running != wanted || appTasks.Count != wanted || copies != wanted)
                    {
                        problems.Add($"{app.Id}: wants {wanted}, master {running} running / {appTasks.Count} active, {copies} live in cgroups");
                    }
                }

                foreach (var (host, task, pids) in live.Where(t => !active.Contains(t.Task)))
                {
                    problems.Add($"orphan: cgroup {task} on host{host} holds pids {pids}, and the master has no active task {task} ({Describe(tasks.Where(t => t.Id == task))})");
                }

                var deployments = await cluster.Marathon.ListDeploymentsAsync();
                problems.AddRange(deployments.Where(d => d!["affectedApps"]!.AsArray().Any(a => a!.GetValue<string>().StartsWith("/chaos/", StringComparison.Ordinal)))
                    .Select(d => $"deployment {d!["id"]} still running"));
                return problems;
            },
            problems => problems.Count == 0,
            timeout,
            "every app at its instance count, no deployment left and no orphan task process",
            interval: TimeSpan.FromSeconds(1),
            retryOn: e => e is HttpRequestException or TaskCanceledException or MarathonApiException { StatusCode: >= 500 },
            describe: problems => string.Join("; ", problems));
    }

    private static string Describe(IEnumerable<Core.Api.TaskView> tasks) =>
        tasks.Select(FaultInjectionSupport.Describe).FirstOrDefault() ?? "unknown to the master";

    /// <summary>
    /// Agent n's task cgroups that hold a live process, keyed by task id (the cgroup's name), with their
    /// pids; a process directly in the agent's subtree (outside any task cgroup) is reported under "(none)".
    /// </summary>
    private static Dictionary<string, string> LiveTasks(MultiHostCluster cluster, int n)
    {
        var subtree = cluster.CgroupOf(n);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var mount in LinuxProcesses.CgroupMounts())
        {
            var root = Path.Combine(mount, subtree);
            try
            {
                if (Directory.Exists(root))
                {
                    names.UnionWith(Directory.EnumerateDirectories(root).Select(Path.GetFileName).OfType<string>());
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Removed meanwhile.
            }
        }

        var live = new Dictionary<string, string>(StringComparer.Ordinal);
        var inTasks = new HashSet<int>();
        foreach (var name in names)
        {
            var processes = LinuxProcesses.InCgroupTree(subtree + "/" + name);
            if (processes.Count > 0)
            {
                live[name] = string.Join(",", processes.Select(p => p.Pid));
                inTasks.UnionWith(processes.Select(p => p.Pid));
            }
        }

        var loose = LinuxProcesses.InCgroupTree(subtree).Where(p => !inTasks.Contains(p.Pid)).ToList();
        if (loose.Count > 0)
        {
            live["(none)"] = string.Join(",", loose.Select(p => p.Pid));
        }

        return live;
    }

    // ------------------------------------------------------------------ bookkeeping

    private sealed record ChaosApp(string Id, int[] Sizes, decimal MinimumHealthCapacity, decimal MaximumOverCapacity, JsonNode Unreachable, bool SlowKill)
    {
        /// <summary>The two commands the app's writes alternate between.</summary>
        public string[] Commands => SlowKill ? SlowCommands : FastCommands;

        /// <summary>Task ids (and so task cgroups) of the app start with its id, slashes as underscores.</summary>
        public string TaskPrefix => Id.Trim('/').Replace('/', '_') + ".";

        /// <summary>Marathon's cap on an app's instances during a deployment.</summary>
        public int MaxTotal(int instances) => instances + (int)Math.Ceiling(instances * MaximumOverCapacity);

        public JsonObject Definition(Write w) => new()
        {
            ["id"] = Id,
            ["cmd"] = w.Cmd,
            ["cpus"] = 0.05m,
            ["mem"] = 16,
            ["instances"] = w.Instances,
            ["env"] = new JsonObject { ["CHAOS_WRITE"] = w.Env },
            ["taskKillGracePeriodSeconds"] = 1,
            ["upgradeStrategy"] = new JsonObject { ["minimumHealthCapacity"] = MinimumHealthCapacity, ["maximumOverCapacity"] = MaximumOverCapacity },
            ["unreachableStrategy"] = Unreachable.DeepClone(),
        };
    }

    /// <summary>One write to an app: what it set and what became of it.</summary>
    private sealed record Write(int Seq, int Instances, string Cmd, string Env, bool Force)
    {
        public DateTime SentAt { get; init; }

        public DateTime? AnsweredAt { get; init; }

        public bool Acknowledged { get; init; }

        /// <summary>Unanswered or a 5xx: it may have landed.</summary>
        public bool MaybeApplied { get; init; }

        public string Outcome { get; init; } = "";

        public static (int Instances, string Cmd, string Env) Observed(JsonObject app) =>
            (app["instances"]!.GetValue<int>(), app["cmd"]?.GetValue<string>() ?? "", app["env"]?["CHAOS_WRITE"]?.GetValue<string>() ?? "");

        public bool Matches((int Instances, string Cmd, string Env) seen) => seen == (Instances, Cmd, Env);

        public override string ToString() => $"instances {Instances}, cmd '{Cmd}', CHAOS_WRITE={Env}{(Force ? ", force" : "")}";
    }

    /// <summary>Which hosts are up, and since when; and the master's outages.</summary>
    private sealed class HostStates(int agents)
    {
        private readonly DateTime?[] _upSince = [.. Enumerable.Repeat<DateTime?>(DateTime.MinValue, agents)];
        private readonly List<(DateTime Down, DateTime? Up)> _masterOutages = [];
        private readonly Lock _gate = new();

        public void Down(int n)
        {
            lock (_gate)
            {
                _upSince[n - 1] = null;
            }
        }

        public void Up(int n)
        {
            lock (_gate)
            {
                _upSince[n - 1] = DateTime.UtcNow;
            }
        }

        public void MasterDown()
        {
            lock (_gate)
            {
                _masterOutages.Add((DateTime.UtcNow, null));
            }
        }

        public void MasterUp()
        {
            lock (_gate)
            {
                _masterOutages[^1] = (_masterOutages[^1].Down, DateTime.UtcNow);
            }
        }

        /// <summary>
        /// Whether the master has been up for an unbroken <paramref name="settle"/> at some point since
        /// <paramref name="since"/>: time enough to act on what happened then.
        /// </summary>
        public bool MasterSettledSince(DateTime since, DateTime now, TimeSpan settle)
        {
            lock (_gate)
            {
                var upFrom = since;
                foreach (var (down, up) in _masterOutages.Where(o => o.Up is null || o.Up > since))
                {
                    if (down > upFrom && down - upFrom >= settle)
                    {
                        return true;
                    }

                    if (up is null)
                    {
                        return false;
                    }

                    upFrom = up.Value > upFrom ? up.Value : upFrom;
                }

                return now - upFrom >= settle;
            }
        }

        /// <summary>
        /// Whether host n's processes count for the capacity invariant: its agent runs and it is on the
        /// network, and has been for a stretch of <paramref name="settle"/> with the master up, so the master
        /// has killed what it replaced while the host was away.
        /// </summary>
        public bool Counted(int n, DateTime now, TimeSpan settle)
        {
            DateTime? since;
            lock (_gate)
            {
                since = _upSince[n - 1];
            }

            return since is { } s && (s == DateTime.MinValue || MasterSettledSince(s, now, settle));
        }
    }

    /// <summary>The run's timeline (faults, writes, notes) and the violations found.</summary>
    private sealed class ChaosRun(ITestOutputHelper output)
    {
        private readonly StringBuilder _timeline = new();
        private readonly ConcurrentQueue<string> _violations = new();

        public HostStates Hosts { get; set; } = new(0);

        public ConcurrentQueue<string> Violations => _violations;

        public void Log(string line)
        {
            var stamped = $"{DateTime.UtcNow:HH:mm:ss.fff} {line}";
            lock (_timeline)
            {
                _timeline.AppendLine(stamped);
            }

            output.WriteLine(stamped);
        }

        public void Violation(string text)
        {
            _violations.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {text}");
            Log("VIOLATION " + text);
        }

        public string Report(int seed, MultiHostCluster cluster)
        {
            lock (_timeline)
            {
                return $"chaos seed {seed} (replay: DROVER_CHAOS_SEED={seed}): {_violations.Count} violation(s)\n"
                    + string.Join("\n", _violations) + "\n\ntimeline:\n" + _timeline + "\n" + cluster.Diagnostics();
            }
        }
    }
}
