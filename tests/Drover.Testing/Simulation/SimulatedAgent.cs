using System.Collections.Immutable;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Threading.Channels;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;

namespace Drover.Testing.Simulation;

/// <summary>
/// One simulated agent: the real agent's protocol (src/Drover.Agent/Host/AgentService.cs) without
/// executing anything. State is a map of the tasks it holds and an outbox of unacknowledged status
/// updates, both guarded by one lock; three loops (heartbeat, command stream, update sender) share them.
/// A task is held (and listed in heartbeats) until its terminal update is acknowledged, as the real agent does.
/// </summary>
public sealed class SimulatedAgent
{
    private const int MaxBatch = 1000;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan StreamIdle = TimeSpan.FromSeconds(20);

    private readonly AgentSimulator _sim;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskState> _tasks = new(StringComparer.Ordinal);
    private readonly List<TaskStatus> _outbox = [];
    private readonly Channel<bool> _updatesReady = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly SemaphoreSlim _registerLock = new(1, 1);
    private readonly double _phase;
    private int _generation;
    private bool _everRegistered;
    private TimeSpan _heartbeatInterval = TimeSpan.FromSeconds(1);

    internal SimulatedAgent(AgentSimulator sim, string hostname, Attributes attributes, FaultDomain domain, double phase)
    {
        _sim = sim;
        Hostname = hostname;
        Attributes = attributes;
        Domain = domain;
        _phase = phase;
        AgentId = Ids.NewAgentId();
    }

    /// <summary>Chosen before the first registration (as the real agent persists its id), kept across re-registrations.</summary>
    public string AgentId { get; private set; }

    public string Hostname { get; }

    public Attributes Attributes { get; }

    public FaultDomain Domain { get; }

    /// <summary>Ids of the tasks this agent holds now (running, or ended but not yet acknowledged).</summary>
    public ImmutableArray<string> TaskIds()
    {
        lock (_gate)
        {
            return [.. _tasks.Keys];
        }
    }

    internal async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await RegisterAsync(-1, ct).ConfigureAwait(false);
            await Task.WhenAll(HeartbeatLoopAsync(ct), CommandLoopAsync(ct), UpdateLoopAsync(ct)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private Uri Url(string path) => new(_sim.Master, path);

    /// <summary>Registers (again); <paramref name="seenGeneration"/> as in the real agent: a loop that found a stale registration.</summary>
    private async Task RegisterAsync(int seenGeneration, CancellationToken ct)
    {
        await _registerLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (seenGeneration != -1 && seenGeneration != Volatile.Read(ref _generation))
            {
                return;
            }

            var backoff = TimeSpan.FromMilliseconds(100);
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                await _sim.RegistrationGate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    ImmutableArray<TaskStatus> held;
                    lock (_gate)
                    {
                        held = [.. _tasks.Where(kv => !kv.Value.IsTerminal()).Select(kv => new TaskStatus { TaskId = kv.Key, State = TaskState.Running })];
                    }

                    var registration = new AgentRegistration
                    {
                        AgentId = AgentId,
                        Hostname = Hostname,
                        Address = "http://127.0.0.1:9", // sandbox reads are not simulated (discard port)
                        Resources = _sim.Options.Resources,
                        Attributes = Attributes,
                        Domain = Domain,
                        Tasks = held,
                    };
                    using var response = await _sim.Http.PostAsJsonAsync(Url("internal/v1/agents/register"), registration,
                        DroverJsonContext.Default.AgentRegistration, ct).ConfigureAwait(false);
                    response.EnsureSuccessStatusCode();
                    var registered = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.AgentRegistered, ct).ConfigureAwait(false)
                        ?? throw new HttpRequestException("empty registration response");
                    AgentId = registered.AgentId;
                    _heartbeatInterval = TimeSpan.FromSeconds(Math.Max(0.05, registered.HeartbeatIntervalSeconds));
                    Interlocked.Increment(ref _generation);
                    _sim.CountRegistration(first: !_everRegistered);
                    _everRegistered = true;
                    return;
                }
                catch (Exception e) when (IsCallFailure(e, ct))
                {
                    _sim.CountFailure();
                }
                finally
                {
                    _sim.RegistrationGate.Release();
                }

                await Task.Delay(backoff, ct).ConfigureAwait(false);
                backoff = Min(backoff * 2, MaxBackoff);
            }
        }
        finally
        {
            _registerLock.Release();
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken ct)
    {
        // A random phase within the interval: 10,000 agents must not heartbeat in lockstep.
        await Task.Delay(_heartbeatInterval * _phase, ct).ConfigureAwait(false);
        while (!ct.IsCancellationRequested)
        {
            var started = DateTime.UtcNow;
            var generation = Volatile.Read(ref _generation);
            try
            {
                var heartbeat = new AgentHeartbeat { ActiveTaskIds = TaskIds() };
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                using var response = await _sim.Http.PostAsJsonAsync(Url($"internal/v1/agents/{AgentId}/heartbeat"), heartbeat,
                    DroverJsonContext.Default.AgentHeartbeat, timeout.Token).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    await RegisterAsync(generation, ct).ConfigureAwait(false);
                    continue;
                }

                response.EnsureSuccessStatusCode();
                _sim.CountHeartbeat(ok: true);
            }
            catch (Exception e) when (IsCallFailure(e, ct))
            {
                _sim.CountHeartbeat(ok: false);
            }

            // Keep the period (not period + call time), so a slow master does not stretch the interval.
            var wait = _heartbeatInterval - (DateTime.UtcNow - started);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task CommandLoopAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (!ct.IsCancellationRequested)
        {
            var generation = Volatile.Read(ref _generation);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, Url($"internal/v1/agents/{AgentId}/commands"));
                using var response = await _sim.Streams.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    await RegisterAsync(generation, ct).ConfigureAwait(false);
                    continue;
                }

                response.EnsureSuccessStatusCode();
                _sim.CountStream();
                using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                using var reader = new StreamReader(stream);
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                while (true)
                {
                    // The master pings every few seconds; much longer silence means a dead connection.
                    idle.CancelAfter(StreamIdle);
                    var line = await reader.ReadLineAsync(idle.Token).ConfigureAwait(false);
                    if (line is null)
                    {
                        break;
                    }

                    backoff = TimeSpan.FromMilliseconds(100);
                    if (line.Length > 0)
                    {
                        Handle(JsonSerializer.Deserialize(line, DroverJsonContext.Default.AgentCommand));
                    }
                }
            }
            catch (Exception e) when (IsCallFailure(e, ct) || e is JsonException)
            {
                _sim.CountFailure();
            }

            await Task.Delay(backoff, ct).ConfigureAwait(false);
            backoff = Min(backoff * 2, MaxBackoff);
        }
    }

    private void Launch(LaunchTask launch, double now)
    {
        lock (_gate)
        {
            var id = launch.Task.Id;
            if (!_tasks.TryAdd(id, TaskState.Running))
            {
                return;
            }

            bool? healthy = launch.Task.HealthChecks.IsEmpty ? null : true;
            _outbox.Add(Status(id, TaskState.Starting, now, null));
            _outbox.Add(Status(id, TaskState.Running, now, healthy));
        }

        _sim.CountLaunch();
        _sim.AddRunning(1);
    }

    /// <summary>Launch and kill are idempotent, as on the real agent: a re-sent launch of a held task changes nothing.</summary>
    private void Handle(AgentCommand? command)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        switch (command)
        {
            case { Type: AgentCommandType.Launch, Launch: { } launch }:
                Launch(launch, now);
                break;
            case { Type: AgentCommandType.LaunchGroup, LaunchGroup: { } group }:
                foreach (var member in group.Tasks)
                {
                    Launch(member, now);
                }

                break;
            case { Type: AgentCommandType.Kill, Kill: { } kill }:
                lock (_gate)
                {
                    if (!_tasks.TryGetValue(kill.TaskId, out var state) || state.IsTerminal())
                    {
                        return;
                    }

                    _tasks[kill.TaskId] = TaskState.Killed;
                    _outbox.Add(Status(kill.TaskId, TaskState.Killed, now, null) with { Message = "Task killed" });
                }

                _sim.CountKill();
                _sim.AddRunning(-1);
                break;
            default:
                return; // pings; framework messages have no executor to go to
        }

        _updatesReady.Writer.TryWrite(true);
    }

    private TaskStatus Status(string taskId, TaskState state, double timestamp, bool? healthy) => new()
    {
        TaskId = taskId,
        State = state,
        Source = TaskSources.Executor,
        AgentId = AgentId,
        Timestamp = timestamp,
        Healthy = healthy,
        Uuid = Ids.NewUuid(),
    };

    /// <summary>Posts the outbox in order, in batches, until every update is acknowledged; re-sends on failure.</summary>
    private async Task UpdateLoopAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (await _updatesReady.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            _updatesReady.Reader.TryRead(out _);
            await Task.Delay(_sim.Options.UpdateCoalescing, ct).ConfigureAwait(false);
            while (true)
            {
                ImmutableArray<TaskStatus> batch;
                lock (_gate)
                {
                    if (_outbox.Count == 0)
                    {
                        break;
                    }

                    batch = [.. _outbox.Take(MaxBatch)];
                }

                var generation = Volatile.Read(ref _generation);
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromSeconds(30));
                    using var response = await _sim.Http.PostAsJsonAsync(Url($"internal/v1/agents/{AgentId}/updates"),
                        new StatusUpdateBatch { Updates = batch }, DroverJsonContext.Default.StatusUpdateBatch, timeout.Token).ConfigureAwait(false);
                    if (response.StatusCode == HttpStatusCode.NotFound)
                    {
                        await RegisterAsync(generation, ct).ConfigureAwait(false);
                        continue;
                    }

                    response.EnsureSuccessStatusCode();
                    var ack = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.StatusUpdateAck, timeout.Token).ConfigureAwait(false);
                    var acked = (ack?.Acknowledged ?? []).ToHashSet(StringComparer.Ordinal);
                    lock (_gate)
                    {
                        _outbox.RemoveAll(u => acked.Contains(u.Uuid!));
                        foreach (var u in batch)
                        {
                            if (u.State.IsTerminal() && acked.Contains(u.Uuid!))
                            {
                                _tasks.Remove(u.TaskId); // forgotten once the master has its end
                            }
                        }
                    }

                    _sim.CountAcked(acked.Count);
                    backoff = TimeSpan.FromMilliseconds(100);
                }
                catch (Exception e) when (IsCallFailure(e, ct) || e is JsonException)
                {
                    _sim.CountFailure();
                    await Task.Delay(backoff, ct).ConfigureAwait(false);
                    backoff = Min(backoff * 2, MaxBackoff);
                }
            }
        }
    }

    private static bool IsCallFailure(Exception e, CancellationToken ct) =>
        e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
