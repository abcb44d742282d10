using System.Text;

namespace Drover.Store.Tests.Etcd;

/// <summary>Transactions queued together reach etcd as one nested transaction, each still with its own outcome.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdBatchingTests(EtcdFixture etcd)
{
    [Fact]
    public async Task Commit_ManyAtOnce_FewerRevisionsThanTransactions()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);

        var revisions = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => store.PutAsync($"/many/{i:D3}", B("x"))));

        Assert.True(revisions.Distinct().Count() < 100, $"200 queued puts took {revisions.Distinct().Count()} revisions: not batched");
        Assert.Equal(200, (await store.ListAsync("/many/")).Length);
    }

    [Fact]
    public async Task Commit_FailedCompareAmongOthers_OnlyThatOneFails()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);
        var stale = await store.PutAsync("/b", B("b1"));
        await store.PutAsync("/b", B("b2"));
        var gate = store.PutAsync("/gate", B("queue the rest behind this one"));

        var a = store.CompareAndSwapAsync("/a", 0, B("a"));
        var b = store.CompareAndSwapAsync("/b", stale, B("b3"));
        var c = store.CompareAndSwapAsync("/c", 0, B("c"));
        await gate;

        var results = await Task.WhenAll(a, b, c);
        Assert.Equal([true, false, true], results);
        Assert.Equal("b2", S((await store.GetAsync("/b"))!.Value));
        Assert.NotNull(await store.GetAsync("/c"));
    }

    [Fact]
    public async Task Commit_UnknownLeaseAmongOthers_OnlyThatOneFails()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);
        var gate = store.PutAsync("/gate", B("x"));

        var before = store.PutAsync("/before", B("1"));
        var bad = store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/leased", B("x"), 987654321)] });
        var after = store.PutAsync("/after", B("2"));
        await gate;

        await before;
        await Assert.ThrowsAsync<InvalidOperationException>(() => bad);
        Assert.True(await after > await before);
        Assert.Equal(["/after", "/before", "/gate"], (await store.ListAsync("")).Select(e => e.Key));
    }

    [Fact]
    public async Task Commit_CompareOnKeyWrittenEarlierInQueue_SeesThatWrite()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);

        // Queued together: the second compares the key the first creates, so it must be evaluated after it.
        var first = store.CompareAndSwapAsync("/k", 0, B("1"));
        var second = store.CompareAndSwapAsync("/k", 0, B("2"));
        var delete = store.DeleteAsync("/k");
        var third = store.CompareAndSwapAsync("/k", 0, B("3"));

        var results = await Task.WhenAll(first, second, third);
        Assert.Equal([true, false, true], results);
        await delete;
        Assert.Equal("3", S((await store.GetAsync("/k"))!.Value));
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string S(byte[]? b) => b is null ? "<null>" : Encoding.UTF8.GetString(b);
}
