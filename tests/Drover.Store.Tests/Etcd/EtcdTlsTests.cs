using System.Text.Json;
using Drover.Store.Etcd;
using Drover.Testing.Etcd;
using Drover.Testing.Tls;

namespace Drover.Store.Tests.Etcd;

/// <summary>
/// One real 3-member etcd cluster serving clients over TLS with <c>--client-cert-auth</c>, members
/// talking to each other over TLS (peer certificates checked too), with a CA made for the test.
/// </summary>
public sealed class EtcdTlsFixture : IAsyncLifetime
{
    public EtcdCluster Cluster { get; private set; } = null!;

    public EtcdClusterTls Tls => Cluster.Tls!;

    public async Task InitializeAsync() => Cluster = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 3, Tls = new EtcdClusterTlsOptions() });

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class EtcdTlsCollection : ICollectionFixture<EtcdTlsFixture>
{
    public const string Name = "etcd TLS cluster";
}

/// <summary>The shared contract, against the TLS cluster: the store works the same over HTTPS with a client certificate.</summary>
[Collection(EtcdTlsCollection.Name)]
public sealed class EtcdTlsStateStoreTests(EtcdTlsFixture etcd) : StateStoreContractTests
{
    protected override async Task<IStateStore> CreateStoreAsync()
    {
        await etcd.Cluster.WaitHealthyAsync();
        return EtcdFixture.NewStore(etcd.Cluster.ClientUrls, tls: etcd.Tls.StoreOptions());
    }
}

/// <summary>Who gets in over TLS and who does not: each refusal is immediate and says what TLS refused.</summary>
[Collection(EtcdTlsCollection.Name)]
public sealed class EtcdTlsTests(EtcdTlsFixture etcd) : IDisposable
{
    // Far longer than the test could wait: a refusal that came from retrying instead of failing at once
    // would end in the test's own deadline (OperationCanceledException), not StateStoreUnavailableException.
    private static readonly TimeSpan PatientRetry = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly TestCertificateAuthority _otherCa = TestCertificateAuthority.Create("another CA");

    public void Dispose() => _otherCa.Dispose();

    [Fact]
    public async Task Put_OnOneMember_ReplicatedOverPeerTlsToAnother()
    {
        var prefix = EtcdFixture.UniquePrefix();
        await using var first = EtcdFixture.NewStore([etcd.Cluster.ClientUrls[0]], prefix, tls: etcd.Tls.StoreOptions());
        await using var third = EtcdFixture.NewStore([etcd.Cluster.ClientUrls[2]], prefix, tls: etcd.Tls.StoreOptions());

        var revision = await first.PutAsync("/k", "over tls"u8.ToArray());

        var entry = await third.GetAsync("/k");
        Assert.Equal("over tls"u8.ToArray(), entry!.Value);
        Assert.Equal(revision, entry.ModRevision);
        Assert.All(etcd.Cluster.Members, m => Assert.Equal(Uri.UriSchemeHttps, m.PeerUrl.Scheme));
        Assert.All(await PeerUrlsAsync(), u => Assert.StartsWith("https://", u, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Get_WithoutClientCertificate_RefusedAtOnceSayingACertificateIsNeeded()
    {
        await using var store = NewStore(etcd.Tls.StoreOptions() with { ClientCertificate = null });
        using var deadline = new CancellationTokenSource(Deadline);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.GetAsync("/k", deadline.Token));

        Assert.False(e.OutcomeUnknown);
        Assert.Contains("asks for a client certificate", e.Message, StringComparison.Ordinal);
        Assert.Contains("every endpoint", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Put_WithoutClientCertificate_RefusedAndCertainlyNotApplied()
    {
        var prefix = EtcdFixture.UniquePrefix();
        await using var store = NewStore(etcd.Tls.StoreOptions() with { ClientCertificate = null }, prefix);
        using var deadline = new CancellationTokenSource(Deadline);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.PutAsync("/k", "x"u8.ToArray(), deadline.Token));

        Assert.False(e.OutcomeUnknown); // etcd dropped the request unread: no doubt about the write
        await using var trusted = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, prefix, tls: etcd.Tls.StoreOptions());
        Assert.Null(await trusted.GetAsync("/k"));
    }

    [Fact]
    public async Task Put_ClientCertificateFromAnotherCa_RefusedNamingOurCertificate()
    {
        using var intruder = _otherCa.IssueClient("intruder");
        var prefix = EtcdFixture.UniquePrefix();
        await using var store = NewStore(etcd.Tls.StoreOptions() with { ClientCertificate = intruder }, prefix);
        using var deadline = new CancellationTokenSource(Deadline);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.PutAsync("/k", "x"u8.ToArray(), deadline.Token));

        Assert.False(e.OutcomeUnknown);
        Assert.Contains("does not accept our client certificate CN=intruder (issued by CN=another CA", e.Message, StringComparison.Ordinal);
        await using var trusted = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, prefix, tls: etcd.Tls.StoreOptions());
        Assert.Null(await trusted.GetAsync("/k"));
    }

    [Fact]
    public async Task Get_TrustingAnotherCa_RefusesEtcdsCertificate()
    {
        await using var store = NewStore(etcd.Tls.StoreOptions() with { TrustedCas = [_otherCa.Certificate] });
        using var deadline = new CancellationTokenSource(Deadline);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.GetAsync("/k", deadline.Token));

        Assert.False(e.OutcomeUnknown);
        Assert.Contains("etcd's server certificate CN=etcd (issued by CN=etcd test CA, O=Drover tests) is refused: it does not chain to a CA in --store-ca", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Get_EndpointNameNotInCertificate_Refused()
    {
        // The members' certificate names 127.0.0.1 only; localhost reaches the same member.
        var byName = etcd.Cluster.ClientUrls.Select(u => new UriBuilder(u) { Host = "localhost" }.Uri);
        await using var store = NewStore(etcd.Tls.StoreOptions(), endpoints: byName);
        using var deadline = new CancellationTokenSource(Deadline);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.GetAsync("/k", deadline.Token));

        Assert.Contains("is refused: it is not for localhost (its subject alternative names: 127.0.0.1)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Get_OneMemberRefusesTls_OthersServe()
    {
        // localhost (not in the certificate) first: a TLS refusal there moves on like a dead member.
        var endpoints = etcd.Cluster.ClientUrls.Select((u, i) => i == 0 ? new UriBuilder(u) { Host = "localhost" }.Uri : u);
        await using var store = NewStore(etcd.Tls.StoreOptions(), endpoints: endpoints);

        await store.PutAsync("/k", "v"u8.ToArray());

        Assert.Equal("v"u8.ToArray(), (await store.GetAsync("/k"))!.Value);
    }

    [Fact]
    public void Constructor_TlsWithHttpEndpoint_Refused()
    {
        var http = etcd.Cluster.ClientUrls.Select(u => new UriBuilder(u) { Scheme = "http", Port = u.Port }.Uri);

        var e = Assert.Throws<ArgumentException>(() => new EtcdStateStore(http, new EtcdStoreOptions { Tls = etcd.Tls.StoreOptions() }));

        Assert.Contains("is not https://, but EtcdStoreOptions.Tls is set", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_HttpsEndpointWithoutTls_Refused()
    {
        var e = Assert.Throws<ArgumentException>(() => new EtcdStateStore(etcd.Cluster.ClientUrls));

        Assert.Contains("needs EtcdStoreOptions.Tls", e.Message, StringComparison.Ordinal);
    }

    private EtcdStateStore NewStore(EtcdTlsOptions tls, string? prefix = null, IEnumerable<Uri>? endpoints = null) =>
        new(endpoints ?? etcd.Cluster.ClientUrls, new EtcdStoreOptions { Prefix = prefix ?? EtcdFixture.UniquePrefix(), RetryTimeout = PatientRetry, Tls = tls });

    /// <summary>The peer URLs etcd's member list reports.</summary>
    private async Task<List<string>> PeerUrlsAsync()
    {
        using var json = await etcd.Cluster.PostJsonAsync(0, "v3/cluster/member/list", "{}");
        return [.. json.RootElement.GetProperty("members").EnumerateArray().SelectMany(m => m.GetProperty("peerURLs").EnumerateArray().Select(u => u.GetString()!))];
    }
}
