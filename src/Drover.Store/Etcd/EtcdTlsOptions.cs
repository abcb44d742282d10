using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Store.Etcd;

/// <summary>
/// TLS to etcd's client port: the CA certificates etcd's server certificate must chain to, and the
/// client certificate presented to a member started with <c>--client-cert-auth</c>. The server
/// certificate is verified against <see cref="TrustedCas"/> only (never the machine's trust store)
/// and its SAN must name the host or IP address of the endpoint, as usual for HTTPS.
/// </summary>
public sealed record EtcdTlsOptions
{
    /// <summary>The CA certificates (etcd's <c>--trusted-ca-file</c>, usually) that etcd's server certificate must chain to.</summary>
    public required X509Certificate2Collection TrustedCas { get; init; }

    /// <summary>The certificate presented to etcd, with its private key; null presents none (etcd without <c>--client-cert-auth</c>).</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>Intermediate CA certificates sent along with <see cref="ClientCertificate"/> (those after it in the certificate file).</summary>
    public X509Certificate2Collection ClientCertificateChain { get; init; } = [];

    /// <summary>The SslStream settings every connection to etcd uses.</summary>
    internal SslClientAuthenticationOptions CreateSslOptions()
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,

            // A private CA for etcd publishes no revocation lists; rotating a leaked certificate means a new CA.
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(TrustedCas);

        // The chain policy replaces the machine's roots with TrustedCas; SslStream still checks the
        // name (or IP) of the endpoint against the certificate's SAN. The client certificate goes as a
        // context, so it is sent whatever CA names the server asks for: a certificate etcd does not
        // accept is then refused by etcd with an alert we can report, instead of silently left out.
        return new SslClientAuthenticationOptions
        {
            CertificateChainPolicy = policy,
            ClientCertificateContext = ClientCertificate is null ? null : SslStreamCertificateContext.Create(ClientCertificate, ClientCertificateChain, offline: true),

            // Only to say why a certificate is refused: SslStream's own exception names the policy
            // error but not the host, the names the certificate holds, or the chain's status.
            RemoteCertificateValidationCallback = (sender, certificate, chain, errors) => errors == SslPolicyErrors.None
                ? true
                : throw new EtcdServerCertificateException(Explain((sender as SslStream)?.TargetHostName, certificate, chain, errors)),
        };
    }

    private static string Explain(string? host, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return "etcd sent no server certificate";
        }

        var reasons = new List<string>();
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            var status = chain?.ChainStatus.Where(s => s.Status != X509ChainStatusFlags.NoError).Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").ToList() ?? [];
            reasons.Add($"it does not chain to a CA in --store-ca ({(status.Count == 0 ? "chain errors" : string.Join("; ", status))})");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            var names = certificate is X509Certificate2 { } full && full.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault() is { } san
                ? san.EnumerateDnsNames().Concat(san.EnumerateIPAddresses().Select(ip => ip.ToString())).ToList()
                : [];
            reasons.Add($"it is not for {host ?? "the endpoint's host"} (its subject alternative names: {(names.Count == 0 ? "none" : string.Join(", ", names))})");
        }

        return $"etcd's server certificate {certificate.Subject} (issued by {certificate.Issuer}) is refused: {string.Join("; and ", reasons)}";
    }
}

/// <summary>Why etcd's server certificate was refused, in a sentence (thrown from the TLS handshake, reported by the transport).</summary>
internal sealed class EtcdServerCertificateException(string message) : System.Security.Authentication.AuthenticationException(message);

/// <summary>Which of the three files an <see cref="EtcdTlsFileError"/> is about.</summary>
public enum EtcdTlsFile
{
    Ca,
    Certificate,
    Key,
}

/// <summary>Why TLS settings for etcd could not be loaded: the file concerned and a sentence.</summary>
public sealed record EtcdTlsFileError(EtcdTlsFile File, string Reason);

/// <summary>Reads <see cref="EtcdTlsOptions"/> from PEM files (<c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c>).</summary>
public static class EtcdTlsFiles
{
    /// <summary>Permission bits of a private key file that are refused: any access by others.</summary>
    public const UnixFileMode RefusedKeyModes = UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private const string ClientAuthenticationOid = "1.3.6.1.5.5.7.3.2";
    private const string AnyExtendedKeyUsageOid = "2.5.29.37.0";

    /// <summary>
    /// Loads the CA bundle <paramref name="caFile"/> and, when given, the client certificate
    /// <paramref name="certificateFile"/> (a PEM certificate, optionally followed by its intermediates)
    /// with its private key <paramref name="keyFile"/> (PEM, PKCS#8 or SEC1/PKCS#1, not encrypted).
    /// Certificate and key go together. A key file that others may read, write or execute is refused,
    /// as OpenSSH and PostgreSQL refuse one (0600 or 0640 are fine). Returns false with the first
    /// problem found in <paramref name="error"/>.
    /// </summary>
    public static bool TryLoad(string caFile, string? certificateFile, string? keyFile, out EtcdTlsOptions? options, out EtcdTlsFileError? error, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(caFile);
        time ??= TimeProvider.System;
        options = null;
        if ((certificateFile is null) != (keyFile is null))
        {
            error = certificateFile is null
                ? new EtcdTlsFileError(EtcdTlsFile.Key, "a client key needs its certificate (--store-cert) too")
                : new EtcdTlsFileError(EtcdTlsFile.Certificate, "a client certificate needs its private key (--store-key) too");
            return false;
        }

        if (!TryReadCas(caFile, out var cas, out error))
        {
            return false;
        }

        X509Certificate2? client = null;
        X509Certificate2Collection chain = [];
        if (certificateFile is not null && !TryReadClientCertificate(certificateFile, keyFile!, time.GetUtcNow(), out client, out chain, out error))
        {
            return false;
        }

        options = new EtcdTlsOptions { TrustedCas = cas, ClientCertificate = client, ClientCertificateChain = chain };
        return true;
    }

    private static bool TryReadCas(string file, out X509Certificate2Collection cas, out EtcdTlsFileError? error)
    {
        cas = [];
        if (!TryReadText(file, EtcdTlsFile.Ca, out var text, out error))
        {
            return false;
        }

        try
        {
            cas.ImportFromPem(text);
        }
        catch (CryptographicException e)
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Ca, $"{file} holds a PEM certificate that cannot be read ({e.Message})");
            return false;
        }

        if (cas.Count == 0)
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Ca, $"{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
            return false;
        }

        return true;
    }

    private static bool TryReadClientCertificate(string certificateFile, string keyFile, DateTimeOffset now, out X509Certificate2? certificate, out X509Certificate2Collection chain, out EtcdTlsFileError? error)
    {
        certificate = null;
        chain = [];
        if (!TryReadText(certificateFile, EtcdTlsFile.Certificate, out var certificateText, out error))
        {
            return false;
        }

        if (!TryReadText(keyFile, EtcdTlsFile.Key, out var keyText, out error))
        {
            return false;
        }

        if (!OperatingSystem.IsWindows())
        {
            // A key others can read is a leaked key: refused rather than warned about, since a warning
            // in a master's log is easily missed (etcd itself only warns, about its data directory).
            var mode = File.GetUnixFileMode(keyFile);
            if ((mode & RefusedKeyModes) != 0)
            {
                error = new EtcdTlsFileError(EtcdTlsFile.Key,
                    $"{keyFile} is accessible by other users (mode {Convert.ToString((int)mode, 8)}); a private key must not be: chmod 600 {keyFile}");
                return false;
            }
        }

        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPem(certificateText);
        }
        catch (CryptographicException e)
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Certificate, $"{certificateFile} holds a PEM certificate that cannot be read ({e.Message})");
            return false;
        }

        if (all.Count == 0)
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Certificate, $"{certificateFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
            return false;
        }

        if (keyText.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal) || keyText.Contains("Proc-Type: 4,ENCRYPTED", StringComparison.Ordinal))
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Key, $"{keyFile} is encrypted; give the key without a passphrase (and keep the file 0600)");
            return false;
        }

        try
        {
            // The first certificate is the client's; the rest of the file is its chain.
            certificate = X509Certificate2.CreateFromPem(all[0].ExportCertificatePem(), keyText);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException) // ArgumentException: a key of another certificate
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Key, $"{keyFile} is not the private key of the certificate in {certificateFile} ({e.Message})");
            return false;
        }

        if (certificate.NotAfter.ToUniversalTime() < now.UtcDateTime)
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Certificate, $"the certificate in {certificateFile} ({certificate.Subject}) expired on {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC");
            certificate.Dispose();
            certificate = null;
            return false;
        }

        if (certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault() is { } usage
            && !usage.EnhancedKeyUsages.Cast<Oid>().Any(u => u.Value is ClientAuthenticationOid or AnyExtendedKeyUsageOid))
        {
            error = new EtcdTlsFileError(EtcdTlsFile.Certificate,
                $"the certificate in {certificateFile} ({certificate.Subject}) is not for client authentication: its extended key usage lacks clientAuth, so etcd would refuse it");
            certificate.Dispose();
            certificate = null;
            return false;
        }

        for (var i = 1; i < all.Count; i++)
        {
            chain.Add(all[i]);
        }

        return true;
    }

    private static bool TryReadText(string file, EtcdTlsFile which, out string text, out EtcdTlsFileError? error)
    {
        text = "";
        error = null;
        if (string.IsNullOrWhiteSpace(file))
        {
            error = new EtcdTlsFileError(which, "no file named (an empty path)");
            return false;
        }

        try
        {
            var info = new FileInfo(file);
            if (!info.Exists)
            {
                error = new EtcdTlsFileError(which, Directory.Exists(file) ? $"{file} is a directory, not a PEM file" : $"{file} does not exist");
                return false;
            }

            // PEM certificates and keys are a few kilobytes; a CA bundle of the whole web is about 200 KiB.
            if (info.Length > 1 << 20)
            {
                error = new EtcdTlsFileError(which, $"{file} is {info.Length} bytes, larger than any PEM certificate or key (1 MiB)");
                return false;
            }

            text = File.ReadAllText(file);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = new EtcdTlsFileError(which, $"{file} cannot be read ({e.Message})");
            return false;
        }
    }
}
