using System.Collections.Immutable;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Drover.Agent.Execution;
using Drover.Agent.Executors;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Host;

/// <summary>
/// Connects this agent to the master: registers, heartbeats, follows the command stream and
/// delivers status updates until the master acknowledges them (at least once, in order per task).
/// <code>
///   register ──▶ ┬─ heartbeat loop ──(404: master forgot us)──▶ register again
///                ├─ command loop: NDJSON stream → executor.Launch / Kill (idempotent),
///                │                framework messages / executor shutdowns → ExecutorManager
///                ├─ update loop: executor.Updates + executor exits → disk → POST batch → ack → Forget terminal tasks
///                └─ message loop: executors' MESSAGE calls → POST /messages (best effort)
/// </code>
/// Every loop survives master restarts and failover: a failed call moves to the next master URL
/// and retries with capped backoff.
/// </summary>
public sealed partial class AgentService : BackgroundService
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);
    private const int MaxBatch = 1000;
    private static readonly int LaunchThreads = Math.Clamp(Environment.ProcessorCount * 16, 32, 128);

    private readonly AgentOptions _options;
    private readonly ITaskExecutor _executor;
    private readonly ExecutorManager? _executors;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger<AgentService> _logger;
    private readonly SemaphoreSlim _registerLock = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task> _launching = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Launches to run: one task, or the tasks of one task group (<c>AsGroup</c>), launched in one call.</summary>
    private readonly System.Collections.Concurrent.BlockingCollection<(ImmutableArray<LaunchTask> Launches, bool AsGroup, TaskCompletionSource Started)> _launchQueue = [];
    private int _launchThreadsStarted;
    private int _masterIndex;
    private string? _agentId;
    private string? _clusterId;
    /// <summary>Set when a master of another cluster answered, cleared by a registration with this agent's own: no command stream is opened meanwhile.</summary>
    private volatile bool _foreignMaster;
    private int _registrationGeneration;
    private TimeSpan _heartbeatInterval;

    public AgentService(AgentOptions options, ITaskExecutor executor, TimeProvider time, ILogger<AgentService> logger)
    {
        _options = options;
        _executor = executor;
        _time = time;
        _logger = logger;
        _heartbeatInterval = options.HeartbeatInterval;
        // Cluster-internal traffic never goes through an HTTP proxy configured for the machine.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
        // The id is chosen and written down before the first registration, not taken from the
        // master's answer: an agent killed between the master registering it and the answer arriving
        // would otherwise come back under a new id, and the master would hold two agents for one host.
        // With TLS the master chose it at the join, and the certificate names it.
        if (options.Credentials is { } credentials)
        {
            _agentId = credentials.AgentId;
            if (ReadPersistedAgentId() != credentials.AgentId)
            {
                PersistAgentId(credentials.AgentId);
            }
        }
        else
        {
            _agentId = ReadPersistedAgentId() ?? PersistNewAgentId();
        }

        _clusterId = ReadPersistedClusterId();

        // Custom executors (Mesos' executor API) exist when the task runner is the executor manager.
        _executors = executor as ExecutorManager;
        _executors?.AttachAgent(options.AdvertisedAddress, () => AgentId, options.Hostname);
    }

    /// <summary>This agent's id: chosen at its first start, kept in the work dir, confirmed by the master at registration.</summary>
    public string? AgentId => Volatile.Read(ref _agentId);

    /// <summary>Completes once the agent has registered with a master.</summary>
    public Task Registered => _registered.Task;

    private Uri Master => _options.Masters[Volatile.Read(ref _masterIndex) % _options.Masters.Count];

    /// <summary>The client for calls to masters: with TLS the credentials' (replaced at each renewal), else a plain one.</summary>
    private HttpClient Http => _options.Credentials?.Client ?? _http;

    private void NextMaster() => Interlocked.Increment(ref _masterIndex);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RegisterAsync(-1, stoppingToken).ConfigureAwait(false);
            await Task.WhenAll(
                HeartbeatLoopAsync(stoppingToken),
                CommandLoopAsync(stoppingToken),
                UpdateLoopAsync(stoppingToken),
                _executors is null ? Task.CompletedTask : MessageLoopAsync(_executors, stoppingToken),
                _options.Credentials is { } credentials ? RenewLoopAsync(credentials, stoppingToken) : Task.CompletedTask).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override void Dispose()
    {
        _launchQueue.CompleteAdding();
        _http.Dispose();
        _registerLock.Dispose();
        base.Dispose();
    }

    /// <summary>
    /// Registers (again). <paramref name="seenGeneration"/> is the registration the caller found
    /// stale; if another loop already re-registered since, this returns at once.
    /// </summary>
    private async Task RegisterAsync(int seenGeneration, CancellationToken ct)
    {
        await _registerLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (seenGeneration != -1 && seenGeneration != Volatile.Read(ref _registrationGeneration))
            {
                return;
            }

            var backoff = TimeSpan.FromMilliseconds(100);
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var master = Master;
                try
                {
                    var registration = new AgentRegistration
                    {
                        AgentId = AgentId,
                        Hostname = _options.Hostname,
                        Address = _options.AdvertisedAddress.ToString().TrimEnd('/'),
                        Resources = _options.Resources,
                        Attributes = _options.Attributes,
                        Domain = _options.Domain,
                        Tasks = [.. _executor.KnownTaskIds.Select(id => new TaskStatus { TaskId = id, State = TaskState.Running })],
                        Executors = [.. _executors?.LiveExecutors ?? []],
                    };
                    using var response = await Http.PostAsJsonAsync(new Uri(master, "internal/v1/agents/register"), registration,
                        DroverJsonContext.Default.AgentRegistration, ct).ConfigureAwait(false);
                    response.EnsureSuccessStatusCode();
                    var registered = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.AgentRegistered, ct).ConfigureAwait(false)
                        ?? throw new HttpRequestException("empty registration response");
                    // Before anything of this master is taken: its id, its heartbeat interval, and above all a command stream.
                    EnsureOwnCluster(registered.ClusterId ?? ClusterIdOf(response), master, "registration");
                    if (_clusterId is null && registered.ClusterId is { } first)
                    {
                        PersistClusterId(first); // the first master this agent registered with names its cluster for good
                    }

                    _foreignMaster = false;
                    Volatile.Write(ref _agentId, registered.AgentId);
                    _heartbeatInterval = TimeSpan.FromSeconds(Math.Max(0.05, registered.HeartbeatIntervalSeconds));
                    PersistAgentId(registered.AgentId);
                    Interlocked.Increment(ref _registrationGeneration);
                    LogRegistered(registered.AgentId, master.ToString());
                    _registered.TrySetResult();
                    return;
                }
                catch (ForeignMasterException)
                {
                    NextMaster(); // logged; keep every task, and try again until this cluster's master answers
                    await Task.Delay(backoff, _time, ct).ConfigureAwait(false);
                    backoff = Min(backoff * 2, MaxBackoff);
                }
                catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is OperationCanceledException && !ct.IsCancellationRequested))
                {
                    LogMasterCallFailed("register", master.ToString(), e.Message);
                    NextMaster();
                    await Task.Delay(backoff, _time, ct).ConfigureAwait(false);
                    backoff = Min(backoff * 2, MaxBackoff);
                }
            }
        }
        finally
        {
            _registerLock.Release();
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(_heartbeatInterval, _time, ct).ConfigureAwait(false);
            var generation = Volatile.Read(ref _registrationGeneration);
            var master = Master;
            try
            {
                var heartbeat = new AgentHeartbeat { ActiveTaskIds = [.. _executor.KnownTaskIds], Executors = [.. _executors?.LiveExecutors ?? []] };
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                using var response = await Http.PostAsJsonAsync(new Uri(master, $"internal/v1/agents/{AgentId}/heartbeat"), heartbeat,
                    DroverJsonContext.Default.AgentHeartbeat, timeout.Token).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    await RegisterAsync(generation, ct).ConfigureAwait(false);
                    continue;
                }

                response.EnsureSuccessStatusCode();
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogMasterCallFailed("heartbeat", master.ToString(), e.Message);
                NextMaster();
            }
        }
    }

    private async Task CommandLoopAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (!ct.IsCancellationRequested)
        {
            var generation = Volatile.Read(ref _registrationGeneration);
            var master = Master;
            if (_foreignMaster)
            {
                // Not even a request for commands while a master of another cluster is about: first a registration
                // with this agent's own cluster (RegisterAsync keeps trying until one answers).
                await RegisterAsync(generation, ct).ConfigureAwait(false);
                continue;
            }

            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(master, $"internal/v1/agents/{AgentId}/commands"));
                using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    await RegisterAsync(generation, ct).ConfigureAwait(false);
                    continue;
                }

                response.EnsureSuccessStatusCode();
                EnsureOwnCluster(ClusterIdOf(response), master, "command stream"); // before a single command is read
                using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                using var reader = new StreamReader(stream);
                while (true)
                {
                    // The master pings every few seconds; silence for much longer means the connection is dead.
                    using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    idle.CancelAfter(TimeSpan.FromSeconds(20));
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
            catch (ForeignMasterException)
            {
                NextMaster();
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogMasterCallFailed("command stream", master.ToString(), e.Message);
                NextMaster();
            }

            await Task.Delay(backoff, _time, ct).ConfigureAwait(false);
            backoff = Min(backoff * 2, MaxBackoff);
        }
    }

    /// <summary>
    /// Launches run on the agent's own launch threads (sixteen per core, at least 32), so a burst of them overlaps
    /// (each spends a few ms blocked in cgroup writes and process spawn) without flooding the
    /// thread pool: heartbeats, the command stream and status updates must never queue behind a
    /// thousand launches, or a busy agent would look dead to the master. A kill for a task whose
    /// launch is still in flight runs after that launch, so "launch then kill" can never become
    /// "kill (ignored) then launch".
    /// </summary>
    private void Handle(AgentCommand? command)
    {
        command = WithSecretValues(command);
        switch (command)
        {
            case { Type: AgentCommandType.Launch, Launch: { } launch }:
                var id = launch.Task.Id;
                LogLaunch(id);
                var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (!_launching.TryAdd(id, started.Task))
                {
                    break; // the same launch is already in flight (re-sent by the master)
                }

                EnsureLaunchThreads();
                _launchQueue.Add(([launch], false, started));
                break;
            case { Type: AgentCommandType.LaunchGroup, LaunchGroup: { } group }:
                // One work item for the whole group, so its executor gets it in one piece; a kill of any task of it
                // waits for the group's launch. Tasks whose launch is already in flight (a re-send) are left out.
                var groupStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var fresh = group.Tasks.Where(l => _launching.TryAdd(l.Task.Id, groupStarted.Task)).ToImmutableArray();
                if (fresh.IsEmpty)
                {
                    break;
                }

                LogLaunchGroup(string.Join(',', fresh.Select(l => l.Task.Id)));
                EnsureLaunchThreads();
                _launchQueue.Add((fresh, true, groupStarted));
                break;
            case { Type: AgentCommandType.Kill, Kill: { } kill }:
                LogKill(kill.TaskId);
                var grace = kill.GracePeriodSeconds is { } s ? TimeSpan.FromSeconds(s) : (TimeSpan?)null;
                if (_launching.TryGetValue(kill.TaskId, out Task? launching))
                {
                    launching.ContinueWith(_ => _executor.Kill(kill.TaskId, grace), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                }
                else
                {
                    _executor.Kill(kill.TaskId, grace);
                }

                break;
            case { Type: AgentCommandType.FrameworkMessage, Message: { } message }:
                _executors?.Deliver(message);
                break;
            case { Type: AgentCommandType.ShutdownExecutor, Message: { } shutdown }:
                _executors?.Shutdown(shutdown.FrameworkId, shutdown.ExecutorId);
                break;
        }
    }

    /// <summary>
    /// Hands the secret values that came beside a launch (<see cref="AgentCommand.Secrets"/>) to the launches they belong
    /// to (<see cref="LaunchTask.SecretValues"/>, never serialized): the executor's secrets stage puts them into the
    /// task, and nothing keeps them after that. Values for tasks not in the command are dropped.
    /// </summary>
    private static AgentCommand? WithSecretValues(AgentCommand? command)
    {
        if (command?.Secrets is not { IsDefaultOrEmpty: false } values)
        {
            return command;
        }

        LaunchTask Attach(LaunchTask l) => l with { SecretValues = [.. values.Where(v => v.TaskId == l.Task.Id)] };
        return command switch
        {
            { Type: AgentCommandType.Launch, Launch: { } launch } => command with { Launch = Attach(launch), Secrets = null },
            { Type: AgentCommandType.LaunchGroup, LaunchGroup: { } group } => command with { LaunchGroup = group with { Tasks = [.. group.Tasks.Select(Attach)] }, Secrets = null },
            _ => command with { Secrets = null },
        };
    }

    /// <summary>
    /// Posts executors' messages to their schedulers through the master. Best effort, as Mesos' framework
    /// messages: each is tried once on each master URL and then dropped.
    /// </summary>
    private async Task MessageLoopAsync(ExecutorManager executors, CancellationToken ct)
    {
        await foreach (var message in executors.OutgoingMessages.ReadAllAsync(ct).ConfigureAwait(false))
        {
            for (var attempt = 0; attempt < _options.Masters.Count; attempt++)
            {
                var master = Master;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromSeconds(10));
                    using var response = await Http.PostAsJsonAsync(new Uri(master, $"internal/v1/agents/{AgentId}/messages"), message,
                        DroverJsonContext.Default.FrameworkMessage, timeout.Token).ConfigureAwait(false);
                    response.EnsureSuccessStatusCode();
                    break;
                }
                catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
                {
                    LogMasterCallFailed("framework message", master.ToString(), e.Message);
                    NextMaster();
                }
            }
        }
    }

    /// <summary>
    /// Renews the certificate two thirds into its validity, through whichever master answers, retrying with
    /// backoff (at most a minute, and never later than the certificate allows) until it succeeds. A renewed
    /// certificate is used for every call made after it; a command stream opened with the old one is ended
    /// by the master when that one expires, and reopened with the new one.
    /// </summary>
    private async Task RenewLoopAsync(Security.AgentCredentials credentials, CancellationToken ct)
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            var wait = credentials.RenewAt - _time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, _time, ct).ConfigureAwait(false);
            }

            var master = Master;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(30));
                await credentials.RenewAsync(master, timeout.Token).ConfigureAwait(false);
                LogRenewed(credentials.AgentId, credentials.ExpiresAt);
                backoff = TimeSpan.FromSeconds(1);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogMasterCallFailed("certificate renewal", master.ToString(), e.Message);
                NextMaster();
                var left = credentials.ExpiresAt - _time.GetUtcNow();
                await Task.Delay(Min(backoff, left > TimeSpan.FromSeconds(1) ? left / 4 : TimeSpan.FromSeconds(1)), _time, ct).ConfigureAwait(false);
                backoff = Min(backoff * 2, TimeSpan.FromMinutes(1));
            }
        }
    }

    private void EnsureLaunchThreads()
    {
        if (Interlocked.Exchange(ref _launchThreadsStarted, 1) != 0)
        {
            return;
        }

        // Many more threads than cores: a launch spends most of its time waiting in the kernel (cgroup
        // mkdir and writes serialise on cgroup locks, process spawn), not computing. Measured on 2
        // cores: 2 or 8 threads left launches queueing for seconds; 32 keep up with submissions.
        for (var i = 0; i < LaunchThreads; i++)
        {
            new Thread(RunLaunches) { IsBackground = true, Name = $"drover-launch-{i}" }.Start();
        }
    }

    private void RunLaunches()
    {
        foreach (var (launches, asGroup, started) in _launchQueue.GetConsumingEnumerable())
        {
            try
            {
                if (asGroup)
                {
                    _executor.LaunchGroup(new LaunchTaskGroup { Tasks = launches });
                }
                else
                {
                    _executor.Launch(launches[0]);
                }
            }
            catch (ObjectDisposedException)
            {
                // The agent is shutting down.
            }
            catch (Exception e)
            {
                LogLaunchFailed(launches[0].Task.Id, e);
            }
            finally
            {
                foreach (var launch in launches)
                {
                    _launching.TryRemove(launch.Task.Id, out _);
                }

                started.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Sends updates in order and keeps each one until the master acknowledges it: on disk first
    /// (<see cref="StatusUpdateLog"/>), so a restarted agent re-sends what was not acknowledged before
    /// anything new. A terminal update's acknowledgement lets the executor forget the task. Custom executors'
    /// exits take the same path (<see cref="ExecutorExit"/>: on disk, sent, kept until acknowledged), so a master
    /// outage delays them but never loses one.
    /// </summary>
    private async Task UpdateLoopAsync(CancellationToken ct)
    {
        using var log = new StatusUpdateLog(_options.WorkDir);
        if (log.Pending.Count > 0)
        {
            LogReplaying(log.Pending.Count);
        }

        var unlogged = new List<TaskStatus>();
        var unloggedExits = new List<ExecutorExit>();
        var backoff = TimeSpan.FromMilliseconds(100);
        var updates = _executor.Updates;
        var exits = _executors?.Exits;
        while (!ct.IsCancellationRequested)
        {
            if (log.Pending.Count == 0 && log.PendingExits.Count == 0 && unlogged.Count == 0 && unloggedExits.Count == 0
                && !await WaitToReadAsync(updates, exits, ct).ConfigureAwait(false))
            {
                return;
            }

            while (unlogged.Count < MaxBatch && updates.TryRead(out var u))
            {
                unlogged.Add(u with { AgentId = u.AgentId ?? AgentId, Uuid = u.Uuid ?? Ids.NewUuid() });
            }

            // Read after the updates: the tasks an executor took down with it are reported before its exit.
            while (exits is not null && unloggedExits.Count < MaxBatch && exits.TryRead(out var x))
            {
                unloggedExits.Add(x);
            }

            try
            {
                log.Append(unlogged, unloggedExits);
                // Executors learn their updates are safe (ACKNOWLEDGED) once they are on disk, as from Mesos' status update manager.
                _executors?.OnDurable(unlogged);
                _executors?.OnExitsDurable(unloggedExits);
                unlogged.Clear();
                unloggedExits.Clear();
            }
            catch (IOException e)
            {
                // Nothing is sent before it is on disk; the updates wait in memory meanwhile.
                LogUpdateLogFailed(e.Message);
                await Task.Delay(MaxBackoff, _time, ct).ConfigureAwait(false);
                continue;
            }

            if (log.Pending.Count == 0 && log.PendingExits.Count == 0)
            {
                continue;
            }

            var generation = Volatile.Read(ref _registrationGeneration);
            var master = Master;
            try
            {
                var batch = new StatusUpdateBatch { Updates = [.. log.Pending.Take(MaxBatch)], ExecutorExits = [.. log.PendingExits.Take(MaxBatch)] };
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                using var response = await Http.PostAsJsonAsync(new Uri(master, $"internal/v1/agents/{AgentId}/updates"), batch,
                    DroverJsonContext.Default.StatusUpdateBatch, timeout.Token).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    await RegisterAsync(generation, ct).ConfigureAwait(false);
                    continue;
                }

                response.EnsureSuccessStatusCode();
                EnsureOwnCluster(ClusterIdOf(response), master, "status update"); // another cluster's ack must not make us forget an update
                var ack = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.StatusUpdateAck, timeout.Token).ConfigureAwait(false);
                var acked = (ack?.Acknowledged ?? []).ToHashSet(StringComparer.Ordinal);
                log.Acknowledge(acked);
                _executors?.OnExitsAcknowledged(batch.ExecutorExits.Select(x => x.Uuid).Where(acked.Contains));
                foreach (var u in batch.Updates.Where(u => acked.Contains(u.Uuid!) && u.State.IsTerminal()))
                {
                    _executor.Forget(u.TaskId);
                }

                backoff = TimeSpan.FromMilliseconds(100);
            }
            catch (ForeignMasterException)
            {
                NextMaster();
                await Task.Delay(backoff, _time, ct).ConfigureAwait(false);
                backoff = Min(backoff * 2, MaxBackoff);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogMasterCallFailed("status update", master.ToString(), e.Message);
                NextMaster();
                await Task.Delay(backoff, _time, ct).ConfigureAwait(false);
                backoff = Min(backoff * 2, MaxBackoff);
            }
        }
    }

    /// <summary>True when either channel has something to read; false once the updates channel is completed.</summary>
    private static async ValueTask<bool> WaitToReadAsync(System.Threading.Channels.ChannelReader<TaskStatus> updates,
        System.Threading.Channels.ChannelReader<ExecutorExit>? exits, CancellationToken ct)
    {
        if (exits is null)
        {
            return await updates.WaitToReadAsync(ct).ConfigureAwait(false);
        }

        if (updates.TryPeek(out _) || exits.TryPeek(out _))
        {
            return true;
        }

        // Cancelled afterwards, so the waiter left on the channel that did not fire does not pile up.
        using var either = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var u = updates.WaitToReadAsync(either.Token).AsTask();
        var x = exits.WaitToReadAsync(either.Token).AsTask();
        var first = await Task.WhenAny(u, x).ConfigureAwait(false);
        await either.CancelAsync().ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        return first == x ? await x.ConfigureAwait(false) || await updates.WaitToReadAsync(ct).ConfigureAwait(false) : await u.ConfigureAwait(false);
    }

    private string IdFile => Path.Combine(_options.WorkDir, "agent-id");

    /// <summary>The cluster this agent belongs to: the id of the first master it registered with (0600).</summary>
    private string ClusterIdFile => Path.Combine(_options.WorkDir, "meta", "cluster-id");

    /// <summary>The cluster id this agent keeps (null until its first registration with a master that names one).</summary>
    public string? ClusterId => Volatile.Read(ref _clusterId);

    private static string? ClusterIdOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues(AgentProtocolHeaders.ClusterId, out var values) ? values.FirstOrDefault() : null;

    /// <summary>
    /// Refuses (logged, <see cref="ForeignMasterException"/>) a master whose cluster id is not this agent's: its store
    /// is another cluster's, or a fresh one, and it would kill every task it does not know. A master that names no
    /// cluster, or an agent that has none yet, passes.
    /// </summary>
    private void EnsureOwnCluster(string? masterCluster, Uri master, string call)
    {
        var own = ClusterId;
        if (masterCluster is null || own is null || masterCluster == own)
        {
            return;
        }

        _foreignMaster = true;
        LogForeignMaster(master.ToString(), masterCluster, own, call);
        throw new ForeignMasterException();
    }

    private string? ReadPersistedClusterId()
    {
        try
        {
            var id = File.Exists(ClusterIdFile) ? File.ReadAllText(ClusterIdFile).Trim() : null;
            return string.IsNullOrEmpty(id) ? null : id;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private void PersistClusterId(string id)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(ClusterIdFile)!);
        Security.PrivateFile.Write(ClusterIdFile, System.Text.Encoding.UTF8.GetBytes(id + "\n"));
        Volatile.Write(ref _clusterId, id);
        LogClusterJoined(id);
    }

    /// <summary>A master of another cluster answered; already logged.</summary>
    private sealed class ForeignMasterException : Exception;

    private string? ReadPersistedAgentId()
    {
        try
        {
            var id = File.Exists(IdFile) ? File.ReadAllText(IdFile).Trim() : null;
            return string.IsNullOrEmpty(id) ? null : id;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private string PersistNewAgentId()
    {
        var id = Ids.NewAgentId();
        PersistAgentId(id);
        return id;
    }

    private void PersistAgentId(string id)
    {
        Directory.CreateDirectory(_options.WorkDir);
        var tmp = IdFile + ".tmp";
        File.WriteAllText(tmp, id);
        File.Move(tmp, IdFile, overwrite: true);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    [LoggerMessage(Level = LogLevel.Error, Message = "Refusing master {Master} ({Call}): it serves cluster {MasterCluster}, but this agent belongs to cluster {OwnCluster}; "
        + "no command of it is applied and every task keeps running; retrying until a master of cluster {OwnCluster} answers")]
    private partial void LogForeignMaster(string master, string masterCluster, string ownCluster, string call);

    [LoggerMessage(Level = LogLevel.Information, Message = "This agent belongs to cluster {ClusterId} from now on")]
    private partial void LogClusterJoined(string clusterId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Registered as {AgentId} with master {Master}")]
    private partial void LogRegistered(string agentId, string master);

    [LoggerMessage(Level = LogLevel.Information, Message = "Renewed the certificate of agent {AgentId}; valid until {NotAfter:u}")]
    private partial void LogRenewed(string agentId, DateTimeOffset notAfter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Call} to master {Master} failed: {Error}")]
    private partial void LogMasterCallFailed(string call, string master, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-sending {Count} status updates the master had not acknowledged before the agent restarted")]
    private partial void LogReplaying(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot write status updates to disk, holding them in memory: {Error}")]
    private partial void LogUpdateLogFailed(string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Launching task {TaskId} failed")]
    private partial void LogLaunchFailed(string taskId, Exception e);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Launching task {TaskId}")]
    private partial void LogLaunch(string taskId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Launching task group {TaskIds}")]
    private partial void LogLaunchGroup(string taskIds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Killing task {TaskId}")]
    private partial void LogKill(string taskId);
}
