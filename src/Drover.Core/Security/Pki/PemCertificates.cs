using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security.Pki;

/// <summary>
/// PEM in and out, and the two digests operators compare: a certificate's SHA-256 fingerprint (what
/// <c>openssl x509 -fingerprint -sha256</c> prints) and the SHA-256 of a CA's public key (what a join
/// token embeds, as kubeadm's <c>--discovery-token-ca-cert-hash</c>). No I/O: callers read and write files.
/// </summary>
public static class PemCertificates
{
    /// <summary>The certificate, then its PKCS#8 private key, as one PEM text (how a certificate with its key is kept).</summary>
    public static string ExportWithKey(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var key = certificate.GetECDsaPrivateKey();
        if (key is not null)
        {
            return certificate.ExportCertificatePem() + "\n" + key.ExportPkcs8PrivateKeyPem() + "\n";
        }

        using var rsa = certificate.GetRSAPrivateKey() ?? throw new ArgumentException("the certificate has no ECDSA or RSA private key", nameof(certificate));
        return certificate.ExportCertificatePem() + "\n" + rsa.ExportPkcs8PrivateKeyPem() + "\n";
    }

    public static string Export(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.ExportCertificatePem() + "\n";
    }

    /// <summary>
    /// A certificate with its private key from PEM: <paramref name="keyPem"/> may be the same text as
    /// <paramref name="certificatePem"/> (as <see cref="ExportWithKey"/> writes it). The key must match the certificate.
    /// </summary>
    public static PkiResult<X509Certificate2> LoadWithKey(string certificatePem, string keyPem)
    {
        try
        {
            // CreateFromPem takes the first CERTIFICATE block and the first private key block of each text.
            using var loaded = X509Certificate2.CreateFromPem(certificatePem, keyPem);
            // A key pair loaded from PEM is ephemeral; a copy through PKCS#12 keeps it usable by TLS (SslStream) on every platform.
            return PkiResult<X509Certificate2>.Ok(X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            return PkiResult<X509Certificate2>.Fail("not a PEM certificate with its matching private key: " + e.Message);
        }
    }

    /// <summary>The first certificate of a PEM text (no key).</summary>
    public static PkiResult<X509Certificate2> Load(string certificatePem)
    {
        var all = LoadAll(certificatePem);
        return all.Succeeded ? PkiResult<X509Certificate2>.Ok(all.Value![0]) : PkiResult<X509Certificate2>.Fail(all.Error!);
    }

    /// <summary>Every certificate of a PEM text (a CA bundle); at least one.</summary>
    public static PkiResult<X509Certificate2Collection> LoadAll(string pem)
    {
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(pem ?? "");
        }
        catch (CryptographicException e)
        {
            return PkiResult<X509Certificate2Collection>.Fail("not PEM certificates: " + e.Message);
        }

        return collection.Count == 0
            ? PkiResult<X509Certificate2Collection>.Fail("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
            : PkiResult<X509Certificate2Collection>.Ok(collection);
    }

    /// <summary>SHA-256 of the certificate's DER, as colon-separated upper-case hex (<c>AB:CD:…</c>).</summary>
    public static string Fingerprint(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return FormatFingerprint(certificate.GetCertHash(HashAlgorithmName.SHA256));
    }

    /// <summary>Whether <paramref name="text"/> names the same SHA-256 fingerprint (colons, spaces and case ignored).</summary>
    public static bool FingerprintMatches(X509Certificate2 certificate, string text)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var digits = new string([.. (text ?? "").Where(char.IsAsciiHexDigit)]);
        return digits.Length == 64 && string.Equals(digits, Convert.ToHexString(certificate.GetCertHash(HashAlgorithmName.SHA256)), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary><c>sha256:</c> and the lower-case hex SHA-256 of the certificate's SubjectPublicKeyInfo (kubeadm's CA hash form).</summary>
    public static string PublicKeyHash(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo()));
    }

    private static string FormatFingerprint(byte[] hash) => string.Join(':', hash.Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
}
