using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Drover.Core.Security.Pki;

namespace Drover.Master.Security.Pki;

/// <summary>
/// HTTP clients for the master's calls to agents (sandbox reads). With TLS each agent gets its own
/// client, whose connections present the master's certificate and accept only a certificate of the
/// cluster CA naming that agent (<c>spiffe://drover/agent/&lt;id&gt;</c>): host names play no part, and a
/// connection verified for one agent is never reused for another (the pools are per agent, not per
/// address). Without TLS there is one plain client.
/// </summary>
public sealed class AgentHttpClients(MasterCredentials? credentials, TimeProvider time) : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, HttpClient> _clients = new(StringComparer.Ordinal);
    private readonly Lazy<HttpClient> _plain = new(() => new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout });

    /// <summary>The client for calls to agent <paramref name="agentId"/>.</summary>
    public HttpClient For(string agentId) =>
        credentials is null ? _plain.Value : _clients.GetOrAdd(agentId, id => new HttpClient(CreateHandler(credentials, id, time)) { Timeout = Timeout });

    /// <summary>A handler that presents the master's certificate and accepts only agent <paramref name="agentId"/>'s.</summary>
    public static SocketsHttpHandler CreateHandler(MasterCredentials credentials, string agentId, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        var expected = SpiffeId.Agent(agentId);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            SslOptions = new SslClientAuthenticationOptions
            {
                // The current certificate at each handshake: it is re-issued while the master runs.
                LocalCertificateSelectionCallback = (_, _, _, _, _) => credentials.ClientCertificate,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    if (certificate is null)
                    {
                        return false;
                    }

                    var presented = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
                    var (identity, _) = CertificateVerifier.VerifyIdentity(presented, credentials.Ca.Roots, time.GetUtcNow(), CertificateUse.Server);
                    return identity == expected;
                },
            },
        };
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }

        if (_plain.IsValueCreated)
        {
            _plain.Value.Dispose();
        }
    }
}
