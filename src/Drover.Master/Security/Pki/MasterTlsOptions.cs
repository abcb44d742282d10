using System.Collections.Immutable;
using System.Net;

namespace Drover.Master.Security.Pki;

/// <summary>
/// How a master serves TLS (<see cref="MasterOptions.Tls"/>; null serves plain HTTP: <c>drover dev</c>,
/// <c>drover master --insecure</c>). Certificates are PEM text: the CLI reads the files.
/// </summary>
public sealed record MasterTlsOptions
{
    /// <summary>
    /// The operator's serving certificate (<c>--tls-cert</c>) and key (<c>--tls-key</c>); null: the master
    /// serves a certificate the cluster CA issues at start for <see cref="DnsNames"/> and <see cref="IpAddresses"/>.
    /// </summary>
    public string? CertificatePem { get; init; }

    public string? KeyPem { get; init; }

    /// <summary>
    /// <c>--tls-ca</c>: the CA (PEM, one or more certificates) that clients must trust for this master's
    /// serving certificate, i.e. the issuer of <see cref="CertificatePem"/>. It is what <c>GET /drover/v1/ca</c>
    /// publishes and what join tokens embed the hash of. Required with an operator's certificate. Agent and
    /// master identities (mTLS) always come from the cluster CA.
    /// </summary>
    public string? CaPem { get; init; }

    /// <summary>Names in the issued serving certificate (the machine's hostname, localhost, the listen/advertise host names).</summary>
    public ImmutableArray<string> DnsNames { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Addresses in the issued serving certificate (loopback, the listen/advertise addresses).</summary>
    public ImmutableArray<IPAddress> IpAddresses { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Lifetime of the certificates agents get at join and renewal (<c>--agent-cert-lifetime</c>); they renew after two thirds of it.</summary>
    public TimeSpan AgentCertificateLifetime { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Lifetime of the master's own certificates; re-issued after two thirds of it, and at every start.</summary>
    public TimeSpan MasterCertificateLifetime { get; init; } = TimeSpan.FromDays(30);

    /// <summary>A join token's time to live when none is asked for.</summary>
    public TimeSpan DefaultJoinTokenTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The longest a join token may live.</summary>
    public TimeSpan MaxJoinTokenTtl { get; init; } = TimeSpan.FromDays(1);
}
