using System.Globalization;
using System.Text;
using Drover.Store.Etcd;
using Drover.Testing;
using Xunit.Abstractions;

namespace Drover.Store.Tests.Etcd;

/// <summary>What only a networked, replicated store has to survive: members dying, leases running out on the server, shared clusters.</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdClusterFailureTests(EtcdFixture etcd, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Commit_MemberItTalksToKilled_WritesAndReadsGoOnThroughAnother(bool killLeader)
    {
        var cluster = etcd.Cluster;
        var leader = await cluster.WaitHealthyAsync();
        var victim = killLeader ? leader : (leader + 1) % cluster.Members.Count;
        await using var store = EtcdFixture.NewStore(cluster.ClientUrlsStartingWith(victim), logger: new TestOutputLogger(output));
        var before = await store.PutAsync("/k/before", B("kept"));

        await cluster.KillAsync(victim);
        try
        {
            var last = before;
            for (var i = 0; i < 20; i++)
            {
                var rev = await store.PutAsync($"/k/{i:D2}", B(i.ToString(CultureInfo.InvariantCulture)));
                Assert.True(rev > last, $"put {i} got revision {rev} after {last}");
                last = rev;
            }

            Assert.True(await store.CompareAndSwapAsync("/k/cas", 0, B("first")));
            Assert.False(await store.CompareAndSwapAsync("/k/cas", 0, B("second")));
            Assert.Equal("kept", S((await store.GetAsync("/k/before"))!.Value));
            var list = await store.ListAsync("/k/");
            Assert.Equal(22, list.Length);
            Assert.Equal("19", S(list.Single(e => e.Key == "/k/19").Value));
        }
        finally
        {
            await cluster.StartMemberAsync(victim);
        }
    }

    [Fact]
    public async Task Commit_MemberItTalksToHangs_WriteOutcomeUnknownThenReadsAndWritesMoveOn()
    {
        var cluster = etcd.Cluster;
        var leader = await cluster.WaitHealthyAsync();
        var victim = (leader + 1) % cluster.Members.Count;
        await using var store = EtcdFixture.NewStore(cluster.ClientUrlsStartingWith(victim), requestTimeout: TimeSpan.FromSeconds(1), logger: new TestOutputLogger(output));
        await store.PutAsync("/k", B("before"));

        cluster.Pause(victim); // SIGSTOP: connections stay open, nothing answers
        try
        {
            // The write was sent and never answered: it may or may not have been applied.
            var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.PutAsync("/k", B("maybe")));
            Assert.True(e.OutcomeUnknown);

            // The store moved on: reads and writes go through another member.
            Assert.NotNull(await store.GetAsync("/k"));
            var rev = await store.PutAsync("/k", B("after"));
            Assert.Equal(rev, (await store.GetAsync("/k"))!.ModRevision);
        }
        finally
        {
            cluster.Resume(victim);
        }

        await cluster.WaitHealthyAsync();
    }

    [Fact]
    public async Task Lease_KeptAliveThenLeft_KeysLiveThenVanish()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(2));
        var put = await store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/leader", B("m1"), lease)] });
        Assert.Equal(lease, (await store.GetAsync("/leader"))!.Lease);

        // Kept alive for twice its TTL: still there.
        var keptUntil = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(4);
        while (DateTimeOffset.UtcNow < keptUntil)
        {
            Assert.True(await store.KeepAliveAsync(lease));
            await Task.Delay(TimeSpan.FromMilliseconds(400));
        }

        Assert.NotNull(await store.GetAsync("/leader"));

        // Left alone: etcd deletes the key itself, as a revision watchers see.
        using var cts = new CancellationTokenSource(Deadline);
        var deleted = await FirstAsync(store.WatchAsync("/leader", put.Revision, cts.Token), e => e.Type == WatchEventType.Delete);
        Assert.Equal("/leader", deleted.Key);
        Assert.Null(await store.GetAsync("/leader"));
        Assert.False(await store.KeepAliveAsync(lease));
    }

    [Fact]
    public async Task Watch_MemberServingItKilled_ResumesElsewhereWithoutLossOrDuplicates()
    {
        var cluster = etcd.Cluster;
        var leader = await cluster.WaitHealthyAsync();
        var victim = (leader + 1) % cluster.Members.Count; // a follower: the writer keeps writing through the leader
        var prefix = EtcdFixture.UniquePrefix();
        await using var watcher = EtcdFixture.NewStore(cluster.ClientUrlsStartingWith(victim), prefix, logger: new TestOutputLogger(output));
        await using var writer = EtcdFixture.NewStore([cluster.Members[leader].ClientUrl], prefix);
        var start = await writer.PutAsync("/start", B("x"));
        var written = new List<(long Revision, string Key)>();
        var seen = new List<WatchEvent>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var total = 0;
        var watching = Task.Run(async () =>
        {
            await foreach (var e in watcher.WatchAsync("/w/", start, cts.Token))
            {
                lock (seen)
                {
                    seen.Add(e);
                    if (seen.Count == Volatile.Read(ref total))
                    {
                        return;
                    }
                }
            }
        });

        async Task WriteAsync(int from, int to)
        {
            for (var i = from; i < to; i++)
            {
                var key = $"/w/{i:D3}";
                written.Add((await writer.PutAsync(key, B(key)), key));
            }
        }

        try
        {
            Volatile.Write(ref total, 62);
            await WriteAsync(0, 30);
            await Wait.UntilAsync(() => Task.FromResult(Count(seen) == 30), Deadline, "the watch to deliver the first 30 events");

            await cluster.KillAsync(victim);
            await WriteAsync(30, 60);
            var txn = await writer.CommitAsync(new Transaction { Writes = [WriteOp.Put("/w/t1", B("a")), WriteOp.Put("/w/t2", B("b"))] });
            written.Add((txn.Revision, "/w/t1"));
            written.Add((txn.Revision, "/w/t2"));
            await watching.WaitAsync(Deadline);
        }
        finally
        {
            await cts.CancelAsync();
            await cluster.StartMemberAsync(victim);
        }

        Assert.Equal(written.Select(w => $"{w.Revision} {w.Key}"), seen.Select(e => $"{e.Revision} {e.Key}"));
    }

    [Fact]
    public async Task Prefix_TwoStoresOnOneCluster_SeeOnlyTheirOwnKeys()
    {
        var root = EtcdFixture.UniquePrefix();
        await using var a = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, root + "/a");
        await using var b = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, root + "/a-b"); // "/a" is a string prefix of "/a-b"
        await using var outer = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, root);
        var start = await a.PutAsync("/k", B("from a"));
        using var cts = new CancellationTokenSource(Deadline);
        var firstSeenByA = FirstAsync(a.WatchAsync("", start, cts.Token), _ => true);

        await b.PutAsync("/k", B("from b"));
        Assert.True(await b.CompareAndSwapAsync("/only-b", 0, B("b")));
        Assert.True(await a.CompareAndSwapAsync("/only-b", 0, B("a"))); // absent in a's key space
        await a.PutAsync("/k2", B("a again"));

        Assert.Equal("from a", S((await a.GetAsync("/k"))!.Value));
        Assert.Equal("from b", S((await b.GetAsync("/k"))!.Value));
        Assert.Equal(["/k", "/k2", "/only-b"], (await a.ListAsync("")).Select(e => e.Key));
        Assert.Equal(["/k", "/only-b"], (await b.ListAsync("")).Select(e => e.Key));
        Assert.Equal(("/only-b", "a"), await firstSeenByA.ContinueWith(t => (t.Result.Key, S(t.Result.Value)), TaskScheduler.Default));

        // The prefix is just the start of the etcd key: a store over the common root sees both.
        Assert.Equal(["/a-b/k", "/a-b/only-b", "/a/k", "/a/k2", "/a/only-b"], (await outer.ListAsync("")).Select(e => e.Key));
    }

    [Fact]
    public async Task Revision_AnotherClientWrites_SeenWithTheNextAnswer()
    {
        var prefix = EtcdFixture.UniquePrefix();
        await using var one = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, prefix);
        await using var two = EtcdFixture.NewStore(etcd.Cluster.ClientUrls, prefix);
        Assert.Equal(0, one.Revision); // nothing seen yet

        var rev = await two.PutAsync("/x", B("1"));
        Assert.Equal(rev, two.Revision);
        Assert.True(one.Revision < rev);

        var entry = await one.GetAsync("/x");
        Assert.Equal(rev, entry!.ModRevision);
        Assert.True(one.Revision >= rev);
    }

    [Fact]
    public async Task Commit_KeyWithoutLeadingSlash_RejectedAndNeverFound()
    {
        await using var store = EtcdFixture.NewStore(etcd.Cluster.ClientUrls);

        var e = await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("relative", B("x")));

        Assert.Contains("'relative'", e.Message, StringComparison.Ordinal);
        Assert.Null(await store.GetAsync("relative"));
        Assert.Empty(await store.ListAsync("rel"));
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string S(byte[]? b) => b is null ? "<null>" : Encoding.UTF8.GetString(b);

    private static int Count(List<WatchEvent> seen)
    {
        lock (seen)
        {
            return seen.Count;
        }
    }

    private static async Task<WatchEvent> FirstAsync(IAsyncEnumerable<WatchEvent> events, Func<WatchEvent, bool> match)
    {
        await foreach (var e in events)
        {
            if (match(e))
            {
                return e;
            }
        }

        throw new InvalidOperationException("the watch ended without a matching event");
    }
}
