using Drover.Store.Sqlite;
using Drover.Testing;

namespace Drover.Store.Tests;

public sealed class SqliteStateStoreTests : StateStoreContractTests
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-store-").FullName;
    private readonly ManualTimeProvider _time = new(DateTimeOffset.UtcNow);

    private string DbPath => Path.Combine(_dir, "state.db");

    protected override Task<IStateStore> CreateStoreAsync() => Task.FromResult<IStateStore>(SqliteStateStore.Open(DbPath, _time));

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Open_NewAndExistingFiles_AreReadableByTheOwnerOnly()
    {
        const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await Store.PutAsync("/secret", B("hash"));
        foreach (var file in new[] { DbPath, DbPath + "-wal", DbPath + "-shm" })
        {
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(file));
        }

        // A store file left world-readable by an older build is tightened when it is opened.
        await Store.DisposeAsync();
        File.SetUnixFileMode(DbPath, OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Store = SqliteStateStore.Open(DbPath, _time);
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(DbPath));
    }

    [Fact]
    public async Task Commit_DiskFull_UnavailableNotAppliedThenWritesResumeOnceSpaceIsFreed()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var tmpfs = await TmpfsMount.MountAsync(megabytes: 2);
        var path = Path.Combine(tmpfs.Path, "state.db");
        long revision;
        await using (var store = SqliteStateStore.Open(path, _time))
        {
            await store.PutAsync("/acknowledged", B("before"));
            revision = store.Revision;
            tmpfs.Fill();

            var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => store.PutAsync("/refused", new byte[64 * 1024]));
            Assert.False(e.OutcomeUnknown); // refused before the commit frame was written: known not applied
            Assert.Contains("disk holding the state store is full", e.Message, StringComparison.Ordinal);
            Assert.Equal(revision, store.Revision);
            Assert.Null(await store.GetAsync("/refused")); // reads still work
            Assert.Equal("before", S((await store.GetAsync("/acknowledged"))!.Value));

            tmpfs.Free();
            Assert.Equal(revision + 1, await store.PutAsync("/after", B("freed")));
        }

        await using var reopened = SqliteStateStore.Open(path, _time);
        Assert.Equal("before", S((await reopened.GetAsync("/acknowledged"))!.Value));
        Assert.Null(await reopened.GetAsync("/refused"));
        Assert.Equal("freed", S((await reopened.GetAsync("/after"))!.Value));
        Assert.Equal(revision + 1, reopened.Revision);
    }

    [Fact]
    public async Task Reopen_AfterClose_KeepsKeysAndRevision()
    {
        await Store.PutAsync("/a", B("1"));
        var rev = await Store.PutAsync("/b", B("2"));
        await Store.DisposeAsync();

        var reopened = SqliteStateStore.Open(DbPath, _time);
        Store = reopened;

        Assert.Equal(rev, reopened.Revision);
        Assert.Equal("2", S((await reopened.GetAsync("/b"))!.Value));
        Assert.True(await reopened.PutAsync("/c", B("3")) > rev);
    }

    [Fact]
    public async Task Lease_NotKeptAlive_ExpiresAndDeletesKeys()
    {
        var store = (SqliteStateStore)Store;
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(3));
        await store.CommitAsync(new Transaction { Writes = [WriteOp.Put("/leader", B("m1"), lease)] });

        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(await store.KeepAliveAsync(lease));
        _time.Advance(TimeSpan.FromSeconds(2));
        await store.ExpireLeasesNowAsync();
        Assert.NotNull(await store.GetAsync("/leader")); // kept alive 2 s ago, TTL 3 s

        _time.Advance(TimeSpan.FromSeconds(2));
        await store.ExpireLeasesNowAsync();

        Assert.Null(await store.GetAsync("/leader"));
        Assert.False(await store.KeepAliveAsync(lease));
    }

    [Fact]
    public async Task Watch_BeforeCompactedHistory_Throws()
    {
        await Store.DisposeAsync();
        var small = SqliteStateStore.Open(DbPath, _time, options: new SqliteStoreOptions { HistoryLimit = 5 });
        Store = small;
        for (var i = 0; i < 20; i++)
        {
            await small.PutAsync("/k", B(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        await Assert.ThrowsAsync<RevisionCompactedException>(async () =>
        {
            await foreach (var unused in small.WatchAsync("/", 1))
            {
            }
        });
    }

    [Fact]
    public async Task ConcurrentWrites_AreBatched_AllDurable()
    {
        var revisions = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => Store.PutAsync($"/many/{i:D4}", B("x"))));

        Assert.Equal(500, revisions.Distinct().Count());
        Assert.Equal(500, (await Store.ListAsync("/many/")).Length);
    }
}
