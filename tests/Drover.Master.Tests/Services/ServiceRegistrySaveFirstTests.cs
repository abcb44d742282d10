using System.Collections.Immutable;
using Drover.Core.Marathon;
using Drover.Master.Services;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Services;

/// <summary>
/// Save first, then act (issue 14): a registry change reaches readers, the controller and the event stream only
/// once the store accepted it; a refused write is answered as unavailable and leaves no trace, in memory or in the
/// store. The store is the real SQLite store behind <see cref="FailingStateStore"/>, which refuses or holds writes.
/// </summary>
public sealed class ServiceRegistrySaveFirstTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-savefirst-").FullName;
    private readonly ManualTimeProvider _time = new();
    private FailingStateStore _store = null!;
    private ServiceRegistry _registry = null!;
    private readonly List<string> _events = [];

    public Task InitializeAsync()
    {
        _store = new FailingStateStore(SqliteStateStore.Open(Path.Combine(_dir, "state.db"), _time));
        _registry = NewRegistry(_store);
        _registry.Changed += () => Record("changed");
        _registry.AppPut += a => Record("app " + a.Id);
        _registry.DeploymentStarted += d => Record($"started {d.AppId} {d.Action}");
        _registry.DeploymentEnded += (d, done) => Record($"ended {d.AppId} {d.Action}");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _store.ReleaseWrites();
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private ServiceRegistry NewRegistry(IStateStore store) => new(store, _time, NullLogger<ServiceRegistry>.Instance);

    private void Record(string e)
    {
        lock (_events)
        {
            _events.Add(e);
        }
    }

    private List<string> Events()
    {
        lock (_events)
        {
            return [.. _events];
        }
    }

    private static AppDefinition App(string id, string cmd = "sleep 600", int instances = 1) =>
        MarathonJson.TryParseApp($$"""{"id": "{{id}}", "cmd": "{{cmd}}", "cpus": 0.1, "mem": 32, "instances": {{instances}}}""", out var app, out var error)
            ? app.WithDefaults()
            : throw new ArgumentException(error.Message);

    /// <summary>What a master restarted on this store would load.</summary>
    private async Task<ServiceRegistry> ReloadedAsync()
    {
        var reloaded = NewRegistry(_store);
        await reloaded.LoadAsync(CancellationToken.None);
        return reloaded;
    }

    [Fact]
    public async Task Put_StoreRefusesTheWrite_UnavailableAppNeitherListedNorAnnouncedNorStored()
    {
        _store.FailWrites = true;

        var result = _registry.Put(App("/ghost", instances: 3), mustCreate: true, force: false);

        Assert.Equal(AppChangeError.None, result.Error); // decided; not yet saved
        var e = await Assert.ThrowsAsync<StateStoreUnavailableException>(() => result.Durable);
        Assert.False(e.OutcomeUnknown);
        Assert.Null(_registry.Get("/ghost"));
        Assert.Empty(_registry.List());
        Assert.Empty(Events()); // no controller pass, no event-stream publication
        Assert.Null((await ReloadedAsync()).Get("/ghost"));

        // Forgotten in the working state too: creating it again is a create, not "already exists".
        _store.FailWrites = false;
        var again = _registry.Put(App("/ghost"), mustCreate: true, force: false);
        Assert.Equal(AppChangeError.None, again.Error);
        await again.Durable;
        Assert.Equal(1, _registry.Get("/ghost")!.Current.Instances);
        Assert.Equal(["changed", "app /ghost", "started /ghost StartApplication"], Events());
    }

    [Fact]
    public async Task Put_WhileTheWriteIsInFlight_InvisibleUntilSavedThenListedAndAnnouncedOnce()
    {
        _store.HoldWrites();

        var result = _registry.Put(App("/slow"), mustCreate: true, force: false);
        await Wait.UntilAsync(() => Task.FromResult(_store.Waiting), n => n == 1, TimeSpan.FromSeconds(10), "the write reaches the store");

        Assert.Null(_registry.Get("/slow"));
        Assert.Empty(_registry.AppsUnder("/"));
        Assert.Empty(Events());
        Assert.False(result.Durable.IsCompleted);

        _store.ReleaseWrites();
        await result.Durable;

        Assert.NotNull(_registry.Get("/slow"));
        Assert.Equal(["changed", "app /slow", "started /slow StartApplication"], Events());
    }

    [Fact]
    public async Task Update_RefusedWithAnotherChangeQueuedBehind_BothFailPreviousDefinitionKeptEverywhere()
    {
        var created = _registry.Put(App("/svc", "sleep 600", instances: 2), mustCreate: true, force: false);
        await created.Durable;
        _registry.FinishDeployment("/svc", created.Deployment!.Id);
        await _registry.LastWrite;
        var before = _registry.Get("/svc")!;
        var eventsBefore = Events().Count;

        // The update goes to the store and waits there; a scale is decided on top of it and queued behind.
        _store.HoldWrites();
        var update = _registry.Put(App("/svc", "sleep 700", instances: 2), mustCreate: false, force: true);
        await Wait.UntilAsync(() => Task.FromResult(_store.Waiting), n => n == 1, TimeSpan.FromSeconds(10), "the update reaches the store");
        var scale = _registry.Put(App("/svc", "sleep 700", instances: 5), mustCreate: false, force: true);
        Assert.Equal(AppChangeError.None, scale.Error);
        _store.FailWrites = true;
        _store.ReleaseWrites();

        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => update.Durable);
        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => scale.Durable);

        foreach (var view in new[] { _registry.Get("/svc")!, (await ReloadedAsync()).Get("/svc")! })
        {
            Assert.Equal("sleep 600", view.Current.Cmd);
            Assert.Equal(2, view.Current.Instances);
            Assert.Equal(before.Current.Version, view.Current.Version);
            Assert.Equal(before.Versions.Count, view.Versions.Count);
            Assert.Null(view.Deployment);
        }

        Assert.Equal(eventsBefore, Events().Count);

        // The working state went back too: the next change starts from the saved definition, not the refused one.
        _store.FailWrites = false;
        var next = _registry.Put(App("/svc", "sleep 600", instances: 3), mustCreate: false, force: false);
        Assert.Equal(AppChangeError.None, next.Error);
        await next.Durable;
        Assert.Equal(DeploymentActions.Scale, next.Deployment!.Action); // only the count differs from what was saved
    }

    [Fact]
    public async Task DeleteAndFinish_StoreRefuses_AppStaysWithItsDeploymentAsSaved()
    {
        var created = _registry.Put(App("/keep"), mustCreate: true, force: false);
        await created.Durable;
        _registry.FinishDeployment("/keep", created.Deployment!.Id);
        await _registry.LastWrite;
        var delete = _registry.Delete("/keep", force: false);
        await delete.Durable;

        _store.FailWrites = true;
        _registry.FinishDeployment("/keep", delete.Deployment!.Id); // the controller saw every instance gone
        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => _registry.LastWrite);

        // Not removed: the stop deployment is still there for the controller to finish once the store takes writes.
        Assert.Equal(delete.Deployment.Id, _registry.Get("/keep")!.Deployment!.Id);
        Assert.DoesNotContain("ended /keep StopApplication", Events());
        Assert.NotNull((await ReloadedAsync()).Get("/keep"));

        _store.FailWrites = false;
        _registry.FinishDeployment("/keep", delete.Deployment.Id);
        await _registry.LastWrite;
        Assert.Null(_registry.Get("/keep"));
        Assert.Null((await ReloadedAsync()).Get("/keep"));
    }

    [Fact]
    public async Task PutPlanAndGroups_StoreRefuses_NoAppNoGroupAnywhere()
    {
        _store.FailWrites = true;

        var plan = _registry.PutPlan([(App("/g/a"), ImmutableArray<string>.Empty), (App("/g/b"), ["/g/a"])], [], force: false);
        var (_, groups) = _registry.PutGroups([("/g", ImmutableArray<string>.Empty)], removeUnder: null, plan.Deployment!.Version);

        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => plan.Durable);
        await Assert.ThrowsAsync<StateStoreUnavailableException>(() => groups);
        Assert.Empty(_registry.List());
        Assert.Empty(_registry.ListGroups());
        Assert.Empty(Events());
        var reloaded = await ReloadedAsync();
        Assert.Empty(reloaded.List());
        Assert.Empty(reloaded.ListGroups());
    }
}
