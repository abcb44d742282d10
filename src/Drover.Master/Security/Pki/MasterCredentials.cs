using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Drover.Core.Security.Pki;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security.Pki;

/// <summary>
/// A master's TLS material: the cluster CA (from the store), the certificate it serves, the certificate
/// it presents to agents (<c>spiffe://drover/master/&lt;host:port&gt;</c>), and the CA it tells clients to
/// trust. Certificates the cluster CA issues to the master are re-issued at every start and after two
/// thirds of their lifetime (checked whenever one is used), so a long-running master never serves an
/// expired one. Thread-safe; usable once <see cref="InitializeAsync"/> has run.
/// </summary>
public sealed partial class MasterCredentials(MasterTlsOptions options, TimeProvider time, ILogger<MasterCredentials> logger) : IDisposable
{
    private readonly Lock _gate = new();
    private ClusterCa? _ca;
    private string _address = "localhost:0";
    private Issued? _issued;
    private DateTimeOffset _renewAt;
    private SslStreamCertificateContext? _operatorContext;
    private X509Certificate2Collection? _servingRoots;

    public MasterTlsOptions Options { get; } = options;

    public bool IsInitialized => Volatile.Read(ref _ca) is not null;

    public ClusterCa Ca => Volatile.Read(ref _ca) ?? throw new InvalidOperationException("the master's credentials are not loaded yet");

    /// <summary>The CA(s) clients must trust for this master's serving certificate (the operator's <c>--tls-ca</c>, or the cluster CA).</summary>
    public X509Certificate2Collection ServingRoots => _servingRoots ?? Ca.Roots;

    /// <summary>PEM of <see cref="ServingRoots"/>, as <c>GET /drover/v1/ca</c> publishes it.</summary>
    public string ServingCaPem { get; private set; } = "";

    /// <summary>SHA-256 of the public key of the first serving root: what a join token embeds.</summary>
    public string ServingCaHash => PemCertificates.PublicKeyHash(ServingRoots[0]);

    /// <summary>Loads (or, for a new cluster, creates) the cluster CA, and issues this master's certificates for <paramref name="address"/>.</summary>
    public async Task InitializeAsync(IStateStore store, string address, CancellationToken ct)
    {
        if (IsInitialized)
        {
            SetAddress(address);
            return;
        }

        var ca = await ClusterCa.LoadOrCreateAsync(store, time, logger, ct).ConfigureAwait(false);
        Initialize(ca, address);
    }

    /// <summary>Uses a CA the caller holds (tests).</summary>
    public void Initialize(ClusterCa ca, string address)
    {
        ArgumentNullException.ThrowIfNull(ca);
        lock (_gate)
        {
            if (Options.CertificatePem is not null)
            {
                var own = PemCertificates.LoadWithKey(Options.CertificatePem, Options.KeyPem ?? Options.CertificatePem);
                if (!own.Succeeded)
                {
                    throw new InvalidOperationException("--tls-cert/--tls-key: " + own.Error);
                }

                var roots = PemCertificates.LoadAll(Options.CaPem ?? "");
                if (!roots.Succeeded)
                {
                    throw new InvalidOperationException("--tls-ca: " + roots.Error);
                }

                _servingRoots = roots.Value;
                _operatorContext = SslStreamCertificateContext.Create(own.Value!, roots.Value, offline: true);
                ServingCaPem = string.Concat(roots.Value!.Select(PemCertificates.Export));
            }
            else
            {
                ServingCaPem = ca.Pem;
            }

            _address = address;
            IssueLocked(ca);
            Volatile.Write(ref _ca, ca);
        }
    }

    /// <summary>Re-issues the master's certificates for its real address (after binding port 0).</summary>
    public void SetAddress(string address)
    {
        lock (_gate)
        {
            if (address != _address)
            {
                _address = address;
                IssueLocked(Ca);
            }
        }
    }

    /// <summary>The certificate (and chain) Kestrel serves.</summary>
    public SslStreamCertificateContext ServerCertificate => _operatorContext ?? Current().Context;

    /// <summary>The certificate the master presents to agents (client authentication), with its key.</summary>
    public X509Certificate2 ClientCertificate => Current().Certificate;

    /// <summary>Issues an agent's certificate for the key in <paramref name="csrPem"/>.</summary>
    public PkiResult<X509Certificate2> IssueAgent(string agentId, string csrPem) =>
        CertificateAuthority.IssueFromSigningRequest(Ca.Certificate, csrPem,
            new CertificateProfile { Identity = SpiffeId.Agent(agentId), Lifetime = Options.AgentCertificateLifetime }, time.GetUtcNow());

    /// <summary>An agent certificate with a key made here (<c>drover dev --auth</c>'s own agent, tests).</summary>
    public X509Certificate2 IssueAgentWithKey(string agentId) =>
        CertificateAuthority.IssueWithNewKey(Ca.Certificate,
            new CertificateProfile { Identity = SpiffeId.Agent(agentId), Lifetime = Options.AgentCertificateLifetime }, time.GetUtcNow());

    public void Dispose() => _ca?.Dispose();

    private Issued Current()
    {
        if (time.GetUtcNow() >= _renewAt)
        {
            lock (_gate)
            {
                if (time.GetUtcNow() >= _renewAt)
                {
                    IssueLocked(Ca);
                }
            }
        }

        return Volatile.Read(ref _issued)!;
    }

    private void IssueLocked(ClusterCa ca)
    {
        var now = time.GetUtcNow();
        var issued = CertificateAuthority.IssueWithNewKey(ca.Certificate, new CertificateProfile
        {
            Identity = SpiffeId.Master(_address),
            DnsNames = Options.DnsNames,
            IpAddresses = Options.IpAddresses,
            Lifetime = Options.MasterCertificateLifetime,
        }, now);
        // The chain includes the CA, so a client that does not trust it yet can show its fingerprint.
        // The previous one stays usable by connections that hold it; it is garbage once they end.
        Volatile.Write(ref _issued, new Issued(issued, SslStreamCertificateContext.Create(issued, [ca.Certificate], offline: true)));
        _renewAt = now + (Options.MasterCertificateLifetime * 2 / 3);
        LogIssued(logger, _address, issued.NotAfter.ToUniversalTime());
    }

    private sealed record Issued(X509Certificate2 Certificate, SslStreamCertificateContext Context);

    [LoggerMessage(Level = LogLevel.Information, Message = "Issued the master certificate for {Address}, valid until {NotAfter:u}")]
    private static partial void LogIssued(ILogger logger, string address, DateTime notAfter);
}
