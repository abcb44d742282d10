using System.Security.Cryptography;
using System.Text;
using Drover.Agent.Execution;
using Drover.Agent.Executors;
using Drover.Agent.Host;
using Drover.Core;
using Drover.Core.Security;
using Drover.Master;
using Drover.Master.HighAvailability;
using Drover.Store;
using Drover.Store.Etcd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Features;
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

    internal RunningHost(WebApplication app, Uri url, AgentService? agent)
    {
        _app = app;
        Url = url;
        Agent = agent;
    }

    /// <summary>The bound URL (with the real port when port 0 was asked for).</summary>
    public Uri Url { get; }

    public AgentService? Agent { get; }

    public IServiceProvider Services => _app.Services;

    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (Agent is not null)
        {
            await Agent.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false); // disposes the executor: kills tasks, removes cgroups
        Agent?.Dispose();
    }
}

/// <summary>A role could not start for a reason the operator can fix (address in use, no cgroups…).</summary>
public sealed class HostStartException(string message, Exception inner) : Exception(message, inner);

/// <summary>Builds and starts the three process roles.</summary>
public static class DroverHosts
{
    public static Task<RunningHost> StartMasterAsync(MasterOptions options, Uri listen, LogLevel logLevel, CancellationToken ct) =>
        StartAsync(listen, logLevel, master: options, agent: null, masters: null, ct);

    public static Task<RunningHost> StartAgentAsync(AgentSettings agent, IReadOnlyList<Uri> masters, Uri listen, LogLevel logLevel, CancellationToken ct) =>
        StartAsync(listen, logLevel, master: null, agent, masters, ct);

    /// <summary>Master and one agent in one process on one port; the agent talks to its own master over HTTP.</summary>
    public static Task<RunningHost> StartDevAsync(MasterOptions master, AgentSettings agent, Uri listen, LogLevel logLevel, CancellationToken ct) =>
        StartAsync(listen, logLevel, master, agent, masters: null, ct);

    /// <summary>
    /// A master of a highly available set (<see cref="MasterOptions.Etcd"/>): serves as a follower
    /// (<see cref="LeaderEndpoints.MapDroverFollower"/>) while it campaigns; once elected, loads the
    /// state from etcd and serves as the leader, every write fenced on its leader key. Returns 0 when
    /// stopped, 3 when it lost leadership: a deposed master exits (a supervisor restarts it as a
    /// follower), as a Mesos master does on losing its ZooKeeper leadership.
    /// </summary>
    public static async Task<int> RunHighlyAvailableMasterAsync(MasterOptions options, Uri listen, LogLevel logLevel, Action<string> announce, CancellationToken ct, Uri? advertise = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(announce);
        var address = (advertise ?? ListenAddress.Advertise(listen)).Authority;
        using var loggers = LoggerFactory.Create(b => ConfigureLogging(b, logLevel));
        var store = MasterHost.OpenStore(options, TimeProvider.System, loggers.CreateLogger("Drover.Store"));
        await using var _ = store.ConfigureAwait(false);
        using var election = new LeaderElection(store, new LeaderElectionOptions { Address = address, LeaseTtl = options.LeaderLease }, TimeProvider.System, loggers.CreateLogger<LeaderElection>());
        await election.StartAsync(CancellationToken.None).ConfigureAwait(false); // not ct: BackgroundService links it to its stopping token
        try
        {
            var follower = CreateBuilder(listen, logLevel).Build();
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
            var host = await StartAsync(listen, logLevel, options, agent: null, masters: null, ct,
                services => services.AddSingleton<IStateStore>(fenced).AddSingleton(election),
                app => app.MapLeaderRedirect(address)).ConfigureAwait(false);
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

            await host.DisposeAsync().ConfigureAwait(false);
            return 0;
        }
        finally
        {
            await election.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static WebApplicationBuilder CreateBuilder(Uri listen, LogLevel logLevel)
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
        builder.WebHost.UseUrls(listen.GetLeftPart(UriPartial.Authority));
        ConfigureLogging(builder.Logging, logLevel);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        return builder;
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
    }

    private static async Task<RunningHost> StartAsync(Uri listen, LogLevel logLevel, MasterOptions? master, AgentSettings? agent, IReadOnlyList<Uri>? masters, CancellationToken ct,
        Action<IServiceCollection>? configure = null, Action<WebApplication>? map = null)
    {
        var builder = CreateBuilder(listen, logLevel);
        var security = master?.Security ?? new Master.Security.SecurityOptions { Enabled = false };
        builder.Services.AddSingleton(new BrowserGuard(ListenAddress.HostNames(listen, agent?.Advertise, security.AllowedHosts), security.AnyHost));

        if (master is not null)
        {
            Directory.CreateDirectory(master.DataDir);
            builder.Services.AddDroverMaster(master);
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

        var app = builder.Build();
        if (master is not null)
        {
            app.MapDroverMaster();
            map?.Invoke(app);
            try
            {
                await app.RecoverDroverMasterAsync(ct).ConfigureAwait(false);
            }
            catch (Master.Secrets.SecretKeyMismatchException e)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                throw new HostStartException(e.Message, e);
            }
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
                throw new HostStartException($"the agent cannot run tasks: {e.Message}", e);
            }

            if (master is null)
            {
                // A stand-alone agent has its own gate (in dev mode the master's covers these routes too).
                app.UseRouting();
                app.UseAgentGate(app.Services.GetRequiredService<BrowserGuard>(), secure: false);
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
            if (e is IOException io)
            {
                throw new HostStartException($"cannot listen on {listen.Authority}: {io.Message}", io);
            }

            throw;
        }
        var bound = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
        var url = ListenAddress.Advertise(bound, masters?.FirstOrDefault());

        AgentService? agentService = null;
        if (agent is not null)
        {
            var options = new AgentOptions
            {
                Masters = masters ?? [url],
                WorkDir = agent.WorkDir,
                AdvertisedAddress = agent.Advertise ?? url,
                Hostname = hostname!,
                Resources = agent.Resources ?? Agent.Discovery.ResourceDiscovery.Discover(agent.WorkDir),
                Attributes = agent.Attributes,
                Domain = agent.Domain,
            };
            agentService = ActivatorUtilities.CreateInstance<AgentService>(app.Services, options);
            await agentService.StartAsync(ct).ConfigureAwait(false);
        }

        return new RunningHost(app, url, agentService);
    }

    /// <summary>A per-work-dir cgroup subtree, so several agents on one machine never touch each other's tasks.</summary>
    public static string CgroupNameFor(string workDir) =>
        "drover/agent-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(workDir))))[..12];
}
