using Drover.Core.Protocol;
using Drover.Master.State;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.State;

/// <summary>
/// Nothing reaches an agent for an unsaved change (issue 14): a failed journal flush fails the callers' durable tasks,
/// withholds every command queued behind it, fails every later write at once, and raises <see cref="StoreFault"/>
/// (the host stops on it). The store keeps only what was saved before.
/// </summary>
public sealed class MasterJournalFailureTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-journal-").FullName;
    private readonly ManualTimeProvider _time = new();
    private FailingStateStore _store = null!;

    public Task InitializeAsync()
    {
        _store = new FailingStateStore(SqliteStateStore.Open(Path.Combine(_dir, "state.db"), _time));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Submit_FlushFails_CallerUnavailableLaunchWithheldFaultRaisedNothingStored()
    {
        var fault = new StoreFault();
        var journal = new MasterJournal(_store, fault);
        var state = new ClusterState(new MasterOptions(), _time, NullLogger<ClusterState>.Instance, journal);
        var (registered, registeredDurable) = state.Register(Build.Agent("host-a", "cpus:2;mem:1024;disk:1000"));
        await registeredDurable;
        var agent = state.FindAgent(registered.AgentId)!;
        while (agent.Commands.Reader.TryRead(out _))
        {
        }

        _store.FailWrites = true;
        var (_, durable) = state.Submit(Build.Task("ghost", cpus: 1));
        var (snapshot, pending) = state.TakeSnapshot(10);
        Assert.Equal(1, state.Apply(new Drover.Placement.PlacementEngine(new()).Place(snapshot, pending)));

        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => durable);
        Assert.NotNull(fault.Reason);
        Assert.True(fault.Raised.IsCancellationRequested);

        // The launch is queued for the agent's stream behind a write that failed: the stream never sends it.
        Assert.True(agent.Commands.Reader.TryRead(out var launch));
        Assert.Equal(AgentCommandType.Launch, launch.Command.Type);
        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => launch.Durable);

        // Every later write fails at once, even with the store writable again: the master is stopping.
        _store.FailWrites = false;
        var commitsBefore = _store.Commits;
        var (_, later) = state.Submit(Build.Task("later"));
        Assert.Same(e, await Assert.ThrowsAsync<StateStoreUnavailableException>(() => later));
        Assert.Equal(commitsBefore, _store.Commits);

        var (tasks, agents) = await new MasterJournal(_store).LoadAsync(CancellationToken.None);
        Assert.Empty(tasks);
        Assert.Single(agents);
    }
}
