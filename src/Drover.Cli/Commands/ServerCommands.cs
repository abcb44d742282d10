using System.CommandLine;
using Drover.Agent.Executors;
using Drover.Cli.Hosting;
using Drover.Core;
using Drover.Core.Security.Pki;
using Drover.Master;
using StoreFault = Drover.Master.State.StoreFault;
using Drover.Master.Security.Pki;
using Microsoft.Extensions.DependencyInjection;
using Drover.Placement;
using Drover.Store.Etcd;
using Microsoft.Extensions.Logging;

namespace Drover.Cli.Commands;

/// <summary><c>drover dev</c>, <c>drover master</c> and <c>drover agent</c>: the long-running roles.</summary>
internal static class ServerCommands
{
    private static readonly Option<string> LogLevelOption = new("--log-level") { Description = "trace|debug|information|warning|error", DefaultValueFactory = _ => "information" };

    public static Command Dev()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Where master state and task sandboxes live", DefaultValueFactory = _ => ".drover/dev" };
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to serve on", DefaultValueFactory = _ => "127.0.0.1:5050" };
        var agentFlags = new AgentFlags();
        var auth = new Option<bool>("--auth")
        {
            Description = "Require logins and permissions and serve HTTPS (a cluster CA in the data dir, mutual TLS between master and agent), as a real cluster does (default: none of it, allowed only on a loopback address)",
        };
        var bootstrapPassword = BootstrapPasswordOption();
        var secretsKey = SecretsKeyOption();
        var recover = RecoverFromAgentsOption();
        var clusterId = ClusterIdOption();
        var unknownTaskGrace = UnknownTaskGraceOption();
        var cmd = new Command("dev", "Run a master and one agent in one process (zero setup)") { dataDir, listen, auth, bootstrapPassword, secretsKey, recover, clusterId, LogLevelOption };
        cmd.Options.Add(unknownTaskGrace);
        agentFlags.AddTo(cmd, includeHostname: true);
        var overload = new OverloadFlags();
        overload.AddTo(cmd);
        cmd.SetAction(async (pr, ct) =>
        {
            var url = ParseListen(pr.GetValue(listen)!);
            var secure = pr.GetValue(auth);
            if (!secure && !ListenAddress.IsLoopback(url))
            {
                throw new CliException($"--listen: drover dev without --auth serves plain HTTP, only on a loopback address (127.0.0.1, ::1, localhost), not {url.Host}", 2);
            }

            var dir = Path.GetFullPath(pr.GetValue(dataDir)!);
            var master = new MasterOptions
            {
                DataDir = Path.Combine(dir, "master"),
                Security = new Master.Security.SecurityOptions { Enabled = secure, BootstrapPasswordFile = pr.GetValue(bootstrapPassword) },
                Tls = secure ? new MasterTlsOptions() : null,
                SecretsKeyFile = CheckSecretsKeyFile(pr.GetValue(secretsKey), etcd: false),
                ClusterId = ParseClusterId(pr.GetValue(clusterId)),
                UnknownTaskGrace = PositiveSeconds(pr.GetValue(unknownTaskGrace), "--unknown-task-grace"),
                Overload = overload.Read(pr),
            };
            var agent = agentFlags.Read(pr, Path.Combine(dir, "agent"));
            await using var host = await DroverHosts.StartDevAsync(master, agent, url, ParseLogLevel(pr), ct, pr.GetValue(recover), Console.Out.WriteLine);
            await host.Agent!.Registered.WaitAsync(TimeSpan.FromSeconds(30), ct);
            Console.Out.WriteLine($"Drover dev cluster is up at {host.Url.GetLeftPart(UriPartial.Authority)}  (master + agent, data in {dir})");
            if (secure)
            {
                Console.Out.WriteLine($"  logins required: user admin, password in {BootstrapPasswordPath(master)} (see docs/security.md)");
                AnnounceCa(host, master.DataDir);
                Console.Out.WriteLine($"  try:  DROVER_CA_CERT={Path.Combine(master.DataDir, DroverHosts.CaFileName)} ./drover --master {host.Url.GetLeftPart(UriPartial.Authority)} node ls");
            }
            else
            {
                Console.Out.WriteLine("  NO LOGINS, plain HTTP: anyone who can reach this loopback port may run anything as this machine's users (fine for one person's machine; --auth turns logins and HTTPS on; docs/security.md)");
                Console.Out.WriteLine($"  try:  ./drover run --wait -- echo hello      ./drover node ls      Ctrl-C stops it");
            }

            await WaitForCtrlC(host, ct);
            if (StoreFaultOf(host) is { } reason)
            {
                // As a crash: the tasks keep running (nothing disposes the agent), and `drover dev` started again on
                // this data dir, once the store can be written, re-reads the master's state and adopts them.
                await Console.Error.WriteLineAsync($"drover dev: stopped: {reason}. Its tasks keep running; free the disk (or fix {dir}) and run `drover dev` again on the same --data-dir to resume.");
                Environment.Exit(StoreFault.ExitCode);
            }

            Console.Out.WriteLine("Stopping: killing tasks and removing their cgroups…");
            return 0;
        });
        return cmd;
    }

    public static Command Master()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Where the master keeps its data", Required = true };
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to serve on", DefaultValueFactory = _ => "127.0.0.1:5050" };
        var strategy = new Option<string>("--strategy") { Description = "binpack (default) or spread", DefaultValueFactory = _ => "binpack" };
        var defaults = new MasterOptions();
        var agentTimeout = SecondsOption("Seconds without a heartbeat before an agent is unreachable (its tasks TASK_UNREACHABLE)", defaults.AgentUnreachableTimeout, "--agent-timeout", "--agent-unreachable-timeout");
        var removalTimeout = SecondsOption("Seconds an agent may stay unreachable before it is removed (its tasks TASK_GONE)", defaults.AgentRemovalTimeout, "--agent-removal-timeout");
        var heartbeatInterval = SecondsOption("Seconds between agent heartbeats (told to each agent when it registers)", defaults.HeartbeatInterval, "--heartbeat-interval");
        var store = new Option<string?>("--store")
        {
            Description = "Where master state lives: embedded (default, SQLite in --data-dir) or etcd://HOST:PORT,HOST:PORT,…[/prefix] for highly available masters"
                + " (https://HOST:PORT,https://HOST:PORT,… also works; with --store-ca the etcd:// endpoints are https)",
        };
        var storePrefix = new Option<string?>("--store-prefix") { Description = $"Key prefix in etcd (default {EtcdStoreOptions.DefaultPrefix}), so several clusters can share one etcd" };
        var storeTls = new StoreTlsFlags();
        var leaderLease = SecondsOption("Seconds (whole, at least 1) of the leader's etcd lease: how long a dead leader keeps the role", defaults.LeaderLease, "--leader-lease");
        var offerTimeout = SecondsOption("Seconds a Mesos framework may hold an offer before it is rescinded", defaults.OfferTimeout, "--offer-timeout");
        var roleWeights = new Option<string?>("--role-weights")
        {
            Description = "Weighted DRF between Mesos roles: ROLE=WEIGHT,… (e.g. web=2,batch=1); a role not listed weighs 1",
        };
        var advertise = new Option<string?>("--advertise")
        {
            Description = "HOST:PORT the other masters send clients and agents to while this master leads (default: the listen address; with 0.0.0.0, this machine's address)",
        };
        var insecure = new Option<bool>("--insecure") { Description = "Serve plain HTTP without logins, TLS or agent certificates, as drover dev does; only on a loopback --listen address" };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "PEM serving certificate to use instead of one issued by the cluster CA (with --tls-key and --tls-ca)" };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert" };
        var tlsCa = new Option<string?>("--tls-ca") { Description = "PEM CA that issued --tls-cert: what clients and joining agents must trust for this master (GET /drover/v1/ca serves it; join tokens embed its hash)" };
        var tlsDefaults = new MasterTlsOptions();
        var agentCertLifetime = SecondsOption("Seconds an agent certificate is valid; agents renew after two thirds of it", tlsDefaults.AgentCertificateLifetime, "--agent-cert-lifetime");
        var bootstrapPassword = BootstrapPasswordOption();
        var allowedHosts = new Option<string?>("--allowed-hosts")
        {
            Description = "Comma-separated extra host names clients may use to reach this master (its own addresses and names are always allowed); '*' allows any (behind a proxy)",
        };
        var tokenLifetime = SecondsOption("Seconds a login token is valid", new Master.Security.SecurityOptions().TokenLifetime, "--token-lifetime");
        var secretsKey = SecretsKeyOption();
        var recover = RecoverFromAgentsOption();
        var clusterId = ClusterIdOption();
        var unknownTaskGrace = UnknownTaskGraceOption();
        var maxBody = new Option<long>("--max-request-body")
        {
            Description = "Largest request body in bytes on routes without a limit of their own (larger: 413); see docs/limits.md",
            DefaultValueFactory = _ => defaults.MaxRequestBodyBytes,
        };
        var cmd = new Command("master", "Run a master")
        {
            dataDir, listen, strategy, agentTimeout, removalTimeout, heartbeatInterval, offerTimeout, roleWeights, store, storePrefix, leaderLease, advertise,
            bootstrapPassword, allowedHosts, tokenLifetime, secretsKey, insecure, tlsCert, tlsKey, tlsCa, agentCertLifetime, recover, clusterId, maxBody, LogLevelOption,
        };
        cmd.Options.Add(unknownTaskGrace);
        storeTls.AddTo(cmd);
        var overload = new OverloadFlags();
        overload.AddTo(cmd);
        cmd.SetAction(async (pr, ct) =>
        {
            var url = ParseListen(pr.GetValue(listen)!);
            var strat = pr.GetValue(strategy)!.ToLowerInvariant() switch
            {
                "binpack" or "bin-pack" => PlacementStrategy.BinPack,
                "spread" => PlacementStrategy.Spread,
                var s => throw new CliException($"--strategy: '{s}' is not binpack or spread", 2),
            };
            var options = new MasterOptions
            {
                DataDir = Path.GetFullPath(pr.GetValue(dataDir)!),
                Strategy = strat,
                AgentUnreachableTimeout = PositiveSeconds(pr.GetValue(agentTimeout), "--agent-timeout"),
                AgentRemovalTimeout = PositiveSeconds(pr.GetValue(removalTimeout), "--agent-removal-timeout"),
                HeartbeatInterval = PositiveSeconds(pr.GetValue(heartbeatInterval), "--heartbeat-interval"),
                OfferTimeout = PositiveSeconds(pr.GetValue(offerTimeout), "--offer-timeout"),
                RoleWeights = ParseRoleWeights(pr.GetValue(roleWeights)),
                MaxRequestBodyBytes = pr.GetValue(maxBody) is var mb and >= 1024 and <= 1L << 30
                    ? mb
                    : throw new CliException("--max-request-body: must be between 1024 and 1073741824 bytes", 2),
                ClusterId = ParseClusterId(pr.GetValue(clusterId)),
                UnknownTaskGrace = PositiveSeconds(pr.GetValue(unknownTaskGrace), "--unknown-task-grace"),
                Overload = overload.Read(pr),
                Security = ParseAllowedHosts(new Master.Security.SecurityOptions
                {
                    BootstrapPasswordFile = pr.GetValue(bootstrapPassword),
                    TokenLifetime = PositiveSeconds(pr.GetValue(tokenLifetime), "--token-lifetime"),
                }, pr.GetValue(allowedHosts)),
            };
            options = WithStore(options, pr.GetValue(store), pr.GetValue(storePrefix), pr.GetValue(leaderLease), storeTls.Read(pr));
            options = options with { SecretsKeyFile = CheckSecretsKeyFile(pr.GetValue(secretsKey), etcd: options.Etcd is not null) };
            options = options with
            {
                Tls = ReadTls(url, pr.GetValue(insecure), pr.GetValue(tlsCert), pr.GetValue(tlsKey), pr.GetValue(tlsCa),
                    tlsDefaults with { AgentCertificateLifetime = AgentCertificateLifetime(pr.GetValue(agentCertLifetime)) }),
            };
            if (pr.GetValue(insecure))
            {
                // Without TLS no agent could prove who it is, so --insecure is drover dev's mode: no logins either, loopback only.
                options = options with { Security = options.Security with { Enabled = false } };
            }

            if (options.HeartbeatInterval >= options.AgentUnreachableTimeout)
            {
                throw new CliException("--heartbeat-interval: must be shorter than --agent-timeout, or every agent would turn unreachable between heartbeats", 2);
            }

            if (options.Etcd is not null)
            {
                if (url.Port == 0)
                {
                    throw new CliException("--listen: a master with --store etcd://… needs a fixed port (other masters redirect to it)", 2);
                }

                var advertised = pr.GetValue(advertise) is { } a ? ParseAdvertise(a) : null;
                return await DroverHosts.RunHighlyAvailableMasterAsync(options, url, ParseLogLevel(pr), Console.Out.WriteLine, ct, advertised, pr.GetValue(recover));
            }

            var advertisedUrl = pr.GetValue(advertise) is { } adv ? ParseAdvertise(adv) : null;
            await using var host = await DroverHosts.StartMasterAsync(options, url, ParseLogLevel(pr), ct, advertisedUrl, pr.GetValue(recover), Console.Out.WriteLine);
            Console.Out.WriteLine($"Drover master is up at {host.Url.GetLeftPart(UriPartial.Authority)}");
            if (options.Tls is not null)
            {
                AnnounceCa(host, options.DataDir);
            }

            await WaitForCtrlC(host, ct);
            if (StoreFaultOf(host) is { } reason)
            {
                await Console.Error.WriteLineAsync($"drover master: stopped: {reason}. Fix the store (e.g. free the disk under {options.DataDir}) and start the master again; it resumes from what the store holds.");
                return StoreFault.ExitCode;
            }

            return 0;
        });
        return cmd;
    }

    /// <summary>Why the host's master stopped itself on a failed write (<see cref="StoreFault"/>); null when it did not.</summary>
    private static string? StoreFaultOf(RunningHost host) => host.Services.GetService<StoreFault>()?.Reason;

    public static Command Agent()
    {
        var workDir = new Option<string>("--work-dir") { Description = "Sandboxes and agent state", Required = true };
        var listen = new Option<string>("--listen") { Description = "HOST:PORT for the agent's endpoint", DefaultValueFactory = _ => "0.0.0.0:5051" };
        var advertise = new Option<string?>("--advertise") { Description = "URL the master uses to reach this agent (default: the listen address)" };
        var killTasks = new Option<bool>("--kill-tasks-on-stop")
        {
            Description = "Kill every task when the agent stops (default: leave them running; a restarted agent recovers them)",
        };
        var executorDefaults = new ExecutorManagerOptions();
        var registrationTimeout = SecondsOption("Seconds a custom executor has to subscribe to /api/v1/executor before its tasks fail and it is killed", executorDefaults.RegistrationTimeout, "--executor-registration-timeout");
        var reregistrationTimeout = SecondsOption("Seconds a custom executor that outlived the previous agent process has to subscribe again before its tasks fail and it is killed", executorDefaults.ReregistrationTimeout, "--executor-reregistration-timeout");
        var executorShutdownGrace = SecondsOption("Seconds between a SHUTDOWN event and killing a custom executor", executorDefaults.ShutdownGracePeriod, "--executor-shutdown-grace-period");
        var joinToken = new Option<string?>("--join-token")
        {
            Description = "Join token from `drover node token create` (or DROVER_JOIN_TOKEN); needed at the first start only, with https:// masters",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DROVER_JOIN_TOKEN") is { Length: > 0 } t ? t : null,
        };
        var agentFlags = new AgentFlags();
        // --master is the global option (a comma-separated list here: the agent fails over between masters).
        var cmd = new Command("agent", "Run an agent that offers this machine's resources")
        {
            workDir, listen, advertise, killTasks, registrationTimeout, reregistrationTimeout, executorShutdownGrace, joinToken, LogLevelOption,
        };
        agentFlags.AddTo(cmd, includeHostname: true);
        cmd.SetAction(async (pr, ct) =>
        {
            // Without a scheme a master is https://, as `drover master` serves by default.
            var masterUrls = pr.GetValue(CliContext.Master)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(m => Uri.TryCreate(m.Contains("://", StringComparison.Ordinal) ? m : "https://" + m, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"
                    ? u : throw new CliException($"--master: '{m}' is not an http(s) URL", 2)).ToList();
            var url = ParseListen(pr.GetValue(listen)!);
            var settings = agentFlags.Read(pr, Path.GetFullPath(pr.GetValue(workDir)!)) with
            {
                Advertise = pr.GetValue(advertise) is { } a ? new Uri(a.Contains("://", StringComparison.Ordinal) ? a : "http://" + a) : null,
                KillTasksOnStop = pr.GetValue(killTasks),
                JoinToken = pr.GetValue(joinToken),
                Executors = executorDefaults with
                {
                    RegistrationTimeout = PositiveSeconds(pr.GetValue(registrationTimeout), "--executor-registration-timeout"),
                    ReregistrationTimeout = PositiveSeconds(pr.GetValue(reregistrationTimeout), "--executor-reregistration-timeout"),
                    ShutdownGracePeriod = PositiveSeconds(pr.GetValue(executorShutdownGrace), "--executor-shutdown-grace-period"),
                },
            };
            await using var host = await DroverHosts.StartAgentAsync(settings, masterUrls, url, ParseLogLevel(pr), ct);
            Console.Out.WriteLine($"Drover agent is serving at {host.Url.GetLeftPart(UriPartial.Authority)}, registering with {string.Join(", ", masterUrls)}");
            await WaitForCtrlC(host, ct);
            return 0;
        });
        return cmd;
    }

    /// <summary>Prints where the CA clients must trust is (DroverHosts wrote it) and its fingerprint.</summary>
    private static void AnnounceCa(RunningHost host, string dataDir)
    {
        Console.Out.WriteLine(DroverHosts.CaAnnouncement(dataDir, host.Services.GetRequiredService<MasterCredentials>()));
        Console.Out.WriteLine("  agents join with a token: drover node token create  →  drover agent --master … --join-token …");
    }

    /// <summary>
    /// The TLS settings of <c>drover master</c>: HTTPS by default; <c>--insecure</c> (plain HTTP) only on a loopback
    /// listen address; an operator's certificate needs its key and its CA. Files are read here (exit 2 when they cannot be).
    /// </summary>
    internal static MasterTlsOptions? ReadTls(Uri listen, bool insecure, string? certFile, string? keyFile, string? caFile, MasterTlsOptions defaults)
    {
        if (insecure)
        {
            if (certFile is not null || keyFile is not null || caFile is not null)
            {
                throw new CliException("--insecure: serves plain HTTP, so --tls-cert, --tls-key and --tls-ca do not apply", 2);
            }

            return ListenAddress.IsLoopback(listen)
                ? null
                : throw new CliException($"--insecure: plain HTTP is refused on {listen.Host}, which is not a loopback address; leave --insecure out to serve HTTPS", 2);
        }

        if (certFile is null && keyFile is null && caFile is null)
        {
            return defaults;
        }

        if (certFile is null || keyFile is null || caFile is null)
        {
            throw new CliException("--tls-cert, --tls-key and --tls-ca go together (the certificate, its key, and the CA that issued it)", 2);
        }

        var cert = ReadFile(certFile, "--tls-cert");
        var key = ReadFile(keyFile, "--tls-key");
        var ca = ReadFile(caFile, "--tls-ca");
        if (PemCertificates.LoadWithKey(cert, key) is { Succeeded: false } bad)
        {
            throw new CliException($"--tls-cert/--tls-key: {bad.Error}", 2);
        }

        if (PemCertificates.LoadAll(ca) is { Succeeded: false } badCa)
        {
            throw new CliException($"--tls-ca: {badCa.Error}", 2);
        }

        return defaults with { CertificatePem = cert, KeyPem = key, CaPem = ca };
    }

    private static TimeSpan AgentCertificateLifetime(double seconds) =>
        seconds >= 10 && seconds <= TimeSpan.FromDays(366).TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new CliException("--agent-cert-lifetime: must be between 10 seconds and a year (in seconds)", 2);

    private static string ReadFile(string path, string flag)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{flag}: cannot read {path}: {e.Message}", 2);
        }
    }

    private static Option<bool> RecoverFromAgentsOption() => new(MasterStoreCheck.RecoverFlag)
    {
        Description = "When the store is empty, corrupt or lost (refused otherwise): move a broken state.db aside (state.db.broken-TIME), start a fresh store "
            + "with the cluster id from DATA-DIR/cluster-id (or --cluster-id), and rebuild the task list from what the agents report. Ignored for a sound store",
    };

    private static Option<string?> ClusterIdOption() => new("--cluster-id")
    {
        Description = "The cluster this master serves: a store of another cluster is refused; a new store gets this id (default: a random one, kept in DATA-DIR/cluster-id)",
    };

    private static string? ParseClusterId(string? id) =>
        id is null || Drover.Store.ClusterIdentity.IsValid(id)
            ? id
            : throw new CliException($"--cluster-id: '{id}' is not 1-{Drover.Store.ClusterIdentity.MaxLength} letters, digits, '.', '_' or '-'", 2);

    private static Option<string?> BootstrapPasswordOption() => new("--bootstrap-password-file")
    {
        Description = "On a new cluster, the first user's (admin) password is read from this file (default: generated into DATA-DIR/bootstrap-admin-password, mode 0600)",
    };

    private static Option<string?> SecretsKeyOption() => new("--secrets-key-file")
    {
        Description = "The secret store's key-encryption key(s): base64 of 32 random bytes per line, the first encrypts, later ones only decrypt (rotation); "
            + "mode 0600. Required, and the same file on every master, with --store etcd://…; default for a single master: generated into DATA-DIR/secrets.key",
    };

    /// <summary>The key file's full path once it reads as a key ring (exit 2 with the reason otherwise); required on etcd.</summary>
    internal static string? CheckSecretsKeyFile(string? file, bool etcd)
    {
        if (file is null)
        {
            return etcd ? throw new CliException(MasterHost.MissingSecretsKeyFile, 2) : null;
        }

        var full = Path.GetFullPath(file);
        var (_, error) = Drover.Master.Secrets.SecretKeyRing.Load(full);
        return error is null ? full : throw new CliException(error, 2);
    }

    private static Master.Security.SecurityOptions ParseAllowedHosts(Master.Security.SecurityOptions security, string? text)
    {
        var names = (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Contains("*"))
        {
            return names.Length == 1 ? security with { AnyHost = true } : throw new CliException("--allowed-hosts: '*' stands alone", 2);
        }

        foreach (var n in names)
        {
            if (Uri.CheckHostName(n.Trim('[', ']')) == UriHostNameType.Unknown)
            {
                throw new CliException($"--allowed-hosts: '{n}' is not a host name or address", 2);
            }
        }

        return security with { AllowedHosts = [.. names] };
    }

    private static string BootstrapPasswordPath(MasterOptions options) =>
        options.Security.BootstrapPasswordFile ?? Path.Combine(options.DataDir, "bootstrap-admin-password");


    private static async Task WaitForCtrlC(RunningHost host, CancellationToken ct)
    {
        try
        {
            await host.WaitForShutdownAsync(ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Applies <c>--store</c>, <c>--store-prefix</c>, <c>--leader-lease</c> and the store's TLS files,
    /// refusing (exit 2) what does not parse or load, and TLS flags that do not fit the endpoints.
    /// </summary>
    internal static MasterOptions WithStore(MasterOptions options, string? store, string? prefix, double leaseSeconds, StoreTlsFiles? tlsFiles = null)
    {
        tlsFiles ??= new StoreTlsFiles(null, null, null);
        if (!(leaseSeconds >= 1 && leaseSeconds <= 3600 && leaseSeconds == Math.Floor(leaseSeconds)))
        {
            throw new CliException("--leader-lease: must be a whole number of seconds between 1 and 3600 (etcd leases are whole seconds)", 2);
        }

        options = options with { LeaderLease = TimeSpan.FromSeconds(leaseSeconds) };
        if (store is null || store.Equals("embedded", StringComparison.OrdinalIgnoreCase))
        {
            return prefix is not null ? throw new CliException("--store-prefix: only applies with --store etcd://…", 2)
                : tlsFiles.FirstFlag is { } flag ? throw new CliException($"{flag}: TLS to the store only applies with --store etcd://… (the embedded store is a file in --data-dir)", 2)
                : options;
        }

        if (!EtcdEndpoints.TryParse(store, out var endpoints, out var error))
        {
            throw new CliException($"--store: {error} (or 'embedded')", 2);
        }

        var tls = LoadStoreTls(tlsFiles, endpoints!);
        if (tls is not null)
        {
            endpoints = endpoints!.WithTls();
        }

        if (prefix is not null)
        {
            if (!prefix.StartsWith('/') || prefix.Contains('?', StringComparison.Ordinal) || prefix.Contains('#', StringComparison.Ordinal))
            {
                throw new CliException($"--store-prefix: '{prefix}' must start with '/' and contain no '?' or '#'", 2);
            }

            if (endpoints!.Prefix is { } inUrl && inUrl.TrimEnd('/') != prefix.TrimEnd('/'))
            {
                throw new CliException($"--store-prefix: '{prefix}' contradicts the prefix '{inUrl}' in --store", 2);
            }
        }

        return options with { Etcd = endpoints, StoreTls = tls, StorePrefix = prefix ?? endpoints!.Prefix ?? EtcdStoreOptions.DefaultPrefix };
    }

    /// <summary>The store's TLS settings from <c>--store-ca/--store-cert/--store-key</c>; null for plain HTTP. Refuses (exit 2) files that do not load and flags that do not fit <paramref name="endpoints"/>.</summary>
    private static EtcdTlsOptions? LoadStoreTls(StoreTlsFiles files, EtcdEndpoints endpoints)
    {
        if (files.FirstFlag is not { } flag)
        {
            return endpoints.IsTls
                ? throw new CliException($"--store: {endpoints} names https:// endpoints; give --store-ca (the CA that signed etcd's certificate, the only one trusted)", 2)
                : null;
        }

        if (endpoints is { SchemeWritten: true, IsTls: false })
        {
            throw new CliException($"--store: {endpoints} names plain http:// endpoints, but {flag} asks for TLS; write https://HOST:PORT or etcd://HOST:PORT", 2);
        }

        if (files.Ca is null)
        {
            throw new CliException($"{flag}: TLS to etcd needs --store-ca too: etcd's certificate is verified against that CA only, not the machine's trusted CAs", 2);
        }

        if (!EtcdTlsFiles.TryLoad(files.Ca, files.Certificate, files.Key, out var tls, out var error))
        {
            var named = error!.File switch
            {
                EtcdTlsFile.Ca => "--store-ca",
                EtcdTlsFile.Certificate => "--store-cert",
                _ => "--store-key",
            };
            throw new CliException($"{named}: {error.Reason}", 2);
        }

        return tls;
    }

    /// <summary>Parses <c>web=2,batch=1</c>; each weight a positive number.</summary>
    internal static System.Collections.Immutable.ImmutableDictionary<string, double> ParseRoleWeights(string? text)
    {
        var weights = System.Collections.Immutable.ImmutableDictionary.CreateBuilder<string, double>(StringComparer.Ordinal);
        foreach (var item in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !double.TryParse(item[(eq + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var w)
                || !double.IsFinite(w) || w <= 0)
            {
                throw new CliException($"--role-weights: '{item}' is not ROLE=WEIGHT with a positive weight", 2);
            }

            weights[item[..eq]] = w;
        }

        return weights.ToImmutable();
    }

    /// <summary><c>--unknown-task-grace</c> of <c>drover master</c> and <c>drover dev</c> (<see cref="MasterOptions.UnknownTaskGrace"/>).</summary>
    private static Option<double> UnknownTaskGraceOption() => SecondsOption(
        "Seconds a task an agent runs but the master has no record of keeps running (listed as unknownTasks on its agent) before the master kills it",
        new MasterOptions().UnknownTaskGrace, "--unknown-task-grace");

    /// <summary>A duration flag given in seconds, defaulting to <paramref name="defaultValue"/>.</summary>
    private static Option<double> SecondsOption(string description, TimeSpan defaultValue, string name, params string[] aliases) =>
        new(name, aliases) { Description = description, DefaultValueFactory = _ => defaultValue.TotalSeconds };

    private static TimeSpan PositiveSeconds(double seconds, string flag) =>
        seconds > 0 && double.IsFinite(seconds) && seconds <= TimeSpan.MaxValue.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new CliException($"{flag}: must be a number of seconds greater than 0", 2);

    private static Uri ParseAdvertise(string text)
    {
        if (!ListenAddress.TryParse(text, out var url, out var error))
        {
            throw new CliException($"--advertise: {error}", 2);
        }

        return url.Port == 0 || url.Host is "0.0.0.0" or "[::]"
            ? throw new CliException($"--advertise: '{text}' must name a reachable host and a fixed port", 2)
            : url;
    }

    private static Uri ParseListen(string text) =>
        ListenAddress.TryParse(text, out var url, out var error) ? url : throw new CliException($"--listen: {error}", 2);

    private static LogLevel ParseLogLevel(ParseResult pr) =>
        Enum.TryParse<LogLevel>(pr.GetValue(LogLevelOption), ignoreCase: true, out var level)
            ? level
            : throw new CliException($"--log-level: '{pr.GetValue(LogLevelOption)}' is not a log level", 2);

    /// <summary>The PEM files named by <c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c> (each may be absent).</summary>
    internal sealed record StoreTlsFiles(string? Ca, string? Certificate, string? Key)
    {
        /// <summary>The first of the flags given, for messages; null when none is.</summary>
        public string? FirstFlag => Ca is not null ? "--store-ca" : Certificate is not null ? "--store-cert" : Key is not null ? "--store-key" : null;
    }

    /// <summary><c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c>: TLS from the master to etcd.</summary>
    private sealed class StoreTlsFlags
    {
        private readonly Option<string?> _ca = new("--store-ca") { Description = "PEM file of the CA(s) that signed etcd's server certificate; the only ones trusted. Makes the etcd endpoints https" };
        private readonly Option<string?> _cert = new("--store-cert") { Description = "PEM client certificate for etcd's --client-cert-auth (intermediates may follow it)" };
        private readonly Option<string?> _key = new("--store-key") { Description = "PEM private key of --store-cert, unencrypted, not accessible by other users (chmod 600)" };

        public void AddTo(Command cmd)
        {
            cmd.Options.Add(_ca);
            cmd.Options.Add(_cert);
            cmd.Options.Add(_key);
        }

        public StoreTlsFiles Read(ParseResult pr) => new(Full(pr.GetValue(_ca)), Full(pr.GetValue(_cert)), Full(pr.GetValue(_key)));

        private static string? Full(string? path) => string.IsNullOrWhiteSpace(path) ? path : Path.GetFullPath(path);
    }

    /// <summary>Flags describing what an agent offers, shared by dev and agent.</summary>
    private sealed class AgentFlags
    {
        private readonly Option<string?> _resources = new("--resources") { Description = "What to offer, e.g. \"cpus:4;mem:8192;disk:10000;ports:[31000-32000]\" (default: discovered)" };
        private readonly Option<string?> _attributes = new("--attributes") { Description = "Agent attributes, e.g. \"rack:r1;gpu_model:a100\"" };
        private readonly Option<string?> _region = new("--region") { Description = "Fault domain region" };
        private readonly Option<string?> _zone = new("--zone") { Description = "Fault domain zone" };
        private readonly Option<string?> _hostname = new("--hostname") { Description = "Hostname to register with (default: the machine's)" };
        private readonly Option<string> _defaultTaskUser = new("--default-task-user")
        {
            Description = "Unix user a task runs as when it names none (tasks run isolated: own namespaces, no capabilities)",
            DefaultValueFactory = _ => "nobody",
        };
        private readonly Option<int?> _agentPidsLimit = new("--agent-pids-limit")
        {
            Description = "Processes and threads all tasks of this agent may have together (pids.max of its cgroup; 0: no cap; default: 3/4 of kernel.pid_max)",
        };
        private readonly Option<double?> _diskWatchInterval = new("--disk-watch-interval")
        {
            Description = "Seconds between measurements of task sandboxes against their disk (default 15; a task over its disk is killed)",
        };

        public void AddTo(Command cmd, bool includeHostname)
        {
            cmd.Options.Add(_resources);
            cmd.Options.Add(_attributes);
            cmd.Options.Add(_region);
            cmd.Options.Add(_zone);
            cmd.Options.Add(_defaultTaskUser);
            cmd.Options.Add(_agentPidsLimit);
            cmd.Options.Add(_diskWatchInterval);
            if (includeHostname)
            {
                cmd.Options.Add(_hostname);
            }
        }

        public AgentSettings Read(ParseResult pr, string workDir)
        {
            Resources? resources = null;
            if (pr.GetValue(_resources) is { } r)
            {
                if (!Resources.TryParse(r, out var parsed, out var error))
                {
                    throw new CliException($"--resources: {error}", 2);
                }

                if (parsed.MilliCpus <= 0 || parsed.MemMiB <= 0)
                {
                    throw new CliException("--resources: cpus and mem must be greater than 0", 2);
                }

                resources = parsed.Ports.IsEmpty ? parsed with { Ports = PortRanges.Range(31000, 32000) } : parsed;
            }

            var attributes = Attributes.Empty;
            if (pr.GetValue(_attributes) is { } a && !Attributes.TryParse(a, out attributes, out var attrError))
            {
                throw new CliException($"--attributes: {attrError}", 2);
            }

            var region = pr.GetValue(_region);
            var zone = pr.GetValue(_zone);
            if ((region is null) != (zone is null))
            {
                throw new CliException("--region and --zone go together", 2);
            }

            var user = pr.GetValue(_defaultTaskUser)!;
            if (user.Length == 0 || user.Contains(':', StringComparison.Ordinal) || user.Contains('/', StringComparison.Ordinal))
            {
                throw new CliException($"--default-task-user: '{user}' is not a user name", 2);
            }

            var pids = pr.GetValue(_agentPidsLimit);
            if (pids < 0)
            {
                throw new CliException("--agent-pids-limit: must be 0 (no cap) or more", 2);
            }

            return new AgentSettings
            {
                WorkDir = workDir,
                Hostname = pr.GetValue(_hostname),
                Resources = resources,
                Attributes = attributes,
                Domain = region is null ? null : new FaultDomain(region, zone!),
                DefaultTaskUser = user,
                AgentPidsLimit = pids,
                DiskWatchInterval = pr.GetValue(_diskWatchInterval) is { } seconds ? PositiveSeconds(seconds, "--disk-watch-interval") : null,
            };
        }
    }
}
