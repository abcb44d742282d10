using System.Globalization;
using System.Text;
using Drover.Store.Etcd;
using Drover.Testing.Etcd;

namespace Drover.Store.Tests.Etcd;

/// <summary>Tests that compact history or take the whole cluster down, on a 1-member cluster of their own.</summary>
public sealed class EtcdSingleMemberTests : IAsyncLifetime
{
    private EtcdCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 1 });

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Watch_FromCompactedRevision_ThrowsWithOldestKept()
    {
        await using var store = EtcdFixture.NewStore(_cluster.ClientUrls);
        var first = await store.PutAsync("/k", B("0"));
        long last = 0;
        for (var i = 1; i < 10; i++)
        {
            last = await store.PutAsync("/k", B(i.ToString(CultureInfo.InvariantCulture)));
        }

        await CompactAsync(last);

        var e = await Assert.ThrowsAsync<RevisionCompactedException>(async () =>
        {
            await foreach (var unused in store.WatchAsync("/", first))
            {
            }
        });
        Assert.Equal(last, e.OldestRevision);

        // From the compaction point on, history is still there.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var next = store.PutAsync("/k", B("10"));
        await foreach (var ev in store.WatchAsync("/", last - 1, cts.Token))
        {
            Assert.Equal((last, "9"), (ev.Revision, S(ev.Value)));
            break;
        }

        await next;
    }

    [Fact]
    public async Task Commit_EveryMemberDown_UnavailableThenRecovers()
    {
        await using var store = EtcdFixture.NewStore(_cluster.ClientUrls, retryTimeout: TimeSpan.FromSeconds(2));
        await store.PutAsync("/k", B("before"));
        await _cluster.KillAsync(0);

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.PutAsync("/k", B("lost")));
        Assert.False(e.OutcomeUnknown); // never reached etcd: certainly not applied
        Assert.Contains(_cluster.Members[0].ClientUrl.Authority, e.Message, StringComparison.Ordinal);

        await _cluster.StartMemberAsync(0);
        Assert.Equal("before", S((await store.GetAsync("/k"))!.Value));
        Assert.True(await store.CompareAndSwapAsync("/k", (await store.GetAsync("/k"))!.ModRevision, B("after")));
    }

    private async Task CompactAsync(long revision)
    {
        using var http = new HttpClient();
        using var body = new StringContent($"{{\"revision\":\"{revision}\",\"physical\":true}}", Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(new Uri(_cluster.ClientUrls[0], "v3/kv/compaction"), body);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string S(byte[]? b) => b is null ? "<null>" : Encoding.UTF8.GetString(b);
}
