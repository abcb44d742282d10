using Drover.Store.Etcd;
using Drover.Testing.Etcd;
using Microsoft.Extensions.Logging;

namespace Drover.Store.Tests.Etcd;

/// <summary>One real 3-member etcd cluster on loopback, shared by the test classes of <see cref="EtcdCollection"/>.</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    public EtcdCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 3 });

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>A store under a prefix no other test uses, so tests share the cluster without seeing each other's keys.</summary>
    public static EtcdStateStore NewStore(IEnumerable<Uri> endpoints, string? prefix = null, TimeSpan? retryTimeout = null, ILogger? logger = null, TimeSpan? requestTimeout = null,
        EtcdTlsOptions? tls = null) =>
        new(endpoints, new EtcdStoreOptions
        {
            Prefix = prefix ?? UniquePrefix(),
            RetryTimeout = retryTimeout ?? TimeSpan.FromSeconds(20),
            RequestTimeout = requestTimeout ?? new EtcdStoreOptions().RequestTimeout,
            Tls = tls,
        }, logger: logger);

    public static string UniquePrefix() => $"/test/{Guid.NewGuid():N}";
}

/// <summary>Test classes on the shared cluster run one after another: some kill and restart members.</summary>
[CollectionDefinition(Name)]
public sealed class EtcdCollection : ICollectionFixture<EtcdFixture>
{
    public const string Name = "etcd cluster";
}
