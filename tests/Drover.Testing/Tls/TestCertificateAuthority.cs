using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Testing.Tls;

/// <summary>What a certificate issued by a <see cref="TestCertificateAuthority"/> is for (its extended key usage).</summary>
[Flags]
public enum CertificateUse
{
    Server = 1,
    Client = 2,
}

/// <summary>
/// A certificate authority for tests, made with <c>System.Security.Cryptography</c> (ECDSA P-256):
/// a self-signed CA certificate, and leaf certificates it signs for servers (with IP and DNS SANs)
/// and clients. Certificates are valid from an hour ago for a day unless told otherwise. Each
/// instance is a new CA, so a second one stands for "another CA" in tests that must be refused.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";
    private readonly TimeProvider _time;
    private long _serial;

    private TestCertificateAuthority(X509Certificate2 certificate, TimeProvider time)
    {
        Certificate = certificate;
        _time = time;
    }

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    public static TestCertificateAuthority Create(string name = "Drover test CA", TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={name}, O=Drover tests"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = time.GetUtcNow();
        // From a week ago, so tests can issue certificates that have already expired.
        return new TestCertificateAuthority(request.CreateSelfSigned(now.AddDays(-7), now.AddDays(2)), time);
    }

    /// <summary>
    /// A certificate for a server reachable at <paramref name="ips"/> and <paramref name="dnsNames"/>.
    /// It may also authenticate as a client (etcd presents its server certificate to its own gateway
    /// and, with peer TLS, to other members).
    /// </summary>
    public X509Certificate2 IssueServer(string name, IEnumerable<IPAddress> ips, IEnumerable<string>? dnsNames = null) =>
        Issue(name, CertificateUse.Server | CertificateUse.Client, ips, dnsNames ?? []);

    /// <summary>A client certificate (clientAuth only) whose subject is <c>CN=<paramref name="name"/></c>.</summary>
    public X509Certificate2 IssueClient(string name) => Issue(name, CertificateUse.Client, [], []);

    /// <summary>A leaf certificate signed by this CA, with its private key; <paramref name="notAfter"/> null is a day from now.</summary>
    public X509Certificate2 Issue(string name, CertificateUse use, IEnumerable<IPAddress> ips, IEnumerable<string> dnsNames, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={name}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        var usages = new OidCollection();
        if (use.HasFlag(CertificateUse.Server))
        {
            usages.Add(new Oid(ServerAuthOid));
        }

        if (use.HasFlag(CertificateUse.Client))
        {
            usages.Add(new Oid(ClientAuthOid));
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, critical: false));
        var san = new SubjectAlternativeNameBuilder();
        var any = false;
        foreach (var ip in ips)
        {
            san.AddIpAddress(ip);
            any = true;
        }

        foreach (var dns in dnsNames)
        {
            san.AddDnsName(dns);
            any = true;
        }

        if (any)
        {
            request.CertificateExtensions.Add(san.Build());
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var now = _time.GetUtcNow();
        var serial = new BigInteger(Interlocked.Increment(ref _serial) + (now.ToUnixTimeMilliseconds() << 16)).ToByteArray(isUnsigned: true, isBigEndian: true);
        using var signed = request.Create(Certificate, notBefore ?? now.AddHours(-1), notAfter ?? now.AddDays(1), serial);
        return signed.CopyWithPrivateKey(key);
    }

    /// <summary>Writes the CA certificate as PEM to <paramref name="path"/> and returns the path.</summary>
    public string WriteCertificate(string path)
    {
        File.WriteAllText(path, Certificate.ExportCertificatePem());
        return path;
    }

    /// <summary>
    /// Writes <paramref name="certificate"/> (PEM, then this CA's certificate when
    /// <paramref name="withChain"/>) to <c>NAME.pem</c> and its private key (PKCS#8 PEM, mode 0600) to
    /// <c>NAME-key.pem</c> in <paramref name="directory"/>.
    /// </summary>
    public (string CertificateFile, string KeyFile) WritePem(X509Certificate2 certificate, string directory, string name, bool withChain = false)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        Directory.CreateDirectory(directory);
        var certificateFile = Path.Combine(directory, name + ".pem");
        var keyFile = Path.Combine(directory, name + "-key.pem");
        File.WriteAllText(certificateFile, certificate.ExportCertificatePem() + "\n" + (withChain ? Certificate.ExportCertificatePem() + "\n" : ""));
        using (var key = certificate.GetECDsaPrivateKey() ?? throw new ArgumentException("the certificate has no ECDSA private key", nameof(certificate)))
        {
            File.WriteAllText(keyFile, "");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite); // before the key is in it
            }

            File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        }

        return (certificateFile, keyFile);
    }

    public void Dispose() => Certificate.Dispose();
}
