using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Drover.Core.Marathon;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Services;

/// <summary>Why an app change was refused.</summary>
internal enum AppChangeError
{
    None,
    NotFound,
    AlreadyExists,

    /// <summary>A deployment holds the app; retry with force.</summary>
    Locked,

    /// <summary>
    /// The app exists where the caller expected none, or is gone where it expected one: another change came between
    /// the caller's decision (what it authorized: create or update) and this write. Nothing changed; retry.
    /// </summary>
    Changed,
}

/// <summary>What a change expects of an app's existence, decided (and authorized) before the change is made.</summary>
internal enum AppExpectation
{
    /// <summary>Create or update, whichever applies (internal changes that need no authorization).</summary>
    Any,

    /// <summary>The app must not exist (a create).</summary>
    Absent,

    /// <summary>The app must exist (an update).</summary>
    Present,
}

/// <summary>
/// The services' desired state: every app's current definition, its version history, the deployment
/// rolling it out, and its launch backoff. Thread-safe (one lock). <see cref="ServiceController"/> makes the
/// instances match it.
/// <para>
/// Save first, then act. A change is decided against the <em>working</em> state (every change made so far,
/// saved or not, so changes queue behind each other in call order) and staged for the store; readers, the
/// controller and the events see only the <em>committed</em> state, which a change reaches once the store
/// accepted it. Staged changes go to the store in batches, one transaction each (one batch in flight at a time,
/// the next collecting meanwhile: group commit, at most <see cref="MaxWritesPerBatch"/> keys), so a batch is
/// applied whole or not at all. When a batch fails, it and every batch staged behind it (decided on top of it)
/// fail with <see cref="StateStoreUnavailableException"/> (answered 503), and the working state goes back to the
/// committed one: nothing of them was seen, announced (<see cref="Changed"/>, the event stream) or acted on.
/// Launch backoff is not persisted and changes in place.
/// </para>
/// <code>
///   Put/Delete/… ──▶ working state (decide) ──▶ staged batch ──▶ store ──ok──▶ committed state ──▶ Changed, events ──▶ Durable
///                                                                      └─fail─▶ working := committed; Durable fails (503)
/// </code>
/// </summary>
internal sealed partial class ServiceRegistry(IStateStore? store, TimeProvider time, ILogger<ServiceRegistry> logger)
{
    public const string AppPrefix = "/drover/apps";
    public const string GroupPrefix = "/drover/groups";
    public const int MaxVersions = 50;

    /// <summary>
    /// Kept versions of one app together hold at most this much definition JSON: the oldest go first, the current is
    /// always kept. With the field caps (docs/limits.md) one version can be several hundred KiB, so a count alone
    /// would let 50 large versions hold tens of MiB per app in memory and in the store.
    /// </summary>
    public const long MaxVersionBytes = 1024 * 1024;

    /// <summary>Serialized size per definition, computed once (definitions are immutable).</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<AppDefinition, object> VersionSizes = [];

    /// <summary>Most keys one store transaction of the registry holds (etcd refuses more than 128 operations in one).</summary>
    public const int MaxWritesPerBatch = 100;

    /// <summary>Most bytes one batch holds before a new one starts (etcd refuses requests over 1.5 MiB).</summary>
    private const int MaxBatchBytes = 1 << 20;

    private readonly Lock _lock = new();

    /// <summary>Working state: every change made, saved or not. Changes are decided against it.</summary>
    private readonly Dictionary<string, AppState> _apps = new(StringComparer.Ordinal);
    private Dictionary<string, GroupRecord> _groups = new(StringComparer.Ordinal);

    /// <summary>Committed state: what the store holds. Readers, the controller and the events see only this.</summary>
    private readonly Dictionary<string, AppRecord> _committed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GroupRecord> _committedGroups = new(StringComparer.Ordinal);

    /// <summary>Batches staged behind the one in flight, in call order.</summary>
    private readonly List<Batch> _staged = [];
    private bool _flushing;
    private Task _lastWrite = Task.CompletedTask;
    private DateTimeOffset _lastVersion;

    /// <summary>An app as committed: immutable.</summary>
    private sealed record AppRecord(AppDefinition Current, ImmutableArray<AppDefinition> Versions, Deployment? Deployment);

    /// <summary>Changes written as one store transaction; what to apply to the committed state and announce once it succeeded.</summary>
    private sealed class Batch
    {
        public Dictionary<string, byte[]?> Writes { get; } = new(StringComparer.Ordinal);

        public int Bytes { get; set; }

        public List<Action> Commit { get; } = [];

        public List<Action> Announce { get; } = [];

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Raised (outside the lock) after any change; the controller reconciles.</summary>
    public event Action? Changed;

    /// <summary>Raised (outside the lock) after <see cref="Put"/> accepted a definition through the API: the stored definition. For the event stream.</summary>
    public event Action<AppDefinition>? AppPut;

    /// <summary>Raised (outside the lock) when a deployment starts. For the event stream.</summary>
    public event Action<Deployment>? DeploymentStarted;

    /// <summary>Raised (outside the lock) when a deployment ends: finished (true), or cancelled or superseded with force (false). For the event stream.</summary>
    public event Action<Deployment, bool>? DeploymentEnded;

    /// <param name="ChangedApp">With <see cref="AppChangeError.Changed"/>: the app whose existence was not as expected.</param>
    public sealed record ChangeResult(AppChangeError Error, Deployment? Deployment, Task Durable, string? ConflictingDeployment = null, string? ChangedApp = null);

    /// <summary>
    /// Creates an app, or updates it (which starts a deployment). <paramref name="app"/> must be
    /// validated and defaulted. An update that only changes <c>instances</c> scales in place;
    /// anything else rolls the instances over to the new version. <paramref name="mustCreate"/>: an
    /// existing app is <see cref="AppChangeError.AlreadyExists"/>.
    /// </summary>
    public ChangeResult Put(AppDefinition app, bool mustCreate, bool force) =>
        Put(app, mustCreate ? AppExpectation.Absent : AppExpectation.Any, force);

    /// <summary>
    /// As <see cref="Put(AppDefinition, bool, bool)"/>, checking under the lock that the app's existence is what
    /// <paramref name="expect"/> says (what the caller was authorized for): <see cref="AppExpectation.Absent"/> on
    /// an existing app is <see cref="AppChangeError.AlreadyExists"/>, <see cref="AppExpectation.Present"/> on a
    /// missing one <see cref="AppChangeError.Changed"/>.
    /// </summary>
    public ChangeResult Put(AppDefinition app, AppExpectation expect, bool force)
    {
        Action? inline = null;
        ChangeResult result;
        Deployment? superseded;
        lock (_lock)
        {
            result = PutLocked(app, expect, force, planId: null, dependsOn: [], out superseded);

            if (result.Error == AppChangeError.None)
            {
                inline = AnnounceLocked(() =>
                {
                    Changed?.Invoke();
                    AppPut?.Invoke(result.Deployment!.To!);
                    RaiseDeploymentEvents(superseded, result.Deployment);
                });
            }
        }

        inline?.Invoke();
        return result;
    }

    /// <summary>
    /// Applies a whole group change as one deployment plan (one id): puts every app in
    /// <paramref name="apps"/> (each waiting for the apps it depends on) and deletes
    /// <paramref name="remove"/>. All or nothing: if any app is locked by another deployment and
    /// <paramref name="force"/> is off, nothing changes. <paramref name="expected"/> (app id → whether it must
    /// exist) holds what the caller was authorized for (create or update); an app whose existence differs fails
    /// the whole plan with <see cref="AppChangeError.Changed"/>, checked under the same lock as the write.
    /// </summary>
    public ChangeResult PutPlan(IReadOnlyList<(AppDefinition App, ImmutableArray<string> DependsOn)> apps, IReadOnlyList<string> remove, bool force,
        IReadOnlyDictionary<string, bool>? expected = null)
    {
        Action? inline = null;
        var started = new List<(Deployment? Superseded, Deployment Started, AppDefinition? Put)>();
        var planId = Guid.NewGuid().ToString();
        Deployment? first = null;
        Task durable;
        lock (_lock)
        {
            foreach (var id in apps.Select(a => a.App.Id!).Concat(remove))
            {
                if (_apps.TryGetValue(id, out var locked) && locked.Deployment is { } running && !force)
                {
                    return new ChangeResult(AppChangeError.Locked, null, _lastWrite, running.Id);
                }
            }

            foreach (var (id, mustExist) in expected ?? ImmutableDictionary<string, bool>.Empty)
            {
                if (_apps.ContainsKey(id) != mustExist)
                {
                    return new ChangeResult(AppChangeError.Changed, null, _lastWrite, ChangedApp: id);
                }
            }

            foreach (var (app, dependsOn) in apps)
            {
                var r = PutLocked(app, AppExpectation.Any, force: true, planId, dependsOn, out var superseded);
                started.Add((superseded, r.Deployment!, r.Deployment!.To));
                first ??= r.Deployment;
            }

            foreach (var id in remove)
            {
                if (_apps.TryGetValue(id, out var state))
                {
                    var superseded = state.Deployment;
                    state.Deployment = NewDeployment(id, state.Current, null, DeploymentActions.Stop) with { Id = planId };
                    SaveLocked(state);
                    started.Add((superseded, state.Deployment, null));
                    first ??= state.Deployment;
                }
            }

            durable = _lastWrite;
            inline = AnnounceLocked(() =>
            {
                Changed?.Invoke();
                foreach (var (superseded, dep, put) in started)
                {
                    if (put is not null)
                    {
                        AppPut?.Invoke(put);
                    }

                    RaiseDeploymentEvents(superseded, dep);
                }
            });
        }

        inline?.Invoke();
        return new ChangeResult(AppChangeError.None, first, durable);
    }

    private ChangeResult PutLocked(AppDefinition app, AppExpectation expect, bool force, string? planId, ImmutableArray<string> dependsOn, out Deployment? superseded)
    {
        superseded = null;
        var id = app.Id!;
        _apps.TryGetValue(id, out var existing);
        if (existing is not null && expect == AppExpectation.Absent)
        {
            return new ChangeResult(AppChangeError.AlreadyExists, null, _lastWrite, ChangedApp: id);
        }

        if (existing is null && expect == AppExpectation.Present)
        {
            return new ChangeResult(AppChangeError.Changed, null, _lastWrite, ChangedApp: id);
        }

        if (existing?.Deployment is { } running && !force)
        {
            return new ChangeResult(AppChangeError.Locked, null, _lastWrite, running.Id);
        }

        var version = NextVersionLocked();
        var versioned = app with { Version = version, VersionInfo = new VersionInfo { LastConfigChangeAt = version, LastScalingAt = version } };
        if (existing is null)
        {
            var state = new AppState(versioned);
            _apps[id] = state;
            _backoff.Remove(id);
            state.Deployment = NewDeployment(id, null, versioned, DeploymentActions.Start) with { Id = planId ?? Guid.NewGuid().ToString(), DependsOn = dependsOn };
            SaveLocked(state);
            return new ChangeResult(AppChangeError.None, state.Deployment, _lastWrite);
        }

        var action = SameExceptScale(existing.Current, versioned) ? DeploymentActions.Scale : DeploymentActions.Restart;
        if (action == DeploymentActions.Scale)
        {
            // As in Marathon, a scale is a new version but not a new configuration: running
            // instances (matched on lastConfigChangeAt) stay where they are.
            versioned = versioned with { VersionInfo = new VersionInfo { LastConfigChangeAt = ConfigVersion(existing.Current), LastScalingAt = version } };
        }

        var from = existing.Deployment?.From ?? existing.Current;
        superseded = existing.Deployment;
        existing.Current = versioned;
        AddVersion(existing, versioned);
        existing.Deployment = NewDeployment(id, from, versioned, action) with { Id = planId ?? Guid.NewGuid().ToString(), DependsOn = dependsOn };
        SaveLocked(existing, resetBackoff: true);
        return new ChangeResult(AppChangeError.None, existing.Deployment, _lastWrite);
    }

    /// <summary>Ids of every app under <paramref name="groupId"/> (the group itself excluded).</summary>
    /// <summary>
    /// Records groups' own settings (ids and dependencies), first forgetting <paramref name="removeUnder"/>
    /// and every group below it when given. Returns the version given to the groups and a task that
    /// completes once the change is durable. <paramref name="version"/> (a deployment's) is used when given.
    /// </summary>
    public (string Version, Task Durable) PutGroups(IReadOnlyList<(string Id, ImmutableArray<string> Dependencies)> groups, string? removeUnder, string? version)
    {
        lock (_lock)
        {
            version ??= NextVersionLocked();
            if (removeUnder is not null)
            {
                foreach (var id in _groups.Keys.Where(g => g == removeUnder || IsUnder(g, removeUnder)).ToList())
                {
                    _groups.Remove(id);
                    StageLocked(GroupPrefix + id, null, () => _committedGroups.Remove(id));
                }
            }

            foreach (var (id, dependencies) in groups)
            {
                var record = new GroupRecord { Id = id, Dependencies = dependencies, Version = version };
                _groups[id] = record;
                StageLocked(GroupPrefix + id, JsonSerializer.SerializeToUtf8Bytes(record, ServicesJsonContext.Default.GroupRecord), () => _committedGroups[id] = record);
            }

            return (version, _lastWrite);
        }
    }

    /// <summary>Every group created through the groups API, with its own settings (as committed).</summary>
    public List<GroupRecord> ListGroups()
    {
        lock (_lock)
        {
            return [.. _committedGroups.Values];
        }
    }

    private static bool IsUnder(string id, string groupId) =>
        groupId == "/" || id.StartsWith(groupId.TrimEnd('/') + "/", StringComparison.Ordinal);

    public List<string> AppsUnder(string groupId)
    {
        var prefix = groupId.TrimEnd('/') + "/";
        lock (_lock)
        {
            return [.. _committed.Keys.Where(id => id.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>True while any app of the plan <paramref name="deploymentId"/> among <paramref name="appIds"/> is still deploying.</summary>
    public bool AnyDeploying(string deploymentId, IEnumerable<string> appIds)
    {
        lock (_lock)
        {
            return appIds.Any(id => _committed.TryGetValue(id, out var s) && s.Deployment?.Id == deploymentId);
        }
    }

    /// <summary>Rolls every instance over to a fresh version of the same definition.</summary>
    public ChangeResult Restart(string appId, bool force)
    {
        AppDefinition current;
        lock (_lock)
        {
            if (!_apps.TryGetValue(appId, out var state))
            {
                return new ChangeResult(AppChangeError.NotFound, null, _lastWrite);
            }

            current = state.Current;
        }

        return PutRestart(appId, current, force);
    }

    private ChangeResult PutRestart(string appId, AppDefinition definition, bool force)
    {
        Action? inline = null;
        ChangeResult result;
        Deployment? superseded;
        lock (_lock)
        {
            if (!_apps.TryGetValue(appId, out var state))
            {
                return new ChangeResult(AppChangeError.NotFound, null, _lastWrite); // removed (or rolled back) since it was read
            }

            if (state.Deployment is { } running && !force)
            {
                return new ChangeResult(AppChangeError.Locked, null, _lastWrite, running.Id);
            }

            superseded = state.Deployment;
            var from = state.Current;
            var version = NextVersionLocked();
            var versioned = definition with { Version = version, VersionInfo = new VersionInfo { LastConfigChangeAt = version, LastScalingAt = version } };
            state.Current = versioned;
            AddVersion(state, versioned);
            state.Deployment = NewDeployment(appId, from, versioned, DeploymentActions.Restart);
            SaveLocked(state);
            result = new ChangeResult(AppChangeError.None, state.Deployment, _lastWrite);
            inline = AnnounceLocked(() =>
            {
                Changed?.Invoke();
                RaiseDeploymentEvents(superseded, result.Deployment);
            });
        }

        inline?.Invoke();
        return result;
    }

    /// <summary>Starts deleting an app: its instances are killed, then the app is removed.</summary>
    public ChangeResult Delete(string appId, bool force)
    {
        Action? inline = null;
        ChangeResult result;
        Deployment? superseded;
        lock (_lock)
        {
            if (!_apps.TryGetValue(appId, out var state))
            {
                return new ChangeResult(AppChangeError.NotFound, null, _lastWrite);
            }

            if (state.Deployment is { Action: not DeploymentActions.Stop } running && !force)
            {
                return new ChangeResult(AppChangeError.Locked, null, _lastWrite, running.Id);
            }

            superseded = state.Deployment;
            state.Deployment = NewDeployment(appId, state.Current, null, DeploymentActions.Stop);
            SaveLocked(state);
            result = new ChangeResult(AppChangeError.None, state.Deployment, _lastWrite);
            inline = AnnounceLocked(() =>
            {
                Changed?.Invoke();
                RaiseDeploymentEvents(superseded, result.Deployment);
            });
        }

        inline?.Invoke();
        return result;
    }

    /// <summary>
    /// <c>DELETE /v2/deployments/{id}</c>: without force, roll back (deploy what the app was before);
    /// with force, just stop the deployment and leave the instances as they are.
    /// </summary>
    public ChangeResult CancelDeployment(string deploymentId, bool force)
    {
        Action? inline = null;
        var events = new List<(Deployment Cancelled, Deployment? Rollback)>();
        Deployment? first = null;
        Task durable;
        lock (_lock)
        {
            var states = _apps.Values.Where(a => a.Deployment?.Id == deploymentId).ToList();
            if (states.Count == 0)
            {
                return new ChangeResult(AppChangeError.NotFound, null, _lastWrite);
            }

            // A plan (one app, or every app of a group change) is rolled back as one new plan.
            var rollbackId = Guid.NewGuid().ToString();
            foreach (var state in states)
            {
                var dep = state.Deployment!;
                var appId = dep.AppId;
                Deployment? rollback;
                if (force)
                {
                    rollback = null; // stop where it is; a stopped delete keeps the app
                }
                else if (dep.From is null)
                {
                    // Rolling back the creation of an app deletes it.
                    rollback = NewDeployment(appId, state.Current, null, DeploymentActions.Stop) with { Id = rollbackId };
                }
                else
                {
                    var version = NextVersionLocked();
                    var action = dep.To is not null && SameExceptScale(dep.To, dep.From) ? DeploymentActions.Scale : DeploymentActions.Restart;
                    var back = dep.From with
                    {
                        Version = version,
                        VersionInfo = new VersionInfo
                        {
                            // Going back to the old configuration restarts onto it, unless only the scale differed.
                            LastConfigChangeAt = action == DeploymentActions.Scale ? ConfigVersion(state.Current) : version,
                            LastScalingAt = version,
                        },
                    };

                    state.Current = back;
                    AddVersion(state, back);
                    rollback = NewDeployment(appId, dep.To, back, action) with { Id = rollbackId };
                }

                state.Deployment = rollback;
                SaveLocked(state);
                events.Add((dep, rollback));
                first ??= rollback;
            }

            durable = _lastWrite;
            inline = AnnounceLocked(() =>
            {
                Changed?.Invoke();
                foreach (var (cancelled, rollback) in events)
                {
                    RaiseDeploymentEvents(cancelled, rollback);
                }
            });
        }

        inline?.Invoke();
        return new ChangeResult(AppChangeError.None, first, durable);
    }

    /// <summary>Marks the app's deployment finished (called by the controller). Removes a deleted app.</summary>
    public void FinishDeployment(string appId, string deploymentId)
    {
        Action? inline = null;
        Deployment finished;
        lock (_lock)
        {
            if (!_apps.TryGetValue(appId, out var state) || state.Deployment?.Id != deploymentId)
            {
                return;
            }

            var dep = state.Deployment;
            finished = dep;
            state.Deployment = null;
            if (dep.Action == DeploymentActions.Stop)
            {
                _apps.Remove(appId);
                StageLocked(Key(appId), null, () =>
                {
                    _committed.Remove(appId);
                    _backoff.Remove(appId);
                });
            }
            else
            {
                SaveLocked(state);
            }

            LogDeploymentFinished(dep.Id, appId, dep.Action);
            inline = AnnounceLocked(() =>
            {
                Changed?.Invoke();
                DeploymentEnded?.Invoke(finished, true);
            });
        }

        inline?.Invoke();
    }

    /// <summary>Records an instance that ended without being asked to; sets the launch delay.</summary>
    public void RecordFailure(string appId, LastTaskFailure failure)
    {
        lock (_lock)
        {
            if (!_committed.TryGetValue(appId, out var committed))
            {
                return;
            }

            var state = Backoff(appId);
            state.Failures++;
            state.LastFailure = failure;
            var app = committed.Current;
            var delay = (app.BackoffSeconds ?? AppDefinition.DefaultBackoffSeconds)
                * Math.Pow((double)(app.BackoffFactor ?? AppDefinition.DefaultBackoffFactor), state.Failures - 1);
            delay = Math.Min(delay, app.MaxLaunchDelaySeconds ?? AppDefinition.DefaultMaxLaunchDelaySeconds);
            state.DelayedUntil = time.GetUtcNow() + TimeSpan.FromSeconds(delay);
            LogBackoff(appId, state.Failures, delay);
        }
    }

    /// <summary>An instance became healthy: the app is launching fine again.</summary>
    public void RecordHealthy(string appId)
    {
        lock (_lock)
        {
            if (_backoff.TryGetValue(appId, out var state) && state.Failures > 0)
            {
                state.Failures = 0;
                state.DelayedUntil = null;
            }
        }
    }

    /// <summary><c>DELETE /v2/queue/{app}/delay</c>.</summary>
    public bool ResetDelay(string appId)
    {
        lock (_lock)
        {
            if (!_committed.ContainsKey(appId))
            {
                return false;
            }

            var state = Backoff(appId);
            state.Failures = 0;
            state.DelayedUntil = null;
        }

        Changed?.Invoke();
        return true;
    }

    /// <summary>A consistent copy of one app for readers (API, controller).</summary>
    public AppSnapshot? Get(string appId)
    {
        lock (_lock)
        {
            return _committed.TryGetValue(appId, out var s) ? SnapshotLocked(s) : null;
        }
    }

    public List<AppSnapshot> List()
    {
        lock (_lock)
        {
            return [.. _committed.Values.OrderBy(a => a.Current.Id, StringComparer.Ordinal).Select(SnapshotLocked)];
        }
    }

    public Task LastWrite
    {
        get
        {
            lock (_lock)
            {
                return _lastWrite;
            }
        }
    }

    private AppSnapshot SnapshotLocked(AppRecord r)
    {
        var backoff = _backoff.GetValueOrDefault(r.Current.Id!);
        return new(r.Current, r.Versions, r.Deployment, backoff?.DelayedUntil, backoff?.LastFailure);
    }

    /// <summary>Launch backoff per app (not persisted: a restarted master launches at once, as Marathon's does).</summary>
    private readonly Dictionary<string, AppBackoff> _backoff = new(StringComparer.Ordinal);

    private AppBackoff Backoff(string appId)
    {
        if (!_backoff.TryGetValue(appId, out var b))
        {
            _backoff[appId] = b = new AppBackoff();
        }

        return b;
    }

    // ------------------------------------------------------------------ persistence

    public async Task LoadAsync(CancellationToken ct)
    {
        if (store is null)
        {
            return;
        }

        foreach (var e in await store.ListAsync(GroupPrefix, ct).ConfigureAwait(false))
        {
            var group = JsonSerializer.Deserialize(e.Value, ServicesJsonContext.Default.GroupRecord)!;
            lock (_lock)
            {
                _groups[group.Id] = group;
                _committedGroups[group.Id] = group;
            }
        }

        foreach (var e in await store.ListAsync(AppPrefix + "/", ct).ConfigureAwait(false))
        {
            var p = JsonSerializer.Deserialize(e.Value, ServicesJsonContext.Default.PersistedApp)!;
            var current = Parse(p.Current);
            var state = new AppState(current);
            state.Versions.Clear();
            state.Versions.AddRange(p.Versions.Select(Parse));
            if (p.Deployment is { } d)
            {
                state.Deployment = new Deployment
                {
                    Id = d.Id,
                    AppId = current.Id!,
                    Action = d.Action,
                    From = d.From is null ? null : Parse(d.From),
                    To = d.To is null ? null : Parse(d.To),
                    StartedAt = d.StartedAt,
                    DependsOn = d.DependsOn,
                };
            }

            lock (_lock)
            {
                _apps[current.Id!] = state;
                _committed[current.Id!] = Record(state);
                var v = DateTimeOffset.Parse(current.Version!, CultureInfo.InvariantCulture);
                _lastVersion = v > _lastVersion ? v : _lastVersion;
            }
        }

        Changed?.Invoke();
    }

    private static AppDefinition Parse(string json) =>
        MarathonJson.TryParseApp(json, out var app, out var error) ? app : throw new InvalidDataException($"stored app does not parse: {error?.Message}");

    private static AppRecord Record(AppState state) => new(state.Current, [.. state.Versions], state.Deployment);

    /// <summary>Stages the app's record as it is now; once saved, the committed state takes it (and a reset launch backoff).</summary>
    private void SaveLocked(AppState state, bool resetBackoff = false)
    {
        var record = Record(state);
        var id = record.Current.Id!;
        byte[]? value = null;
        if (store is not null)
        {
            var d = record.Deployment;
            var persisted = new PersistedApp
            {
                Current = MarathonJson.Serialize(record.Current),
                Versions = [.. record.Versions.Select(MarathonJson.Serialize)],
                Deployment = d is null ? null : new PersistedDeployment
                {
                    Id = d.Id,
                    Action = d.Action,
                    From = d.From is null ? null : MarathonJson.Serialize(d.From),
                    To = d.To is null ? null : MarathonJson.Serialize(d.To),
                    StartedAt = d.StartedAt,
                    DependsOn = d.DependsOn,
                },
            };
            value = JsonSerializer.SerializeToUtf8Bytes(persisted, ServicesJsonContext.Default.PersistedApp);
        }

        StageLocked(Key(id), value, () =>
        {
            _committed[id] = record;
            if (resetBackoff)
            {
                _backoff.Remove(id);
            }
        });
    }

    /// <summary>
    /// Stages one key's write (null: delete) and what the committed state does once it is saved. Without a store it
    /// is committed at once. <see cref="_lastWrite"/> becomes the task of the batch holding it.
    /// </summary>
    private void StageLocked(string key, byte[]? value, Action commit)
    {
        if (store is null)
        {
            commit();
            return;
        }

        var size = key.Length + (value?.Length ?? 0);
        var batch = _staged.Count > 0 ? _staged[^1] : null;
        if (batch is null
            || (!batch.Writes.ContainsKey(key) && (batch.Writes.Count >= MaxWritesPerBatch || (batch.Bytes + size > MaxBatchBytes && batch.Writes.Count > 0))))
        {
            batch = new Batch();
            _staged.Add(batch);
        }

        batch.Writes[key] = value; // a later change of the same key replaces the earlier one
        batch.Bytes += size;
        batch.Commit.Add(commit);
        _lastWrite = batch.Done.Task;
        if (!_flushing)
        {
            _flushing = true;
            _ = Task.Run(FlushLoopAsync);
        }
    }

    /// <summary>
    /// What to raise once the change just staged is saved: attached to the batch holding its last write. Without a
    /// store the change is already committed, and a change that wrote nothing (an empty plan) has nothing to wait for:
    /// the caller raises the returned action as soon as it leaves the lock. (The lock is held from the change's first
    /// write to this call, so its batch is still staged.)
    /// </summary>
    private Action? AnnounceLocked(Action announce)
    {
        if (store is null || _staged.Count == 0)
        {
            return announce;
        }

        _staged[^1].Announce.Add(announce);
        return null;
    }

    /// <summary>Writes the staged batches one at a time, each as one transaction; see the class summary.</summary>
    private async Task FlushLoopAsync()
    {
        while (true)
        {
            Batch batch;
            lock (_lock)
            {
                if (_staged.Count == 0)
                {
                    _flushing = false;
                    return;
                }

                batch = _staged[0];
                _staged.RemoveAt(0);
            }

            try
            {
                await store!.CommitAsync(new Transaction { Writes = [.. batch.Writes.Select(w => new WriteOp(w.Key, w.Value))] }).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // A failed write fails its changes and every one staged behind it; the caller answers 503.
            catch (Exception e)
#pragma warning restore CA1031
            {
                var failure = e as StateStoreUnavailableException
                    ?? new StateStoreUnavailableException($"the app change could not be saved: {e.Message}", outcomeUnknown: true, e);
                List<Batch> behind;
                lock (_lock)
                {
                    behind = [.. _staged];
                    _staged.Clear();
                    _flushing = false;
                    RollBackLocked();
                    _lastWrite = Task.CompletedTask;
                }

                LogWriteFailed(batch.Writes.Count + behind.Sum(b => b.Writes.Count), failure.Message);
                batch.Done.TrySetException(failure);
                foreach (var b in behind)
                {
                    b.Done.TrySetException(failure);
                }

                return;
            }

            lock (_lock)
            {
                foreach (var commit in batch.Commit)
                {
                    commit();
                }
            }

            foreach (var announce in batch.Announce)
            {
                announce();
            }

            batch.Done.TrySetResult();
        }
    }

    /// <summary>The working state goes back to the committed one: every unsaved change is forgotten.</summary>
    private void RollBackLocked()
    {
        foreach (var id in _apps.Keys.Where(id => !_committed.ContainsKey(id)).ToList())
        {
            _apps.Remove(id);
        }

        foreach (var (id, record) in _committed)
        {
            var state = new AppState(record.Current) { Deployment = record.Deployment };
            state.Versions.Clear();
            state.Versions.AddRange(record.Versions);
            _apps[id] = state;
        }

        _groups = new Dictionary<string, GroupRecord>(_committedGroups, StringComparer.Ordinal);
    }

    private static string Key(string appId) => AppPrefix + appId;

    private void RaiseDeploymentEvents(Deployment? ended, Deployment? started)
    {
        if (ended is not null)
        {
            DeploymentEnded?.Invoke(ended, false);
        }

        if (started is not null)
        {
            DeploymentStarted?.Invoke(started);
        }
    }

    // ------------------------------------------------------------------ helpers

    private Deployment NewDeployment(string appId, AppDefinition? from, AppDefinition? to, string action)
    {
        var dep = new Deployment { Id = Guid.NewGuid().ToString(), AppId = appId, From = from, To = to, Action = action, StartedAt = time.GetUtcNow() };
        LogDeploymentStarted(dep.Id, appId, action);
        return dep;
    }

    /// <summary>Versions are ISO-8601 timestamps, strictly increasing even within one millisecond.</summary>
    private string NextVersionLocked()
    {
        var now = time.GetUtcNow();
        _lastVersion = now > _lastVersion ? now : _lastVersion.AddMilliseconds(1);
        return _lastVersion.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
    }

    private static void AddVersion(AppState state, AppDefinition version)
    {
        state.Versions.Add(version);
        if (state.Versions.Count > MaxVersions)
        {
            state.Versions.RemoveAt(0);
        }

        var bytes = state.Versions.Sum(SizeOf);
        while (bytes > MaxVersionBytes && state.Versions.Count > 1)
        {
            bytes -= SizeOf(state.Versions[0]);
            state.Versions.RemoveAt(0);
        }
    }

    /// <summary>The UTF-8 size of a definition as kept in the store.</summary>
    internal static long SizeOf(AppDefinition version) =>
        (long)VersionSizes.GetValue(version, v => (long)System.Text.Encoding.UTF8.GetByteCount(MarathonJson.Serialize(v)));

    /// <summary>
    /// The version of an app's configuration (Marathon's <c>versionInfo.lastConfigChangeAt</c>): what an
    /// instance runs. A scale changes <c>version</c> but not this, so it restarts nothing.
    /// </summary>
    public static string ConfigVersion(AppDefinition app) => app.VersionInfo?.LastConfigChangeAt ?? app.Version ?? "";

    /// <summary>True when the two definitions differ at most in instance count (and version).</summary>
    private static bool SameExceptScale(AppDefinition a, AppDefinition b) =>
        MarathonJson.Serialize(a with { Instances = 0, Version = null, VersionInfo = null })
        == MarathonJson.Serialize(b with { Instances = 0, Version = null, VersionInfo = null });

    [LoggerMessage(Level = LogLevel.Information, Message = "Deployment {DeploymentId} started for {AppId}: {Action}")]
    private partial void LogDeploymentStarted(string deploymentId, string appId, string action);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deployment {DeploymentId} of {AppId} finished ({Action})")]
    private partial void LogDeploymentFinished(string deploymentId, string appId, string action);

    [LoggerMessage(Level = LogLevel.Warning, Message = "App changes not saved ({Keys} keys): {Reason}; they are forgotten and their callers answered 503")]
    private partial void LogWriteFailed(int keys, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "App {AppId}: {Failures} failed instances in a row; next launch in {Delay:F1} s")]
    private partial void LogBackoff(string appId, int failures, double delay);
}

/// <summary>An immutable copy of one app's service state.</summary>
internal sealed record AppSnapshot(AppDefinition Current, IReadOnlyList<AppDefinition> Versions, Deployment? Deployment, DateTimeOffset? DelayedUntil, LastTaskFailure? LastFailure)
{
    public AppDefinition? Version(string? version) => version is null ? null : Versions.LastOrDefault(v => v.Version == version);
}
