using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Drover.Cli.Hosting;
using Drover.Client;
using Drover.Testing;
using Drover.Testing.Netns;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>A <see cref="FactAttribute"/> skipped where network-namespace tests cannot run (see <see cref="NetnsNetwork.SkipReason"/>).</summary>
public sealed class MultiHostFactAttribute : FactAttribute
{
    public MultiHostFactAttribute()
    {
        if (NetnsNetwork.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>A <see cref="TheoryAttribute"/> skipped where network-namespace tests cannot run.</summary>
public sealed class MultiHostTheoryAttribute : TheoryAttribute
{
    public MultiHostTheoryAttribute()
    {
        if (NetnsNetwork.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>
/// A real cluster of separate OS processes: one <c>drover master</c> (spread strategy) in the root network
/// namespace listening on the bridge, and three <c>drover agent</c>s, each in its own namespace with its
/// own address, hostname host1..3, rack r1/r1/r2, region <c>reg</c> and zone z1..3.
/// </summary>
public sealed class MultiHostFixture : IAsyncLifetime
{
    public const int AgentCount = 3;
    public const string Region = "reg";
    public const string AgentResources = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]";
    public static readonly ImmutableArray<string> Racks = ["r1", "r1", "r2"];

    private static readonly TimeSpan StartupTimeout = TimeSpan.FromSeconds(45);

    private readonly List<DroverProcess> _agents = [];
    private HttpClient? _http;
    private int _disposed;

    public NetnsNetwork Network { get; private set; } = null!;

    public DroverProcess Master { get; private set; } = null!;

    public IReadOnlyList<DroverProcess> Agents => _agents;

    public Uri MasterUrl { get; private set; } = null!;

    public DroverClient Client { get; private set; } = null!;

    /// <summary>Temporary directory holding the master's data, the agents' work dirs and the process logs.</summary>
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "drover-multihost-" + Guid.NewGuid().ToString("N")[..8]);

    public static string HostnameOf(int n) => string.Create(CultureInfo.InvariantCulture, $"host{n}");

    /// <summary>The address of the agent named <paramref name="hostname"/>.</summary>
    public IPAddress AddressOf(string hostname) =>
        Network.Hosts.Single(h => HostnameOf(h.Index) == hostname).Address;

    public async Task InitializeAsync()
    {
        if (NetnsNetwork.SkipReason is not null)
        {
            return; // every test is skipped
        }

        try
        {
            Directory.CreateDirectory(Root);
            Network = await NetnsNetwork.CreateAsync(AgentCount);
            Network.TrackDirectory(Root);
            var port = FreePort(Network.Gateway);
            MasterUrl = new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{Network.Gateway}:{port}/"));
            Master = DroverProcess.Start("master",
                ["master", "--data-dir", Path.Combine(Root, "master"), "--listen", $"{Network.Gateway}:{port}",
                 "--strategy", "spread", "--log-level", "warning"],
                logFile: Path.Combine(Root, "master.log"));
            Network.TrackProcess(Master.Pid);

            foreach (var host in Network.Hosts)
            {
                var n = host.Index;
                var workDir = Path.Combine(Root, $"agent{n}");
                Network.TrackCgroup(DroverHosts.CgroupNameFor(workDir));
                // The last agent listens on the wildcard address, so it must work out (and advertise) its
                // own namespace's address; the listing test checks that it did.
                var listen = n == Network.Hosts.Count ? "0.0.0.0:5051" : $"{host.Address}:5051";
                var agent = DroverProcess.Start($"agent{n}",
                    ["agent", "--master", MasterUrl.GetLeftPart(UriPartial.Authority), "--listen", listen,
                     "--work-dir", workDir, "--hostname", HostnameOf(n), "--resources", AgentResources,
                     "--attributes", $"rack:{Racks[n - 1]}", "--region", Region, "--zone", $"z{n}", "--log-level", "warning",
                     "--kill-tasks-on-stop"],
                    netns: host.Name,
                    logFile: Path.Combine(Root, $"agent{n}.log"));
                _agents.Add(agent);
                Network.TrackProcess(agent.Pid);
            }

            // The client must never go through a proxy: the master is on our private bridge.
            _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(20) };
            Client = new DroverClient(MasterUrl, _http);

            await Wait.UntilAsync(
                async () =>
                {
                    ThrowIfAnyExited();
                    return await Client.ListAgentsAsync();
                },
                agents => agents.Count(a => a.Status == "active") == AgentCount,
                StartupTimeout,
                $"{AgentCount} active agents at {MasterUrl}",
                interval: TimeSpan.FromMilliseconds(250),
                retryOn: e => e is HttpRequestException or TaskCanceledException,
                describe: agents => string.Join(", ", agents.Select(a => $"{a.Hostname}={a.Status}")));
        }
        catch (Exception e)
        {
            var diagnostics = Diagnostics();
            await DisposeAsync();
            throw new InvalidOperationException($"Could not start the multi-host cluster: {e.Message}\n{diagnostics}", e);
        }
    }

    /// <summary>The last output of the master and every agent, for failure messages.</summary>
    public string Diagnostics()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"cluster: master {MasterUrl}, network {Network?.Subnet} on {Network?.BridgeName}, files in {Root}");
        if (Master is not null)
        {
            text.AppendLine(Master.Tail());
        }

        foreach (var agent in _agents)
        {
            text.AppendLine(agent.Tail());
        }

        return text.ToString();
    }

    /// <summary>Agents first (each kills its tasks and removes their cgroups), then the master, then the network.</summary>
    public async Task DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await Task.WhenAll(_agents.Select(a => a.DisposeAsync().AsTask()));
        if (Master is not null)
        {
            await Master.DisposeAsync();
        }

        Client?.Dispose();
        _http?.Dispose();
        if (Network is not null)
        {
            await Network.DisposeAsync();
        }

        if (Environment.GetEnvironmentVariable("DROVER_KEEP_TEST_FILES") is not { Length: > 0 })
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    private void ThrowIfAnyExited()
    {
        foreach (var process in _agents.Prepend(Master).Where(p => p.HasExited))
        {
            throw new InvalidOperationException($"{process.Name} exited with {process.ExitCode} during startup");
        }
    }

    private static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
