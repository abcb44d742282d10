using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Drover.Testing.Processes;

namespace Drover.Testing.Netns;

/// <summary>
/// A private test network: a Linux bridge <c>drbr&lt;id&gt;</c> with 10.a.b.1/24 in the root namespace
/// and N hosts, each a network namespace <c>drv-&lt;id&gt;-hN</c> with <c>eth0</c> = 10.a.b.(10+N)/24,
/// <c>lo</c> up and a default route via 10.a.b.1. The root namespace (where the test runs) reaches
/// every host and every host reaches it; a host reaches nothing else (ip_forward is left alone).
/// Needs root and iproute2.
/// </summary>
/// <remarks>
/// The subnet is chosen at random in 10.200-250.x.0/24 among those not in use on this machine. Each
/// network holds an exclusive lock on <c>/run/drover-netns/&lt;id&gt;.lock</c> for its lifetime and lists
/// what tests create for it (processes, directories, cgroups) in <c>&lt;id&gt;.track</c>, so
/// <see cref="CleanupLeftoversAsync"/> can tell leftovers of crashed runs (lock free) from networks
/// other test processes still use, and remove all of them.
/// </remarks>
public sealed partial class NetnsNetwork : IAsyncDisposable
{
    public const string NamespacePrefix = "drv-";
    public const string BridgePrefix = "drbr";
    public const string StateDirectory = "/run/drover-netns";

    private static readonly SemaphoreSlim CleanupOnce = new(1, 1);
    private static bool _cleanedUp;

    private readonly FileStream _lock;
    private readonly List<NetnsHost> _hosts = [];
    private int _disposed;

    private NetnsNetwork(string id, FileStream lockFile, IPAddress gateway)
    {
        Id = id;
        _lock = lockFile;
        Gateway = gateway;
    }

    /// <summary>4 hex digits naming this network's bridge, veths and namespaces.</summary>
    public string Id { get; }

    public string BridgeName => BridgePrefix + Id;

    /// <summary>The bridge's address in the root namespace, e.g. 10.217.4.1: bind servers the hosts must reach here.</summary>
    public IPAddress Gateway { get; }

    /// <summary>e.g. <c>10.217.4.0/24</c>.</summary>
    public string Subnet
    {
        get
        {
            var b = Gateway.GetAddressBytes();
            return string.Create(CultureInfo.InvariantCulture, $"{b[0]}.{b[1]}.{b[2]}.0/24");
        }
    }

    public IReadOnlyList<NetnsHost> Hosts => _hosts;

    /// <summary>
    /// Why network tests cannot run here, or null when they can. They need root; on CI
    /// (<c>CI=true</c>) they never skip, so a CI runner without root fails loudly instead.
    /// </summary>
    public static string? SkipReason =>
        IsRoot() || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
            ? null
            : "needs root (network namespaces, bridges, cgroups); runs on CI (CI=true) unconditionally";

    /// <summary>Creates the bridge and <paramref name="hostCount"/> hosts, and checks each host reaches the gateway.</summary>
    public static async Task<NetnsNetwork> CreateAsync(int hostCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hostCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(hostCount, 200);
        await CleanupLeftoversOnceAsync().ConfigureAwait(false);
        await DisableBridgeNetfilterAsync().ConfigureAwait(false);

        var (id, lockFile) = await ReserveIdAsync().ConfigureAwait(false);
        NetnsNetwork? network = null;
        try
        {
            var gateway = await ChooseSubnetAsync().ConfigureAwait(false);
            network = new NetnsNetwork(id, lockFile, gateway);
            await network.BuildAsync(hostCount).ConfigureAwait(false);
            await network.VerifyAsync().ConfigureAwait(false);
            return network;
        }
        catch
        {
            if (network is not null)
            {
                await network.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                ReleaseLock(id, lockFile);
            }

            throw;
        }
    }

    /// <summary>
    /// Records a process started for this network (in the root namespace or a host's): if this test
    /// process crashes without stopping it, the next run's <see cref="CleanupLeftoversAsync"/> kills it.
    /// </summary>
    public void TrackProcess(int pid)
    {
        if (LinuxProcesses.StartTimeOf(pid) is { } start)
        {
            Track(string.Create(CultureInfo.InvariantCulture, $"pid {pid} {start}"));
        }
    }

    /// <summary>Records a directory (e.g. agent work dirs) that <see cref="CleanupLeftoversAsync"/> deletes after a crash.</summary>
    public void TrackDirectory(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        if (full.Count(c => c == '/') < 2 || full.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{path}' is too close to / to be deleted recursively after a crash", nameof(path));
        }

        Track("dir " + full);
    }

    /// <summary>
    /// Records a cgroup (relative to each hierarchy's root, e.g. an agent's <c>drover/agent-…</c>): when
    /// this network is disposed, or after a crash by the next run, every process still in its tree (e.g.
    /// tasks of an agent that was SIGKILLed) is killed and its directories are removed.
    /// </summary>
    public void TrackCgroup(string relativeName) => Track("cgroup " + relativeName.Trim('/'));

    /// <summary>
    /// Kills tracked processes and every process in tracked cgroups (e.g. tasks orphaned by a killed
    /// agent), deletes the hosts' namespaces, their veths and the bridge, and removes the tracked
    /// cgroups. Best effort: every step runs even when one fails.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        // Safety net: whatever the test did not stop (normally nothing) dies with the network.
        var tracked = ReadTracked(Id);
        KillTracked(tracked);
        await KillCgroupTreesAsync(tracked).ConfigureAwait(false);
        await DeleteAsync(Id, [.. _hosts.Select(h => h.Name)], [.. _hosts.Select(h => h.RootVeth)]).ConfigureAwait(false);
        RemoveCgroups(tracked);
        ReleaseLock(Id, _lock);
    }

    /// <summary>
    /// Removes bridges, veths and namespaces with this class's prefixes whose network is not locked by a
    /// live process (leftovers of crashed runs), and kills the processes those runs left behind.
    /// </summary>
    public static async Task CleanupLeftoversAsync()
    {
        Directory.CreateDirectory(StateDirectory);
        var namespaces = await ListNamespacesAsync().ConfigureAwait(false);
        var links = await ListLinksAsync().ConfigureAwait(false);
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var ns in namespaces)
        {
            if (NamespaceName().Match(ns) is { Success: true } m)
            {
                ids.Add(m.Groups["id"].Value);
            }
        }

        foreach (var link in links)
        {
            if (LinkName().Match(link) is { Success: true } m)
            {
                ids.Add(m.Groups["id"].Value);
            }
        }

        foreach (var file in Directory.EnumerateFiles(StateDirectory, "*.lock"))
        {
            if (IdPattern().IsMatch(Path.GetFileNameWithoutExtension(file)))
            {
                ids.Add(Path.GetFileNameWithoutExtension(file));
            }
        }

        foreach (var id in ids)
        {
            var lockFile = TryLock(id);
            if (lockFile is null)
            {
                continue; // a live network
            }

            var tracked = ReadTracked(id);
            KillTracked(tracked);
            await KillCgroupTreesAsync(tracked).ConfigureAwait(false);
            await DeleteAsync(id,
                [.. namespaces.Where(n => NamespaceName().Match(n) is { Success: true } m && m.Groups["id"].Value == id)],
                [.. links.Where(l => l.StartsWith("drv" + id, StringComparison.Ordinal))]).ConfigureAwait(false);
            RemoveCgroups(tracked);
            foreach (var dir in tracked.Where(t => t.Kind == "dir"))
            {
                try
                {
                    Directory.Delete(dir.Value, recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }

            ReleaseLock(id, lockFile);
        }
    }

    private static async Task CleanupLeftoversOnceAsync()
    {
        await CleanupOnce.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_cleanedUp)
            {
                await CleanupLeftoversAsync().ConfigureAwait(false);
                _cleanedUp = true;
            }
        }
        finally
        {
            CleanupOnce.Release();
        }
    }

    private async Task BuildAsync(int hostCount)
    {
        var prefix = Gateway.GetAddressBytes();
        await Ip("link", "add", "name", BridgeName, "type", "bridge").ConfigureAwait(false);
        await Ip("addr", "add", $"{Gateway}/24", "dev", BridgeName).ConfigureAwait(false);
        await Ip("link", "set", BridgeName, "up").ConfigureAwait(false);
        for (var n = 1; n <= hostCount; n++)
        {
            var ns = string.Create(CultureInfo.InvariantCulture, $"{NamespacePrefix}{Id}-h{n}");
            var rootVeth = string.Create(CultureInfo.InvariantCulture, $"drv{Id}h{n}");
            var peer = string.Create(CultureInfo.InvariantCulture, $"drv{Id}p{n}");
            var address = new IPAddress([prefix[0], prefix[1], prefix[2], (byte)(10 + n)]);
            await Ip("netns", "add", ns).ConfigureAwait(false);
            _hosts.Add(new NetnsHost(this, n, ns, rootVeth, address));
            await Ip("link", "add", rootVeth, "type", "veth", "peer", "name", peer, "netns", ns).ConfigureAwait(false);
            await Ip("-n", ns, "link", "set", peer, "name", "eth0").ConfigureAwait(false);
            await Ip("-n", ns, "addr", "add", $"{address}/24", "dev", "eth0").ConfigureAwait(false);
            await Ip("-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
            await Ip("-n", ns, "link", "set", "eth0", "up").ConfigureAwait(false);
            await Ip("-n", ns, "route", "add", "default", "via", Gateway.ToString()).ConfigureAwait(false);
            await Ip("link", "set", rootVeth, "master", BridgeName).ConfigureAwait(false);
            await Ip("link", "set", rootVeth, "up").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Each host opens a TCP connection to a listener on the gateway (a handshake proves both directions),
    /// so a broken setup fails here with a clear message instead of as agents that never register.
    /// Uses bash's /dev/tcp; skipped where bash is missing.
    /// </summary>
    private async Task VerifyAsync()
    {
        var bash = new[] { "/bin/bash", "/usr/bin/bash" }.FirstOrDefault(File.Exists);
        if (bash is null)
        {
            return;
        }

        using var listener = new TcpListener(Gateway, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var accepting = AcceptAllAsync(listener, stop.Token);
        try
        {
            foreach (var host in _hosts)
            {
                await Wait.UntilAsync(
                    () => host.ExecAsync([bash, "-c", $"exec 3<>/dev/tcp/{Gateway}/{port}"], TimeSpan.FromSeconds(5)),
                    r => r.Succeeded,
                    TimeSpan.FromSeconds(10),
                    $"{host} to connect to {Gateway}:{port} over the bridge {BridgeName}",
                    interval: TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            listener.Stop();
            await accepting.ConfigureAwait(false);
        }
    }

    private static async Task AcceptAllAsync(TcpListener listener, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static async Task DeleteAsync(string id, IReadOnlyList<string> namespaces, IReadOnlyList<string> rootVeths)
    {
        foreach (var ns in namespaces)
        {
            var pids = await ProcessRunner.RunAsync("ip", "netns", "pids", ns).ConfigureAwait(false);
            foreach (var line in pids.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 1)
                {
                    _ = SysKill(pid, 9);
                }
            }

            await ProcessRunner.RunAsync("ip", "netns", "del", ns).ConfigureAwait(false);
        }

        // Deleting a namespace destroys its veth end (and so the pair) unless a process still pins it.
        foreach (var veth in rootVeths)
        {
            await ProcessRunner.RunAsync("ip", "link", "del", veth).ConfigureAwait(false);
        }

        await ProcessRunner.RunAsync("ip", "link", "del", BridgePrefix + id).ConfigureAwait(false);
    }

    private static async Task<(string Id, FileStream Lock)> ReserveIdAsync()
    {
        Directory.CreateDirectory(StateDirectory);
        var links = await ListLinksAsync().ConfigureAwait(false);
        var namespaces = await ListNamespacesAsync().ConfigureAwait(false);
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
            if (links.Any(l => l == BridgePrefix + id || l.StartsWith("drv" + id, StringComparison.Ordinal))
                || namespaces.Any(n => n.StartsWith(NamespacePrefix + id + "-", StringComparison.Ordinal))
                || File.Exists(LockFile(id)))
            {
                continue;
            }

            if (TryLock(id) is { } lockFile)
            {
                File.Delete(TrackFile(id));
                return (id, lockFile);
            }
        }

        throw new InvalidOperationException("could not find a free network id");
    }

    private static async Task<IPAddress> ChooseSubnetAsync()
    {
        // Every address and route of every table; a candidate /24 is taken when one of them lies in it
        // or is a /16-/23 network containing it (wider routes such as 10.0.0.0/8 lose to our /24 anyway).
        var text = (await ProcessRunner.CheckedAsync("ip", "-4", "-o", "addr", "show").ConfigureAwait(false)).StdOut
            + (await ProcessRunner.CheckedAsync("ip", "-4", "route", "show", "table", "all").ConfigureAwait(false)).StdOut;
        var used = new List<(uint Network, int Length)>();
        foreach (var token in text.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            var slash = token.IndexOf('/', StringComparison.Ordinal);
            var length = 32;
            if (IPAddress.TryParse(slash < 0 ? token : token[..slash], out var ip) && ip.AddressFamily == AddressFamily.InterNetwork
                && (slash < 0 || int.TryParse(token[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out length)))
            {
                used.Add((ToUInt(ip), length));
            }
        }

        for (var attempt = 0; attempt < 100; attempt++)
        {
            var candidate = (10u << 24) | ((uint)RandomNumberGenerator.GetInt32(200, 251) << 16) | ((uint)RandomNumberGenerator.GetInt32(0, 256) << 8);
            var taken = used.Any(u => u.Length >= 24 ? (u.Network & 0xFFFFFF00u) == candidate
                : u.Length >= 16 && (candidate & (uint.MaxValue << (32 - u.Length))) == (u.Network & (uint.MaxValue << (32 - u.Length))));
            if (!taken)
            {
                return new IPAddress([(byte)(candidate >> 24), (byte)(candidate >> 16), (byte)(candidate >> 8), 1]);
            }
        }

        throw new InvalidOperationException("no free 10.200-250.x.0/24 subnet");
    }

    private static uint ToUInt(IPAddress ip)
    {
        var b = ip.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    /// <summary>
    /// With br_netfilter loaded, bridged frames between hosts go through iptables' FORWARD chain, whose
    /// policy is often DROP (Docker sets it): turn that off. Host ↔ root traffic is not bridged and is
    /// unaffected. Only keys that exist are written.
    /// </summary>
    private static async Task DisableBridgeNetfilterAsync()
    {
        foreach (var key in new[] { "bridge-nf-call-iptables", "bridge-nf-call-ip6tables" })
        {
            var path = Path.Combine("/proc/sys/net/bridge", key);
            if (File.Exists(path) && (await File.ReadAllTextAsync(path).ConfigureAwait(false)).Trim() != "0")
            {
                await ProcessRunner.CheckedAsync("sysctl", "-q", "-w", $"net.bridge.{key}=0").ConfigureAwait(false);
            }
        }
    }

    private static async Task<IReadOnlyList<string>> ListNamespacesAsync()
    {
        var result = await ProcessRunner.CheckedAsync("ip", "netns", "list").ConfigureAwait(false);

        // "name" or "name (id: 3)"
        return [.. result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => l.Split(' ')[0])];
    }

    private static async Task<IReadOnlyList<string>> ListLinksAsync()
    {
        var result = await ProcessRunner.CheckedAsync("ip", "-o", "link", "show").ConfigureAwait(false);

        // "12: drv1a2bh1@if11: <BROADCAST,…"
        return [.. result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3))
            .Where(p => p.Length == 3)
            .Select(p => p[1].Trim().Split('@')[0])];
    }

    private static string LockFile(string id) => Path.Combine(StateDirectory, id + ".lock");

    private static string TrackFile(string id) => Path.Combine(StateDirectory, id + ".track");

    private void Track(string line)
    {
        lock (_hosts)
        {
            File.AppendAllText(TrackFile(Id), line + "\n");
        }
    }

    private static List<(string Kind, string Value)> ReadTracked(string id)
    {
        try
        {
            return [.. File.ReadAllLines(TrackFile(id)).Select(l => l.Split(' ', 2)).Where(p => p.Length == 2).Select(p => (p[0], p[1]))];
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>An exclusive flock on the id's lock file, or null when a live process holds it.</summary>
    private static FileStream? TryLock(string id)
    {
        try
        {
            return new FileStream(LockFile(id), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static void ReleaseLock(string id, FileStream lockFile)
    {
        try
        {
            File.Delete(TrackFile(id));
            File.Delete(LockFile(id));
        }
        catch (IOException)
        {
        }
        finally
        {
            lockFile.Dispose();
        }
    }

    /// <summary>SIGKILLs tracked processes that still run, if they are still the same processes (start time).</summary>
    private static void KillTracked(IEnumerable<(string Kind, string Value)> tracked)
    {
        foreach (var (kind, value) in tracked)
        {
            var parts = value.Split(' ');
            if (kind == "pid" && parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && pid > 1 && LinuxProcesses.StartTimeOf(pid) == parts[1])
            {
                _ = SysKill(pid, 9);
            }
        }
    }

    /// <summary>SIGKILLs every process left in a tracked cgroup's tree (processes never escape a cgroup on their own).</summary>
    private static async Task KillCgroupTreesAsync(IEnumerable<(string Kind, string Value)> tracked)
    {
        foreach (var (kind, name) in tracked)
        {
            if (kind == "cgroup" && !name.Split('/').Contains(".."))
            {
                await LinuxProcesses.KillCgroupTreeAsync(name, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Removes the tracked cgroups' empty directories, deepest first, in every mounted hierarchy.</summary>
    private static void RemoveCgroups(IEnumerable<(string Kind, string Value)> tracked)
    {
        var names = tracked.Where(t => t.Kind == "cgroup" && !t.Value.Split('/').Contains("..")).Select(t => t.Value).ToList();
        if (names.Count == 0)
        {
            return;
        }

        foreach (var mount in LinuxProcesses.CgroupMounts())
        {
            foreach (var name in names)
            {
                var root = Path.Combine(mount, name);
                if (!Directory.Exists(root))
                {
                    continue;
                }

                try
                {
                    foreach (var dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(root))
                    {
                        Directory.Delete(dir); // rmdir: works on a cgroup without processes or children
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Still in use (or already gone): leave it.
                }
            }
        }
    }

    private static bool IsRoot()
    {
        try
        {
            // "Uid:\treal\teffective\tsaved\tfs"
            var uid = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            return uid is not null && uid.Split('\t', StringSplitOptions.RemoveEmptyEntries) is [_, _, "0", ..];
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static Task<ProcessResult> Ip(params string[] args) => ProcessRunner.CheckedAsync("ip", args);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);

    [GeneratedRegex("^drv-(?<id>[0-9a-f]{4})-h[0-9]+$")]
    private static partial Regex NamespaceName();

    [GeneratedRegex("^(drbr(?<id>[0-9a-f]{4})|drv(?<id>[0-9a-f]{4})[hp][0-9]+)$")]
    private static partial Regex LinkName();

    [GeneratedRegex("^[0-9a-f]{4}$")]
    private static partial Regex IdPattern();
}
