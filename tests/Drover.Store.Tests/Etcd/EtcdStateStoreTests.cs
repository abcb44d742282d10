namespace Drover.Store.Tests.Etcd;

/// <summary>The shared contract, against a real 3-member etcd cluster. Each test has its own key prefix.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdStateStoreTests(EtcdFixture etcd) : StateStoreContractTests
{
    protected override async Task<IStateStore> CreateStoreAsync()
    {
        await etcd.Cluster.WaitHealthyAsync();
        return EtcdFixture.NewStore(etcd.Cluster.ClientUrls);
    }
}
