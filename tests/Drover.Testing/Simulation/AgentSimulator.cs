using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;

namespace Drover.Testing.Simulation;

/// <summary>What every simulated agent offers, and how the simulator behaves.</summary>
public sealed record AgentSimulatorOptions
{
    /// <summary>Resources each agent registers with (no ports unless given: tasks without ports fit anywhere).</summary>
    public Resources Resources { get; init; } = Resources.Parse("cpus:64;mem:262144;disk:100000;ports:[31000-32000]");

    /// <summary>Agents are spread round-robin over this many zones (<c>region-1/zone-N</c>) and racks (attribute <c>rack:rN</c>).</summary>
    public int Zones { get; init; } = 3;

    public int Racks { get; init; } = 10;

    /// <summary>Hostname prefix; agent i is <c>{prefix}-{i:D5}</c>.</summary>
    public string HostnamePrefix { get; init; } = "sim";

    /// <summary>Registrations in flight at once while starting (10,000 at once would open 10,000 connections in one burst).</summary>
    public int RegistrationConcurrency { get; init; } = 64;

    /// <summary>
    /// How long an agent's update sender waits after the first new update before posting, so a burst of
    /// launches on the command stream becomes one batch (the real agent's launch threads have the same effect).
    /// </summary>
    public TimeSpan UpdateCoalescing { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Connections for registrations, heartbeats and updates, shared by all agents (streams have their own).</summary>
    public int MaxRequestConnections { get; init; } = 256;

    /// <summary>Seed for heartbeat phases (spread over the interval, not in lockstep).</summary>
    public int Seed { get; init; } = 6;
}

/// <summary>
/// Thousands of protocol-faithful agents in one process, against a real master over HTTP. Each agent
/// registers, heartbeats (with the ids of the tasks it holds, at a random phase within the interval),
/// holds its NDJSON command stream, answers a launch with TASK_STARTING + TASK_RUNNING and a kill with
/// TASK_KILLED (batched per agent, re-sent until acknowledged), and registers again when the master
/// answers 404. No processes are started. See README.md next to this file.
/// <code>
///   AgentSimulator ── one HttpClient (one connection per command stream + a pool for POSTs)
///      ├─ SimulatedAgent 0: register → heartbeat loop │ command stream │ update sender
///      ├─ SimulatedAgent 1: …
///      └─ …
/// </code>
/// Thread-safety: the counters are updated with Interlocked and can be read at any time.
/// </summary>
public sealed class AgentSimulator : IAsyncDisposable
{
    private readonly List<SimulatedAgent> _agents = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _running = [];
    private long _registrations;
    private long _reregistrations;
    private long _heartbeats;
    private long _heartbeatFailures;
    private long _launches;
    private long _kills;
    private long _updatesAcked;
    private long _updateBatches;
    private long _streamsOpened;
    private long _callFailures;
    private long _runningTasks;

    private AgentSimulator(Uri master, AgentSimulatorOptions options)
    {
        Master = master;
        Options = options;

        // Command streams: one long-lived connection each, so no limit (10,000 agents hold 10,000
        // connections to one master; the default limit is unlimited too, set here because the
        // simulator depends on it).
        Streams = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            MaxConnectionsPerServer = int.MaxValue,
            ConnectTimeout = TimeSpan.FromSeconds(30),
        })
        { Timeout = Timeout.InfiniteTimeSpan };

        // Registrations, heartbeats and updates share a bounded pool: when the master stalls, timed-out
        // requests abort their connections, and an unbounded pool would open new ones without end
        // until the process ran out of file descriptors (10,000 streams already hold half of a
        // 20,000-descriptor limit). Requests beyond the bound wait for a connection.
        Http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            MaxConnectionsPerServer = options.MaxRequestConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            ConnectTimeout = TimeSpan.FromSeconds(30),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        RegistrationGate = new SemaphoreSlim(options.RegistrationConcurrency);
    }

    public Uri Master { get; }

    public AgentSimulatorOptions Options { get; }

    /// <summary>For registrations, heartbeats and updates (bounded pool).</summary>
    internal HttpClient Http { get; }

    /// <summary>For command streams (one connection each).</summary>
    internal HttpClient Streams { get; }

    internal SemaphoreSlim RegistrationGate { get; }

    internal CancellationToken Stopping => _stop.Token;

    public IReadOnlyList<SimulatedAgent> Agents => _agents;

    /// <summary>Agents that registered at least once.</summary>
    public long Registered => Interlocked.Read(ref _registrations);

    /// <summary>Registrations after the first (the master answered 404: it forgot the agent).</summary>
    public long Reregistrations => Interlocked.Read(ref _reregistrations);

    public long Heartbeats => Interlocked.Read(ref _heartbeats);

    public long HeartbeatFailures => Interlocked.Read(ref _heartbeatFailures);

    public long Launches => Interlocked.Read(ref _launches);

    public long Kills => Interlocked.Read(ref _kills);

    public long UpdatesAcked => Interlocked.Read(ref _updatesAcked);

    public long UpdateBatches => Interlocked.Read(ref _updateBatches);

    public long StreamsOpened => Interlocked.Read(ref _streamsOpened);

    /// <summary>Failed calls of any kind (connection errors, timeouts, 5xx), retried.</summary>
    public long CallFailures => Interlocked.Read(ref _callFailures);

    /// <summary>Tasks the agents report running (launched, not killed).</summary>
    public long RunningTasks => Interlocked.Read(ref _runningTasks);

    /// <summary>Creates <paramref name="count"/> agents and starts them; they register in the background (see <see cref="WaitRegisteredAsync"/>).</summary>
    public static AgentSimulator Start(Uri master, int count, AgentSimulatorOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var o = options ?? new AgentSimulatorOptions();
        var sim = new AgentSimulator(master, o);
        var random = new Random(o.Seed);
        for (var i = 0; i < count; i++)
        {
            var zone = i % Math.Max(1, o.Zones);
            var rack = i % Math.Max(1, o.Racks);
            sim._agents.Add(new SimulatedAgent(
                sim,
                string.Create(CultureInfo.InvariantCulture, $"{o.HostnamePrefix}-{i:D5}"),
                Attributes.From([new("rack", string.Create(CultureInfo.InvariantCulture, $"r{rack}"))]),
                new FaultDomain("region-1", string.Create(CultureInfo.InvariantCulture, $"zone-{zone}")),
                random.NextDouble()));
        }

        foreach (var a in sim._agents)
        {
            sim._running.Add(Task.Run(() => a.RunAsync(sim._stop.Token)));
        }

        return sim;
    }

    /// <summary>Waits until every agent has registered, or throws after <paramref name="timeout"/>.</summary>
    public async Task WaitRegisteredAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Registered < _agents.Count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"only {Registered} of {_agents.Count} simulated agents registered within {timeout}");
            }

            await Task.Delay(50, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One line of counters, for logs.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"agents={_agents.Count} registered={Registered} reregistered={Reregistrations} streams={StreamsOpened} heartbeats={Heartbeats} " +
        $"heartbeat_failures={HeartbeatFailures} launches={Launches} kills={Kills} running={RunningTasks} updates_acked={UpdatesAcked} " +
        $"update_batches={UpdateBatches} call_failures={CallFailures}");

    /// <summary>The ids of every task the agents hold, for checks in tests.</summary>
    public ImmutableHashSet<string> TaskIds() => [.. _agents.SelectMany(a => a.TaskIds())];

    internal void CountRegistration(bool first) => Interlocked.Increment(ref first ? ref _registrations : ref _reregistrations);

    internal void CountHeartbeat(bool ok) => Interlocked.Increment(ref ok ? ref _heartbeats : ref _heartbeatFailures);

    internal void CountLaunch() => Interlocked.Increment(ref _launches);

    internal void CountKill() => Interlocked.Increment(ref _kills);

    internal void CountAcked(int n)
    {
        Interlocked.Add(ref _updatesAcked, n);
        Interlocked.Increment(ref _updateBatches);
    }

    internal void CountStream() => Interlocked.Increment(ref _streamsOpened);

    internal void CountFailure() => Interlocked.Increment(ref _callFailures);

    internal void AddRunning(int delta) => Interlocked.Add(ref _runningTasks, delta);

    /// <summary>Stops every agent (their streams close; the master sees them go silent) and frees the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_running).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        Http.Dispose();
        Streams.Dispose();
        RegistrationGate.Dispose();
        _stop.Dispose();
    }
}
