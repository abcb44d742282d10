using System.Text;
using Drover.Store.Sqlite;

namespace Drover.Store.Tests;

/// <summary>
/// Opening the embedded store refuses an empty or corrupt file (never treating it as a new, empty cluster), and
/// <see cref="ClusterIdentity"/> tells a new store from a lost or foreign one by the data dir's marker.
/// </summary>
public sealed class StoreIntegrityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-integrity-").FullName;

    private string DbPath => Path.Combine(_dir, "state.db");

    private string DataDir => Path.Combine(_dir, "data");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Open_EmptyFile_ThrowsCorruptNamingTheFileAndLeavesItAlone()
    {
        File.WriteAllBytes(DbPath, []);

        var e = Assert.Throws<StateStoreCorruptException>(() => SqliteStateStore.Open(DbPath));

        Assert.Equal(DbPath, e.Path);
        Assert.Equal($"{DbPath} is empty (0 bytes)", e.Message);
        Assert.Equal(0, new FileInfo(DbPath).Length); // not filled with empty tables
    }

    [Fact]
    public async Task Open_RandomBytesOverTheHeader_ThrowsCorruptNamingTheFile()
    {
        await using (var store = SqliteStateStore.Open(DbPath))
        {
            await store.PutAsync("/drover/tasks/t1", "x"u8.ToArray());
        }

        var garbage = new byte[4096];
        new Random(7).NextBytes(garbage);
        using (var file = new FileStream(DbPath, FileMode.Open, FileAccess.Write))
        {
            file.Write(garbage);
        }

        var e = Assert.Throws<StateStoreCorruptException>(() => SqliteStateStore.Open(DbPath));

        Assert.Equal(DbPath, e.Path);
        Assert.StartsWith($"{DbPath} is not a readable Drover store", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_MissingFile_CreatesANewStore()
    {
        await using var store = SqliteStateStore.Open(DbPath);

        Assert.Null(await store.GetAsync(ClusterIdentity.Key));
        Assert.True(new FileInfo(DbPath).Length > 0);
    }

    [Fact]
    public async Task Ensure_NewStoreNoMarker_WritesARandomIdIntoStoreAndMarker()
    {
        await using var store = SqliteStateStore.Open(DbPath);

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, expected: null, recover: false, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.None, check.Problem);
        Assert.True(check.Created);
        Assert.False(check.Recovered);
        Assert.True(ClusterIdentity.IsValid(check.ClusterId));
        Assert.Equal(check.ClusterId, Encoding.UTF8.GetString((await store.GetAsync(ClusterIdentity.Key))!.Value));
        Assert.Equal(check.ClusterId, ClusterIdentity.ReadMarker(DataDir));
    }

    [Fact]
    public async Task Ensure_Restart_KeepsTheSameIdAndCreatesNothing()
    {
        string? first;
        await using (var store = SqliteStateStore.Open(DbPath))
        {
            first = (await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, null, false, CancellationToken.None)).ClusterId;
        }

        await using var reopened = SqliteStateStore.Open(DbPath);
        var again = await ClusterIdentity.EnsureAsync(reopened, DbPath, DataDir, null, false, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.None, again.Problem);
        Assert.Equal(first, again.ClusterId);
        Assert.False(again.Created);
    }

    [Fact]
    public async Task Ensure_NewStoreWithClusterIdFlag_UsesThatId()
    {
        await using var store = SqliteStateStore.Open(DbPath);

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, "prod-1", false, CancellationToken.None);

        Assert.Equal("prod-1", check.ClusterId);
        Assert.Equal("prod-1", ClusterIdentity.ReadMarker(DataDir));
    }

    [Fact]
    public async Task Ensure_StoreLostButMarkerNamesACluster_RefusedAsLostAndNothingWritten()
    {
        ClusterIdentity.WriteMarker(DataDir, "c-old");
        await using var store = SqliteStateStore.Open(DbPath); // a fresh store in place of the lost one

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, null, recover: false, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.Lost, check.Problem);
        Assert.Null(check.ClusterId);
        Assert.Contains(DbPath, check.Reason, StringComparison.Ordinal);
        Assert.Contains("c-old", check.Reason, StringComparison.Ordinal);
        Assert.Null(await store.GetAsync(ClusterIdentity.Key)); // refused stores are not stamped
    }

    [Fact]
    public async Task Ensure_StoreLostAndRecovering_GivesTheStoreTheMarkersId()
    {
        ClusterIdentity.WriteMarker(DataDir, "c-old");
        await using var store = SqliteStateStore.Open(DbPath);

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, null, recover: true, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.None, check.Problem);
        Assert.Equal("c-old", check.ClusterId);
        Assert.True(check.Recovered);
        Assert.Equal("c-old", Encoding.UTF8.GetString((await store.GetAsync(ClusterIdentity.Key))!.Value));
    }

    [Fact]
    public async Task Ensure_StoreOfAnotherClusterThanTheMarker_RefusedAsForeign()
    {
        await using var store = SqliteStateStore.Open(DbPath);
        await store.PutAsync(ClusterIdentity.Key, "c-theirs"u8.ToArray());
        ClusterIdentity.WriteMarker(DataDir, "c-ours");

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, null, recover: true, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.Foreign, check.Problem);
        Assert.Contains("c-theirs", check.Reason, StringComparison.Ordinal);
        Assert.Contains("c-ours", check.Reason, StringComparison.Ordinal);
        Assert.Equal("c-ours", ClusterIdentity.ReadMarker(DataDir)); // left as it was
    }

    [Fact]
    public async Task Ensure_ClusterIdFlagDiffersFromTheStore_RefusedAsForeign()
    {
        await using var store = SqliteStateStore.Open(DbPath);
        await store.PutAsync(ClusterIdentity.Key, "c-theirs"u8.ToArray());

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, "c-ours", false, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.Foreign, check.Problem);
        Assert.Contains("--cluster-id", check.Reason, StringComparison.Ordinal);
        Assert.Null(ClusterIdentity.ReadMarker(DataDir)); // no marker for a refused store
    }

    [Fact]
    public async Task Ensure_UpgradedStoreWithDataButNoIdOrMarker_IsStampedWithANewId()
    {
        await using var store = SqliteStateStore.Open(DbPath);
        await store.PutAsync("/drover/tasks/t1", "x"u8.ToArray());

        var check = await ClusterIdentity.EnsureAsync(store, DbPath, DataDir, null, false, CancellationToken.None);

        Assert.Equal(ClusterIdProblem.None, check.Problem);
        Assert.True(check.Created);
        Assert.NotNull(await store.GetAsync("/drover/tasks/t1"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("slash/y")]
    public void IsValid_BadIds_False(string id) => Assert.False(ClusterIdentity.IsValid(id));
}
