using System.Text;

namespace Drover.Store.Tests;

/// <summary>
/// What every <see cref="IStateStore"/> must do. Each implementation's test class derives from this
/// and supplies <see cref="CreateStoreAsync"/>; the same assertions then hold for all of them.
/// </summary>
public abstract class StateStoreContractTests : IAsyncLifetime
{
    /// <summary>The store under test; a test that closes it early assigns its replacement here so teardown disposes that one.</summary>
    protected IStateStore Store { get; set; } = null!;

    protected abstract Task<IStateStore> CreateStoreAsync();

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    public virtual async Task DisposeAsync() => await Store.DisposeAsync();

    protected static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    protected static string S(byte[]? b) => b is null ? "<null>" : Encoding.UTF8.GetString(b);

    [Fact]
    public async Task Put_ThenGet_ReturnsValueWithRevisions()
    {
        var r1 = await Store.PutAsync("/k", B("one"));
        var r2 = await Store.PutAsync("/k", B("two"));

        var e = await Store.GetAsync("/k");

        Assert.True(r2 > r1);
        Assert.Equal("two", S(e!.Value));
        Assert.Equal(r1, e.CreateRevision);
        Assert.Equal(r2, e.ModRevision);
        Assert.Equal(r2, Store.Revision);
    }

    [Fact]
    public async Task Get_MissingKey_Null() => Assert.Null(await Store.GetAsync("/missing"));

    [Fact]
    public async Task List_Prefix_InKeyOrderAndOnlyThatPrefix()
    {
        await Store.PutAsync("/tasks/b", B("2"));
        await Store.PutAsync("/tasks/a", B("1"));
        await Store.PutAsync("/tasksX", B("x"));
        await Store.PutAsync("/agents/a", B("a"));

        var list = await Store.ListAsync("/tasks/");

        Assert.Equal(["/tasks/a", "/tasks/b"], list.Select(e => e.Key).ToArray());
    }

    [Fact]
    public async Task CompareAndSwap_Absent_OnlyFirstWins()
    {
        Assert.True(await Store.CompareAndSwapAsync("/leader", 0, B("m1")));
        Assert.False(await Store.CompareAndSwapAsync("/leader", 0, B("m2")));

        Assert.Equal("m1", S((await Store.GetAsync("/leader"))!.Value));
    }

    [Fact]
    public async Task CompareAndSwap_StaleVersion_Rejected()
    {
        var rev = await Store.PutAsync("/k", B("v1"));
        await Store.PutAsync("/k", B("v2"));

        Assert.False(await Store.CompareAndSwapAsync("/k", rev, B("v3")));
        var current = await Store.GetAsync("/k");
        Assert.True(await Store.CompareAndSwapAsync("/k", current!.ModRevision, B("v3")));
        Assert.Equal("v3", S((await Store.GetAsync("/k"))!.Value));
    }

    [Fact]
    public async Task Commit_FailedCompare_WritesNothingAndKeepsRevision()
    {
        await Store.PutAsync("/guard", B("x"));
        var before = Store.Revision;

        var result = await Store.CommitAsync(new Transaction
        {
            Compares = [Compare.Absent("/guard")],
            Writes = [WriteOp.Put("/a", B("1")), WriteOp.Put("/b", B("2"))],
        });

        Assert.False(result.Succeeded);
        Assert.Equal(before, Store.Revision);
        Assert.Null(await Store.GetAsync("/a"));
        Assert.Null(await Store.GetAsync("/b"));
    }

    [Fact]
    public async Task Commit_SeveralWrites_OneRevisionAllApplied()
    {
        await Store.PutAsync("/old", B("x"));

        var result = await Store.CommitAsync(new Transaction
        {
            Writes = [WriteOp.Put("/a", B("1")), WriteOp.Put("/b", B("2")), WriteOp.Delete("/old")],
        });

        Assert.True(result.Succeeded);
        Assert.Equal(result.Revision, (await Store.GetAsync("/a"))!.ModRevision);
        Assert.Equal(result.Revision, (await Store.GetAsync("/b"))!.ModRevision);
        Assert.Null(await Store.GetAsync("/old"));
    }

    [Fact]
    public async Task ConcurrentCompareAndSwap_Increments_NoLostUpdate()
    {
        await Store.PutAsync("/counter", B("0"));

        await Task.WhenAll(Enumerable.Range(0, 100).Select(async _ =>
        {
            while (true)
            {
                var e = (await Store.GetAsync("/counter"))!;
                var next = int.Parse(S(e.Value), System.Globalization.CultureInfo.InvariantCulture) + 1;
                if (await Store.CompareAndSwapAsync("/counter", e.ModRevision, B(next.ToString(System.Globalization.CultureInfo.InvariantCulture))))
                {
                    return;
                }
            }
        }));

        Assert.Equal("100", S((await Store.GetAsync("/counter"))!.Value));
    }

    [Fact]
    public async Task Commit_ManyCalledWithoutWaiting_AppliedInCallOrder()
    {
        // What the master's journal relies on: it calls in order while holding its lock and waits later.
        var calls = Enumerable.Range(0, 300).Select(i => Store.PutAsync($"/order/{i % 7}", B(i.ToString(System.Globalization.CultureInfo.InvariantCulture)))).ToArray();
        var revisions = await Task.WhenAll(calls);

        for (var i = 1; i < revisions.Length; i++)
        {
            Assert.True(revisions[i] >= revisions[i - 1], $"call {i} committed at revision {revisions[i]}, before call {i - 1} at {revisions[i - 1]}");
            if (i >= 7)
            {
                Assert.True(revisions[i] > revisions[i - 7], $"call {i} wrote the key call {i - 7} wrote in the same revision {revisions[i]}");
            }
        }

        var final = await Store.ListAsync("/order/");
        Assert.Equal(Enumerable.Range(293, 7).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal), final.Select(e => S(e.Value)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Watch_FromRevision_HistoryThenLiveInOrder()
    {
        var start = Store.Revision;
        await Store.PutAsync("/w/a", B("1"));
        await Store.PutAsync("/other", B("x"));
        await Store.DeleteAsync("/w/a");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var seen = new List<WatchEvent>();

        var watching = Task.Run(async () =>
        {
            await foreach (var e in Store.WatchAsync("/w/", start, cts.Token))
            {
                seen.Add(e);
                if (seen.Count == 3)
                {
                    return;
                }
            }
        });
        await Store.PutAsync("/w/b", B("2"));
        await watching;

        Assert.Equal([(WatchEventType.Put, "/w/a"), (WatchEventType.Delete, "/w/a"), (WatchEventType.Put, "/w/b")], seen.Select(e => (e.Type, e.Key)).ToArray());
        Assert.Equal("2", S(seen[2].Value));
        Assert.True(seen[0].Revision < seen[1].Revision && seen[1].Revision < seen[2].Revision);
    }

    [Fact]
    public async Task Watch_TransactionsWithSeveralWrites_EveryEventAtTheTransactionsRevision()
    {
        var start = await Store.PutAsync("/start", B("x"));
        var past = await Store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/t/a", B("1")), WriteOp.Put("/t/b", B("2")), WriteOp.Put("/t/c", B("3"))] });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var seen = new List<WatchEvent>();
        var historySeen = new TaskCompletionSource();

        var watching = Task.Run(async () =>
        {
            await foreach (var e in Store.WatchAsync("/t/", start, cts.Token))
            {
                seen.Add(e);
                if (seen.Count == 3)
                {
                    historySeen.SetResult();
                }

                if (seen.Count == 6)
                {
                    return;
                }
            }
        });
        await historySeen.Task.WaitAsync(cts.Token);
        var live = await Store.CommitAsync(new Transaction { Writes = [WriteOp.Delete("/t/a"), WriteOp.Put("/t/d", B("4")), WriteOp.Delete("/t/b")] });
        await watching;

        Assert.Equal(
            [$"{past.Revision} Put /t/a", $"{past.Revision} Put /t/b", $"{past.Revision} Put /t/c", $"{live.Revision} Delete /t/a", $"{live.Revision} Put /t/d", $"{live.Revision} Delete /t/b"],
            seen.Select(e => $"{e.Revision} {e.Type} {e.Key}").ToArray());
    }

    [Fact]
    public async Task Commit_SameKeyWrittenTwice_LastWriteWins()
    {
        await Store.PutAsync("/gone", B("x"));

        var result = await Store.CommitAsync(new Transaction
        {
            Writes = [WriteOp.Put("/k", B("first")), WriteOp.Put("/k", B("second")), WriteOp.Put("/gone", B("y")), WriteOp.Delete("/gone")],
        });

        Assert.True(result.Succeeded);
        var k = await Store.GetAsync("/k");
        Assert.Equal("second", S(k!.Value));
        Assert.Equal(result.Revision, k.CreateRevision);
        Assert.Equal(result.Revision, k.ModRevision);
        Assert.Null(await Store.GetAsync("/gone"));
    }

    [Fact]
    public async Task Lease_Revoke_DeletesAttachedKeys()
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromSeconds(30));
        await Store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/leased", B("x"), lease)] });
        await Store.PutAsync("/kept", B("y"));

        Assert.True(await Store.KeepAliveAsync(lease));
        await Store.RevokeAsync(lease);

        Assert.Null(await Store.GetAsync("/leased"));
        Assert.NotNull(await Store.GetAsync("/kept"));
        Assert.False(await Store.KeepAliveAsync(lease));
    }

    [Fact]
    public async Task Put_WithUnknownLease_Fails()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/x", B("x"), 987654)] }));

        Assert.Null(await Store.GetAsync("/x"));
    }
}
