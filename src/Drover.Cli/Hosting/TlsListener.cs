using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Drover.Core.Security.Pki;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Drover.Cli.Hosting;

/// <summary>How one listener serves TLS.</summary>
public sealed record TlsServerSettings
{
    /// <summary>The certificate (and chain) to serve, read at each handshake so a renewed one is served at once.</summary>
    public required Func<SslStreamCertificateContext> Certificate { get; init; }

    /// <summary>The CA a client certificate must chain to (the cluster CA), read at each handshake.</summary>
    public required Func<X509Certificate2Collection> ClientRoots { get; init; }

    /// <summary>
    /// Also accept plain HTTP on the same port (as Mesos' <c>LIBPROCESS_SSL_SUPPORT_DOWNGRADE</c>): an agent's,
    /// for the executors it starts, which speak plain HTTP to <c>MESOS_AGENT_ENDPOINT</c>. A plain request
    /// reaches only the executor API (<see cref="DroverHosts"/> refuses the others with a 403).
    /// </summary>
    public bool AllowPlainHttp { get; init; }

    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// TLS on a Kestrel listener: the server certificate from <see cref="TlsServerSettings.Certificate"/>;
/// a client certificate is asked for but not required, and one that is presented must chain to
/// <see cref="TlsServerSettings.ClientRoots"/> only (custom root trust, not the machine's store) or the
/// handshake fails. Who may call what is decided per request from the identity in that certificate.
/// </summary>
public static class TlsListener
{
    private const byte TlsHandshakeRecord = 0x16;

    public static void Use(ListenOptions listen, TlsServerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(settings);
        listen.Protocols = HttpProtocols.Http1;

        // Kestrel composes connection middleware last to first, so the marker registered after UseHttps is
        // built before the sniffer: the sniffer can send a plain connection straight to it, past TLS.
        ConnectionDelegate? afterTls = null;
        if (settings.AllowPlainHttp)
        {
            listen.Use(next => context => SniffAsync(context, tls: next, plain: afterTls!));
        }

        listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = settings.Certificate(),
                ClientCertificateRequired = true, // asked for; the callback accepts its absence
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is null
                    || CertificateVerifier.Verify(certificate as X509Certificate2 ?? new X509Certificate2(certificate), settings.ClientRoots(), settings.Time.GetUtcNow(), CertificateUse.Client) is null,
            }),
        });

        if (settings.AllowPlainHttp)
        {
            listen.Use(next => afterTls = next);
        }
    }

    /// <summary>Binds <paramref name="url"/>'s host and port: an IP, <c>localhost</c> (both loopbacks), or any other name (every address, as Kestrel does).</summary>
    public static void Bind(KestrelServerOptions kestrel, Uri url, Action<ListenOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(url);
        var host = url.Host.Trim('[', ']');
        if (IPAddress.TryParse(host, out var ip))
        {
            kestrel.Listen(ip, url.Port, configure);
        }
        else if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            if (url.Port == 0)
            {
                kestrel.Listen(IPAddress.Loopback, 0, configure); // Kestrel binds localhost only to a fixed port
            }
            else
            {
                kestrel.ListenLocalhost(url.Port, configure);
            }
        }
        else
        {
            kestrel.ListenAnyIP(url.Port, configure);
        }
    }

    /// <summary>Looks at the first byte without consuming it: a TLS handshake record goes through TLS, anything else is plain HTTP.</summary>
    private static async Task SniffAsync(ConnectionContext context, ConnectionDelegate tls, ConnectionDelegate plain)
    {
        var input = context.Transport.Input;
        var read = await input.ReadAsync(context.ConnectionClosed).ConfigureAwait(false);
        if (read.Buffer.IsEmpty)
        {
            input.AdvanceTo(read.Buffer.Start);
            return; // closed before sending anything
        }

        var first = read.Buffer.FirstSpan[0];
        input.AdvanceTo(read.Buffer.Start); // nothing consumed or examined: the next read sees the same bytes
        await (first == TlsHandshakeRecord ? tls : plain)(context).ConfigureAwait(false);
    }
}
