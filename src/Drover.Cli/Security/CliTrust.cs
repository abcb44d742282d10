using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Drover.Cli.Commands;
using Drover.Client;
using Drover.Client.Auth;
using Drover.Core.Security.Pki;

namespace Drover.Cli.Security;

/// <summary>
/// Which CA this CLI invocation trusts for its master: <c>--ca-cert FILE</c> (or <c>DROVER_CA_CERT</c>),
/// else the CA pinned for that master (<see cref="MasterTrustStore"/>), else the machine's trust store.
/// A certificate refused for want of a trusted CA is remembered, so the error the user sees names the
/// CA's fingerprint and how to trust it (<see cref="DescribeRejectionAsync"/>).
/// </summary>
internal static class CliTrust
{
    private static X509Certificate2? _rejected;
    private static Uri? _rejectedMaster;

    /// <summary>What this invocation trusts for <paramref name="master"/>; a refusal is remembered for <see cref="DescribeRejectionAsync"/>.</summary>
    public static MasterTrust For(Uri master, string? caCertFile)
    {
        ArgumentNullException.ThrowIfNull(master);
        X509Certificate2Collection? roots = null;
        if (master.Scheme == Uri.UriSchemeHttps)
        {
            roots = caCertFile is { Length: > 0 } ? ReadCaFile(caCertFile) : PinnedOrNull(master);
        }

        return new MasterTrust(roots, leaf =>
        {
            _rejected = leaf;
            _rejectedMaster = master;
        });
    }

    /// <summary>
    /// The sentence for a request that failed because the master's certificate is not from a trusted CA;
    /// null when that is not why it failed.
    /// </summary>
    public static async Task<string?> DescribeRejectionAsync(HttpRequestException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (_rejected is not { } leaf || _rejectedMaster is not { } master || !IsTlsFailure(error))
        {
            return null;
        }

        var origin = master.GetLeftPart(UriPartial.Authority);
        try
        {
            var (roots, info) = await MasterTls.FetchCaAsync(master).ConfigureAwait(false);
            if (CertificateVerifier.Verify(leaf, roots, DateTimeOffset.UtcNow, CertificateUse.Server) is null)
            {
                return $"the master at {origin} presents a certificate from a CA this CLI does not trust (CA SHA-256 fingerprint {info.Fingerprint}); "
                    + $"if that is your cluster's CA, trust it with --ca-cert FILE or DROVER_CA_CERT, or pin it with `drover ca pin --master {origin} --fingerprint {info.Fingerprint}`";
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or System.Text.Json.JsonException)
        {
        }

        return $"the master at {origin} presents a certificate this CLI does not trust (its own SHA-256 fingerprint {PemCertificates.Fingerprint(leaf)}, issued by {leaf.Issuer}); "
            + "trust its CA with --ca-cert FILE or DROVER_CA_CERT";
    }

    /// <summary>Whether the request failed in the TLS handshake (as opposed to a refused connection, a timeout…).</summary>
    public static bool IsTlsFailure(Exception error)
    {
        for (var e = error.InnerException; e is not null; e = e.InnerException)
        {
            if (e is AuthenticationException)
            {
                return true;
            }
        }

        return false;
    }

    private static X509Certificate2Collection ReadCaFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--ca-cert: cannot read {path}: {e.Message}", 2);
        }

        var roots = PemCertificates.LoadAll(text);
        return roots.Succeeded ? roots.Value! : throw new CliException($"--ca-cert: {path}: {roots.Error}", 2);
    }

    private static X509Certificate2Collection? PinnedOrNull(Uri master)
    {
        try
        {
            return MasterTrustStore.ForUser().Pinned(master);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new CliException(e.Message, 2);
        }
    }
}
