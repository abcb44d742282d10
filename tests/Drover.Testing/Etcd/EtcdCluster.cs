using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Drover.Store.Etcd;
using Drover.Testing.Processes;
using Drover.Testing.Tls;

namespace Drover.Testing.Etcd;

public sealed record EtcdClusterOptions
{
    /// <summary>Number of members (1, 3, 5…).</summary>
    public int Members { get; init; } = 3;

    /// <summary>Raft heartbeat; short so elections after a kill take well under a second.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Raft election timeout (etcd wants at least 5 heartbeats). Also sets etcd's minimum lease TTL (1.5 elections, rounded up to 1 s).</summary>
    public TimeSpan ElectionTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long <see cref="EtcdCluster.StartAsync"/> and restarts wait for the members to serve.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Path to the etcd binary; null looks for <c>etcd</c> on PATH.</summary>
    public string? Binary { get; init; }

    /// <summary>More etcd flags for every member, e.g. <c>--max-txn-ops=1024</c>.</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>Serve clients (and, if asked, peers) over TLS with certificates of a CA made for the cluster; null is plain HTTP.</summary>
    public EtcdClusterTlsOptions? Tls { get; init; }
}

/// <summary>How an <see cref="EtcdCluster"/> uses TLS.</summary>
public sealed record EtcdClusterTlsOptions
{
    /// <summary>etcd's <c>--client-cert-auth</c>: clients must present a certificate signed by the cluster's CA.</summary>
    public bool ClientCertAuth { get; init; } = true;

    /// <summary>Members talk to each other over TLS too (<c>--peer-cert-file</c>…, <c>--peer-client-cert-auth</c>).</summary>
    public bool PeerTls { get; init; } = true;
}

/// <summary>
/// The TLS material of an <see cref="EtcdCluster"/> started with <see cref="EtcdClusterOptions.Tls"/>:
/// its CA (to issue more certificates) and the PEM files, in the cluster's directory. The server
/// certificate names 127.0.0.1 only (no DNS name, so <c>localhost</c> does not match it).
/// </summary>
public sealed record EtcdClusterTls(TestCertificateAuthority Authority, string CaFile, string ServerCertificateFile, string ServerKeyFile, string ClientCertificateFile, string ClientKeyFile)
{
    /// <summary>The store's TLS settings for this cluster: its CA and client certificate, loaded as <c>drover master</c> loads them.</summary>
    public EtcdTlsOptions StoreOptions() =>
        EtcdTlsFiles.TryLoad(CaFile, ClientCertificateFile, ClientKeyFile, out var options, out var error)
            ? options!
            : throw new InvalidOperationException($"the cluster's own TLS files do not load: {error}");
}

/// <summary>One member of an <see cref="EtcdCluster"/>.</summary>
public sealed class EtcdMember
{
    internal EtcdMember(int index, string name, int clientPort, int peerPort, string dataDir, string logFile, bool clientTls, bool peerTls)
    {
        Index = index;
        Name = name;
        ClientUrl = new Uri($"{(clientTls ? "https" : "http")}://127.0.0.1:{clientPort}/");
        PeerUrl = new Uri($"{(peerTls ? "https" : "http")}://127.0.0.1:{peerPort}/");
        DataDir = dataDir;
        LogFile = logFile;
    }

    public int Index { get; }

    /// <summary>etcd's --name: m0, m1, …</summary>
    public string Name { get; }

    public Uri ClientUrl { get; }

    public Uri PeerUrl { get; }

    public string DataDir { get; }

    /// <summary>etcd's stdout and stderr, appended across restarts.</summary>
    public string LogFile { get; }

    /// <summary>The member id etcd reports (header.member_id), known once the cluster has answered.</summary>
    public ulong MemberId { get; internal set; }

    public int? Pid => Process is { HasExited: false } p ? p.Id : null;

    public bool IsRunning => Process is { HasExited: false };

    internal Process? Process { get; set; }

    public override string ToString() => $"{Name} ({ClientUrl.Authority}, {(IsRunning ? $"pid {Pid}" : "down")})";
}

/// <summary>
/// A real etcd cluster on loopback for tests: <see cref="EtcdClusterOptions.Members"/> <c>etcd</c>
/// processes on free ports (from <see cref="TestPorts"/>), each with its data directory under one
/// temporary directory, short Raft timers, and a cluster token of its own. Members can be killed
/// (SIGKILL), stopped (SIGTERM), paused (SIGSTOP) and started again with their data. Disposing kills
/// every member and deletes the directory. Needs the <c>etcd</c> binary (Debian: etcd-server, which
/// ./test.sh installs): without it <see cref="StartAsync"/> throws, in CI and out of it. With
/// <see cref="EtcdClusterOptions.Tls"/> the members serve HTTPS with a CA made for the cluster
/// (<see cref="Tls"/>), require client certificates, and talk to each other over TLS.
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private static readonly string[] ProxyVariables = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

    private readonly EtcdClusterOptions _options;
    private readonly string _binary;
    private readonly string _token = "drover-test-" + Guid.NewGuid().ToString("N")[..12];
    private readonly HttpClient _http;
    private readonly X509Certificate2? _clientCertificate;
    private readonly List<EtcdMember> _members = [];

    // Members ended on purpose: their exit is not a failure.
    private readonly HashSet<EtcdMember> _stopping = [];
    private int _disposed;

    // Clusters not disposed yet: killed when the test host exits normally, so no etcd outlives it.
    private static readonly HashSet<EtcdCluster> Live = [];

    static EtcdCluster() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        lock (Live)
        {
            foreach (var member in Live.SelectMany(c => c._members))
            {
                Signal(member, ProcessSignal.Kill);
            }
        }
    };

    private EtcdCluster(EtcdClusterOptions options, string binary, string directory)
    {
        _options = options;
        _binary = binary;
        Directory = directory;
        Tls = options.Tls is null ? null : CreateTls(Path.Combine(directory, "tls"));
        var handler = new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) };
        if (Tls is not null)
        {
            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.Add(Tls.Authority.Certificate);
            _clientCertificate = X509Certificate2.CreateFromPemFile(Tls.ClientCertificateFile, Tls.ClientKeyFile);
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = policy,
                ClientCertificateContext = SslStreamCertificateContext.Create(_clientCertificate, null, offline: true),
            };
        }

        _http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
        lock (Live)
        {
            Live.Add(this);
        }
    }

    public IReadOnlyList<EtcdMember> Members => _members;

    /// <summary>The temporary directory holding every member's data and log.</summary>
    public string Directory { get; }

    /// <summary>The cluster's CA and certificate files when it was started with <see cref="EtcdClusterOptions.Tls"/>; else null.</summary>
    public EtcdClusterTls? Tls { get; }

    /// <summary>Every member's client URL, in member order.</summary>
    public IReadOnlyList<Uri> ClientUrls => [.. _members.Select(m => m.ClientUrl)];

    /// <summary>
    /// The cluster as Drover's <c>--store</c> flag writes it: <c>etcd://127.0.0.1:P0,127.0.0.1:P1,…</c>
    /// (with TLS, also give <c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c> from <see cref="Tls"/>).
    /// </summary>
    public string StoreAddress => "etcd://" + string.Join(',', _members.Select(m => m.ClientUrl.Authority));

    /// <summary>Whether the etcd binary can be found (PATH or <paramref name="binary"/>).</summary>
    public static bool IsInstalled(string? binary = null) => FindBinary(binary) is not null;

    /// <summary>Starts the members and waits until they serve and agree on a leader.</summary>
    /// <exception cref="InvalidOperationException">etcd is not installed.</exception>
    /// <exception cref="TimeoutException">The cluster did not become healthy in time (the message has each member's log tail).</exception>
    public static async Task<EtcdCluster> StartAsync(EtcdClusterOptions? options = null, CancellationToken ct = default)
    {
        options ??= new EtcdClusterOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Members, 1);
        var binary = FindBinary(options.Binary) ?? throw new InvalidOperationException(
            "etcd is not installed: tests that need a real etcd cluster cannot run. Install it with `apt-get install etcd-server` (./test.sh does this).");
        var directory = System.IO.Directory.CreateTempSubdirectory("drover-etcd-").FullName;
        var cluster = new EtcdCluster(options, binary, directory);
        try
        {
            var basePort = TestPorts.Block(2 * options.Members);
            for (var i = 0; i < options.Members; i++)
            {
                var name = $"m{i}";
                cluster._members.Add(new EtcdMember(i, name, basePort + (2 * i), basePort + (2 * i) + 1, Path.Combine(directory, name), Path.Combine(directory, name + ".log"),
                    clientTls: options.Tls is not null, peerTls: options.Tls is { PeerTls: true }));
            }

            foreach (var member in cluster._members)
            {
                cluster.Launch(member, initial: true);
            }

            await cluster.WaitHealthyAsync(options.StartTimeout, ct).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Client URLs starting with member <paramref name="first"/>, then the others in order: a store given these talks to that member first.</summary>
    public IReadOnlyList<Uri> ClientUrlsStartingWith(int first) =>
        [.. Enumerable.Range(0, _members.Count).Select(i => _members[(first + i) % _members.Count].ClientUrl)];

    /// <summary>SIGKILL (kill -9) to member <paramref name="index"/>; returns once it has exited. Its data stays for <see cref="StartMemberAsync"/>.</summary>
    public Task KillAsync(int index) => EndAsync(_members[index], ProcessSignal.Kill);

    /// <summary>SIGTERM to member <paramref name="index"/> (a clean shutdown); returns once it has exited.</summary>
    public Task StopAsync(int index) => EndAsync(_members[index], ProcessSignal.Terminate);

    /// <summary>SIGSTOP: the member stops answering but keeps its sockets open (a hung or partitioned member).</summary>
    public void Pause(int index) => Signal(_members[index], ProcessSignal.Stop);

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume(int index) => Signal(_members[index], ProcessSignal.Continue);

    /// <summary>Starts a killed or stopped member again with its data and waits until the cluster is healthy.</summary>
    public async Task StartMemberAsync(int index, CancellationToken ct = default)
    {
        var member = _members[index];
        if (member.IsRunning)
        {
            throw new InvalidOperationException($"{member} is already running");
        }

        Launch(member, initial: false);
        await WaitHealthyAsync(_options.StartTimeout, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits until every running member answers, a majority runs, and the running members agree on
    /// one leader that is itself running. Returns the leader's index.
    /// </summary>
    public async Task<int> WaitHealthyAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var limit = timeout ?? _options.StartTimeout;
        try
        {
            return await Wait.UntilAsync(
                async () =>
                {
                    ct.ThrowIfCancellationRequested();
                    foreach (var m in _members.Where(m => m.Process is { HasExited: true } && !IsStopping(m)))
                    {
                        throw new InvalidOperationException($"{m} exited with {m.Process!.ExitCode} on its own");
                    }

                    return await LeaderAsync(ct).ConfigureAwait(false);
                },
                leader => leader >= 0,
                limit,
                $"etcd cluster {StoreAddress} to elect a leader every running member follows",
                interval: TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            throw new TimeoutException($"{e.Message}\n{Describe()}", e);
        }
    }

    /// <summary>The index of the leader every running member follows; -1 when they do not (yet) agree or one does not answer.</summary>
    public async Task<int> LeaderAsync(CancellationToken ct = default)
    {
        var running = _members.Where(m => m.IsRunning).ToList();
        if (running.Count <= _members.Count / 2)
        {
            return -1; // no quorum
        }

        ulong leader = 0;
        foreach (var m in running)
        {
            var status = await StatusAsync(m, ct).ConfigureAwait(false);
            if (status is not var (self, led) || led == 0 || (leader != 0 && led != leader))
            {
                return -1;
            }

            m.MemberId = self;
            leader = led;
        }

        return running.FirstOrDefault(m => m.MemberId == leader)?.Index ?? -1;
    }

    /// <summary>
    /// POSTs <paramref name="json"/> to etcd's JSON gateway <paramref name="path"/> (e.g. <c>v3/kv/range</c>)
    /// on member <paramref name="index"/>, with the cluster's client certificate when it runs TLS.
    /// </summary>
    /// <exception cref="HttpRequestException">The member did not answer 200 (the message has its answer).</exception>
    public async Task<JsonDocument> PostJsonAsync(int index, string path, string json, CancellationToken ct = default)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(new Uri(_members[index].ClientUrl, path), content, ct).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        return response.IsSuccessStatusCode
            ? JsonDocument.Parse(body)
            : throw new HttpRequestException($"etcd {_members[index]} answered {path} with {(int)response.StatusCode}: {body}");
    }

    /// <summary>Every member with its state and the last lines of its log, for failure messages.</summary>
    public string Describe()
    {
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"etcd cluster in {Directory}:");
        foreach (var m in _members)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n==== {m} — last lines of {m.LogFile} ====\n");
            try
            {
                var lines = File.Exists(m.LogFile) ? File.ReadLines(m.LogFile).TakeLast(15) : [];
                text.AppendJoin('\n', lines);
            }
            catch (IOException e)
            {
                text.Append(e.Message);
            }
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        lock (Live)
        {
            Live.Remove(this);
        }

        foreach (var m in _members.Where(m => m.IsRunning))
        {
            Signal(m, ProcessSignal.Kill);
        }

        foreach (var m in _members)
        {
            if (m.Process is { } p)
            {
                await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                p.Dispose();
            }
        }

        _http.Dispose();
        _clientCertificate?.Dispose();
        Tls?.Authority.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // best effort: a temp dir left behind is not worth failing a test over
        }
    }

    public override string ToString() => StoreAddress;

    private void Launch(EtcdMember member, bool initial)
    {
        var args = new List<string>
        {
            "--name", member.Name,
            "--data-dir", member.DataDir,
            "--listen-client-urls", member.ClientUrl.GetLeftPart(UriPartial.Authority),
            "--advertise-client-urls", member.ClientUrl.GetLeftPart(UriPartial.Authority),
            "--listen-peer-urls", member.PeerUrl.GetLeftPart(UriPartial.Authority),
            "--initial-advertise-peer-urls", member.PeerUrl.GetLeftPart(UriPartial.Authority),
            "--initial-cluster", string.Join(',', _members.Select(m => $"{m.Name}={m.PeerUrl.GetLeftPart(UriPartial.Authority)}")),
            "--initial-cluster-state", initial ? "new" : "existing",
            "--initial-cluster-token", _token,
            "--heartbeat-interval", ((long)_options.HeartbeatInterval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            "--election-timeout", ((long)_options.ElectionTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            "--logger", "zap",
            "--log-outputs", "stderr",
        };
        if (Tls is not null && _options.Tls is { } tls)
        {
            args.AddRange(["--cert-file", Tls.ServerCertificateFile, "--key-file", Tls.ServerKeyFile, "--trusted-ca-file", Tls.CaFile]);
            if (tls.ClientCertAuth)
            {
                args.Add("--client-cert-auth");
            }

            if (tls.PeerTls)
            {
                args.AddRange(["--peer-cert-file", Tls.ServerCertificateFile, "--peer-key-file", Tls.ServerKeyFile, "--peer-trusted-ca-file", Tls.CaFile, "--peer-client-cert-auth"]);
            }
        }

        args.AddRange(_options.ExtraArgs);

        // sh appends etcd's output to the member's log and execs etcd, so the pid is etcd's own.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$DROVER_ETCD_LOG\" 2>&1 </dev/null");
        psi.ArgumentList.Add(_binary);
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("ETCD", StringComparison.Ordinal) || ProxyVariables.Contains(k)).ToList())
        {
            psi.Environment.Remove(key); // ETCD_* variables would set flags behind our back
        }

        psi.Environment["DROVER_ETCD_LOG"] = member.LogFile;
        File.AppendAllText(member.LogFile, $"--- {DateTimeOffset.UtcNow:O} starting: {ProcessRunner.Describe(_binary, args)}\n");
        member.Process?.Dispose();
        lock (_stopping)
        {
            _stopping.Remove(member);
        }

        member.Process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {_binary}");
        member.Process.StandardInput.Close();
    }

    /// <summary>A new CA for the cluster, a server certificate for 127.0.0.1 (members and peers) and a client certificate, as PEM files in <paramref name="directory"/>.</summary>
    private static EtcdClusterTls CreateTls(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var authority = TestCertificateAuthority.Create("etcd test CA");
        using var server = authority.IssueServer("etcd", [IPAddress.Loopback]);
        using var client = authority.IssueClient("drover");
        var (serverCertificate, serverKey) = authority.WritePem(server, directory, "server");
        var (clientCertificate, clientKey) = authority.WritePem(client, directory, "client");
        return new EtcdClusterTls(authority, authority.WriteCertificate(Path.Combine(directory, "ca.pem")), serverCertificate, serverKey, clientCertificate, clientKey);
    }

    private bool IsStopping(EtcdMember member)
    {
        lock (_stopping)
        {
            return _stopping.Contains(member);
        }
    }

    private async Task EndAsync(EtcdMember member, ProcessSignal signal)
    {
        if (member.Process is not { HasExited: false } p)
        {
            throw new InvalidOperationException($"{member} is not running");
        }

        lock (_stopping)
        {
            _stopping.Add(member);
        }

        Signal(member, ProcessSignal.Continue);
        Signal(member, signal);
        try
        {
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{member} did not exit within 10 s of SIG{signal.ToString().ToUpperInvariant()}\n{Describe()}");
        }

        File.AppendAllText(member.LogFile, $"--- {DateTimeOffset.UtcNow:O} ended by SIG{signal.ToString().ToUpperInvariant()}\n");
    }

    private static void Signal(EtcdMember member, ProcessSignal signal)
    {
        if (member.Pid is { } pid)
        {
            _ = SysKill(pid, (int)signal);
        }
    }

    /// <summary>(member id, leader id) from /v3/maintenance/status; null when the member does not answer.</summary>
    private async Task<(ulong Self, ulong Leader)?> StatusAsync(EtcdMember member, CancellationToken ct)
    {
        try
        {
            using var content = new StringContent("{}", Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync(new Uri(member.ClientUrl, "v3/maintenance/status"), content, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            using var json = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false), cancellationToken: ct).ConfigureAwait(false);
            var root = json.RootElement;
            var self = ulong.Parse(root.GetProperty("header").GetProperty("member_id").GetString()!, CultureInfo.InvariantCulture);
            var leader = root.TryGetProperty("leader", out var l) ? ulong.Parse(l.GetString()!, CultureInfo.InvariantCulture) : 0;
            return (self, leader);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }

    private static string? FindBinary(string? binary)
    {
        if (binary is not null)
        {
            return File.Exists(binary) ? binary : null;
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Select(dir => Path.Combine(dir, "etcd")).FirstOrDefault(File.Exists);
    }

    // DllImport, not LibraryImport: the generated marshalling would need AllowUnsafeBlocks in this project.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
