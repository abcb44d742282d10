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
/// rolling it out, and its launch backoff. Thread-safe (one lock); every change is written to the state
/// store before the call returns its durable task, in the order the changes were made.
/// <see cref="ServiceController"/> makes the instances match it.
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

    private readonly Lock _lock = new();
    private readonly Dictionary<string, AppState> _apps = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GroupRecord> _groups = new(StringComparer.Ordinal);
    private Task _lastWrite = Task.CompletedTask;
    private DateTimeOffset _lastVersion;

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
        ChangeResult result;
        Deployment? superseded;
        lock (_lock)
        {
            result = PutLocked(app, expect, force, planId: null, dependsOn: [], out superseded);
        }

        if (result.Error != AppChangeError.None)
        {
            return result;
        }

        Changed?.Invoke();
        AppPut?.Invoke(result.Deployment!.To!);
        RaiseDeploymentEvents(superseded, result.Deployment);
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
        }

        Changed?.Invoke();
        foreach (var (superseded, dep, put) in started)
        {
            if (put is not null)
            {
                AppPut?.Invoke(put);
            }

            RaiseDeploymentEvents(superseded, dep);
        }

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
        existing.Failures = 0;
        existing.DelayedUntil = null;
        SaveLocked(existing);
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
            var writes = new List<WriteOp>();
            if (removeUnder is not null)
            {
                foreach (var id in _groups.Keys.Where(g => g == removeUnder || IsUnder(g, removeUnder)).ToList())
                {
                    _groups.Remove(id);
                    writes.Add(WriteOp.Delete(GroupPrefix + id));
                }
            }

            foreach (var (id, dependencies) in groups)
            {
                var record = new GroupRecord { Id = id, Dependencies = dependencies, Version = version };
                _groups[id] = record;
                writes.Add(WriteOp.Put(GroupPrefix + id, JsonSerializer.SerializeToUtf8Bytes(record, ServicesJsonContext.Default.GroupRecord)));
            }

            if (store is not null && writes.Count > 0)
            {
                _lastWrite = store.CommitAsync(new Transaction { Writes = [.. writes] });
            }

            return (version, _lastWrite);
        }
    }

    /// <summary>Every group created through the groups API, with its own settings.</summary>
    public List<GroupRecord> ListGroups()
    {
        lock (_lock)
        {
            return [.. _groups.Values];
        }
    }

    private static bool IsUnder(string id, string groupId) =>
        groupId == "/" || id.StartsWith(groupId.TrimEnd('/') + "/", StringComparison.Ordinal);

    public List<string> AppsUnder(string groupId)
    {
        var prefix = groupId.TrimEnd('/') + "/";
        lock (_lock)
        {
            return [.. _apps.Keys.Where(id => id.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>True while any app of the plan <paramref name="deploymentId"/> among <paramref name="appIds"/> is still deploying.</summary>
    public bool AnyDeploying(string deploymentId, IEnumerable<string> appIds)
    {
        lock (_lock)
        {
            return appIds.Any(id => _apps.TryGetValue(id, out var s) && s.Deployment?.Id == deploymentId);
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
        ChangeResult result;
        Deployment? superseded;
        lock (_lock)
        {
            var state = _apps[appId];
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
        }

        Changed?.Invoke();
        RaiseDeploymentEvents(superseded, result.Deployment);
        return result;
    }

    /// <summary>Starts deleting an app: its instances are killed, then the app is removed.</summary>
    public ChangeResult Delete(string appId, bool force)
    {
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
        }

        Changed?.Invoke();
        RaiseDeploymentEvents(superseded, result.Deployment);
        return result;
    }

    /// <summary>
    /// <c>DELETE /v2/deployments/{id}</c>: without force, roll back (deploy what the app was before);
    /// with force, just stop the deployment and leave the instances as they are.
    /// </summary>
    public ChangeResult CancelDeployment(string deploymentId, bool force)
    {
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
        }

        Changed?.Invoke();
        foreach (var (cancelled, rollback) in events)
        {
            RaiseDeploymentEvents(cancelled, rollback);
        }

        return new ChangeResult(AppChangeError.None, first, durable);
    }

    /// <summary>Marks the app's deployment finished (called by the controller). Removes a deleted app.</summary>
    public void FinishDeployment(string appId, string deploymentId)
    {
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
                _lastWrite = store?.CommitAsync(new Transaction { Writes = [WriteOp.Delete(Key(appId))] }) ?? Task.CompletedTask;
            }
            else
            {
                SaveLocked(state);
            }

            LogDeploymentFinished(dep.Id, appId, dep.Action);
        }

        Changed?.Invoke();
        DeploymentEnded?.Invoke(finished, true);
    }

    /// <summary>Records an instance that ended without being asked to; sets the launch delay.</summary>
    public void RecordFailure(string appId, LastTaskFailure failure)
    {
        lock (_lock)
        {
            if (!_apps.TryGetValue(appId, out var state))
            {
                return;
            }

            state.Failures++;
            state.LastFailure = failure;
            var app = state.Current;
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
            if (_apps.TryGetValue(appId, out var state) && state.Failures > 0)
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
            if (!_apps.TryGetValue(appId, out var state))
            {
                return false;
            }

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
            return _apps.TryGetValue(appId, out var s) ? Snapshot(s) : null;
        }
    }

    public List<AppSnapshot> List()
    {
        lock (_lock)
        {
            return [.. _apps.Values.OrderBy(a => a.Current.Id, StringComparer.Ordinal).Select(Snapshot)];
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

    private static AppSnapshot Snapshot(AppState s) => new(s.Current, [.. s.Versions], s.Deployment, s.DelayedUntil, s.LastFailure);

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
                var v = DateTimeOffset.Parse(current.Version!, CultureInfo.InvariantCulture);
                _lastVersion = v > _lastVersion ? v : _lastVersion;
            }
        }

        Changed?.Invoke();
    }

    private static AppDefinition Parse(string json) =>
        MarathonJson.TryParseApp(json, out var app, out var error) ? app : throw new InvalidDataException($"stored app does not parse: {error?.Message}");

    private void SaveLocked(AppState state)
    {
        if (store is null)
        {
            return;
        }

        var d = state.Deployment;
        var persisted = new PersistedApp
        {
            Current = MarathonJson.Serialize(state.Current),
            Versions = [.. state.Versions.Select(MarathonJson.Serialize)],
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
        _lastWrite = store.CommitAsync(new Transaction
        {
            Writes = [WriteOp.Put(Key(state.Current.Id!), JsonSerializer.SerializeToUtf8Bytes(persisted, ServicesJsonContext.Default.PersistedApp))],
        });
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

    [LoggerMessage(Level = LogLevel.Information, Message = "App {AppId}: {Failures} failed instances in a row; next launch in {Delay:F1} s")]
    private partial void LogBackoff(string appId, int failures, double delay);
}

/// <summary>An immutable copy of one app's service state.</summary>
internal sealed record AppSnapshot(AppDefinition Current, IReadOnlyList<AppDefinition> Versions, Deployment? Deployment, DateTimeOffset? DelayedUntil, LastTaskFailure? LastFailure)
{
    public AppDefinition? Version(string? version) => version is null ? null : Versions.LastOrDefault(v => v.Version == version);
}
