using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security.Pki;

/// <summary>
/// The Drover identity (<c>spiffe://drover/…</c>) of a TLS peer's certificate, checked against the
/// given CA only, for a request. TLS listeners already refuse certificates of other CAs at the
/// handshake; this check does not rely on that, and adds what a handshake cannot: a certificate that
/// expires while its connection is open stops counting. The chain is built once per certificate
/// object (servers keep one per connection), then only the validity period is checked per request.
/// </summary>
public static class PeerIdentity
{
    private static readonly ConditionalWeakTable<X509Certificate2, Checked> Cache = [];

    /// <summary>The identity, or null with the reason (no certificate, or not a valid Drover one).</summary>
    public static (SpiffeId? Identity, string? Error) Of(X509Certificate2? certificate, X509Certificate2Collection roots, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(roots);
        if (certificate is null)
        {
            return (null, "no client certificate was presented (mutual TLS)");
        }

        var result = Cache.GetValue(certificate, c =>
        {
            // The chain as of just after the certificate's NotBefore: only the period is left to check per request.
            var (identity, error) = CertificateVerifier.VerifyIdentity(c, roots, c.NotBefore.ToUniversalTime() + TimeSpan.FromSeconds(1), CertificateUse.Client);
            return new Checked(roots, identity, error);
        });
        if (!ReferenceEquals(result.Roots, roots))
        {
            // Checked against other roots (another CA object): check again, uncached.
            var (identity, error) = CertificateVerifier.VerifyIdentity(certificate, roots, now, CertificateUse.Client);
            return (identity, error);
        }

        if (result.Error is not null)
        {
            return (null, result.Error);
        }

        if (now > certificate.NotAfter.ToUniversalTime())
        {
            return (null, $"the client certificate expired at {certificate.NotAfter.ToUniversalTime():u}");
        }

        return now < certificate.NotBefore.ToUniversalTime()
            ? (null, $"the client certificate is not valid before {certificate.NotBefore.ToUniversalTime():u}")
            : (result.Identity, null);
    }

    /// <summary>The agent id when the identity is an agent's, else null.</summary>
    public static string? AgentIdOf(SpiffeId? identity) => identity is { Kind: IdentityKind.Agent } id ? id.Name : null;

    private sealed record Checked(X509Certificate2Collection Roots, SpiffeId? Identity, string? Error);
}
