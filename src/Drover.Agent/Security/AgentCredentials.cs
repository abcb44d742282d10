using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;
using Microsoft.Extensions.Logging;

namespace Drover.Agent.Security;

/// <summary>
/// An agent's identity: its certificate and key (<c>spiffe://drover/agent/&lt;id&gt;</c>, from the cluster
/// CA), the cluster CA (which signs the master's client certificate), and the CA it trusts for the
/// masters' serving certificates (checked against the join token's hash when it joined). Kept in
/// <c>&lt;work-dir&gt;/tls/</c>, 0600 in a 0700 directory:
/// <code>
///   agent.pem        certificate + PKCS#8 key (one file, replaced atomically on renewal)
///   cluster-ca.pem   the cluster CA
///   master-ca.pem    the CA the masters' HTTPS certificates chain to
/// </code>
/// <see cref="Client"/> is the HTTP client for every call to a master (mutual TLS with the current
/// certificate); <see cref="RenewAsync"/> replaces certificate, key and client, and the previous client
/// stays usable for calls already under way.
/// </summary>
public sealed partial class AgentCredentials : IDisposable
{
    public const string Directory = "tls";
    public const string CertificateFile = "agent.pem";
    public const string ClusterCaFile = "cluster-ca.pem";
    public const string MasterCaFile = "master-ca.pem";

    private readonly string _dir;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private Current _current;
    private HttpClient? _retired;

    private AgentCredentials(string workDir, string agentId, X509Certificate2 certificate, X509Certificate2Collection clusterRoots, X509Certificate2Collection masterRoots, TimeProvider time)
    {
        _dir = Path.Combine(workDir, Directory);
        AgentId = agentId;
        ClusterRoots = clusterRoots;
        MasterRoots = masterRoots;
        _time = time;
        _current = Make(certificate);
    }

    /// <summary>The id the master assigned at join; the certificate names it.</summary>
    public string AgentId { get; }

    /// <summary>The cluster CA: the only issuer of a master's client certificate this agent accepts.</summary>
    public X509Certificate2Collection ClusterRoots { get; }

    /// <summary>What the masters' serving certificates must chain to.</summary>
    public X509Certificate2Collection MasterRoots { get; }

    /// <summary>The current certificate, with its key.</summary>
    public X509Certificate2 Certificate => Volatile.Read(ref _current).Certificate;

    /// <summary>What the agent's own HTTPS endpoint serves.</summary>
    public SslStreamCertificateContext ServerCertificate => Volatile.Read(ref _current).Context;

    /// <summary>For every call to a master: presents <see cref="Certificate"/>, trusts only <see cref="MasterRoots"/>.</summary>
    public HttpClient Client => Volatile.Read(ref _current).Client;

    /// <summary>When to renew: two thirds into the certificate's validity.</summary>
    public DateTimeOffset RenewAt
    {
        get
        {
            var c = Certificate;
            var from = new DateTimeOffset(c.NotBefore.ToUniversalTime(), TimeSpan.Zero);
            return from + ((new DateTimeOffset(c.NotAfter.ToUniversalTime(), TimeSpan.Zero) - from) * 2 / 3);
        }
    }

    public DateTimeOffset ExpiresAt => new(Certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);

    /// <summary>The credentials kept in <paramref name="workDir"/>; null when the agent has not joined. Unreadable files are an error with the path.</summary>
    public static AgentCredentials? Load(string workDir, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var dir = Path.Combine(workDir, Directory);
        var certPath = Path.Combine(dir, CertificateFile);
        if (!File.Exists(certPath))
        {
            return null;
        }

        var pem = File.ReadAllText(certPath);
        var certificate = PemCertificates.LoadWithKey(pem, pem);
        var cluster = PemCertificates.LoadAll(ReadOrEmpty(Path.Combine(dir, ClusterCaFile)));
        var masters = PemCertificates.LoadAll(ReadOrEmpty(Path.Combine(dir, MasterCaFile)));
        if (!certificate.Succeeded || !cluster.Succeeded || !masters.Succeeded)
        {
            throw new InvalidDataException($"the agent's credentials in {dir} cannot be read ({certificate.Error ?? cluster.Error ?? masters.Error}); "
                + "remove that directory and join again with --join-token");
        }

        if (PeerIdentity.AgentIdOf(SpiffeId.FromCertificate(certificate.Value!)) is not { } agentId)
        {
            throw new InvalidDataException($"{certPath} names no agent identity; remove {dir} and join again with --join-token");
        }

        return new AgentCredentials(workDir, agentId, certificate.Value!, cluster.Value!, masters.Value!, time);
    }

    /// <summary>Credentials issued without a join (<c>drover dev --auth</c>: the in-process master's CA signs directly). Saved like joined ones.</summary>
    public static AgentCredentials Create(string workDir, X509Certificate2 certificateWithKey, string clusterCaPem, string masterCaPem, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(certificateWithKey);
        var agentId = PeerIdentity.AgentIdOf(SpiffeId.FromCertificate(certificateWithKey)) ?? throw new ArgumentException("not an agent certificate", nameof(certificateWithKey));
        var credentials = new AgentCredentials(workDir, agentId, certificateWithKey,
            PemCertificates.LoadAll(clusterCaPem).Value ?? throw new ArgumentException("no cluster CA", nameof(clusterCaPem)),
            PemCertificates.LoadAll(masterCaPem).Value ?? throw new ArgumentException("no master CA", nameof(masterCaPem)), time);
        credentials.Save(certificateWithKey, writeCas: true, clusterCaPem, masterCaPem);
        return credentials;
    }

    /// <summary>
    /// Joins the cluster with a join token (<c>drover node token create</c>): fetches the master's CA and
    /// checks it against the hash in the token before anything secret is sent, then sends the token and a
    /// CSR for a key made here, over TLS trusting only that CA. Tries each master in turn and retries while
    /// none answers; a refusal (bad or expired token, CA mismatch) is final: <see cref="JoinRefusedException"/>.
    /// </summary>
    public static async Task<AgentCredentials> JoinAsync(IReadOnlyList<Uri> masters, string tokenText, string workDir, string hostname, TimeProvider time, ILogger logger, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(masters);
        var (token, error) = JoinToken.Parse(tokenText);
        if (token is null)
        {
            throw new JoinRefusedException("--join-token: " + error);
        }

        var backoff = TimeSpan.FromMilliseconds(200);
        for (var attempt = 0; ; attempt++)
        {
            var master = masters[attempt % masters.Count];
            try
            {
                return await JoinOnceAsync(master, token, workDir, hostname, time, logger, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogJoinRetry(logger, master.ToString(), e.Message);
                await Task.Delay(backoff, time, ct).ConfigureAwait(false);
                backoff = backoff * 2 > TimeSpan.FromSeconds(5) ? TimeSpan.FromSeconds(5) : backoff * 2;
            }
        }
    }

    private static async Task<AgentCredentials> JoinOnceAsync(Uri master, JoinToken token, string workDir, string hostname, TimeProvider time, ILogger logger, CancellationToken ct)
    {
        if (master.Scheme != Uri.UriSchemeHttps)
        {
            throw new JoinRefusedException($"--master: joining needs an https:// master URL, not {master}");
        }

        // 1. The CA, from an unverified connection: it is checked against the token's hash instead.
        string caPem;
        using (var discovery = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        }) { Timeout = TimeSpan.FromSeconds(15) })
        {
            using var response = await discovery.GetAsync(new Uri(master, "drover/v1/ca"), ct).ConfigureAwait(false);
            if (response.StatusCode is HttpStatusCode.NotFound)
            {
                throw new JoinRefusedException($"the master at {master} has no CA (does it run with --insecure?)");
            }

            response.EnsureSuccessStatusCode();
            caPem = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        }

        var roots = PemCertificates.LoadAll(caPem);
        if (!roots.Succeeded || PemCertificates.PublicKeyHash(roots.Value![0]) != token.CaHash)
        {
            throw new JoinRefusedException($"the master at {master} presents a CA whose public key hash is "
                + (roots.Succeeded ? PemCertificates.PublicKeyHash(roots.Value![0]) : "unreadable")
                + $", not the join token's {token.CaHash}: refusing to send the token to it");
        }

        // 2. The join itself, trusting only that CA.
        using var key = CertificateAuthority.NewKey();
        var csr = CertificateAuthority.CreateSigningRequestPem(key, hostname);
        using var client = new HttpClient(CreateMasterHandler(roots.Value!, clientCertificate: null, time)) { Timeout = TimeSpan.FromSeconds(30) };
        using var joined = await client.PostAsJsonAsync(new Uri(master, "internal/v1/agents/join"),
            new AgentJoinRequest { Token = token.Credential, Csr = csr, Hostname = hostname }, DroverJsonContext.Default.AgentJoinRequest, ct).ConfigureAwait(false);
        if (joined.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest or HttpStatusCode.Forbidden or HttpStatusCode.NotFound)
        {
            throw new JoinRefusedException($"the master at {master} refused the join: {await ErrorMessageAsync(joined, ct).ConfigureAwait(false)}");
        }

        joined.EnsureSuccessStatusCode();
        var answer = await joined.Content.ReadFromJsonAsync(DroverJsonContext.Default.AgentJoinResponse, ct).ConfigureAwait(false)
            ?? throw new HttpRequestException("empty join answer");
        var issued = PemCertificates.Load(answer.Certificate);
        var cluster = PemCertificates.LoadAll(answer.ClusterCa);
        if (!issued.Succeeded || !cluster.Succeeded)
        {
            throw new JoinRefusedException($"the master at {master} answered the join with an unreadable certificate ({issued.Error ?? cluster.Error})");
        }

        using var certificate = issued.Value!;
        var withKey = certificate.CopyWithPrivateKey(key);
        if (PeerIdentity.AgentIdOf(SpiffeId.FromCertificate(withKey)) != answer.AgentId)
        {
            throw new JoinRefusedException($"the master at {master} issued a certificate that does not name agent {answer.AgentId}");
        }

        var credentials = new AgentCredentials(workDir, answer.AgentId, Reload(withKey), cluster.Value!, roots.Value!, time);
        credentials.Save(credentials.Certificate, writeCas: true, answer.ClusterCa, caPem);
        LogJoined(logger, answer.AgentId, master.ToString(), credentials.ExpiresAt);
        return credentials;
    }

    /// <summary>
    /// Replaces the certificate (and key) through <paramref name="master"/>, authenticated with the current
    /// one. The new files are in place before the new client is used. A refusal or a failure leaves the
    /// current credentials as they are; the caller retries.
    /// </summary>
    public async Task RenewAsync(Uri master, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(master);
        using var key = CertificateAuthority.NewKey();
        var csr = CertificateAuthority.CreateSigningRequestPem(key, AgentId);
        using var response = await Client.PostAsJsonAsync(new Uri(master, $"internal/v1/agents/{AgentId}/certificate"),
            new CertificateRenewal { Csr = csr }, DroverJsonContext.Default.CertificateRenewal, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"renewal refused: {await ErrorMessageAsync(response, ct).ConfigureAwait(false)}", null, response.StatusCode);
        }

        var answer = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.CertificateIssued, ct).ConfigureAwait(false)
            ?? throw new HttpRequestException("empty renewal answer");
        var issued = PemCertificates.Load(answer.Certificate);
        if (!issued.Succeeded)
        {
            throw new HttpRequestException("the renewed certificate is unreadable: " + issued.Error);
        }

        using var certificate = issued.Value!;
        using var withKey = certificate.CopyWithPrivateKey(key);
        if (PeerIdentity.AgentIdOf(SpiffeId.FromCertificate(withKey)) != AgentId)
        {
            throw new HttpRequestException($"the renewed certificate does not name agent {AgentId}");
        }

        var renewed = Reload(withKey);
        Save(renewed, writeCas: false, null, null);
        lock (_gate)
        {
            _retired?.Dispose(); // retired a renewal ago: whatever used it has long finished
            _retired = _current.Client;
            Volatile.Write(ref _current, Make(renewed));
        }
    }

    public void Dispose()
    {
        _current.Client.Dispose();
        _retired?.Dispose();
    }

    /// <summary>A handler for calls to masters: presents <paramref name="clientCertificate"/> (when given), trusts only <paramref name="masterRoots"/>, checks the host name.</summary>
    public static SocketsHttpHandler CreateMasterHandler(X509Certificate2Collection masterRoots, X509Certificate2? clientCertificate, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(masterRoots);
        ArgumentNullException.ThrowIfNull(time);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                LocalCertificateSelectionCallback = clientCertificate is null ? null : (_, _, _, _, _) => clientCertificate,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    certificate is not null
                    && (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) == 0
                    && CertificateVerifier.Verify(certificate as X509Certificate2 ?? new X509Certificate2(certificate), masterRoots, time.GetUtcNow(), CertificateUse.Server) is null,
            },
        };
    }

    private Current Make(X509Certificate2 certificate) => new(
        certificate,
        SslStreamCertificateContext.Create(certificate, ClusterRoots, offline: true),
        new HttpClient(CreateMasterHandler(MasterRoots, certificate, _time)) { Timeout = Timeout.InfiniteTimeSpan });

    private void Save(X509Certificate2 certificate, bool writeCas, string? clusterCaPem, string? masterCaPem)
    {
        System.IO.Directory.CreateDirectory(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // an existing one is tightened too

        if (writeCas)
        {
            PrivateFile.Write(Path.Combine(_dir, ClusterCaFile), System.Text.Encoding.UTF8.GetBytes(clusterCaPem!));
            PrivateFile.Write(Path.Combine(_dir, MasterCaFile), System.Text.Encoding.UTF8.GetBytes(masterCaPem!));
        }

        PrivateFile.Write(Path.Combine(_dir, CertificateFile), System.Text.Encoding.UTF8.GetBytes(PemCertificates.ExportWithKey(certificate)));
    }

    /// <summary>A certificate that owns its key (through PKCS#12), independent of the key object it was made with.</summary>
    private static X509Certificate2 Reload(X509Certificate2 withKey) => X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);

    private static string ReadOrEmpty(string path) => File.Exists(path) ? File.ReadAllText(path) : "";

    private static async Task<string> ErrorMessageAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        try
        {
            return JsonSerializer.Deserialize(text, DroverJsonContext.Default.ApiError)?.Message ?? $"HTTP {(int)response.StatusCode}";
        }
        catch (JsonException)
        {
            return $"HTTP {(int)response.StatusCode}";
        }
    }

    private sealed record Current(X509Certificate2 Certificate, SslStreamCertificateContext Context, HttpClient Client);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Joining through master {Master} failed, retrying: {Error}")]
    private static partial void LogJoinRetry(ILogger logger, string master, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Joined the cluster as agent {AgentId} through master {Master}; certificate valid until {NotAfter:u}")]
    private static partial void LogJoined(ILogger logger, string agentId, string master, DateTimeOffset notAfter);
}

/// <summary>A join the master refused, or one this agent refused to make (wrong CA): final, not retried.</summary>
public sealed class JoinRefusedException(string message) : Exception(message);
