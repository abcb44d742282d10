using System.Text;
using Drover.Master.HighAvailability;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.HighAvailability;

/// <summary>Election and fencing over the embedded store (the same contract as etcd: leases, compares).</summary>
public sealed class LeaderElectionTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-election-").FullName;
    private IStateStore _store = null!;

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
    public async Task Campaign_TwoMasters_OneLeadsTheOtherFollowsItsAddress()
    {
        using var a = Election("a:5050");
        await a.StartAsync(default);
        await a.Elected.WaitAsync(Timeout);
        using var b = Election("b:5050");
        await b.StartAsync(default);

        await Wait.UntilAsync(() => Task.FromResult(b.Leader), l => l == "a:5050", Timeout, "b follows a");
        Assert.True(a.IsLeader);
        Assert.False(b.Elected.IsCompleted);
        Assert.Equal("a:5050", Encoding.UTF8.GetString((await _store.GetAsync(LeaderElectionOptions.DefaultKey))!.Value));

        await a.StopAsync(default);
        await b.Elected.WaitAsync(Timeout);
        Assert.True(b.IsLeader);
        Assert.True(a.Lost.IsCancellationRequested);
        await b.StopAsync(default);
    }

    [Fact]
    public async Task FencedCommit_DeposedLeader_WriteFailsAndItStepsDown()
    {
        using var a = Election("a:5050");
        await a.StartAsync(default);
        await a.Elected.WaitAsync(Timeout);
        var fencedA = new FencedStateStore(_store, a);
        Assert.True((await fencedA.CommitAsync(new Transaction { Writes = [WriteOp.Put("/drover/apps/x", [1])] })).Succeeded);

        // Another master takes the key (as after a's lease expired while a was paused).
        var holder = (await _store.GetAsync(LeaderElectionOptions.DefaultKey))!;
        await _store.CommitAsync(new Transaction { Writes = [WriteOp.Delete(holder.Key)] });
        await _store.CommitAsync(new Transaction { Compares = [Compare.Absent(holder.Key)], Writes = [WriteOp.Put(holder.Key, "b:5050"u8.ToArray())] });

        await Assert.ThrowsAsync<NotLeaderException>(() => fencedA.CommitAsync(new Transaction { Writes = [WriteOp.Put("/drover/apps/x", [2])] }));
        Assert.Equal([1], (await _store.GetAsync("/drover/apps/x"))!.Value);
        Assert.True(a.Lost.IsCancellationRequested, "a fenced-off write steps the master down");
        Assert.False(a.IsLeader);
        await a.StopAsync(default);
    }

    [Fact]
    public async Task FencedCommit_CallersOwnCompareFails_ReturnsFailedWithoutSteppingDown()
    {
        using var a = Election("a:5050");
        await a.StartAsync(default);
        await a.Elected.WaitAsync(Timeout);
        var fenced = new FencedStateStore(_store, a);
        await _store.PutAsync("/k", [1]);

        var result = await fenced.CommitAsync(new Transaction { Compares = [Compare.Absent("/k")], Writes = [WriteOp.Put("/k", [2])] });

        Assert.False(result.Succeeded);
        Assert.True(a.IsLeader);
        await a.StopAsync(default);
    }

    [Fact]
    public async Task FencedCommit_NeverElected_Throws()
    {
        using var a = Election("a:5050");
        var fenced = new FencedStateStore(_store, a);

        await Assert.ThrowsAsync<NotLeaderException>(() => fenced.PutAsync("/k", [1]));
        Assert.Null(await _store.GetAsync("/k"));
    }

    [Fact]
    public async Task Lead_LeaseRevokedUnderTheLeader_StepsDownBeforeTheTtl()
    {
        using var a = Election("a:5050", TimeSpan.FromSeconds(3));
        await a.StartAsync(default);
        await a.Elected.WaitAsync(Timeout);
        var lease = (await _store.GetAsync(LeaderElectionOptions.DefaultKey))!.Lease;

        await _store.RevokeAsync(lease);

        // The next keep-alive (every TTL/3) is refused: the master steps down.
        await Task.Delay(TimeSpan.FromSeconds(3), a.Lost).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.True(a.Lost.IsCancellationRequested);
        await a.StopAsync(default);
    }

    private LeaderElection Election(string address, TimeSpan? ttl = null) =>
        new(_store, new LeaderElectionOptions { Address = address, LeaseTtl = ttl ?? TimeSpan.FromSeconds(2) }, TimeProvider.System, NullLogger<LeaderElection>.Instance);
}
