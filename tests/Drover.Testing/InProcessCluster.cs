using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Client;
using Drover.Core;
using System.Security.Cryptography.X509Certificates;
using Drover.Master;
using Drover.Master.Security.Pki;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Drover.Testing;

/// <summary>
/// A real master and real agents in the test process, each on its own loopback port, talking HTTP
/// exactly as separate processes would. Agents run real tasks in cgroups (root needed).
/// Dispose stops agents first (killing their tasks, also those of agents that leave them running when stopped), then the master.
/// With <c>tls: true</c> the master serves HTTPS with its cluster CA and every agent joins with a join token
/// and speaks mutual TLS, as with <c>drover master</c>; <see cref="Client"/> then trusts that CA.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    private readonly List<RunningHost> _agents = [];
    private readonly Dictionary<RunningHost, AgentSettings> _agentSettings = [];
    private readonly string _root;

    private readonly MasterOptions _masterOptions;

    private InProcessCluster(RunningHost master, string root, MasterOptions masterOptions)
    {
        Master = master;
        _root = root;
        _masterOptions = masterOptions;
        Client = new DroverClient(master.Url, CreateHttpClient());
    }

    /// <summary>The cluster CA (with <c>tls: true</c>), else null.</summary>
    public X509Certificate2Collection? CaRoots => Master.Services.GetService<MasterCredentials>()?.ServingRoots;

    /// <summary>An HttpClient for the master: trusting its CA with TLS (no proxy either way). The caller disposes it.</summary>
    public HttpClient CreateHttpClient() =>
        new(CaRoots is { } roots ? MasterTls.CreateHandler(roots) : new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>The password a new secure master generated for the bootstrap <c>admin</c> (<c>{data-dir}/bootstrap-admin-password</c>).</summary>
    public async Task<string> BootstrapAdminPasswordAsync() =>
        (await File.ReadAllTextAsync(Path.Combine(_root, "master", "bootstrap-admin-password"))).Trim();

    /// <summary>
    /// Logs <paramref name="uid"/> in through <c>POST /acs/api/v1/auth/login</c> (the bootstrap admin's generated password when
    /// <paramref name="password"/> is null) and returns a client of the master sending its token as DC/OS does
    /// (<c>Authorization: token=…</c>), without a timeout (streams stay open). Throws when the login is refused. The caller disposes it.
    /// </summary>
    public async Task<HttpClient> LoginAsync(string uid, string? password = null)
    {
        password ??= await BootstrapAdminPasswordAsync();
        using var anonymous = CreateHttpClient();
        using var response = await anonymous.PostAsJsonAsync(new Uri(Master.Url, "/acs/api/v1/auth/login"), new JsonObject { ["uid"] = uid, ["password"] = password });
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"login of '{uid}' answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        var token = (await response.Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
        var client = CreateHttpClient();
        client.BaseAddress = Master.Url;
        client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "token=" + token);
        return client;
    }

    /// <summary>A join token made directly in the master (no login needed), valid for <paramref name="ttl"/> (one hour by default).</summary>
    public async Task<string> CreateJoinTokenAsync(TimeSpan? ttl = null) =>
        (await Master.Services.GetRequiredService<JoinTokens>().CreateAsync(ttl ?? TimeSpan.FromHours(1), "test", CancellationToken.None)).Token;

    public RunningHost Master { get; private set; }

    public IReadOnlyList<RunningHost> Agents => _agents;

    public DroverClient Client { get; }

    public string Root => _root;

    /// <param name="options">Master settings; unless <paramref name="secure"/>, its security is turned off (a loopback cluster without logins, as <c>drover dev</c>).</param>
    /// <param name="secure">Keep the master's authentication and authorization on.</param>
    /// <param name="tls">Serve HTTPS with a cluster CA; agents join with tokens and use mutual TLS (<see cref="MasterOptions.Tls"/>).</param>
    public static async Task<InProcessCluster> StartAsync(MasterOptions? options = null, CancellationToken ct = default, bool secure = false, bool tls = false)
    {
        var root = Directory.CreateTempSubdirectory("drover-test-").FullName;
        var masterOptions = (options ?? new MasterOptions()) with { DataDir = Path.Combine(root, "master") };
        if (!secure)
        {
            masterOptions = masterOptions with { Security = Drover.Master.Security.SecurityOptions.Disabled };
        }

        if (tls)
        {
            masterOptions = masterOptions with { Tls = masterOptions.Tls ?? new MasterTlsOptions() };
        }

        var master = await DroverHosts.StartMasterAsync(masterOptions, new Uri("http://127.0.0.1:0"), LogLevel.Warning, ct);
        return new InProcessCluster(master, root, masterOptions);
    }

    /// <summary>
    /// Stops the master (agents keep running and keep retrying), optionally runs <paramref name="whileDown"/>, then starts it again on the
    /// same port and data dir; <paramref name="change"/> adjusts its settings for this start only, and <paramref name="recoverFromAgents"/>
    /// starts it as <c>--recover-from-agents</c> does.
    /// </summary>
    public async Task RestartMasterAsync(Func<Task>? whileDown = null, CancellationToken ct = default, Func<MasterOptions, MasterOptions>? change = null,
        bool recoverFromAgents = false)
    {
        var url = Master.Url;
        await StopMasterAsync();
        if (whileDown is not null)
        {
            await whileDown();
        }

        Master = await DroverHosts.StartMasterAsync(change is null ? _masterOptions : change(_masterOptions), url, LogLevel.Warning, ct, recoverFromAgents: recoverFromAgents);
    }

    private async Task StopMasterAsync() => await Master.DisposeAsync();

    /// <summary>Starts an agent and waits until the master lists it as active.</summary>
    public async Task<RunningHost> AddAgentAsync(string hostname, string? resources = null,
        string? attributes = null, FaultDomain? domain = null, CancellationToken ct = default,
        Drover.Agent.Executors.ExecutorManagerOptions? executors = null, bool killTasksOnStop = true)
    {
        var attrs = Attributes.Empty;
        if (attributes is not null && !Attributes.TryParse(attributes, out attrs, out var error))
        {
            throw new ArgumentException(error, nameof(attributes));
        }

        var settings = new AgentSettings
        {
            WorkDir = Path.Combine(_root, hostname),
            Hostname = hostname,
            Resources = Resources.Parse(resources ?? TestPorts.Resources()),
            Attributes = attrs,
            Domain = domain,
            Executors = executors,
            KillTasksOnStop = killTasksOnStop,
            JoinToken = _masterOptions.Tls is null ? null : await CreateJoinTokenAsync(),
        };
        var agent = await DroverHosts.StartAgentAsync(settings, [Master.Url], new Uri("http://127.0.0.1:0"), LogLevel.Warning, ct);
        _agents.Add(agent);
        _agentSettings[agent] = settings;
        await agent.Agent!.Registered.WaitAsync(TimeSpan.FromSeconds(30), ct);
        return agent;
    }

    /// <summary>
    /// Stops the agent (its tasks keep running when it was added with <c>killTasksOnStop: false</c>), optionally runs
    /// <paramref name="whileDown"/>, then starts it again on the same port and work dir (so processes that outlived it,
    /// custom executors included, reach it at the same address) and waits until it has registered.
    /// </summary>
    public async Task<RunningHost> RestartAgentAsync(RunningHost agent, Func<Task>? whileDown = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var settings = _agentSettings[agent];
        var listen = new Uri($"http://127.0.0.1:{agent.Url.Port}");
        await agent.DisposeAsync();
        _agents.Remove(agent);
        _agentSettings.Remove(agent);
        if (whileDown is not null)
        {
            await whileDown();
        }

        var restarted = await DroverHosts.StartAgentAsync(settings, [Master.Url], listen, LogLevel.Warning, ct);
        _agents.Add(restarted);
        _agentSettings[restarted] = settings;
        await restarted.Agent!.Registered.WaitAsync(TimeSpan.FromSeconds(30), ct);
        return restarted;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents)
        {
            await a.DisposeAsync();
            if (_agentSettings.TryGetValue(a, out var settings) && !settings.KillTasksOnStop)
            {
                // Its tasks outlived it: one more start on its work dir recovers them, and this stop kills them.
                var reaper = await DroverHosts.StartAgentAsync(settings with { KillTasksOnStop = true }, [Master.Url],
                    new Uri("http://127.0.0.1:0"), LogLevel.Warning, CancellationToken.None);
                await reaper.DisposeAsync();
            }
        }

        await Master.DisposeAsync();
        Client.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
