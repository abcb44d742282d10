using System.Diagnostics;
using Drover.Core;
using Drover.Core.Api;
using Drover.Master.Events;
using Drover.Core.Security;
using Drover.Master.Http;
using Drover.Master.Iam;
using Drover.Master.Mesos;
using Drover.Master.Overload;
using Drover.Master.Metrics;
using Drover.Master.Scheduling;
using Drover.Master.Security;
using Drover.Master.Security.Pki;
using Drover.Master.Services;
using Drover.Master.State;
using Drover.Store;
using Drover.Store.Etcd;
using Drover.Store.Sqlite;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Drover.Master;

/// <summary>Wires the master into an ASP.NET Core host: services, middleware and endpoints.</summary>
public static partial class MasterHost
{
    public static string Version { get; } = typeof(MasterHost).Assembly.GetName().Version?.ToString(3) ?? "0.1.0";

    public static IServiceCollection AddDroverMaster(this IServiceCollection services, MasterOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(options);
        services.AddSingleton<IStateStore>(sp => OpenStore(options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Drover.Store")));
        services.AddSingleton<StoreFault>();
        services.AddSingleton(sp => new MasterJournal(sp.GetRequiredService<IStateStore>(), sp.GetRequiredService<StoreFault>()));
        services.AddSingleton<ClusterState>();
        services.AddSingleton<MasterMetrics>();
        if (options.Tls is { } tls)
        {
            // DroverHosts loads the CA and issues the master's certificates before the server starts
            // (MasterCredentials.InitializeAsync); a highly available master registers the instance it made before its election.
            services.TryAddSingleton(sp => new MasterCredentials(tls, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<MasterCredentials>>()));
            services.AddSingleton<JoinTokens>();
        }

        services.AddSingleton(sp => new AgentHttpClients(sp.GetService<MasterCredentials>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<SandboxReader>();
        services.AddSingleton(sp => new ServiceRegistry(sp.GetRequiredService<IStateStore>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ServiceRegistry>>()));
        services.AddSingleton<ServiceController>();
        services.AddHostedService(sp => sp.GetRequiredService<ServiceController>());
        services.AddSingleton<SchedulingLoop>();
        services.AddHostedService(sp => sp.GetRequiredService<SchedulingLoop>());
        services.AddHostedService<AgentMonitor>();
        services.AddSingleton(sp => new FrameworkManager(sp.GetRequiredService<ClusterState>(), sp.GetRequiredService<IStateStore>(),
            options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<FrameworkManager>>())
        {
            Secrets = sp.GetRequiredService<Secrets.SecretStore>(),
        });
        services.AddSingleton<Mesos.Operator.OperatorEvents>();
        services.AddSingleton<Allocator>();
        services.AddHostedService(sp => sp.GetRequiredService<Allocator>());
        services.TryAddSingleton(new EventBusOptions
        {
            MaxSubscribers = options.Overload.MaxEventSubscribers,
            SubscriberBufferBytes = options.Overload.EventSubscriberBufferBytes,
            SlowSubscriberGrace = options.Overload.SlowSubscriberGrace,
        });
        services.AddDroverEvents();
        services.AddDroverClientLimits(options.Overload);
        services.AddSingleton(options.Security);
        services.AddSingleton<IamStore>();
        services.AddSingleton<TokenService>();
        services.AddSingleton<CredentialThrottle>();
        services.AddSingleton<Authenticator>();
        services.AddSingleton<Authorizer>();
        services.AddSingleton(_ => LoadSecretKeys(options));
        services.AddSingleton<Secrets.SecretStore>();
        services.AddSingleton<Security.Audit.AuditLog>();
        services.AddHostedService(sp => sp.GetRequiredService<Security.Audit.AuditLog>());
        return services;
    }

    /// <summary>
    /// The secret store's key-encryption keys: from <see cref="MasterOptions.SecretsKeyFile"/>, or generated into the data
    /// dir of a single master. Masters sharing etcd must share one key file, so there is no generated key for them.
    /// </summary>
    public static Secrets.SecretKeyRing LoadSecretKeys(MasterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.SecretsKeyFile is null && options.Etcd is not null)
        {
            throw new Secrets.SecretKeyMismatchException(MissingSecretsKeyFile);
        }

        var (ring, error) = options.SecretsKeyFile is { } file ? Secrets.SecretKeyRing.Load(file) : Secrets.SecretKeyRing.LoadOrCreate(options.DataDir);
        return ring ?? throw new Secrets.SecretKeyMismatchException(error!);
    }

    /// <summary>Why an etcd-backed master refuses to start without <c>--secrets-key-file</c>.</summary>
    public const string MissingSecretsKeyFile =
        "--secrets-key-file: required with --store etcd://…, and the same file on every master, so that each can decrypt the secrets the others stored";

    /// <summary>The store <paramref name="options"/> name: etcd when <see cref="MasterOptions.Etcd"/> is set, else SQLite in the data dir.</summary>
    /// <summary>The embedded store's file in the data dir.</summary>
    public const string StoreFileName = "state.db";

    public static IStateStore OpenStore(MasterOptions options, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Etcd is { } etcd
            ? new EtcdStateStore(etcd.Uris, new EtcdStoreOptions { Prefix = options.StorePrefix, Tls = options.StoreTls }, time, logger)
            : SqliteStateStore.Open(Path.Combine(options.DataDir, StoreFileName), time, logger);
    }

    /// <summary>
    /// Loads the master's records from its state store. Call after building the app and before
    /// starting it, so no request ever sees a half-restored state.
    /// </summary>
    public static async Task RecoverDroverMasterAsync(this WebApplication app, CancellationToken ct)
    {
        var (tasks, agents) = await app.Services.GetRequiredService<MasterJournal>().LoadAsync(ct).ConfigureAwait(false);
        app.Services.GetRequiredService<ClusterState>().Restore(tasks, agents);
        await app.Services.GetRequiredService<ServiceRegistry>().LoadAsync(ct).ConfigureAwait(false);
        await app.Services.GetRequiredService<FrameworkManager>().LoadAsync(ct).ConfigureAwait(false);
        await app.Services.GetRequiredService<TokenService>().LoadAsync(ct).ConfigureAwait(false);
        var cluster = app.Services.GetRequiredService<ClusterState>();
        var secrets = app.Services.GetRequiredService<Secrets.SecretStore>();
        await secrets.LoadAsync(id => cluster.GetTask(id) is { } t && !t.State.IsTerminal(), ct).ConfigureAwait(false);
        cluster.TaskChanged += t =>
        {
            if (t.State.IsTerminal())
            {
                secrets.ForgetTask(t.Id); // a Mesos VALUE secret lives as long as its task
            }
        };
        var iam = app.Services.GetRequiredService<IamStore>();
        await iam.LoadAsync(ct).ConfigureAwait(false);
        var options = app.Services.GetRequiredService<MasterOptions>();
        if (options.Security.Enabled)
        {
            await iam.BootstrapAsync(options.Security.BootstrapPasswordFile, options.DataDir, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Adds request metrics, the error guard, the security gate and every master endpoint. The gate's
    /// browser protections take the <see cref="BrowserGuard"/> registered in the services (the host names
    /// the server answers to); without one, loopback names and the machine's name.
    /// </summary>
    public static WebApplication MapDroverMaster(this WebApplication app)
    {
        var guard = app.Services.GetService<BrowserGuard>() ?? new BrowserGuard([.. BrowserGuard.LoopbackNames, Environment.MachineName]);
        // A change applied in memory could not be saved: stop serving and acting (StoreFault). Requests in flight are
        // answered (their writes fail: 503) while the server drains; the process then exits non-zero.
        var fault = app.Services.GetRequiredService<StoreFault>();
        fault.Raised.Register(() =>
        {
            LogStoreFault(app.Logger, fault.Reason ?? "");
            app.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().StopApplication();
        });
        app.UseRouting();
        app.Use(async (http, next) =>
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                await next(http);
            }
            catch (Exception e) when (IsStoreFailure(e) && !http.Response.HasStarted)
            {
                // Expected while etcd is unreachable or after losing leadership: the client retries
                // (on another master); the write was not acknowledged, its outcome is unknown.
                LogStoreUnavailable(app.Logger, http.Request.Path, e.Message);
                http.Response.Headers.RetryAfter = "1";
                await StoreUnavailable(http.Request.Path, StoreFailureMessage(e)).ExecuteAsync(http);
            }
            catch (BadHttpRequestException e) when (!http.Response.HasStarted)
            {
                // A body over the route's limit (413; Kestrel throws as the body is read, whatever its framing), a
                // malformed request: the client's error, not ours, answered in the error shape of the route's API.
                Denials.CloseAfterResponse(http);
                await Denials.WriteAsync(http, e.StatusCode, e.Message);
            }
            catch (Exception e) when (e is not OperationCanceledException && !http.Response.HasStarted)
            {
                // The exception's text stays in the log: it may name files, keys or other callers' objects.
                var incident = http.TraceIdentifier;
                LogUnhandled(app.Logger, http.Request.Path, incident, e);
                await ApiResults.Error(StatusCodes.Status500InternalServerError, ErrorCodes.Internal, $"internal error (logged as {incident})").ExecuteAsync(http);
            }
            finally
            {
                var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                http.RequestServices.GetRequiredService<MasterMetrics>()
                    .RecordHttp(http.Request.Method, route, http.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
        });
        app.UseDroverSecurityGate(guard);
        app.UseDroverClientLimits(); // after the gate: the client is whom it authenticated

        app.MapGet("/health", () => Results.Text("ok\n")).Access(RouteAccess.Anonymous);
        app.MapGet("/metrics", (MasterMetrics m) => Results.Text(m.Render(), "text/plain; version=0.0.4; charset=utf-8"))
            .Access(RouteAccess.Permission(Rids.Metrics, PermissionAction.Read));
        AgentProtocolEndpoints.Map(app);
        PkiEndpoints.Map(app);
        DroverApiEndpoints.Map(app);
        MesosStateEndpoints.Map(app, Version);
        MarathonEndpoints.Map(app);
        GroupEndpoints.Map(app);
        EventsEndpoint.Map(app);
        SchedulerEndpoint.Map(app);
        Mesos.Operator.OperatorApi.Map(app);
        LoginEndpoint.Map(app);
        Security.Audit.AuditEndpoint.Map(app);
        IamEndpoints.Map(app);
        Secrets.SecretEndpoints.Map(app);
        // Unknown paths answer 404 to anyone: the answer names no resource.
        app.MapFallback((HttpContext http) => ApiResults.NotFound($"no route for {http.Request.Method} {http.Request.Path}")).Access(RouteAccess.Anonymous);
        return app;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled error serving {Path} (incident {Incident})")]
    private static partial void LogUnhandled(ILogger logger, string path, string incident, Exception e);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Stopping the master: {Reason}; a restarted master re-reads its state from the store")]
    private static partial void LogStoreFault(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {Path} failed: the store is unavailable ({Reason})")]
    private static partial void LogStoreUnavailable(ILogger logger, string path, string reason);

    /// <summary>
    /// A 503 for a store failure in the shape of the API that was called: Marathon's <c>{"message"}</c> under
    /// <c>/v2</c>, DC/OS IAM's <c>{"title", "description", "code"}</c> under <c>/acs</c>, Drover's error (also used by
    /// the Mesos v1 APIs, the secrets and <c>/drover/v1</c>) elsewhere. The caller adds <c>Retry-After</c>.
    /// </summary>
    internal static IResult StoreUnavailable(PathString path, string message) =>
        path.StartsWithSegments("/v2", StringComparison.Ordinal)
            ? Results.Content(new System.Text.Json.Nodes.JsonObject { ["message"] = message }.ToJsonString(), "application/json; charset=utf-8",
                statusCode: StatusCodes.Status503ServiceUnavailable)
            : path.StartsWithSegments("/acs", StringComparison.Ordinal)
                ? IamHttp.Error(StatusCodes.Status503ServiceUnavailable, "ERR_STORE_UNAVAILABLE", message)
                : ApiResults.Error(StatusCodes.Status503ServiceUnavailable, ErrorCodes.StoreUnavailable, message);

    /// <summary>What a caller whose request met a store failure is told: not acknowledged, and whether it may have been applied.</summary>
    private static string StoreFailureMessage(Exception e)
    {
        var known = false;
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is StateStoreUnavailableException { OutcomeUnknown: false })
            {
                known = true;
                break;
            }
        }

        return (known
            ? "the change could not be made durable and was not applied; retry: "
            : "the change could not be made durable and was not acknowledged (it may or may not have been applied): ") + e.Message;
    }

    private static bool IsStoreFailure(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is StateStoreUnavailableException or Drover.Master.HighAvailability.NotLeaderException)
            {
                return true;
            }
        }

        return false;
    }
}
