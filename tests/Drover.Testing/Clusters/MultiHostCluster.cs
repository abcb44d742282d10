using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Agent.Security;
using Drover.Cli.Hosting;
using Drover.Client;
using Drover.Client.Marathon;
using Drover.Core.Api;
using Drover.Core.Security.Pki;
using Drover.Testing.Netns;
using Drover.Testing.Processes;

namespace Drover.Testing.Clusters;

/// <summary>How a <see cref="MultiHostCluster"/> is built. Defaults: 3 agents of 2 cpus / 1 GiB, spread placement, the master's default timeouts.</summary>
public sealed record MultiHostOptions
{
    public int AgentCount { get; init; } = 3;

    /// <summary><c>drover master --strategy</c>.</summary>
    public string Strategy { get; init; } = "spread";

    /// <summary><c>drover agent --resources</c>, the same for every agent.</summary>
    public string AgentResources { get; init; } = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]";

    /// <summary>Rack attribute of agent n (1-based) is <c>Racks[n - 1]</c>; agents past the list get <c>r{n}</c>.</summary>
    public ImmutableArray<string> Racks { get; init; } = ["r1", "r1", "r2"];

    /// <summary>Fault-domain region of every agent; agent n is in zone <c>z{n}</c>.</summary>
    public string Region { get; init; } = "reg";

    /// <summary><c>drover master --agent-timeout</c>; null keeps the master's default.</summary>
    public TimeSpan? AgentUnreachableTimeout { get; init; }

    /// <summary><c>drover master --agent-removal-timeout</c>; null keeps the master's default.</summary>
    public TimeSpan? AgentRemovalTimeout { get; init; }

    /// <summary><c>drover master --heartbeat-interval</c>; null keeps the master's default.</summary>
    public TimeSpan? HeartbeatInterval { get; init; }

    /// <summary>
    /// The last agent listens on 0.0.0.0 and must work out (and advertise) its namespace's own address;
    /// the others listen on their address.
    /// </summary>
    public bool LastAgentListensOnWildcard { get; init; } = true;

    /// <summary><c>--log-level</c> of every process (their output goes to log files under the cluster's root).</summary>
    public string LogLevel { get; init; } = "warning";

    /// <summary>How long starting (or restarting) a process may take before the cluster gives up.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary><c>drover master --agent-cert-lifetime</c>; null keeps the master's default (agents renew after two thirds of it).</summary>
    public TimeSpan? AgentCertificateLifetime { get; init; }
}

/// <summary>
/// A real cluster of separate OS processes: one <c>drover master</c> in the root network namespace,
/// listening on a private bridge, and N <c>drover agent</c>s, each in its own network namespace with its
/// own address, hostname host1..N, rack, region and zone z1..N. Fault injection acts on these processes
/// and this network only: <see cref="KillMasterAsync"/> / <see cref="RestartMasterAsync"/>,
/// <see cref="KillAgentAsync"/> / <see cref="RestartAgentAsync"/> and <see cref="CutOffAsync"/> /
/// <see cref="HealAsync"/>. A test that injects faults should start a cluster of its own
/// (<c>await using var cluster = await MultiHostCluster.StartAsync(...)</c>), never share one with tests
/// that assume a healthy cluster. Needs root (see <see cref="NetnsNetwork.SkipReason"/>).
/// <para>
/// The cluster runs as <c>drover master</c> does by default: HTTPS with the cluster CA, logins, and agents that
/// join with a join token (<see cref="JoinToken"/>, made by the admin through the API) and then speak mutual TLS.
/// <see cref="Client"/>, <see cref="Marathon"/> and <see cref="Http"/> trust the CA and carry the bootstrap
/// admin's login token.
/// </para>
/// </summary>
/// <remarks>
/// Disposal removes everything the cluster created: it stops the agents still running (each kills its
/// tasks), SIGKILLs whatever is left in the agents' cgroup subtrees (tasks of agents that were killed),
/// stops the master, deletes the namespaces, veths and bridge, removes the cgroups and the files under
/// <see cref="Root"/> (kept when <c>DROVER_KEEP_TEST_FILES</c> is set). If the test process dies first,
/// the next run's <see cref="NetnsNetwork.CleanupLeftoversAsync"/> does the same from the network's track file.
/// </remarks>
public sealed class MultiHostCluster : IAsyncDisposable
{
    private readonly DroverProcess?[] _agents;
    private readonly int[] _agentStarts;
    private readonly List<DroverProcess> _retired = [];
    private readonly Lock _gate = new();
    private HttpClient? _http;
    private DroverClient? _client;
    private MarathonClient? _marathon;
    private DroverProcess? _master;
    private int _masterStarts;
    private int _disposed;

    private MultiHostCluster(MultiHostOptions options, NetnsNetwork network, string root, Uri masterUrl)
    {
        Options = options;
        Network = network;
        Root = root;
        MasterUrl = masterUrl;
        _agents = new DroverProcess?[options.AgentCount];
        _agentStarts = new int[options.AgentCount];
    }

    public MultiHostOptions Options { get; }

    public NetnsNetwork Network { get; }

    /// <summary>Temporary directory holding the master's data, the agents' work dirs and the process logs.</summary>
    public string Root { get; }

    /// <summary>The master's address on the bridge; the same across restarts.</summary>
    public Uri MasterUrl { get; }

    /// <summary>The native API (<c>/drover/v1</c>), as the bootstrap admin.</summary>
    public DroverClient Client => _client ?? throw new InvalidOperationException("the master has not come up yet");

    /// <summary>The Marathon API (<c>/v2</c>), as the bootstrap admin.</summary>
    public MarathonClient Marathon => _marathon ?? throw new InvalidOperationException("the master has not come up yet");

    /// <summary>For raw requests to <see cref="MasterUrl"/> (no proxy, 20 s timeout, trusting the cluster CA, as the bootstrap admin).</summary>
    public HttpClient Http => _http ?? throw new InvalidOperationException("the master has not come up yet");

    /// <summary>The cluster CA the master publishes (its <c>ca.pem</c>).</summary>
    public X509Certificate2Collection CaRoots { get; private set; } = [];

    /// <summary>The file the master writes its CA to: what <c>drover --ca-cert</c> takes.</summary>
    public string CaCertificateFile => Path.Combine(MasterDataDir, "ca.pem");

    /// <summary>The bootstrap admin's login token (<c>Authorization: Bearer …</c>).</summary>
    public string AdminToken { get; private set; } = "";

    /// <summary>The join token every agent was started with (valid for a day).</summary>
    public string JoinToken { get; private set; } = "";

    /// <summary>The current master process (a new one after each restart).</summary>
    public DroverProcess Master => _master ?? throw new InvalidOperationException("the master was never started");

    /// <summary>The current process of each agent (index n - 1); a new one after each restart.</summary>
    public IReadOnlyList<DroverProcess> Agents => [.. _agents.Select((a, i) => a ?? throw new InvalidOperationException($"agent {i + 1} was never started"))];

    public string MasterDataDir => Path.Combine(Root, "master");

    public static string HostnameOf(int n) => string.Create(CultureInfo.InvariantCulture, $"host{n}");

    /// <summary>The 1-based number of the agent registered as <paramref name="hostname"/>.</summary>
    public static int IndexOf(string hostname) =>
        hostname.StartsWith("host", StringComparison.Ordinal) && int.TryParse(hostname.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new ArgumentException($"'{hostname}' is not an agent of this cluster", nameof(hostname));

    /// <summary>Agent n's <c>--work-dir</c>, where it keeps its id and the task sandboxes.</summary>
    public string WorkDirOf(int n) => Path.Combine(Root, string.Create(CultureInfo.InvariantCulture, $"agent{n}"));

    /// <summary>Agent n's cgroup subtree (relative to each hierarchy's root); its tasks' cgroups are below it.</summary>
    public string CgroupOf(int n) => DroverHosts.CgroupNameFor(WorkDirOf(n));

    /// <summary>Agent n's network namespace.</summary>
    public NetnsHost HostOf(int n) => Network.Hosts[CheckIndex(n) - 1];

    /// <summary>The address of the agent named <paramref name="hostname"/>.</summary>
    public IPAddress AddressOf(string hostname) => HostOf(IndexOf(hostname)).Address;

    /// <summary>Starts the network, the master and every agent, and waits until the master lists every agent active.</summary>
    public static async Task<MultiHostCluster> StartAsync(MultiHostOptions? options = null)
    {
        options ??= new MultiHostOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.AgentCount, 1);
        if (NetnsNetwork.SkipReason is { } reason)
        {
            throw new InvalidOperationException("a multi-host cluster cannot run here: " + reason);
        }

        var root = Path.Combine(Path.GetTempPath(), "drover-multihost-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        NetnsNetwork? network = null;
        MultiHostCluster? cluster = null;
        try
        {
            network = await NetnsNetwork.CreateAsync(options.AgentCount).ConfigureAwait(false);
            network.TrackDirectory(root);
            var port = FreePort(network.Gateway);
            cluster = new MultiHostCluster(options, network, root,
                new Uri(string.Create(CultureInfo.InvariantCulture, $"https://{network.Gateway}:{port}/")));
            var master = cluster.StartMasterProcess();
            await cluster.ConnectAsync(master).ConfigureAwait(false);
            cluster.JoinToken = (await cluster.Client.CreateJoinTokenAsync(TimeSpan.FromDays(1), "multi-host cluster").ConfigureAwait(false)).Token;
            for (var n = 1; n <= options.AgentCount; n++)
            {
                network.TrackCgroup(cluster.CgroupOf(n));
                cluster.StartAgentProcess(n);
            }

            await cluster.WaitForAgentsAsync(since: null, options.StartupTimeout, failOnExit: true).ConfigureAwait(false);
            return cluster;
        }
        catch (Exception e)
        {
            var diagnostics = cluster?.Diagnostics() ?? "";
            if (cluster is not null)
            {
                await cluster.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                if (network is not null)
                {
                    await network.DisposeAsync().ConfigureAwait(false);
                }

                DeleteDirectory(root);
            }

            throw new InvalidOperationException($"Could not start the multi-host cluster: {e.Message}\n{diagnostics}", e);
        }
    }

    // ------------------------------------------------------------------ master

    /// <summary>SIGKILLs the master (no shutdown code runs: a crash) and waits until the process is gone. Agents and tasks keep running.</summary>
    public async Task KillMasterAsync()
    {
        var master = Master;
        if (!master.HasExited)
        {
            await master.KillAsync(ProcessSignal.Kill).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Starts the master again with the same data dir, address, port and flags (SIGKILLing it first if it
    /// still runs), and waits until its API answers (<c>GET /ping</c>); then, when
    /// <paramref name="waitForAgents"/>, until every agent that runs and is not cut off has heartbeated
    /// to the new master. Returns how long the new process took from its start to the API answering.
    /// </summary>
    public async Task<TimeSpan> RestartMasterAsync(bool waitForAgents = true)
    {
        await KillMasterAsync().ConfigureAwait(false);
        var deadline = DateTime.UtcNow + Options.StartupTimeout;
        while (true)
        {
            var started = DateTimeOffset.UtcNow;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var master = StartMasterProcess();
            var up = await Wait.UntilAsync(
                async () =>
                {
                    if (master.HasExited)
                    {
                        return false;
                    }

                    using var response = await Http.GetAsync(new Uri(MasterUrl, "ping")).ConfigureAwait(false);
                    return response.IsSuccessStatusCode;
                },
                ok => ok || master.HasExited,
                Max(deadline - DateTime.UtcNow, TimeSpan.FromSeconds(1)),
                $"the restarted master to answer GET {MasterUrl}ping",
                interval: TimeSpan.FromMilliseconds(50),
                retryOn: e => e is HttpRequestException or TaskCanceledException).ConfigureAwait(false);
            var ready = clock.Elapsed;
            if (!up || master.HasExited)
            {
                // E.g. the port still held for a moment by the killed process's sockets: try again.
                if (DateTime.UtcNow >= deadline)
                {
                    throw new InvalidOperationException($"the restarted master exited with {master.ExitCode}\n{Diagnostics()}");
                }

                await Task.Delay(200).ConfigureAwait(false);
                continue;
            }

            if (waitForAgents)
            {
                await WaitForAgentsAsync(since: started, Options.StartupTimeout, failOnExit: false).ConfigureAwait(false);
            }

            return ready;
        }
    }

    // ------------------------------------------------------------------ agents

    /// <summary>
    /// SIGKILLs agent n's process only and waits until it is gone. Its tasks keep running: they live in
    /// their own sessions and cgroups, and the cluster never signals them.
    /// </summary>
    public async Task KillAgentAsync(int n)
    {
        var agent = AgentProcess(n);
        if (!agent.HasExited)
        {
            await agent.KillAsync(ProcessSignal.Kill).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Starts agent n again with the same work dir, namespace, hostname and flags (SIGKILLing it first if
    /// it still runs). When <paramref name="waitForRegistration"/>, waits until the master shows it
    /// registered after this start (so the master must be up).
    /// </summary>
    public async Task RestartAgentAsync(int n, bool waitForRegistration = true)
    {
        await KillAgentAsync(n).ConfigureAwait(false);
        var started = DateTimeOffset.UtcNow;
        var agent = StartAgentProcess(n);
        if (!waitForRegistration)
        {
            return;
        }

        var hostname = HostnameOf(n);
        await Wait.UntilAsync(
            async () =>
            {
                if (agent.HasExited)
                {
                    throw new InvalidOperationException($"{agent.Name} exited with {agent.ExitCode} after its restart\n{agent.Tail()}");
                }

                return await Client.ListAgentsAsync().ConfigureAwait(false);
            },
            agents => agents.Any(a => a.Hostname == hostname && a.Status == "active" && a.RegisteredAt >= started),
            Options.StartupTimeout,
            $"{hostname} to register again after its restart",
            interval: TimeSpan.FromMilliseconds(100),
            retryOn: e => e is HttpRequestException or TaskCanceledException,
            describe: Describe).ConfigureAwait(false);
    }

    /// <summary>Disconnects agent n's host from the network (its veth goes down on the bridge side). Its processes keep running.</summary>
    public Task CutOffAsync(int n) => HostOf(n).CutOffAsync();

    /// <summary>Reconnects agent n's host after <see cref="CutOffAsync"/>.</summary>
    public Task HealAsync(int n) => HostOf(n).HealAsync();

    /// <summary>The agent's id as the master knows it (by hostname), or null when it does not list it.</summary>
    public async Task<AgentView?> FindAgentAsync(int n)
    {
        var hostname = HostnameOf(CheckIndex(n));
        return (await Client.ListAgentsAsync().ConfigureAwait(false)).SingleOrDefault(a => a.Hostname == hostname);
    }

    // ------------------------------------------------------------------ tasks

    /// <summary>
    /// The live processes in the cgroup of task <paramref name="taskId"/>, on whichever agent runs it
    /// (read from the cgroup filesystem, not through any API: this works while the master or the agent is down).
    /// Compare the lists before and after a fault to prove the task's processes were not touched.
    /// </summary>
    public IReadOnlyList<ProcessIdentity> TaskProcesses(string taskId)
    {
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        if (taskId.Contains('/', StringComparison.Ordinal) || taskId == "..")
        {
            throw new ArgumentException($"'{taskId}' is not a task id", nameof(taskId));
        }

        for (var n = 1; n <= Options.AgentCount; n++)
        {
            if (LinuxProcesses.InCgroupTree(CgroupOf(n) + "/" + taskId) is { Count: > 0 } found)
            {
                return found;
            }
        }

        return [];
    }

    /// <summary>The live processes in agent n's whole cgroup subtree (all its tasks).</summary>
    public IReadOnlyList<ProcessIdentity> AgentTaskProcesses(int n) => LinuxProcesses.InCgroupTree(CgroupOf(CheckIndex(n)));

    // ------------------------------------------------------------------ identities

    /// <summary>Agent n's credentials as it keeps them in its work dir (certificate, key, the CAs it trusts); null before it joined.</summary>
    public AgentCredentials? CredentialsOf(int n) => AgentCredentials.Load(WorkDirOf(CheckIndex(n)), TimeProvider.System);

    /// <summary>
    /// An HttpClient that calls the master as agent n would: presenting agent n's current certificate (from its work
    /// dir), trusting the cluster CA, no login token. For tests that try to make one agent speak for another.
    /// </summary>
    public HttpClient CreateAgentHttpClient(int n)
    {
        var credentials = CredentialsOf(n) ?? throw new InvalidOperationException($"agent {n} has not joined");
        var certificate = credentials.Certificate;
        credentials.Dispose(); // its own clients only; the certificate object stays usable
        return CreateHttpClient(certificate);
    }

    /// <summary>An HttpClient trusting the cluster CA and presenting <paramref name="clientCertificate"/> (none when null); no login token.</summary>
    public HttpClient CreateHttpClient(X509Certificate2? clientCertificate = null)
    {
        var handler = MasterTls.CreateHandler(CaRoots);
        handler.PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5);
        if (clientCertificate is not null)
        {
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => clientCertificate;
        }

        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(20) };
    }

    /// <summary>
    /// Starts one more <c>drover agent</c> process in agent n's network namespace, with its own work dir and port
    /// (e.g. to try a join token), and returns it; the cluster stops it at disposal. It does not count as an agent of the cluster.
    /// </summary>
    public DroverProcess StartExtraAgentProcess(int n, string name, IEnumerable<string> extraArgs, int port = 5052)
    {
        var host = HostOf(n);
        var workDir = Path.Combine(Root, name);
        Network.TrackCgroup(DroverHosts.CgroupNameFor(workDir));
        var process = DroverProcess.Start(name,
            ["agent", "--master", MasterUrl.GetLeftPart(UriPartial.Authority), "--listen", string.Create(CultureInfo.InvariantCulture, $"{host.Address}:{port}"),
             "--work-dir", workDir, "--hostname", name, "--resources", Options.AgentResources, "--log-level", Options.LogLevel, .. extraArgs],
            netns: host.Name,
            logFile: Path.Combine(Root, name + ".log"));
        Network.TrackProcess(process.Pid);
        lock (_gate)
        {
            _retired.Add(process);
        }

        return process;
    }

    // ------------------------------------------------------------------ diagnostics and teardown

    /// <summary>The last output of the master and every agent (current and earlier processes), for failure messages.</summary>
    public string Diagnostics()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"cluster: master {MasterUrl}, network {Network.Subnet} on {Network.BridgeName}, files in {Root}");
        lock (_gate)
        {
            foreach (var p in _retired)
            {
                text.AppendLine("(earlier process) " + p.Tail());
            }

            if (_master is not null)
            {
                text.AppendLine(_master.Tail());
            }

            foreach (var a in _agents.OfType<DroverProcess>())
            {
                text.AppendLine(a.Tail());
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// Agents that still run first (each kills its tasks and removes their cgroups), then the master;
    /// then the network, which kills whatever is left in the agents' cgroup subtrees (tasks of killed
    /// agents) and any tracked process, deletes the namespaces, veths and bridge, and removes the
    /// cgroups; then the files.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        DroverProcess[] agents, retired;
        DroverProcess? master;
        lock (_gate)
        {
            agents = [.. _agents.OfType<DroverProcess>()];
            retired = [.. _retired];
            master = _master;
        }

        await Task.WhenAll(agents.Select(a => a.DisposeAsync().AsTask())).ConfigureAwait(false);
        for (var n = 1; n <= Options.AgentCount; n++)
        {
            await LinuxProcesses.KillCgroupTreeAsync(CgroupOf(n), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }

        if (master is not null)
        {
            await master.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var p in retired)
        {
            await p.DisposeAsync().ConfigureAwait(false);
        }

        _client?.Dispose();
        _marathon?.Dispose();
        _http?.Dispose();
        await Network.DisposeAsync().ConfigureAwait(false);
        if (Environment.GetEnvironmentVariable("DROVER_KEEP_TEST_FILES") is not { Length: > 0 })
        {
            DeleteDirectory(Root);
        }
    }

    // ------------------------------------------------------------------ internals

    /// <summary>
    /// The command line of the master (after <c>drover</c>): its data dir, address and flags. For a test that runs a
    /// master of its own on the cluster's data dir, e.g. one that must refuse to start.
    /// </summary>
    public IReadOnlyList<string> MasterArguments()
    {
        var args = new List<string>
        {
            "master", "--data-dir", MasterDataDir, "--listen", MasterUrl.Authority,
            "--strategy", Options.Strategy, "--log-level", Options.LogLevel,
        };
        AddSeconds(args, "--agent-timeout", Options.AgentUnreachableTimeout);
        AddSeconds(args, "--agent-removal-timeout", Options.AgentRemovalTimeout);
        AddSeconds(args, "--heartbeat-interval", Options.HeartbeatInterval);
        AddSeconds(args, "--agent-cert-lifetime", Options.AgentCertificateLifetime);
        return args;
    }

    private DroverProcess StartMasterProcess()
    {
        var args = MasterArguments();
        var starts = ++_masterStarts;
        var name = starts == 1 ? "master" : string.Create(CultureInfo.InvariantCulture, $"master#{starts}");
        var master = DroverProcess.Start(name, args, logFile: Path.Combine(Root, "master.log"));
        Network.TrackProcess(master.Pid);
        lock (_gate)
        {
            if (_master is not null)
            {
                _retired.Add(_master);
            }

            _master = master;
        }

        return master;
    }

    private DroverProcess StartAgentProcess(int n)
    {
        var host = HostOf(n);
        var listen = n == Options.AgentCount && Options.LastAgentListensOnWildcard ? "0.0.0.0:5051" : $"{host.Address}:5051";
        var rack = n <= Options.Racks.Length ? Options.Racks[n - 1] : string.Create(CultureInfo.InvariantCulture, $"r{n}");
        DroverProcess? previous;
        lock (_gate)
        {
            previous = _agents[n - 1];
        }

        var starts = ++_agentStarts[n - 1];
        var name = starts == 1 ? string.Create(CultureInfo.InvariantCulture, $"agent{n}") : string.Create(CultureInfo.InvariantCulture, $"agent{n}#{starts}");
        var agent = DroverProcess.Start(name,
            ["agent", "--master", MasterUrl.GetLeftPart(UriPartial.Authority), "--listen", listen,
             "--work-dir", WorkDirOf(n), "--hostname", HostnameOf(n), "--resources", Options.AgentResources,
             "--attributes", $"rack:{rack}", "--region", Options.Region, "--zone", string.Create(CultureInfo.InvariantCulture, $"z{n}"),
             "--join-token", JoinToken, "--log-level", Options.LogLevel],
            netns: host.Name,
            logFile: Path.Combine(Root, string.Create(CultureInfo.InvariantCulture, $"agent{n}.log")));
        Network.TrackProcess(agent.Pid);
        lock (_gate)
        {
            if (previous is not null)
            {
                _retired.Add(previous);
            }

            _agents[n - 1] = agent;
        }

        return agent;
    }

    /// <summary>
    /// Waits for a new cluster's first master to come up (it writes its CA and the bootstrap admin's password into its
    /// data dir), then logs in as the admin and builds <see cref="Http"/>, <see cref="Client"/> and <see cref="Marathon"/>.
    /// </summary>
    private async Task ConnectAsync(DroverProcess master)
    {
        var passwordFile = Path.Combine(MasterDataDir, "bootstrap-admin-password");
        var ready = await Wait.UntilAsync(
            () => Task.FromResult(master.HasExited || (File.Exists(CaCertificateFile) && File.Exists(passwordFile) && new FileInfo(CaCertificateFile).Length > 0)),
            ok => ok, Options.StartupTimeout, "the master to write its CA and bootstrap password", interval: TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        if (!ready || master.HasExited)
        {
            throw new InvalidOperationException($"the master did not come up\n{master.Tail()}");
        }

        CaRoots = PemCertificates.LoadAll(await File.ReadAllTextAsync(CaCertificateFile).ConfigureAwait(false)).Value
            ?? throw new InvalidOperationException($"{CaCertificateFile} holds no certificate");
        var password = (await File.ReadAllTextAsync(passwordFile).ConfigureAwait(false)).Trim();
        using var anonymous = CreateHttpClient();
        AdminToken = await Wait.UntilAsync(
            async () =>
            {
                using var response = await anonymous.PostAsJsonAsync(new Uri(MasterUrl, "acs/api/v1/auth/login"), new JsonObject { ["uid"] = "admin", ["password"] = password }).ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
                return JsonNode.Parse(await response.Content.ReadAsStringAsync().ConfigureAwait(false))!["token"]!.GetValue<string>();
            },
            token => token.Length > 0, Options.StartupTimeout, "the admin's login", interval: TimeSpan.FromMilliseconds(100),
            retryOn: e => e is HttpRequestException or TaskCanceledException).ConfigureAwait(false);
        _http = CreateHttpClient();
        _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        _client = new DroverClient(MasterUrl, _http);
        _marathon = new MarathonClient(MasterUrl, _http);
    }

    /// <summary>
    /// Waits until the master lists every agent whose process runs and whose host is not cut off as
    /// active, having heartbeated after <paramref name="since"/> (null: any time). After a master
    /// restart pass the time the restart began: a restored agent shows as active at once, only a
    /// heartbeat later than that proves it reconnected.
    /// </summary>
    public Task WaitForAgentsAsync(DateTimeOffset? since = null, TimeSpan? timeout = null) =>
        WaitForAgentsAsync(since, timeout ?? Options.StartupTimeout, failOnExit: false);

    private async Task WaitForAgentsAsync(DateTimeOffset? since, TimeSpan timeout, bool failOnExit)
    {
        await Wait.UntilAsync(
            async () =>
            {
                if (failOnExit)
                {
                    ThrowIfAnyExited();
                }

                return await Client.ListAgentsAsync().ConfigureAwait(false);
            },
            agents => Enumerable.Range(1, Options.AgentCount)
                .Where(n => _agents[n - 1] is { HasExited: false } && !HostOf(n).IsCutOff)
                .All(n => agents.Any(a => a.Hostname == HostnameOf(n) && a.Status == "active" && (since is null || a.LastHeartbeatAt > since))),
            timeout,
            since is null ? $"{Options.AgentCount} active agents at {MasterUrl}" : $"every running agent to heartbeat to the master restarted at {since:HH:mm:ss.fff}",
            interval: TimeSpan.FromMilliseconds(100),
            retryOn: e => e is HttpRequestException or TaskCanceledException,
            describe: Describe).ConfigureAwait(false);
    }

    private void ThrowIfAnyExited()
    {
        foreach (var process in _agents.OfType<DroverProcess>().Prepend(Master).Where(p => p.HasExited))
        {
            throw new InvalidOperationException($"{process.Name} exited with {process.ExitCode} during startup");
        }
    }

    private DroverProcess AgentProcess(int n)
    {
        lock (_gate)
        {
            return _agents[CheckIndex(n) - 1] ?? throw new InvalidOperationException($"agent {n} was never started");
        }
    }

    private int CheckIndex(int n) =>
        n >= 1 && n <= Options.AgentCount ? n : throw new ArgumentOutOfRangeException(nameof(n), n, $"agents are numbered 1..{Options.AgentCount}");

    private static string Describe(ImmutableArray<AgentView> agents) =>
        string.Join(", ", agents.Select(a => $"{a.Hostname}={a.Status} (heartbeat {a.LastHeartbeatAt:HH:mm:ss.fff}, registered {a.RegisteredAt:HH:mm:ss.fff})"));

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static void AddSeconds(List<string> args, string flag, TimeSpan? value)
    {
        if (value is { } v)
        {
            args.Add(flag);
            args.Add(v.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture));
        }
    }

    private static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void DeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
