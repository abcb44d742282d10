using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;

namespace Drover.Client;

/// <summary>
/// What a client trusts for a master's HTTPS certificate: <see cref="Roots"/> only (custom root trust), or the
/// machine's store when null. <see cref="OnUntrusted"/> hears about a certificate refused for want of a trusted CA.
/// </summary>
public sealed record MasterTrust(X509Certificate2Collection? Roots, Action<X509Certificate2>? OnUntrusted = null)
{
    public static MasterTrust System { get; } = new(Roots: null);
}

/// <summary>
/// How a client trusts a Drover master's HTTPS certificate: the cluster CA (or the operator's <c>--tls-ca</c>)
/// as the only root, given by the caller (<c>--ca-cert</c>, a pinned CA), or else the machine's trust store
/// (an operator certificate from a public CA). The host name is always checked.
/// </summary>
public static class MasterTls
{
    /// <summary>
    /// A handler trusting only <paramref name="roots"/> (the machine's store when null). <paramref name="onUntrusted"/>
    /// hears about a certificate refused because no trusted CA issued it (not about a wrong host name), so a
    /// caller can tell its user which CA the master presents.
    /// </summary>
    public static SocketsHttpHandler CreateHandler(X509Certificate2Collection? roots, Action<X509Certificate2>? onUntrusted = null)
    {
        return new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
                    {
                        return false;
                    }

                    var leaf = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
                    var trusted = roots is null
                        ? errors == SslPolicyErrors.None
                        : CertificateVerifier.Verify(leaf, roots, DateTimeOffset.UtcNow, CertificateUse.Server) is null;
                    if (!trusted)
                    {
                        // A copy: the handshake's certificate object is disposed once it is over.
                        onUntrusted?.Invoke(X509CertificateLoader.LoadCertificate(leaf.RawData));
                    }

                    return trusted;
                },
            },
        };
    }

    /// <summary>
    /// Fetches the CA a master tells clients to trust (<c>GET /drover/v1/ca</c>), over a connection that is
    /// NOT verified: the caller must check the answer's fingerprint with its user (or against a known one)
    /// before trusting it. The answer's certificate must also be the one the master's serving certificate
    /// chains to, or this throws.
    /// </summary>
    public static async Task<(X509Certificate2Collection Roots, CaInfo Info)> FetchCaAsync(Uri master, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(master);
        X509Certificate2? served = null;
        using var http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    served = certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    return true;
                },
            },
        }) { Timeout = TimeSpan.FromSeconds(15) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(master.GetLeftPart(UriPartial.Authority) + "/"), "drover/v1/ca"));
        request.Headers.Accept.ParseAdd("application/json");
        using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var info = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.CaInfo, ct).ConfigureAwait(false)
            ?? throw new HttpRequestException($"{master} answered GET /drover/v1/ca with nothing");
        var roots = PemCertificates.LoadAll(info.Certificate);
        if (!roots.Succeeded)
        {
            throw new HttpRequestException($"{master} answered GET /drover/v1/ca with no certificate: {roots.Error}");
        }

        if (served is not null && CertificateVerifier.Verify(served, roots.Value!, DateTimeOffset.UtcNow, CertificateUse.Server) is { } mismatch)
        {
            throw new HttpRequestException($"the CA {master} publishes did not issue the certificate it serves ({mismatch})");
        }

        return (roots.Value!, info with { Fingerprint = PemCertificates.Fingerprint(roots.Value![0]) });
    }
}
