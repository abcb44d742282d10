using System.Text;
using Drover.Core.Security.Pki;
using Drover.Master.Security.Pki;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Security.Pki;

/// <summary>The cluster CA and join tokens in a real state store (the embedded SQLite one).</summary>
public sealed class ClusterCaTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-ca-").FullName;
    private SqliteStateStore _store = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStateStore.Open(Path.Combine(_dir, "state.db"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task LoadOrCreate_NewCluster_CreatesTheCaOnceAndKeepsItInTheStore()
    {
        using var created = await ClusterCa.LoadOrCreateAsync(_store, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        using var loaded = await ClusterCa.LoadOrCreateAsync(_store, TimeProvider.System, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(created.Fingerprint, loaded.Fingerprint);
        Assert.True(loaded.Certificate.HasPrivateKey);
        var stored = await _store.GetAsync(ClusterCa.StoreKey);
        Assert.NotNull(stored);
        var record = System.Text.Json.Nodes.JsonNode.Parse(stored.Value)!;
        Assert.Equal(created.Pem, record["certificate"]!.GetValue<string>());
        Assert.Contains("PRIVATE KEY", record["key"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadOrCreate_MastersStartingTogether_AllAgreeOnOneCa()
    {
        var all = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
            ClusterCa.LoadOrCreateAsync(_store, TimeProvider.System, NullLogger.Instance, CancellationToken.None))));
        try
        {
            Assert.Single(all.Select(ca => ca.Fingerprint).Distinct());
        }
        finally
        {
            foreach (var ca in all)
            {
                ca.Dispose();
            }
        }
    }

    [Fact]
    public async Task JoinTokens_StoredAsHashOnly_AndOnlyALiveOneIsAccepted()
    {
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        using var credentials = new MasterCredentials(new MasterTlsOptions(), time, NullLogger<MasterCredentials>.Instance);
        await credentials.InitializeAsync(_store, "127.0.0.1:5050", CancellationToken.None);
        var tokens = new JoinTokens(_store, credentials, time, NullLogger<JoinTokens>.Instance);

        var created = await tokens.CreateAsync(TimeSpan.FromMinutes(10), "test", CancellationToken.None);
        var token = JoinToken.Parse(created.Token).Token!;
        var revoked = JoinToken.Parse((await tokens.CreateAsync(TimeSpan.FromMinutes(10), null, CancellationToken.None)).Token).Token!;
        Assert.True(await tokens.RevokeAsync(revoked.Id, CancellationToken.None));

        Assert.Equal(credentials.ServingCaHash, token.CaHash);
        Assert.Null(await tokens.CheckAsync(token.Credential, CancellationToken.None));
        Assert.NotNull(await tokens.CheckAsync($"{token.Id}.{JoinToken.Create(token.CaHash).Secret}", CancellationToken.None)); // the right id, another secret
        Assert.NotNull(await tokens.CheckAsync(JoinToken.Create(token.CaHash).Credential, CancellationToken.None)); // unknown
        Assert.NotNull(await tokens.CheckAsync(revoked.Credential, CancellationToken.None));
        Assert.NotNull(await tokens.CheckAsync(null, CancellationToken.None));

        // The store never holds a secret, only its hash.
        foreach (var entry in await _store.ListAsync("/"))
        {
            Assert.DoesNotContain(token.Secret, Encoding.UTF8.GetString(entry.Value), StringComparison.Ordinal);
        }

        time.Advance(TimeSpan.FromMinutes(10));
        Assert.Contains("expired", await tokens.CheckAsync(token.Credential, CancellationToken.None), StringComparison.Ordinal);
        Assert.Empty(await tokens.ListAsync(CancellationToken.None));
    }

    [Fact]
    public async Task MasterCredentials_ServingCertificate_NamesTheMasterAndIsReissuedBeforeItExpires()
    {
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        using var credentials = new MasterCredentials(new MasterTlsOptions { MasterCertificateLifetime = TimeSpan.FromHours(3), DnsNames = ["localhost"] }, time, NullLogger<MasterCredentials>.Instance);
        await credentials.InitializeAsync(_store, "127.0.0.1:5050", CancellationToken.None);

        var first = credentials.ClientCertificate;
        Assert.Equal(SpiffeId.Master("127.0.0.1:5050"), SpiffeId.FromCertificate(first));
        Assert.Null(CertificateVerifier.Verify(first, credentials.Ca.Roots, time.GetUtcNow(), CertificateUse.Server));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Same(first, credentials.ClientCertificate);

        time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromMinutes(1)); // past two thirds
        var second = credentials.ClientCertificate;
        Assert.NotEqual(first.SerialNumber, second.SerialNumber);
        Assert.Null(CertificateVerifier.Verify(second, credentials.Ca.Roots, time.GetUtcNow() + TimeSpan.FromHours(2), CertificateUse.Client));
    }
}
