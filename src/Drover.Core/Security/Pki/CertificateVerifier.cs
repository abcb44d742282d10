using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security.Pki;

/// <summary>Which side of a TLS connection a certificate is checked for (its extended key usage).</summary>
public enum CertificateUse
{
    Server,
    Client,
}

/// <summary>
/// Checks a peer's certificate against a given set of CAs only (custom root trust: the machine's trust
/// store plays no part), at a given time, for server or client use. This is how a master checks agents
/// and how agents check the master: only the cluster CA vouches for a Drover identity.
/// </summary>
public static class CertificateVerifier
{
    /// <summary>Null when <paramref name="certificate"/> chains to one of <paramref name="roots"/> and is valid at <paramref name="now"/> for <paramref name="use"/>; else why not.</summary>
    public static string? Verify(X509Certificate2 certificate, X509Certificate2Collection roots, DateTimeOffset now, CertificateUse use,
        X509Certificate2Collection? intermediates = null)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(roots);
        if (roots.Count == 0)
        {
            return "no CA to check the certificate against";
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // short-lived certificates instead (docs/security.md)
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(use == CertificateUse.Server ? CertificateAuthority.ServerAuthOid : CertificateAuthority.ClientAuthOid));
        if (intermediates is not null)
        {
            chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        }

        try
        {
            if (chain.Build(certificate))
            {
                return null;
            }
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            return "the certificate could not be checked: " + e.Message;
        }

        if (now < certificate.NotBefore.ToUniversalTime())
        {
            return $"the certificate is not valid before {certificate.NotBefore.ToUniversalTime():u}";
        }

        if (now > certificate.NotAfter.ToUniversalTime())
        {
            return $"the certificate expired at {certificate.NotAfter.ToUniversalTime():u}";
        }

        var reasons = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct();
        return "the certificate is not issued by the trusted CA for this use: " + string.Join("; ", reasons);
    }

    /// <summary>
    /// The Drover identity of a certificate that <see cref="Verify"/> accepts; else null with the reason.
    /// </summary>
    public static (SpiffeId? Identity, string? Error) VerifyIdentity(X509Certificate2 certificate, X509Certificate2Collection roots, DateTimeOffset now, CertificateUse use)
    {
        if (Verify(certificate, roots, now, use) is { } error)
        {
            return (null, error);
        }

        return SpiffeId.FromCertificate(certificate) is { } id
            ? (id, null)
            : (null, "the certificate names no Drover identity (one spiffe://drover/… URI)");
    }
}
