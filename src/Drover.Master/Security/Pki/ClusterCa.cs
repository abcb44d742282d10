using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Drover.Core.Security.Pki;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security.Pki;

/// <summary>
/// The cluster CA, shared by every master through the state store. The first master of a new cluster
/// creates it and stores it with a create-if-absent compare; a master that loses that race (highly
/// available masters starting together) reads the winner's, so all masters agree on one CA.
/// Certificates it issues are short-lived and renewed (agents) or re-issued at start (masters).
/// </summary>
public sealed partial class ClusterCa : IDisposable
{
    /// <summary>Where the CA (certificate and key, PEM) is kept. A store shared by clusters separates them with its prefix.</summary>
    public const string StoreKey = "/drover/security/ca";

    private ClusterCa(X509Certificate2 certificate)
    {
        Certificate = certificate;
        Roots = [certificate];
        PublicKeyHash = PemCertificates.PublicKeyHash(certificate);
        Fingerprint = PemCertificates.Fingerprint(certificate);
        Pem = PemCertificates.Export(certificate);
    }

    /// <summary>The CA certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CA as the only trusted root (custom root trust for every Drover identity check).</summary>
    public X509Certificate2Collection Roots { get; }

    /// <summary>PEM of the certificate only.</summary>
    public string Pem { get; }

    public string PublicKeyHash { get; }

    public string Fingerprint { get; }

    /// <summary>Reads the cluster's CA from the store, creating it when the cluster has none.</summary>
    public static async Task<ClusterCa> LoadOrCreateAsync(IStateStore store, TimeProvider time, ILogger logger, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        var created = false;
        for (var attempt = 0; ; attempt++)
        {
            if (await store.GetAsync(StoreKey, ct).ConfigureAwait(false) is { } entry)
            {
                var stored = JsonSerializer.Deserialize(entry.Value, PkiJsonContext.Default.StoredCa)
                    ?? throw new InvalidDataException($"{StoreKey} in the state store is not a CA record");
                var loaded = PemCertificates.LoadWithKey(stored.Certificate, stored.Key);
                if (!loaded.Succeeded)
                {
                    throw new InvalidDataException($"the cluster CA in the state store ({StoreKey}) cannot be read: {loaded.Error}");
                }

                var ca = new ClusterCa(loaded.Value!);
                if (!created)
                {
                    LogLoaded(logger, ca.Fingerprint);
                }

                return ca;
            }

            if (attempt > 0)
            {
                throw new InvalidOperationException($"the cluster CA could neither be created nor read at {StoreKey}");
            }

            var now = time.GetUtcNow();
            using var fresh = CertificateAuthority.CreateCa($"Drover cluster CA {now:yyyy-MM-dd}", now, CertificateAuthority.DefaultCaLifetime);
            var record = new StoredCa { Certificate = PemCertificates.Export(fresh), Key = PemCertificates.ExportWithKey(fresh), CreatedAt = now };
            if (await store.CompareAndSwapAsync(StoreKey, 0, JsonSerializer.SerializeToUtf8Bytes(record, PkiJsonContext.Default.StoredCa), ct).ConfigureAwait(false))
            {
                created = true;
                LogCreated(logger, PemCertificates.Fingerprint(fresh));
            }

            // Read back what is stored: ours, or the one another master stored first.
        }
    }

    /// <summary>For tests and <c>drover dev</c>: a CA that lives in memory only.</summary>
    public static ClusterCa CreateInMemory(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var now = time.GetUtcNow();
        return new ClusterCa(CertificateAuthority.CreateCa("Drover in-memory CA", now, CertificateAuthority.DefaultCaLifetime));
    }

    public void Dispose() => Certificate.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Created the cluster CA (SHA-256 fingerprint {Fingerprint}); it is kept in the state store")]
    private static partial void LogCreated(ILogger logger, string fingerprint);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded the cluster CA (SHA-256 fingerprint {Fingerprint})")]
    private static partial void LogLoaded(ILogger logger, string fingerprint);
}

/// <summary>The CA as stored: PEM of the certificate, and of the certificate with its key.</summary>
internal sealed record StoredCa
{
    public required string Certificate { get; init; }

    public required string Key { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A join token as stored: never the secret, only its SHA-256.</summary>
internal sealed record StoredJoinToken
{
    public required string Id { get; init; }

    public required string SecretSha256 { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required DateTimeOffset ExpiresAt { get; init; }

    public string? Description { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredCa))]
[JsonSerializable(typeof(StoredJoinToken))]
internal sealed partial class PkiJsonContext : JsonSerializerContext;
