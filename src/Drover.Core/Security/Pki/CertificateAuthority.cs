using System.Collections.Immutable;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security.Pki;

/// <summary>What a certificate issued by the cluster CA is for, and the names it carries.</summary>
public sealed record CertificateProfile
{
    /// <summary>The Drover identity (subjectAltName URI); every issued certificate has one.</summary>
    public required SpiffeId Identity { get; init; }

    /// <summary>Host names a TLS client may check (a master's serving certificate); empty for agents.</summary>
    public ImmutableArray<string> DnsNames { get; init => field = value.IsDefault ? [] : value; } = [];

    public ImmutableArray<IPAddress> IpAddresses { get; init => field = value.IsDefault ? [] : value; } = [];

    public required TimeSpan Lifetime { get; init; }
}

/// <summary>
/// The cluster CA's pure operations, on <c>System.Security.Cryptography</c> (<see cref="CertificateRequest"/>,
/// ECDSA P-256, SHA-256): create the CA, issue a certificate for an identity (from a CSR or a key made
/// here), and make a CSR. No I/O: callers keep the results (PEM, <see cref="PemCertificates"/>).
/// <para>
/// Every issued certificate is good for both TLS server and client authentication (an agent serves its
/// endpoint and calls the master with the same certificate; so does a master). Its subject and names are
/// what the CA decides, never what a CSR asks for: a CSR contributes its public key only, so a holder of
/// a join token cannot obtain a name it was not given.
/// </para>
/// </summary>
public static class CertificateAuthority
{
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>The CA's validity: it is rotated by hand (docs/security.md), so it outlives every certificate it signs.</summary>
    public static readonly TimeSpan DefaultCaLifetime = TimeSpan.FromDays(3650);

    /// <summary>NotBefore is set this far in the past (at most a tenth of the lifetime), so clocks a little behind still accept a fresh certificate.</summary>
    public static readonly TimeSpan MaxBackdate = TimeSpan.FromMinutes(5);

    /// <summary>Creates a self-signed ECDSA P-256 CA certificate, with its private key.</summary>
    public static X509Certificate2 CreateCa(string commonName, DateTimeOffset now, TimeSpan lifetime)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commonName);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + Escape(commonName)), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request.CreateSelfSigned(now - Backdate(lifetime), now + lifetime);
    }

    /// <summary>A fresh ECDSA P-256 key (the caller disposes it).</summary>
    public static ECDsa NewKey() => ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>A PKCS#10 certificate signing request (PEM) for <paramref name="key"/>; its subject is informational only.</summary>
    public static string CreateSigningRequestPem(ECDsa key, string commonName)
    {
        ArgumentNullException.ThrowIfNull(key);
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + Escape(commonName)), key, HashAlgorithmName.SHA256);
        return request.CreateSigningRequestPem();
    }

    /// <summary>
    /// Issues a certificate for the public key of a CSR, after checking the CSR's own signature (so the
    /// requester holds the private key) and the key's strength (ECDSA P-256/P-384, or RSA of 2048 bits or more).
    /// A malformed or weak CSR is a value with the reason, not an exception.
    /// </summary>
    public static PkiResult<X509Certificate2> IssueFromSigningRequest(X509Certificate2 ca, string csrPem, CertificateProfile profile, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(ca);
        ArgumentNullException.ThrowIfNull(profile);
        if (string.IsNullOrWhiteSpace(csrPem) || csrPem.Length > 16 * 1024)
        {
            return PkiResult<X509Certificate2>.Fail("csr: a PEM certificate signing request (at most 16 KiB) is required");
        }

        CertificateRequest csr;
        try
        {
            // The default load options verify the CSR's signature with its own public key.
            csr = CertificateRequest.LoadSigningRequestPem(csrPem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default, RSASignaturePadding.Pkcs1);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            return PkiResult<X509Certificate2>.Fail("csr: not a valid PEM certificate signing request with a valid signature (" + e.Message + ")");
        }

        if (KeyProblem(csr.PublicKey) is { } problem)
        {
            return PkiResult<X509Certificate2>.Fail("csr: " + problem);
        }

        return PkiResult<X509Certificate2>.Ok(Sign(ca, csr.PublicKey, profile, now));
    }

    /// <summary>Issues a certificate for a key made here and returns it with that private key (a master's own certificate, the dev agent's).</summary>
    public static X509Certificate2 IssueWithNewKey(X509Certificate2 ca, CertificateProfile profile, DateTimeOffset now)
    {
        using var key = NewKey();
        using var issued = Sign(ca, new PublicKey(key), profile, now);
        using var withKey = issued.CopyWithPrivateKey(key);
        // Through PKCS#12, so the certificate owns its key (and not a handle to the one disposed here).
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    private static X509Certificate2 Sign(X509Certificate2 ca, PublicKey publicKey, CertificateProfile profile, DateTimeOffset now)
    {
        if (!ca.HasPrivateKey)
        {
            throw new ArgumentException("the CA certificate has no private key", nameof(ca));
        }

        if (profile.Lifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("the lifetime must be positive", nameof(profile));
        }

        var request = new CertificateRequest(new X500DistinguishedName("CN=" + Escape(profile.Identity.Uri)), publicKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(profile.Identity.Uri));
        foreach (var dns in profile.DnsNames.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            names.AddDnsName(dns);
        }

        foreach (var ip in profile.IpAddresses.Distinct())
        {
            names.AddIpAddress(ip);
        }

        request.CertificateExtensions.Add(names.Build(critical: false));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuthOid), new Oid(ClientAuthOid)], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(publicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        var notAfter = now + profile.Lifetime;
        if (notAfter > ca.NotAfter)
        {
            notAfter = ca.NotAfter; // never outlive the issuer
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive INTEGER
        using var caKey = ca.GetECDsaPrivateKey() ?? throw new ArgumentException("the CA key is not ECDSA", nameof(ca));
        return request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now - Backdate(profile.Lifetime), notAfter, serial);
    }

    /// <summary>Why a requester's key is refused, or null.</summary>
    private static string? KeyProblem(PublicKey key)
    {
        using (var ec = key.GetECDsaPublicKey())
        {
            if (ec is not null)
            {
                var curve = ec.ExportParameters(false).Curve.Oid;
                return curve.Value is "1.2.840.10045.3.1.7" or "1.3.132.0.34" ? null : $"the ECDSA curve {curve.FriendlyName ?? curve.Value} is not P-256 or P-384";
            }
        }

        using (var rsa = key.GetRSAPublicKey())
        {
            if (rsa is not null)
            {
                return rsa.KeySize >= 2048 ? null : $"an RSA key of {rsa.KeySize} bits is too short (at least 2048)";
            }
        }

        return "the key is neither ECDSA nor RSA";
    }

    private static TimeSpan Backdate(TimeSpan lifetime) => lifetime / 10 < MaxBackdate ? lifetime / 10 : MaxBackdate;

    /// <summary>An RDN value with X.500's special characters quoted.</summary>
    private static string Escape(string value) =>
        value.IndexOfAny([',', '+', '"', '\\', '<', '>', ';', '=']) >= 0 ? "\"" + value.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : value;
}

/// <summary>An outcome that may be refused with a sentence (a bad CSR, an untrusted certificate).</summary>
public sealed record PkiResult<T>
    where T : class
{
    public T? Value { get; private init; }

    public string? Error { get; private init; }

    public bool Succeeded => Error is null;

    public static PkiResult<T> Ok(T value) => new() { Value = value };

    public static PkiResult<T> Fail(string error) => new() { Error = error };
}
