using Drover.Master.Security;
using Drover.Core.Security;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Nodes;
using Drover.Core.Marathon;
using Drover.Master.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Http;

/// <summary>
/// Marathon's <c>/v2/groups</c>: a tree of apps by path id. A group change (create, update, scale,
/// delete) becomes one deployment plan over every affected app, each app waiting for the apps and
/// groups it depends on. The tree is derived from the apps' ids plus the groups created here, whose
/// own settings (dependencies; existence while empty) the registry keeps as <see cref="GroupRecord"/>s.
/// </summary>
internal static class GroupEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapMethods("/v2/groups/{**path}", ["GET", "POST", "PUT", "PATCH", "DELETE"], async (string? path, HttpContext http, ServiceRegistry registry) =>
        {
            var segments = (path ?? "").Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            var versions = segments.Length > 0 && segments[^1] == "versions";
            var groupId = "/" + string.Join('/', versions ? segments[..^1] : segments);
            switch (http.Request.Method)
            {
                case "GET" when versions:
                    return Versions(http, registry, groupId);
                case "GET":
                    return Get(http, registry, groupId);
                case "DELETE":
                    return await Delete(http, registry, groupId);
                default:
                    return await Change(http, registry, groupId, create: http.Request.Method == "POST", removeMissing: http.Request.Method == "PUT");
            }
        }).Access(MarathonEndpoints.Access);
        app.MapGet("/v2/groups", (HttpContext http, ServiceRegistry registry) => Get(http, registry, "/")).Access(MarathonEndpoints.Access);
        app.MapPost("/v2/groups", (HttpContext http, ServiceRegistry registry) => Change(http, registry, "/", create: true, removeMissing: false)).Access(MarathonEndpoints.Access);
        app.MapPut("/v2/groups", (HttpContext http, ServiceRegistry registry) => Change(http, registry, "/", create: false, removeMissing: false)).Access(MarathonEndpoints.Access);
    }

    private static IResult Get(HttpContext http, ServiceRegistry registry, string groupId)
    {
        var (apps, groups, denied) = Visible(http, registry, groupId);
        if (denied is not null)
        {
            return denied;
        }

        if (!Exists(groupId, apps, groups))
        {
            return Message(StatusCodes.Status404NotFound, $"Group '{groupId}' does not exist");
        }

        return Json(GroupJson(groupId, apps, groups));
    }

    /// <summary>
    /// The apps and groups the caller may see: apps it may read, groups it may read or that lead to something
    /// it may read (so <c>/</c> shows a <c>/team-a</c> user the way to <c>/team-a</c>, and nothing else). A
    /// group that is neither is a 403, whether or not it exists; <c>/</c> is never refused, only filtered.
    /// </summary>
    private static (List<AppDefinition> Apps, Dictionary<string, GroupRecord> Groups, IResult? Denied) Visible(HttpContext http, ServiceRegistry registry, string groupId)
    {
        var canRead = MarathonAccess.Reader(http);
        var apps = registry.List().Select(a => a.Current).Where(a => canRead(a.Id!)).ToList();
        var all = registry.ListGroups();
        var readable = all.Where(g => canRead(g.Id)).Select(g => g.Id).Concat(apps.Select(a => a.Id!)).ToList();
        var leading = new HashSet<string>(StringComparer.Ordinal) { "/" };
        foreach (var id in readable)
        {
            for (var p = Parent(id); p != "/"; p = Parent(p))
            {
                if (!leading.Add(p))
                {
                    break;
                }
            }
        }

        var groups = all.Where(g => canRead(g.Id) || leading.Contains(g.Id)).ToDictionary(g => g.Id, StringComparer.Ordinal);
        var denied = canRead(groupId) || leading.Contains(groupId) ? null : MarathonAccess.Require(http, groupId, PermissionAction.Read);
        return (apps, groups, denied);
    }

    private static bool Exists(string groupId, List<AppDefinition> apps, Dictionary<string, GroupRecord> groups) =>
        groupId == "/" || groups.ContainsKey(groupId) || apps.Any(a => Under(a.Id!, groupId)) || groups.Keys.Any(g => Under(g, groupId));

    private static IResult Versions(HttpContext http, ServiceRegistry registry, string groupId)
    {
        if (Visible(http, registry, groupId).Denied is { } denied)
        {
            return denied;
        }

        var canRead = MarathonAccess.Reader(http);
        var versions = registry.List().Where(a => (groupId == "/" || Under(a.Current.Id!, groupId)) && canRead(a.Current.Id!))
            .SelectMany(a => a.Versions.Select(v => v.Version!)).Distinct().OrderDescending(StringComparer.Ordinal);
        return Json(new JsonArray([.. versions.Select(v => (JsonNode)JsonValue.Create(v)!)]));
    }

    private static async Task<IResult> Delete(HttpContext http, ServiceRegistry registry, string groupId)
    {
        var apps = groupId == "/" ? registry.List().Select(a => a.Current.Id!).ToList() : registry.AppsUnder(groupId);

        // Removing a group removes everything in it: delete on the group, every app and every group below.
        var needs = new[] { groupId }.Concat(apps).Concat(registry.ListGroups().Select(g => g.Id).Where(g => Under(g, groupId)))
            .Select(id => MarathonAccess.On(id, PermissionAction.Delete));
        if (MarathonAccess.Require(http, needs) is { } denied)
        {
            return denied;
        }

        if (!Exists(groupId, registry.List().Select(a => a.Current).ToList(), registry.ListGroups().ToDictionary(g => g.Id, StringComparer.Ordinal)))
        {
            return Message(StatusCodes.Status404NotFound, $"Group '{groupId}' does not exist");
        }

        var result = registry.PutPlan([], apps, Force(http));
        if (result.Error == AppChangeError.Locked)
        {
            return Locked(result);
        }

        var (version, groupsDurable) = registry.PutGroups([], removeUnder: groupId, result.Deployment?.Version);
        await result.Durable;
        await groupsDurable;
        return Json(DeploymentJson(result.Deployment, version));
    }

    private static async Task<IResult> Change(HttpContext http, ServiceRegistry registry, string pathId, bool create, bool removeMissing)
    {
        JsonObject body;
        try
        {
            body = (await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted))?.AsObject()
                ?? throw new InvalidOperationException();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            return Message(StatusCodes.Status400BadRequest, "Invalid JSON");
        }

        var groupId = pathId;
        if (body["id"]?.GetValue<string>() is { } bodyId)
        {
            groupId = Resolve(bodyId, pathId == "/" ? "/" : Parent(pathId), pathId);
        }

        // PUT {"scaleBy": f}: every app of the group scaled by the factor (rounded up, as Marathon does). Update on the
        // group first, before its apps are looked up: without it the answer is the same 403 whether the group exists or not.
        if (body["scaleBy"] is JsonValue scale && scale.TryGetValue<double>(out var factor))
        {
            if (factor < 0)
            {
                return Invalid([("/scaleBy", "must be greater than or equal to 0")]);
            }

            if (MarathonAccess.Require(http, groupId, PermissionAction.Update) is { } groupDenied)
            {
                return groupDenied;
            }

            var scaled = registry.List().Where(a => groupId == "/" || Under(a.Current.Id!, groupId))
                .Select(a => (a.Current with { Instances = (int)Math.Ceiling((a.Current.Instances ?? 1) * factor) }, ImmutableArray<string>.Empty))
                .ToList();
            if (scaled.Count == 0)
            {
                return Message(StatusCodes.Status404NotFound, $"Group '{groupId}' does not exist");
            }

            if (Require(http, groupId, scaled.SelectMany(a => MarathonAccess.ToWrite(a.Item1, exists: true))) is { } denied)
            {
                return denied;
            }

            return await Apply(http, registry, scaled, [], [], expected: scaled.ToDictionary(a => a.Item1.Id!, _ => true, StringComparer.Ordinal));
        }

        // PUT {"version": V}: roll the whole group back to what it was at version V (Marathon's group
        // rollback): each app returns to its latest definition at or before V; apps created after V go.
        if (!create && body["version"] is JsonValue v && v.TryGetValue<string>(out var target) && body["apps"] is null && body["groups"] is null)
        {
            // Update on the group first, as for scaleBy.
            if (MarathonAccess.Require(http, groupId, PermissionAction.Update) is { } groupDenied)
            {
                return groupDenied;
            }

            var restore = new List<(AppDefinition, ImmutableArray<string>)>();
            var drop = new List<string>();
            foreach (var a in registry.List().Where(a => groupId == "/" || Under(a.Current.Id!, groupId)))
            {
                var then = a.Versions.LastOrDefault(x => string.CompareOrdinal(x.Version, target) <= 0);
                if (then is null)
                {
                    drop.Add(a.Current.Id!);
                }
                else if (then.Version != a.Current.Version)
                {
                    restore.Add((then with { Version = null, VersionInfo = null }, ImmutableArray<string>.Empty));
                }
            }

            if (restore.Count == 0 && drop.Count == 0)
            {
                return Message(StatusCodes.Status404NotFound, $"Group '{groupId}' has no apps to roll back to version {target}");
            }

            var needs = restore.SelectMany(a => MarathonAccess.ToWrite(a.Item1, exists: true)).Concat(drop.Select(id => MarathonAccess.On(id, PermissionAction.Delete)));
            if (Require(http, groupId, needs) is { } rollbackDenied)
            {
                return rollbackDenied;
            }

            return await Apply(http, registry, restore, drop, [], expected: restore.ToDictionary(a => a.Item1.Id!, _ => true, StringComparer.Ordinal));
        }

        // Creating a group needs create on it, asked before whether it exists (a 409 would tell); changing one needs some
        // permission on it before anything in it is looked up (what exactly depends on what exists: ChangeNeeds).
        if (create && MarathonAccess.Require(http, groupId, PermissionAction.Create) is { } createDenied)
        {
            return createDenied;
        }

        if (!create && MarathonAccess.RequireSomeAccess(http, groupId) is { } changeForbidden)
        {
            return changeForbidden;
        }

        if (create && groupId != "/" && (registry.AppsUnder(groupId).Count > 0 || registry.ListGroups().Any(g => g.Id == groupId)))
        {
            return Message(StatusCodes.Status409Conflict, $"Group {groupId} is already created. Use PUT to change this group.");
        }

        var errors = new List<(string Path, string Error)>();
        var apps = new List<(AppDefinition App, ImmutableArray<string> GroupDeps)>();
        var groups = new List<(string Id, ImmutableArray<string> Dependencies)>();
        Collect(body, groupId, "", [], apps, groups, errors);
        if (errors.Count > 0)
        {
            return Invalid(errors);
        }

        // Dependencies name apps or groups; a group stands for every app under it (in this change or already running).
        var known = apps.Select(a => a.App.Id!).Concat(registry.List().Select(a => a.Current.Id!)).Distinct().ToList();
        var plan = apps.Select(a =>
        {
            var deps = (a.App.Dependencies ?? []).Concat(a.GroupDeps)
                .SelectMany(d => known.Contains(d) ? [d] : known.Where(k => Under(k, d)))
                .Where(d => d != a.App.Id)
                .Distinct()
                .ToImmutableArray();
            return (a.App, deps);
        }).ToList();

        // A PUT replaces the group's apps only when it lists them: a body without "apps"/"groups"
        // (e.g. only dependencies) leaves every app in place, as in Marathon.
        var replaces = removeMissing && (body["apps"] is not null || body["groups"] is not null);
        var remove = replaces ? registry.AppsUnder(groupId).Except(apps.Select(a => a.App.Id!)).ToList() : [];
        if (!replaces && body["dependencies"] is null)
        {
            // A partial update (PATCH, or PUT of apps only) keeps the group's recorded dependencies.
            var existing = registry.ListGroups().ToDictionary(g => g.Id, StringComparer.Ordinal);
            groups = [.. groups.Select(g => g.Id == groupId && existing.TryGetValue(g.Id, out var had) ? (g.Id, had.Dependencies) : g)];
        }

        // Create or update of each app by whether it exists now; the registry refuses the plan if that changes before the write.
        var expected = plan.Select(a => a.App.Id!).Distinct().ToDictionary(id => id, id => registry.Get(id) is not null, StringComparer.Ordinal);
        var named = apps.Select(a => a.App.Id!).Concat(groups.Select(g => g.Id)).ToHashSet(StringComparer.Ordinal);
        if (Require(http, groupId, ChangeNeeds(registry, plan, expected, remove, groups, replaces ? groupId : null), named) is { } changeDenied)
        {
            return changeDenied;
        }

        return await Apply(http, registry, plan, remove, groups, replaces ? groupId : null, expected);
    }

    /// <summary>
    /// A 403 for the first of <paramref name="needs"/> the caller lacks, or null. A need on an app or group path the
    /// caller did not name (<paramref name="named"/>, or <paramref name="groupId"/> itself), one found by looking
    /// inside the group, is reported as the same action on <paramref name="groupId"/>: lacking it on something
    /// inside the group is lacking it on the group, and a reason never names what the caller did not.
    /// </summary>
    private static IResult? Require(HttpContext http, string groupId, IEnumerable<Grant> needs, IReadOnlySet<string>? named = null)
    {
        var pathPrefix = Rids.MarathonPath("");
        foreach (var need in needs)
        {
            if (http.Allows(need.Rid, need.Actions))
            {
                continue;
            }

            var unnamed = need.Rid.StartsWith(pathPrefix, StringComparison.Ordinal)
                && need.Rid[pathPrefix.Length..] is var path && path != groupId && named?.Contains(path) != true;
            return http.Forbidden(unnamed ? Rids.MarathonPath(groupId) : need.Rid, need.Actions);
        }

        return null;
    }

    /// <summary>
    /// Every permission a group change needs, checked together before anything changes: each app written
    /// (create or update, and its run-as user), each app removed (delete), each group recorded (create when
    /// new, else update), and each group record a replacing PUT drops (delete).
    /// </summary>
    private static IEnumerable<Grant> ChangeNeeds(ServiceRegistry registry, List<(AppDefinition App, ImmutableArray<string> Deps)> plan,
        Dictionary<string, bool> appExists, List<string> remove, List<(string Id, ImmutableArray<string> Dependencies)> groups, string? replaceGroupsUnder)
    {
        var records = registry.ListGroups().Select(g => g.Id).ToHashSet(StringComparer.Ordinal);
        var appIds = registry.List().Select(a => a.Current.Id!).ToList();
        foreach (var (app, _) in plan)
        {
            foreach (var need in MarathonAccess.ToWrite(app, exists: appExists[app.Id!]))
            {
                yield return need;
            }
        }

        foreach (var id in remove)
        {
            yield return MarathonAccess.On(id, PermissionAction.Delete);
        }

        foreach (var (id, _) in groups)
        {
            var exists = records.Contains(id) || appIds.Any(a => Under(a, id));
            yield return MarathonAccess.On(id, exists ? PermissionAction.Update : PermissionAction.Create);
        }

        if (replaceGroupsUnder is not null)
        {
            var kept = groups.Select(g => g.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var id in records.Where(r => (r == replaceGroupsUnder || Under(r, replaceGroupsUnder)) && !kept.Contains(r)))
            {
                yield return MarathonAccess.On(id, PermissionAction.Delete);
            }
        }
    }

    private static async Task<IResult> Apply(HttpContext http, ServiceRegistry registry, List<(AppDefinition, ImmutableArray<string>)> plan, List<string> remove,
        List<(string Id, ImmutableArray<string> Dependencies)> groups, string? replaceGroupsUnder = null, IReadOnlyDictionary<string, bool>? expected = null)
    {
        // Every app the change deploys (rollbacks included) needs read on the secrets it uses.
        if (Secrets.SecretAccess.MarathonRefusal(http, plan.Select(p => p.Item1), a => "/apps(" + a.Id + ")") is { } refusedSecrets)
        {
            return refusedSecrets;
        }

        var result = registry.PutPlan(plan, remove, Force(http), expected);
        if (MarathonEndpoints.Changed(result) is { } changed)
        {
            return changed;
        }

        if (result.Error == AppChangeError.Locked)
        {
            return Locked(result);
        }

        var version = result.Deployment?.Version;
        var groupsDurable = Task.CompletedTask;
        if (groups.Count > 0 || replaceGroupsUnder is not null)
        {
            (version, groupsDurable) = registry.PutGroups(groups, replaceGroupsUnder, version);
        }

        await result.Durable;
        await groupsDurable;
        var status = http.Request.Method == "POST" ? StatusCodes.Status201Created : StatusCodes.Status200OK;
        return Json(DeploymentJson(result.Deployment, version), status);
    }

    /// <summary>
    /// Marathon's answer to a group change. A change without app work (an empty group, new dependencies)
    /// is a plan of no steps: it is done at once, so its id is never listed under /v2/deployments.
    /// </summary>
    private static JsonObject DeploymentJson(Deployment? deployment, string? version) =>
        new() { ["version"] = deployment?.Version ?? version, ["deploymentId"] = deployment?.Id ?? Guid.NewGuid().ToString() };

    /// <summary>Walks a group body: validates and defaults every app, resolving ids against their group.</summary>
    private static void Collect(JsonObject group, string groupId, string path, ImmutableArray<string> inheritedDeps,
        List<(AppDefinition, ImmutableArray<string>)> apps, List<(string Id, ImmutableArray<string> Dependencies)> groups, List<(string, string)> errors)
    {
        var own = (group["dependencies"]?.AsArray() ?? []).Select(d => Resolve(d!.GetValue<string>(), Parent(groupId), groupId)).ToImmutableArray();
        groups.Add((groupId, own));
        var deps = inheritedDeps.AddRange(own);
        var appArray = group["apps"]?.AsArray() ?? [];
        for (var i = 0; i < appArray.Count; i++)
        {
            var at = string.Create(CultureInfo.InvariantCulture, $"{path}/apps({i})");
            if (!MarathonJson.TryParseApp(appArray[i]!.ToJsonString(), out var parsed, out var parseError))
            {
                errors.AddRange(parseError.Details.SelectMany(d => d.Errors.Select(e => (at + d.Path.TrimEnd('/'), e))));
                continue;
            }

            if (MarathonValidator.Validate(parsed, groupId) is { } invalid)
            {
                errors.AddRange(invalid.Details.SelectMany(d => d.Errors.Select(e => (at + (d.Path == "/" ? "" : d.Path), e))));
                continue;
            }

            apps.Add((MarathonEndpoints.Canonical(parsed, groupId), deps));
        }

        var children = group["groups"]?.AsArray() ?? [];
        for (var i = 0; i < children.Count; i++)
        {
            var child = children[i]!.AsObject();
            var childId = Resolve(child["id"]?.GetValue<string>() ?? "", groupId, groupId);
            Collect(child, childId, string.Create(CultureInfo.InvariantCulture, $"{path}/groups({i})"), deps, apps, groups, errors);
        }
    }

    private static JsonObject GroupJson(string groupId, List<AppDefinition> all, Dictionary<string, GroupRecord> groups)
    {
        var direct = all.Where(a => Parent(a.Id!) == groupId).OrderBy(a => a.Id, StringComparer.Ordinal);
        var childIds = all.Select(a => a.Id!).Where(id => Parent(id) != groupId).Concat(groups.Keys.Where(g => g != groupId))
            .Where(id => Under(id, groupId))
            .Select(id => ChildOf(groupId, id))
            .Distinct()
            .Order(StringComparer.Ordinal);
        groups.TryGetValue(groupId, out var own);
        var version = all.Where(a => Under(a.Id!, groupId)).Select(a => a.Version)
            .Concat(groups.Values.Where(g => g.Id == groupId || Under(g.Id, groupId)).Select(g => g.Version))
            .Max(StringComparer.Ordinal);
        return new JsonObject
        {
            ["id"] = groupId,
            ["apps"] = new JsonArray([.. direct.Select(a => (JsonNode)JsonNode.Parse(MarathonJson.Serialize(a))!)]),
            ["groups"] = new JsonArray([.. childIds.Select(c => (JsonNode)GroupJson(c, all, groups))]),
            ["pods"] = new JsonArray(),
            ["dependencies"] = new JsonArray([.. (own?.Dependencies ?? []).Select(d => (JsonNode)JsonValue.Create(d)!)]),
            ["version"] = version,
        };
    }

    private static bool Under(string appId, string groupId) => groupId == "/" || appId.StartsWith(groupId.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static string Parent(string id)
    {
        var i = id.TrimEnd('/').LastIndexOf('/');
        return i <= 0 ? "/" : id[..i];
    }

    /// <summary>The direct child group of <paramref name="groupId"/> on the way to <paramref name="descendant"/>.</summary>
    private static string ChildOf(string groupId, string descendant)
    {
        var rest = descendant[(groupId == "/" ? 1 : groupId.Length + 1)..];
        var next = rest.Split('/')[0];
        return (groupId == "/" ? "/" : groupId + "/") + next;
    }

    /// <summary>Resolves a possibly relative id (<c>db</c>, <c>../db</c>, <c>/prod/db</c>) against <paramref name="baseGroup"/>.</summary>
    private static string Resolve(string id, string baseGroup, string fallback)
    {
        if (id.Length == 0)
        {
            return fallback;
        }

        return AppId.TryParse(id, out var parsed, out _) ? parsed.Canonical(AppId.Parse(baseGroup)).ToString() : fallback;
    }

    private static bool Force(HttpContext http) => string.Equals(http.Request.Query["force"].ToString(), "true", StringComparison.OrdinalIgnoreCase);

    private static IResult Json(JsonNode node, int status = StatusCodes.Status200OK) =>
        Results.Content(node.ToJsonString(), "application/json; charset=utf-8", statusCode: status);

    private static IResult Message(int status, string message) => Json(new JsonObject { ["message"] = message }, status);

    private static IResult Invalid(List<(string Path, string Error)> errors) => Json(new JsonObject
    {
        ["message"] = "Object is not valid",
        ["details"] = new JsonArray([.. errors.GroupBy(e => e.Path).Select(g => (JsonNode)new JsonObject
        {
            ["path"] = g.Key,
            ["errors"] = new JsonArray([.. g.Select(e => (JsonNode)JsonValue.Create(e.Error)!)]),
        })]),
    }, StatusCodes.Status422UnprocessableEntity);

    private static IResult Locked(ServiceRegistry.ChangeResult r) => Json(new JsonObject
    {
        ["message"] = $"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{r.ConflictingDeployment}'.",
        ["deployments"] = new JsonArray(new JsonObject { ["id"] = r.ConflictingDeployment }),
    }, StatusCodes.Status409Conflict);
}
