using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Drover.Agent.Execution;
using Drover.Agent.Executors;
using Drover.Agent.Host;
using Drover.Agent.Security;
using Drover.Core;
using Drover.Core.Security;
using Drover.Master;
using Drover.Master.HighAvailability;
using Drover.Core.Security.Pki;
using Drover.Master.Security.Pki;
using Drover.Store;
using Drover.Store.Etcd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Cli.Hosting;

/// <summary>What an agent needs besides the master's address; shared by <c>drover agent</c> and <c>drover dev</c>.</summary>
public sealed record AgentSettings
{
    public required string WorkDir { get; init; }

    public string? Hostname { get; init; }

    /// <summary>Null: discover from the machine.</summary>
    public Resources? Resources { get; init; }

    public Attributes Attributes { get; init; } = Attributes.Empty;

    public FaultDomain? Domain { get; init; }

    /// <summary>Overrides the advertised URL (default: the bound address).</summary>
    public Uri? Advertise { get; init; }

    /// <summary>Custom executor settings (registration timeout, shutdown grace…); null: Mesos' defaults.</summary>
    public ExecutorManagerOptions? Executors { get; init; }

    /// <summary>
    /// Whether stopping the agent kills its tasks. False for <c>drover agent</c> (as a Mesos agent or
    /// kubelet: a restarted agent recovers its running tasks, so an upgrade costs no task); true for
    /// <c>drover dev</c>, where stopping the process means stopping the cluster.
    /// </summary>
    public bool KillTasksOnStop { get; init; } = true;

    /// <summary>
    /// <c>--join-token</c>: with https masters, an agent without credentials in its work dir joins with it
    /// (<see cref="AgentCredentials.JoinAsync"/>). Ignored once the agent has joined.
    /// </summary>
    public string? JoinToken { get; init; }

    /// <summary>Credentials handed over directly (<c>drover dev --auth</c>: issued by the in-process master's CA); otherwise read from the work dir or made by a join.</summary>
    public AgentCredentials? Credentials { get; init; }

    /// <summary>The user a task without one runs as (<c>--default-task-user</c>): <c>nobody</c>.</summary>
    public string DefaultTaskUser { get; init; } = "nobody";

    /// <summary>The pids cap of the agent's whole cgroup subtree (<c>--agent-pids-limit</c>); null: three quarters of the kernel's pid_max.</summary>
    public int? AgentPidsLimit { get; init; }

    /// <summary>How often task sandboxes are measured against their disk (<c>--disk-watch-interval</c>); null: 15 s.</summary>
    public TimeSpan? DiskWatchInterval { get; init; }
}

/// <summary>
/// A started Drover process role (master, agent, or both in dev mode). Disposing stops it:
/// the agent connection first, then every task it runs, then the HTTP server.
/// </summary>
public sealed class RunningHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private readonly AgentCredentials? _ownedCredentials;

    internal RunningHost(WebApplication app, Uri url, AgentService? agent, AgentCredentials? ownedCredentials = null)
    {
        _app = app;
        Url = url;
        Agent = agent;
        _ownedCredentials = ownedCredentials;
    }

    /// <summary>The bound URL (with the real port when port 0 was asked for).</summary>
    public Uri Url { get; }

    public AgentService? Agent { get; }

    /// <summary>The agent's own URL when it has a listener of its own (<c>drover dev --auth</c>); else <see cref="Url"/>.</summary>
    public Uri? AgentUrl { get; internal init; }

    public IServiceProvider Services => _app.Services;

    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            if (Agent is not null)
            {
                await Agent.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }

            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false); // disposes the executor: kills tasks, removes cgroups
            Agent?.Dispose();
            _ownedCredentials?.Dispose();
        }
        finally
        {
            foreach (var l in Locks)
            {
                l.Dispose(); // last: the dirs are free only once nothing touches them
            }
        }
    }

    /// <summary>The data and work dir locks this host holds until disposed.</summary>
    internal IReadOnlyList<DirectoryLock> Locks { get; set; } = [];
}

/// <summary>A role could not start for a reason the operator can fix (address in use, no cgroups…).</summary>
public sealed class HostStartException(string message, Exception inner) : Exception(message, inner);

/// <summary>Builds and starts the three process roles.</summary>
public static class DroverHosts
{
    /// <summary>The executor API, the one thing an agent serves over plain HTTP next to HTTPS (<see cref="TlsServerSettings.AllowPlainHttp"/>).</summary>
    private const string ExecutorApiPath = "/api/v1/executor";

    /// <summary>
    /// A single master: locks its data dir, checks its store (<see cref="MasterStoreCheck"/>: an empty, corrupt, lost
    /// or foreign store is refused unless <paramref name="recoverFromAgents"/> may rebuild it), then serves.
    /// <paramref name="announce"/> receives what the operator should read (a store moved aside).
    /// </summary>
    /// <param name="configure">Runs after the master's services are added (tests replace the state store with it).</param>
    public static async Task<RunningHost> StartMasterAsync(MasterOptions options, Uri listen, LogLevel logLevel, CancellationToken ct, Uri? advertise = null,
        bool recoverFromAgents = false, Action<string>? announce = null, Action<IServiceCollection>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var locks = LockDirs(options.DataDir);
        try
        {
            options = await CheckStoreAsync(options, recoverFromAgents, logLevel, announce, ct).ConfigureAwait(false);
            var host = await StartAsync(listen, logLevel, master: options, agent: null, masters: null, ct, configure, advertise: advertise).ConfigureAwait(false);
            host.Locks = locks;
            return host;
        }
        catch
        {
            Release(locks);
            throw;
        }
    }

    /// <summary>An agent: locks its work dir before anything in it is read (credentials, task checkpoints), then serves.</summary>
    public static async Task<RunningHost> StartAgentAsync(AgentSettings agent, IReadOnlyList<Uri> masters, Uri listen, LogLevel logLevel, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var locks = LockDirs(agent.WorkDir);
        try
        {
            var host = await StartAsync(listen, logLevel, master: null, agent, masters, ct).ConfigureAwait(false);
            host.Locks = locks;
            return host;
        }
        catch
        {
            Release(locks);
            throw;
        }
    }

    /// <summary>
    /// Exclusive locks on each dir (<see cref="DirectoryLock"/>), all or none: a second process on any of them is
    /// refused with "DIR is already in use by PID N" before it reads or touches anything.
    /// </summary>
    private static List<DirectoryLock> LockDirs(params string[] dirs)
    {
        var locks = new List<DirectoryLock>();
        try
        {
            foreach (var dir in dirs)
            {
                locks.Add(DirectoryLock.Acquire(dir));
            }

            return locks;
        }
        catch
        {
            Release(locks);
            throw;
        }
    }

    private static void Release(List<DirectoryLock> locks)
    {
        foreach (var l in locks)
        {
            l.Dispose();
        }
    }

    private static async Task<MasterOptions> CheckStoreAsync(MasterOptions options, bool recover, LogLevel logLevel, Action<string>? announce, CancellationToken ct)
    {
        using var loggers = LoggerFactory.Create(b => ConfigureLogging(b, logLevel));
        return await MasterStoreCheck.PrepareAsync(options, recover, TimeProvider.System, loggers.CreateLogger("Drover.Store"), announce ?? (_ => { }), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Master and one agent in one process; the agent talks to its own master over HTTP(S). Without TLS both
    /// share one port. With TLS (<c>--auth</c>) the agent has a loopback listener of its own, serving its own
    /// certificate, which the in-process CA issues directly (no join).
    /// </summary>
    public static async Task<RunningHost> StartDevAsync(MasterOptions master, AgentSettings agent, Uri listen, LogLevel logLevel, CancellationToken ct,
        bool recoverFromAgents = false, Action<string>? announce = null)
    {
        ArgumentNullException.ThrowIfNull(master);
        ArgumentNullException.ThrowIfNull(agent);
        var locks = LockDirs(master.DataDir, agent.WorkDir);
        try
        {
            master = await CheckStoreAsync(master, recoverFromAgents, logLevel, announce, ct).ConfigureAwait(false);
            var host = await StartAsync(listen, logLevel, master, agent, masters: null, ct).ConfigureAwait(false);
            host.Locks = locks;
            return host;
        }
        catch
        {
            Release(locks);
            throw;
        }
    }

    /// <summary>
    /// A master of a highly available set (<see cref="MasterOptions.Etcd"/>): serves as a follower
    /// (<see cref="LeaderEndpoints.MapDroverFollower"/>) while it campaigns; once elected, loads the
    /// state from etcd and serves as the leader, every write fenced on its leader key. Returns 0 when
    /// stopped, 3 when it lost leadership: a deposed master exits (a supervisor restarts it as a
    /// follower), as a Mesos master does on losing its ZooKeeper leadership. With TLS the cluster CA is
    /// loaded (or, by the first master of a new cluster, created) before it campaigns, so a follower
    /// serves HTTPS too.
    /// </summary>
    public static async Task<int> RunHighlyAvailableMasterAsync(MasterOptions options, Uri listen, LogLevel logLevel, Action<string> announce, CancellationToken ct, Uri? advertise = null,
        bool recoverFromAgents = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(announce);
        var address = (advertise ?? ListenAddress.Advertise(listen)).Authority;
        using var dataDirLock = DirectoryLock.Acquire(options.DataDir);
        using var loggers = LoggerFactory.Create(b => ConfigureLogging(b, logLevel));
        var store = MasterHost.OpenStore(options, TimeProvider.System, loggers.CreateLogger("Drover.Store"));
        await using var _ = store.ConfigureAwait(false);
        // The cluster id first: a master must not campaign (nor create a CA) in a store that is not its cluster's.
        var checkBackoff = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                options = await MasterStoreCheck.PrepareAsync(options, store, recoverFromAgents, ct, announce).ConfigureAwait(false);
                break;
            }
#pragma warning disable CA1031 // Anything but a refusal (HostStartException) is etcd not ready yet (unreachable, electing, timing out): retry, as the election would.
            catch (Exception e) when (e is not HostStartException && !ct.IsCancellationRequested)
#pragma warning restore CA1031
            {
                announce($"Drover master {address} cannot read the cluster id from {options.Etcd} yet ({e.Message}); retrying");
                await Task.Delay(checkBackoff, ct).ConfigureAwait(false);
                checkBackoff = checkBackoff * 2 > TimeSpan.FromSeconds(10) ? TimeSpan.FromSeconds(10) : checkBackoff * 2;
            }
        }

        using var credentials = options.Tls is { } tls
            ? new MasterCredentials(WithServingNames(tls, listen, advertise), TimeProvider.System, loggers.CreateLogger<MasterCredentials>())
            : null;
        if (credentials is not null)
        {
            // Not fenced: creating the CA is a create-if-absent, so masters racing for it agree on one. Without the
            // store there is no CA, so nothing to serve HTTPS with: keep trying (the store logs why it fails).
            var backoff = TimeSpan.FromMilliseconds(500);
            while (true)
            {
                try
                {
                    await credentials.InitializeAsync(store, address, ct).ConfigureAwait(false);
                    break;
                }
                catch (StateStoreUnavailableException e)
                {
                    announce($"Drover master {address} cannot load the cluster CA from {options.Etcd} yet ({e.Message}); retrying");
                    await Task.Delay(backoff, ct).ConfigureAwait(false);
                    backoff = backoff * 2 > TimeSpan.FromSeconds(10) ? TimeSpan.FromSeconds(10) : backoff * 2;
                }
            }

        }

        using var election = new LeaderElection(store, new LeaderElectionOptions { Address = address, LeaseTtl = options.LeaderLease }, TimeProvider.System, loggers.CreateLogger<LeaderElection>());
        await election.StartAsync(CancellationToken.None).ConfigureAwait(false); // not ct: BackgroundService links it to its stopping token
        try
        {
            var (followerBuilder, _) = CreateBuilder([new Listener(listen, credentials is null ? null : MasterTls(() => credentials))], logLevel);
            var follower = followerBuilder.Build();
            follower.MapDroverFollower(election);
            try
            {
                await follower.StartAsync(ct).ConfigureAwait(false);
            }
            catch (IOException io)
            {
                await follower.DisposeAsync().ConfigureAwait(false);
                throw new HostStartException($"cannot listen on {listen.Authority}: {io.Message}", io);
            }

            announce($"Drover master {address} is up as a follower; campaigning for leadership in {options.Etcd}");
            if (credentials is not null)
            {
                WriteCaFile(options.DataDir, credentials); // once it serves: whoever waits for the file may call at once
                announce(CaAnnouncement(options.DataDir, credentials));
            }

            var stopping = follower.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            using (var either = CancellationTokenSource.CreateLinkedTokenSource(ct, stopping))
            {
                await Task.WhenAny(election.Elected, Task.Delay(Timeout.Infinite, either.Token)).ConfigureAwait(false);
            }

            var stopRequested = !election.Elected.IsCompleted || ct.IsCancellationRequested || stopping.IsCancellationRequested;
            await follower.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await follower.DisposeAsync().ConfigureAwait(false);
            if (stopRequested)
            {
                return 0;
            }

            var fenced = new FencedStateStore(store, election);
            RunningHost host;
            try
            {
                host = await StartAsync(listen, logLevel, options, agent: null, masters: null, ct,
                    services => services.AddSingleton<IStateStore>(fenced).AddSingleton(election),
                    app => app.MapLeaderRedirect(address), advertise, credentials).ConfigureAwait(false);
            }
            catch (NotLeaderException e)
            {
                // Deposed while loading the state (e.g. paused past its lease): a write was fenced off. Exit as below.
                announce($"Drover master {address} lost leadership while starting as the leader ({e.Message}); exiting");
                (store as EtcdStateStore)?.AbandonWrites();
                return 3;
            }

            announce($"Drover master {address} is the leader");
            var shutdown = host.WaitForShutdownAsync(ct);
            var lost = Task.Delay(Timeout.Infinite, election.Lost);
            await Task.WhenAny(shutdown, lost).ConfigureAwait(false);
            if (!shutdown.IsCompleted && election.Lost.IsCancellationRequested)
            {
                // Stop acting at once; the fence already refuses this master's writes.
                announce($"Drover master {address} lost leadership; exiting");
                (store as EtcdStateStore)?.AbandonWrites();
                await Task.WhenAny(host.DisposeAsync().AsTask(), Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None)).ConfigureAwait(false);
                return 3;
            }

            if (host.Services.GetService<Master.State.StoreFault>()?.Reason is { } reason)
            {
                // A write this leader had applied could not be made durable: exit as on losing leadership, and let the
                // supervisor restart it as a follower that loads the truth when elected.
                announce($"Drover master {address} stopped: {reason}; exiting");
                (store as EtcdStateStore)?.AbandonWrites();
                await Task.WhenAny(host.DisposeAsync().AsTask(), Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None)).ConfigureAwait(false);
                return 3;
            }

            await host.DisposeAsync().ConfigureAwait(false);
            return 0;
        }
        finally
        {
            await election.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The names a master's issued serving certificate carries unless the options name some: the machine's
    /// hostname, <c>localhost</c>, 127.0.0.1 and ::1, the listen and advertise hosts, and every address of
    /// the machine's interfaces when it listens on all of them (0.0.0.0 / [::]).
    /// </summary>
    public static MasterTlsOptions WithServingNames(MasterTlsOptions tls, Uri listen, Uri? advertise)
    {
        ArgumentNullException.ThrowIfNull(tls);
        ArgumentNullException.ThrowIfNull(listen);
        if (!tls.DnsNames.IsEmpty || !tls.IpAddresses.IsEmpty)
        {
            return tls;
        }

        var dns = new List<string> { "localhost" };
        if (Uri.CheckHostName(Environment.MachineName) == UriHostNameType.Dns)
        {
            dns.Add(Environment.MachineName);
        }

        var ips = new List<IPAddress> { IPAddress.Loopback, IPAddress.IPv6Loopback };
        foreach (var url in advertise is null ? [listen] : new[] { listen, advertise })
        {
            var host = url.Host.Trim('[', ']');
            if (IPAddress.TryParse(host, out var ip))
            {
                if (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
                {
                    ips.AddRange(NetworkInterface.GetAllNetworkInterfaces()
                        .Where(n => n.OperationalStatus == OperationalStatus.Up)
                        .SelectMany(n => n.GetIPProperties().UnicastAddresses)
                        .Select(a => a.Address)
                        .Where(a => a.AddressFamily is AddressFamily.InterNetwork || (a.AddressFamily is AddressFamily.InterNetworkV6 && !a.IsIPv6LinkLocal)));
                }
                else
                {
                    ips.Add(ip);
                }
            }
            else if (Uri.CheckHostName(host) == UriHostNameType.Dns)
            {
                dns.Add(host);
            }
        }

        return tls with
        {
            DnsNames = [.. dns.Distinct(StringComparer.OrdinalIgnoreCase)],
            IpAddresses = [.. ips.Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Distinct()],
        };
    }

    /// <summary>One Kestrel endpoint: where it binds and how it serves TLS (null: plain HTTP).</summary>
    private sealed record Listener(Uri Url, TlsServerSettings? Tls);

    private static TlsServerSettings MasterTls(Func<MasterCredentials> credentials) => new()
    {
        Certificate = () => credentials().ServerCertificate,
        ClientRoots = () => credentials().Ca.Roots,
    };

    private static TlsServerSettings AgentTls(Func<AgentCredentials> credentials) => new()
    {
        Certificate = () => credentials().ServerCertificate,
        ClientRoots = () => credentials().ClusterRoots,
        AllowPlainHttp = true,
    };

    /// <summary>A builder binding <paramref name="listeners"/>; the returned list gets each one's Kestrel options, which carry the bound port once started.</summary>
    private static (WebApplicationBuilder Builder, List<ListenOptions> Bound) CreateBuilder(IReadOnlyList<Listener> listeners, LogLevel logLevel)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            // Not the working directory, and no reloading: with the defaults the host watched every
            // directory under the working directory with inotify for appsettings changes — with
            // `drover dev`'s default data dir (.drover/dev) that is every task sandbox, one more watch
            // and a stream of events per launch. Drover reads no appsettings files.
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        var bound = new List<ListenOptions>();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var listener in listeners)
            {
                TlsListener.Bind(kestrel, listener.Url, listen =>
                {
                    bound.Add(listen);
                    if (listener.Tls is { } tls)
                    {
                        TlsListener.Use(listen, tls);
                    }
                });
            }
        });
        ConfigureLogging(builder.Logging, logLevel);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        return (builder, bound);
    }

    private static void ConfigureLogging(ILoggingBuilder logging, LogLevel logLevel)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        logging.SetMinimumLevel(logLevel);
        logging.AddFilter("Microsoft", logLevel > LogLevel.Warning ? logLevel : LogLevel.Warning);
        logging.AddFilter("System.Net.Http", LogLevel.Warning);
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical); // start failures are reported by the CLI
        // A client that does not trust the CA (or speaks HTTP to the HTTPS port) is the client's problem, not an error of the server.
        logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel.Https", LogLevel.Error);
        logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel.Connections", LogLevel.Error);
    }

    private static async Task<RunningHost> StartAsync(Uri listen, LogLevel logLevel, MasterOptions? master, AgentSettings? agent, IReadOnlyList<Uri>? masters, CancellationToken ct,
        Action<IServiceCollection>? configure = null, Action<WebApplication>? map = null, Uri? advertise = null, MasterCredentials? masterCredentials = null)
    {
        // An agent of https masters (drover agent) needs its credentials before it can serve: from its work
        // dir, or by joining. The dev agent's come from the in-process CA once that is loaded (below).
        AgentCredentials? agentCredentials = agent?.Credentials;
        AgentCredentials? ownedCredentials = null;
        if (agent is not null && master is null)
        {
            agentCredentials ??= ownedCredentials = await LoadOrJoinAsync(agent, masters!, logLevel, ct).ConfigureAwait(false);
        }

        if (master?.Tls is { } tls)
        {
            master = master with { Tls = WithServingNames(tls, listen, advertise) };
        }

        // The master's credentials come from its container (AddDroverMaster), unless the caller made them
        // (a highly available master, before its election); Kestrel reads them at each handshake, once built.
        WebApplication? built = null;
        var prebuilt = masterCredentials;
        MasterCredentials MasterCredentialsOf() => prebuilt ?? built!.Services.GetRequiredService<MasterCredentials>();

        // The dev agent's credentials are made after the CA is loaded, but before anything connects.
        AgentCredentials? devAgentCredentials = null;
        var listeners = new List<Listener>();
        Uri? agentListen = null;
        if (master is not null)
        {
            listeners.Add(new Listener(listen, master.Tls is null ? null : MasterTls(MasterCredentialsOf)));
            if (agent is not null && master.Tls is not null)
            {
                agentListen = new Uri("http://127.0.0.1:0");
                listeners.Add(new Listener(agentListen, AgentTls(() => devAgentCredentials ?? agent.Credentials!)));
            }
        }
        else
        {
            listeners.Add(new Listener(listen, agentCredentials is null ? null : AgentTls(() => agentCredentials)));
        }

        var (builder, bound) = CreateBuilder(listeners, logLevel);
        var security = master?.Security ?? new Master.Security.SecurityOptions { Enabled = false };
        builder.Services.AddSingleton(new BrowserGuard(ListenAddress.HostNames(listen, agent?.Advertise, security.AllowedHosts), security.AnyHost));

        if (master is not null)
        {
            Directory.CreateDirectory(master.DataDir);
            builder.Services.AddDroverMaster(master);
            if (prebuilt is not null)
            {
                builder.Services.AddSingleton(prebuilt);
            }

            configure?.Invoke(builder.Services);
        }

        string? hostname = null;
        if (agent is not null)
        {
            Directory.CreateDirectory(agent.WorkDir);
            hostname = agent.Hostname ?? Environment.MachineName;
            var executorOptions = new ProcessExecutorOptions
            {
                WorkDir = agent.WorkDir,
                CgroupName = CgroupNameFor(agent.WorkDir),
                Hostname = hostname,
                KillTasksOnDispose = agent.KillTasksOnStop,
                DefaultTaskUser = agent.DefaultTaskUser,
            };
            executorOptions = executorOptions with
            {
                AgentPidsLimit = agent.AgentPidsLimit ?? executorOptions.AgentPidsLimit,
                DiskWatchInterval = agent.DiskWatchInterval ?? executorOptions.DiskWatchInterval,
            };
            builder.Services.AddSingleton(executorOptions);
            builder.Services.AddSingleton(agent.Executors ?? new ExecutorManagerOptions());
            builder.Services.AddSingleton<ProcessTaskExecutor>();
            // Plain tasks run on the ProcessTaskExecutor; tasks with a custom executor go to that executor's process.
            builder.Services.AddSingleton<ITaskExecutor>(sp => new ExecutorManager(
                sp.GetRequiredService<ProcessTaskExecutor>(), executorOptions, sp.GetRequiredService<ExecutorManagerOptions>(),
                sp.GetRequiredService<ILoggerFactory>(), sp.GetRequiredService<TimeProvider>()));
        }

        var app = built = builder.Build();
        masterCredentials = master?.Tls is null ? null : MasterCredentialsOf();
        if (listeners.Any(l => l.Tls is { AllowPlainHttp: true }))
        {
            // The plain side of a TLS port carries executors' calls and nothing else.
            app.Use((http, next) => http.Request.IsHttps || http.Request.Path.StartsWithSegments(ExecutorApiPath, StringComparison.Ordinal)
                ? next(http)
                : Results.Text("this endpoint is served over HTTPS only\n", statusCode: StatusCodes.Status403Forbidden).ExecuteAsync(http));
        }

        if (master is not null)
        {
            app.MapDroverMaster();
            map?.Invoke(app);
            if (masterCredentials is not null)
            {
                await masterCredentials.InitializeAsync(app.Services.GetRequiredService<IStateStore>(), (advertise ?? ListenAddress.Advertise(listen)).Authority, ct).ConfigureAwait(false);
            }

            try
            {
                await app.RecoverDroverMasterAsync(ct).ConfigureAwait(false);
            }
            catch (Master.Secrets.SecretKeyMismatchException e)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                throw new HostStartException(e.Message, e);
            }
            catch (System.Data.Common.DbException e) when (master.Etcd is null)
            {
                // A damaged page the cluster id check did not touch: refused like a damaged header (MasterStoreCheck).
                await app.DisposeAsync().ConfigureAwait(false);
                throw new HostStartException($"refusing to start: {Path.Combine(master.DataDir, MasterHost.StoreFileName)} is not a readable Drover store (SQLite: {e.Message}); "
                    + $"restore it from a backup, or start with {MasterStoreCheck.RecoverFlag} to move it aside and rebuild the task list from what the agents report", e);
            }
        }

        if (agent is not null && master is not null && masterCredentials is not null && agent.Credentials is null)
        {
            devAgentCredentials = ownedCredentials = DevAgentCredentials(agent.WorkDir, masterCredentials);
            agentCredentials = devAgentCredentials;
        }

        if (agent is not null)
        {
            ITaskExecutor executor;
            try
            {
                executor = app.Services.GetRequiredService<ITaskExecutor>();
            }
            catch (InvalidOperationException e)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                ownedCredentials?.Dispose();
                throw new HostStartException($"the agent cannot run tasks: {e.Message}", e);
            }

            if (master is null)
            {
                // A stand-alone agent has its own gate (in dev mode the master's covers these routes too): with
                // TLS its sandbox routes answer only a master's certificate of the cluster CA.
                var roots = agentCredentials?.ClusterRoots;
                app.UseRouting();
                app.UseAgentGate(app.Services.GetRequiredService<BrowserGuard>(), roots);
            }

            AgentEndpoints.Map(app, executor);
            if (executor is ExecutorManager executors)
            {
                ExecutorApi.Map(app, executors);
            }
        }

        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Background services may already run (and the executor may exist): stop them, or the
            // process would linger after reporting the error.
            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            ownedCredentials?.Dispose();
            if (e is IOException io)
            {
                throw new HostStartException($"cannot listen on {listen.Authority}: {io.Message}", io);
            }

            throw;
        }

        if (master is not null && masterCredentials is not null)
        {
            WriteCaFile(master.DataDir, masterCredentials); // once it serves: whoever waits for the file may call at once
        }

        var url = ListenAddress.Advertise(BoundUrl(bound[0], listeners[0]), masters?.FirstOrDefault());
        if (master is not null && masterCredentials is not null && advertise is null && listen.Port == 0)
        {
            masterCredentials.SetAddress(url.Authority); // the identity names the port really bound
        }

        Uri? ownAgentUrl = agentListen is null ? null : BoundUrl(bound[1], listeners[1]);
        AgentService? agentService = null;
        if (agent is not null)
        {
            var advertised = agent.Advertise ?? ownAgentUrl ?? url;
            if (agentCredentials is not null && advertised.Scheme != Uri.UriSchemeHttps)
            {
                advertised = new UriBuilder(advertised) { Scheme = Uri.UriSchemeHttps }.Uri; // the master dials agents over TLS
            }

            var options = new AgentOptions
            {
                Masters = masters ?? [url],
                WorkDir = agent.WorkDir,
                AdvertisedAddress = advertised,
                Hostname = hostname!,
                Resources = agent.Resources ?? Agent.Discovery.ResourceDiscovery.Discover(agent.WorkDir),
                Attributes = agent.Attributes,
                Domain = agent.Domain,
                Credentials = agentCredentials,
            };
            agentService = ActivatorUtilities.CreateInstance<AgentService>(app.Services, options);
            await agentService.StartAsync(ct).ConfigureAwait(false);
        }

        return new RunningHost(app, url, agentService, ownedCredentials) { AgentUrl = ownAgentUrl };
    }

    /// <summary>The CA's certificate (public) is written to <c>&lt;data-dir&gt;/ca.pem</c> at each start, for clients to trust (<c>--ca-cert</c>).</summary>
    public const string CaFileName = "ca.pem";

    /// <summary>What a master prints about the CA clients must trust.</summary>
    public static string CaAnnouncement(string dataDir, MasterCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        return $"  HTTPS; clients trust the CA in {Path.Combine(dataDir, CaFileName)} (SHA-256 fingerprint {PemCertificates.Fingerprint(credentials.ServingRoots[0])})";
    }

    private static void WriteCaFile(string dataDir, MasterCredentials credentials)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, CaFileName);
        File.WriteAllText(path + ".tmp", credentials.ServingCaPem);
        File.Move(path + ".tmp", path, overwrite: true); // whole or absent: clients and tests read it while the master starts
    }

    /// <summary>The URL a started listener serves: its scheme, and the port it really bound.</summary>
    private static Uri BoundUrl(ListenOptions bound, Listener listener)
    {
        var scheme = listener.Tls is null ? Uri.UriSchemeHttp : Uri.UriSchemeHttps;
        var port = bound.IPEndPoint?.Port ?? listener.Url.Port;
        return new UriBuilder(listener.Url) { Scheme = scheme, Port = port }.Uri;
    }

    /// <summary>
    /// An agent's credentials for https masters: the ones in its work dir, or a join with its token. An
    /// agent whose certificate expired must join again (with a new token, under a new id); one without
    /// credentials or token cannot start. Plain-HTTP masters need none.
    /// </summary>
    private static async Task<AgentCredentials?> LoadOrJoinAsync(AgentSettings agent, IReadOnlyList<Uri> masters, LogLevel logLevel, CancellationToken ct)
    {
        var https = masters.Count(m => m.Scheme == Uri.UriSchemeHttps);
        if (https == 0)
        {
            return agent.JoinToken is null ? null
                : throw new HostStartException("--join-token: joining needs https:// master URLs (a master run with --insecure has no CA)", new ArgumentException(nameof(agent.JoinToken)));
        }

        if (https != masters.Count)
        {
            throw new HostStartException("--master: mixes http:// and https:// URLs; every master of a cluster serves the same", new ArgumentException(nameof(masters)));
        }

        AgentCredentials? existing;
        try
        {
            existing = AgentCredentials.Load(agent.WorkDir, TimeProvider.System);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new HostStartException(e.Message, e);
        }

        if (existing is not null && existing.ExpiresAt > DateTimeOffset.UtcNow)
        {
            return existing;
        }

        if (agent.JoinToken is null)
        {
            var why = existing is null
                ? "this agent has not joined the cluster yet"
                : $"this agent's certificate expired at {existing.ExpiresAt:u}";
            existing?.Dispose();
            throw new HostStartException($"{why}: start it with --join-token (from `drover node token create` on the master)", new InvalidOperationException(why));
        }

        existing?.Dispose();
        using var loggers = LoggerFactory.Create(b => ConfigureLogging(b, logLevel));
        try
        {
            return await AgentCredentials.JoinAsync(masters, agent.JoinToken, agent.WorkDir, agent.Hostname ?? Environment.MachineName,
                TimeProvider.System, loggers.CreateLogger<AgentCredentials>(), ct).ConfigureAwait(false);
        }
        catch (JoinRefusedException e)
        {
            throw new HostStartException(e.Message, e);
        }
    }

    /// <summary><c>drover dev --auth</c>: the agent keeps its id across starts (its work dir's agent-id file) and gets a fresh certificate from the in-process CA.</summary>
    private static AgentCredentials DevAgentCredentials(string workDir, MasterCredentials master)
    {
        var idFile = Path.Combine(workDir, "agent-id");
        var id = File.Exists(idFile) ? File.ReadAllText(idFile).Trim() : "";
        if (!Core.Ids.IsValidName(id))
        {
            id = Core.Ids.NewAgentId();
        }

        using var certificate = master.IssueAgentWithKey(id);
        return AgentCredentials.Create(workDir, X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null),
            master.Ca.Pem, master.ServingCaPem, TimeProvider.System);
    }

    /// <summary>A per-work-dir cgroup subtree, so several agents on one machine never touch each other's tasks.</summary>
    public static string CgroupNameFor(string workDir) =>
        "drover/agent-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(workDir))))[..12];
}
