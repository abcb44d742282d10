using Drover.Master.Security;
using Drover.Core.Security;
using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.Secrets;
using Drover.Master.Services;
using Drover.Master.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Http;

/// <summary>
/// Marathon's REST API (<c>/v2</c>) over the service registry, with Marathon's JSON shapes, status
/// codes and error bodies, so Marathon tools and app definitions work unchanged.
/// </summary>
internal static class MarathonEndpoints
{
    /// <summary>
    /// Marathon's API as a whole (Admin Router's <c>dcos:adminrouter:service:marathon</c>); each handler then checks
    /// the apps and groups it touches against <c>dcos:service:marathon:marathon:services:{path}</c>.
    /// </summary>
    public static readonly RouteAccess Access = RouteAccess.PermissionThenObjects(Rids.MarathonService, PermissionAction.Read);

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/ping", () => Results.Text("pong\n")).Access(RouteAccess.Anonymous);
        app.MapGet("/v2/info", (HttpContext http) => Json(new JsonObject
        {
            ["name"] = "drover",
            ["version"] = MasterHost.Version,
            ["leader"] = http.Request.Host.ToString(),
            ["frameworkId"] = MesosStateEndpoints.BuiltInFrameworkId,
            ["elected"] = true,
            ["http_config"] = new JsonObject { ["http_port"] = http.Connection.LocalPort },
            ["marathon_config"] = new JsonObject { ["master"] = http.Request.Host.ToString() },
        })).Access(Access.And(Rids.MarathonConfig, PermissionAction.Read));
        app.MapGet("/v2/leader", (HttpContext http) => Json(new JsonObject { ["leader"] = http.Request.Host.ToString() })).Access(Access.And(Rids.MarathonLeader, PermissionAction.Read));

        app.MapGet("/v2/apps", (HttpContext http, ServiceRegistry registry, ClusterState cluster) =>
        {
            var embed = Embeds(http, "apps.");
            var idFilter = http.Request.Query["id"].ToString();
            var labelFilter = http.Request.Query["label"].ToString();
            var canRead = MarathonAccess.Reader(http);
            // Streamed: each app's JSON is built as it is written (see StreamedJson), never the whole list at once.
            var apps = registry.List()
                .Where(a => canRead(a.Current.Id!)
                    && (idFilter.Length == 0 || a.Current.Id!.Contains(idFilter, StringComparison.OrdinalIgnoreCase))
                    && (labelFilter.Length == 0 || MatchesLabel(a.Current, labelFilter)))
                .Select(a => AppJson(a, cluster, embed));
            return StreamedJson.Nodes("apps", apps);
        }).Access(Access);

        // PUT/PATCH /v2/apps with an array: update (or create) several apps as one deployment plan.
        app.MapMethods("/v2/apps", ["PUT", "PATCH"], async (HttpContext http, ServiceRegistry registry) =>
        {
            JsonArray items;
            try
            {
                items = (await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted)) as JsonArray
                    ?? throw new JsonException("not an array");
            }
            catch (JsonException)
            {
                return Message(StatusCodes.Status400BadRequest, "Invalid JSON: expected an array of app definitions");
            }

            var plan = new List<(AppDefinition, ImmutableArray<string>)>();
            var existed = new Dictionary<string, bool>(StringComparer.Ordinal);
            var errors = new JsonArray();
            for (var i = 0; i < items.Count; i++)
            {
                if (items[i] is not JsonObject item || item["id"]?.GetValue<string>() is not { } rawId || !AppId.TryParse(rawId, out var parsedId, out _))
                {
                    errors.Add(new JsonObject { ["path"] = $"({i})/id", ["errors"] = new JsonArray("error.path.missing") });
                    continue;
                }

                // The path's permission before the app there is looked up and merged (see PutApp).
                var id = parsedId.Canonical().ToString();
                if (MarathonAccess.RequireSomeAccess(http, id) is { } unknowable)
                {
                    return unknowable;
                }

                var existing = registry.Get(id)?.Current;
                var (def, error) = ParseApp(JsonSerializer.SerializeToUtf8Bytes(item, JsonNodeContext.Default.JsonObject), existing, id);
                if (error is not null)
                {
                    return error;
                }

                plan.Add((def!, []));
                existed[id] = existing is not null;
            }

            if (errors.Count > 0)
            {
                return Json(new JsonObject { ["message"] = "Object is not valid", ["details"] = errors }, StatusCodes.Status422UnprocessableEntity);
            }

            // All or nothing: every app of the plan is checked before any changes, as create or update by what existed
            // when it was merged; the registry refuses the plan if that changed since.
            if (MarathonAccess.Require(http, plan.SelectMany(p => MarathonAccess.ToWrite(p.Item1, existed[p.Item1.Id!]))) is { } denied)
            {
                return denied;
            }

            if (SecretAccess.MarathonRefusal(http, plan.Select(p => p.Item1), a => "(" + a.Id + ")") is { } refusedSecrets)
            {
                return refusedSecrets;
            }

            var result = registry.PutPlan(plan, [], Force(http), existed);
            if (Changed(result) is { } changed)
            {
                return changed;
            }

            if (Locked(result) is { } locked)
            {
                return locked;
            }

            await result.Durable;
            return Json(new JsonObject { ["version"] = result.Deployment?.Version, ["deploymentId"] = result.Deployment?.Id });
        }).Access(Access);

        app.MapPost("/v2/apps", async (HttpContext http, ServiceRegistry registry, ClusterState cluster) =>
        {
            var (def, error) = await ReadApp(http, null);
            if (error is not null)
            {
                return error;
            }

            if (MarathonAccess.Require(http, MarathonAccess.ToWrite(def!, exists: false)) is { } denied)
            {
                return denied;
            }

            if (SecretAccess.MarathonRefusal(http, [def!]) is { } refusedSecrets)
            {
                return refusedSecrets;
            }

            var result = registry.Put(def!, mustCreate: true, force: Force(http));
            if (result.Error == AppChangeError.AlreadyExists)
            {
                return Message(StatusCodes.Status409Conflict, $"An app with id [{def!.Id}] already exists.");
            }

            if (Locked(result) is { } locked)
            {
                return locked;
            }

            await result.Durable;
            http.Response.Headers.Location = "/v2/apps" + def!.Id;
            http.Response.Headers["Marathon-Deployment-Id"] = result.Deployment!.Id;
            return Json(AppJson(registry.Get(def.Id!)!, cluster, Embeds(http, "app.", defaultAll: false)), StatusCodes.Status201Created);
        }).Access(Access);

        app.MapMethods("/v2/apps/{**path}", ["GET", "PUT", "PATCH", "DELETE", "POST"], async (string path, HttpContext http, ServiceRegistry registry, ClusterState cluster, ServiceController controller) =>
        {
            var method = http.Request.Method;
            var (appId, suffix, rest) = SplitAppPath(path);

            // The app's permission before whether it exists, so a 404 tells nothing about apps one may not read.
            // Writes are checked in PutApp on the definition's canonical id (the one written).
            var needs = (suffix, method) switch
            {
                (null or "tasks" or "versions", "GET") => PermissionAction.Read,
                (null, "DELETE") => PermissionAction.Delete,
                ("restart", "POST") or ("tasks", "DELETE") => PermissionAction.Update,
                _ => PermissionAction.None,
            };
            if (needs != PermissionAction.None && MarathonAccess.Require(http, appId, needs) is { } denied)
            {
                return denied;
            }

            switch (suffix, method)
            {
                case (null, "GET"):
                    return registry.Get(appId) is { } a
                        ? Json(new JsonObject { ["app"] = AppJson(a, cluster, Embeds(http, "app.", defaultAll: true)) })
                        : NoApp(appId);
                case (null, "PUT" or "PATCH"):
                    // Marathon 1.x merges a PUT body onto the app unless partialUpdate=false; PATCH always merges.
                    var merge = method == "PATCH" || !string.Equals(http.Request.Query["partialUpdate"].ToString(), "false", StringComparison.OrdinalIgnoreCase);
                    return await PutApp(http, registry, cluster, appId, patch: merge);
                case (null, "DELETE"):
                    return await Change(registry.Delete(appId, Force(http)), appId);
                case ("restart", "POST"):
                    return await Change(registry.Restart(appId, Force(http)), appId);
                case ("tasks", "GET"):
                    return registry.Get(appId) is null ? NoApp(appId) : Json(new JsonObject { ["tasks"] = TasksJson(cluster.ActiveTasksOfGroup(appId)) });
                case ("tasks", "DELETE"):
                    return await KillTasks(http, registry, cluster, controller, appId, rest);
                case ("versions", "GET") when rest is null:
                    return registry.Get(appId) is { } v
                        ? Json(new JsonObject { ["versions"] = new JsonArray([.. v.Versions.Select(x => (JsonNode)JsonValue.Create(x.Version)!).Reverse()]) })
                        : NoApp(appId);
                case ("versions", "GET"):
                    return registry.Get(appId)?.Version(rest) is { } version ? Json(AppNode(version)) : Message(StatusCodes.Status404NotFound, $"App '{appId}' does not exist in version {rest}");
                default:
                    return Message(StatusCodes.Status404NotFound, $"no route for {method} /v2/apps/{path}");
            }
        }).Access(Access);

        app.MapGet("/v2/tasks", (string? status, HttpContext http, ServiceRegistry registry, ClusterState cluster) =>
        {
            var canRead = MarathonAccess.Reader(http);
            var tasks = registry.List().Where(a => canRead(a.Current.Id!)).SelectMany(a => cluster.ActiveTasksOfGroup(a.Current.Id!));
            if (status is { Length: > 0 } s)
            {
                tasks = tasks.Where(t => string.Equals(t.State.WireName(), "TASK_" + s, StringComparison.OrdinalIgnoreCase)
                    || string.Equals(t.State.WireName(), s, StringComparison.OrdinalIgnoreCase));
            }

            return StreamedJson.Nodes("tasks", tasks.Select(TaskJson)); // streamed, as /v2/apps
        }).Access(Access);

        app.MapPost("/v2/tasks/delete", async (HttpContext http, ServiceRegistry registry, ClusterState cluster, ServiceController controller) =>
        {
            using var doc = await JsonDocument.ParseAsync(http.Request.Body);
            if (!doc.RootElement.TryGetProperty("ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
            {
                return Message(StatusCodes.Status422UnprocessableEntity, "the body must be {\"ids\": [task ids]}");
            }

            var killed = new List<TaskView>();
            foreach (var id in ids.EnumerateArray().Select(e => e.GetString() ?? ""))
            {
                if (cluster.GetTask(id) is { AppId: not null } t && !t.State.IsTerminal())
                {
                    killed.Add(t);
                }
            }

            // All or nothing: killing an instance changes its app (Marathon's update), checked for every app first. The
            // 403 names the app only to a caller who may read it; otherwise only the task id the caller sent.
            foreach (var t in killed)
            {
                if (!http.Allows(Rids.MarathonPath(t.AppId!), PermissionAction.Update))
                {
                    return MarathonAccess.Reader(http)(t.AppId!)
                        ? http.Forbidden(Rids.MarathonPath(t.AppId!), PermissionAction.Update)
                        : Message(StatusCodes.Status403Forbidden, $"'{http.Caller().Id}' may not kill task '{t.Id}'");
                }
            }

            var scale = Bool(http, "scale");
            await controller.RunExclusiveAsync(async () =>
            {
                // Save first, then act: the scales are durable before any kill (a failed write kills nothing: 503).
                var scaled = scale ? killed.GroupBy(t => t.AppId!).Select(g => ScaleDown(registry, g.Key, g.Count())).ToList() : [];
                foreach (var change in scaled)
                {
                    if (change is not null)
                    {
                        await change.Durable.ConfigureAwait(false);
                    }
                }

                foreach (var t in killed)
                {
                    cluster.Kill(t.Id);
                }

                return scaled.Count;
            }, http.RequestAborted);

            return Json(new JsonObject { ["tasks"] = TasksJson(killed) });
        }).Access(Access);

        // A group change is one plan over several apps sharing one deployment id: one entry each. A plan is
        // listed with the apps the caller may read (Marathon lists it when any is; here the others stay hidden too).
        app.MapGet("/v2/deployments", (HttpContext http, ServiceRegistry registry, ClusterState cluster) =>
        {
            var canRead = MarathonAccess.Reader(http);
            return Json(new JsonArray([.. registry.List().Where(a => a.Deployment is not null && canRead(a.Current.Id!)).Select(a => a.Deployment!)
                .GroupBy(d => d.Id).Select(g => (JsonNode)DeploymentJson([.. g], cluster))]));
        }).Access(Access);

        app.MapDelete("/v2/deployments/{id}", async (string id, HttpContext http, ServiceRegistry registry) =>
        {
            // Cancelling or rolling back a plan changes every app in it: update on each, as Marathon checks.
            var affected = registry.List().Where(a => a.Deployment?.Id == id).Select(a => MarathonAccess.On(a.Current.Id!, PermissionAction.Update));
            if (MarathonAccess.Require(http, affected) is { } denied)
            {
                return denied;
            }

            var result = registry.CancelDeployment(id, Force(http));
            if (result.Error == AppChangeError.NotFound)
            {
                return Message(StatusCodes.Status404NotFound, $"DeploymentPlan {id} does not exist");
            }

            await result.Durable;
            return result.Deployment is { } rollback
                ? Json(new JsonObject { ["deploymentId"] = rollback.Id, ["version"] = rollback.Version })
                : Results.StatusCode(StatusCodes.Status202Accepted);
        }).Access(Access);

        app.MapGet("/v2/queue", (HttpContext http, ServiceRegistry registry, ClusterState cluster, TimeProvider time) =>
        {
            var canRead = MarathonAccess.Reader(http);
            var queue = new JsonArray();
            foreach (var a in registry.List())
            {
                var id = a.Current.Id!;
                if (!canRead(id))
                {
                    continue;
                }

                var waiting = cluster.ActiveTasksOfGroup(id).Where(t => t.State == TaskState.Pending).ToList();
                var n = a.Current.Instances ?? 1;
                var alive = cluster.ActiveTasksOfGroup(id).Count(t => t.State != TaskState.Killing);
                var delayed = a.DelayedUntil is { } until && until > time.GetUtcNow();
                if (waiting.Count == 0 && !(delayed && alive < n))
                {
                    continue;
                }

                queue.Add(new JsonObject
                {
                    ["app"] = AppNode(a.Current),
                    ["count"] = Math.Max(waiting.Count, n - alive),
                    ["delay"] = new JsonObject
                    {
                        ["timeLeftSeconds"] = delayed ? (int)Math.Ceiling((a.DelayedUntil!.Value - time.GetUtcNow()).TotalSeconds) : 0,
                        ["overdue"] = !delayed,
                    },
                    ["since"] = waiting.Count > 0 ? waiting.Min(t => t.SubmittedAt).ToString("o") : null,
                    // Why the waiting instances are not placed, as the placement engine says it.
                    ["lastUnusedOfferReasons"] = new JsonArray([.. waiting.Select(t => t.WaitingReason).Where(r => r is not null).Distinct().Select(r => (JsonNode)JsonValue.Create(r)!)]),
                });
            }

            return Json(new JsonObject { ["queue"] = queue });
        }).Access(Access);

        app.MapDelete("/v2/queue/{**appId}", (string appId, HttpContext http, ServiceRegistry registry) =>
        {
            var id = "/" + appId.Trim('/');
            if (id.EndsWith("/delay", StringComparison.Ordinal))
            {
                id = id[..^"/delay".Length];
            }

            if (MarathonAccess.Require(http, id, PermissionAction.Update) is { } denied)
            {
                return denied;
            }

            return registry.ResetDelay(id) ? Results.NoContent() : NoApp(id);
        }).Access(Access);
    }

    // ------------------------------------------------------------------ handlers

    private static async Task<IResult> PutApp(HttpContext http, ServiceRegistry registry, ClusterState cluster, string appId, bool patch)
    {
        // The path's permission before anything is looked up there (its canonical form: the id that is written), so a
        // caller without permission on it gets the same 403 whether or not an app exists, and no merged definition.
        var target = AppId.TryParse(appId, out var parsed, out _) ? parsed.Canonical().ToString() : appId;
        if (MarathonAccess.RequireSomeAccess(http, target) is { } unknowable)
        {
            return unknowable;
        }

        var existing = registry.Get(target);
        var (def, error) = await ReadApp(http, patch ? existing?.Current : null, target);
        if (error is not null)
        {
            return error;
        }

        if (MarathonAccess.Require(http, MarathonAccess.ToWrite(def!, exists: existing is not null)) is { } denied)
        {
            return denied;
        }

        if (patch && existing is null && http.Request.Method == "PATCH")
        {
            return NoApp(appId);
        }

        // Any new definition of an app that uses secrets needs read on them: a changed command could print them.
        if (SecretAccess.MarathonRefusal(http, [def!]) is { } refusedSecrets)
        {
            return refusedSecrets;
        }

        // What was authorized (create or update) is what the registry does, or nothing: an app created or removed in
        // between is a 409, never an overwrite by a caller who may only create.
        var result = registry.Put(def!, existing is null ? AppExpectation.Absent : AppExpectation.Present, force: Force(http));
        if (Changed(result) is { } changed)
        {
            return changed;
        }

        if (Locked(result) is { } locked)
        {
            return locked;
        }

        await result.Durable;
        http.Response.Headers["Marathon-Deployment-Id"] = result.Deployment!.Id;
        if (existing is null)
        {
            http.Response.Headers.Location = "/v2/apps" + def!.Id;
            return Json(AppJson(registry.Get(def.Id!)!, cluster, Embeds(http, "app.", defaultAll: false)), StatusCodes.Status201Created);
        }

        return Json(new JsonObject { ["version"] = result.Deployment.Version, ["deploymentId"] = result.Deployment.Id });
    }

    private static async Task<IResult> KillTasks(HttpContext http, ServiceRegistry registry, ClusterState cluster, ServiceController controller, string appId, string? taskId)
    {
        if (registry.Get(appId) is null)
        {
            return NoApp(appId);
        }

        var host = http.Request.Query["host"].ToString();
        var targets = cluster.ActiveTasksOfGroup(appId)
            .Where(t => taskId is null || t.Id == taskId)
            .Where(t => host.Length == 0 || host == "*" || t.Hostname == host)
            .ToList();
        if (taskId is not null && targets.Count == 0)
        {
            return Message(StatusCodes.Status404NotFound, $"Task '{taskId}' does not exist");
        }

        // Scale and kill in one step as far as the controller can tell: between the two it would see
        // one instance too many (or too few) and kill (or launch) another.
        // Save first, then act: the scale is durable before any kill (a failed write kills nothing: 503).
        var scale = Bool(http, "scale");
        var change = await controller.RunExclusiveAsync(async () =>
        {
            var scaled = scale ? ScaleDown(registry, appId, targets.Count) : null;
            if (scaled is not null)
            {
                await scaled.Durable.ConfigureAwait(false);
            }

            foreach (var t in targets)
            {
                cluster.Kill(t.Id);
            }

            return scaled;
        }, http.RequestAborted);
        if (change is not null)
        {
            return Json(new JsonObject { ["version"] = change.Deployment?.Version, ["deploymentId"] = change.Deployment?.Id });
        }

        return taskId is null
            ? Json(new JsonObject { ["tasks"] = TasksJson(targets) })
            : Json(new JsonObject { ["task"] = TaskJson(targets[0]) });
    }

    private static ServiceRegistry.ChangeResult? ScaleDown(ServiceRegistry registry, string appId, int by)
    {
        if (by <= 0 || registry.Get(appId) is not { } app)
        {
            return null;
        }

        var scaled = app.Current with { Instances = Math.Max(0, (app.Current.Instances ?? 1) - by) };
        return registry.Put(scaled, mustCreate: false, force: true);
    }

    private static async Task<IResult> Change(ServiceRegistry.ChangeResult result, string appId)
    {
        if (result.Error == AppChangeError.NotFound)
        {
            return NoApp(appId);
        }

        if (Locked(result) is { } locked)
        {
            return locked;
        }

        await result.Durable;
        return Json(new JsonObject { ["version"] = result.Deployment?.Version, ["deploymentId"] = result.Deployment?.Id });
    }

    /// <summary>Reads, validates and defaults an app body. For PATCH the body is merged onto <paramref name="patchBase"/>.</summary>
    private static async Task<(AppDefinition? App, IResult? Error)> ReadApp(HttpContext http, AppDefinition? patchBase, string? pathId = null)
    {
        using var buffer = new MemoryStream();
        await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
        return ParseApp(buffer.ToArray(), patchBase, pathId);
    }

    /// <summary>Parses, merges (onto <paramref name="patchBase"/> when given), validates and defaults one app body.</summary>
    private static (AppDefinition? App, IResult? Error) ParseApp(byte[] bytes, AppDefinition? patchBase, string? pathId)
    {
        if (patchBase is not null)
        {
            try
            {
                var merged = JsonNode.Parse(MarathonJson.Serialize(patchBase))!.AsObject();
                if (JsonNode.Parse(bytes) is not JsonObject patch)
                {
                    return (null, Message(StatusCodes.Status400BadRequest, "Invalid JSON"));
                }

                foreach (var (k, v) in patch)
                {
                    merged[k] = v?.DeepClone();
                }

                merged.Remove("version");
                bytes = JsonSerializer.SerializeToUtf8Bytes(merged, JsonNodeContext.Default.JsonObject);
            }
            catch (JsonException)
            {
                return (null, Message(StatusCodes.Status400BadRequest, "Invalid JSON"));
            }
        }

        if (!MarathonJson.TryParseApp(bytes, out var app, out var parseError))
        {
            return (null, Results.Content(MarathonJson.Serialize(parseError), "application/json", statusCode: parseError.StatusCode));
        }

        if (pathId is not null)
        {
            if (app.Id is not null && AppId.TryParse(app.Id, out var bodyId, out _) && bodyId.ToString() != pathId)
            {
                return (null, Message(StatusCodes.Status422UnprocessableEntity, $"The id in the body ({app.Id}) does not match the path ({pathId})"));
            }

            app = app with { Id = pathId };
        }

        if (MarathonValidator.Validate(app) is { } invalid)
        {
            return (null, Results.Content(MarathonJson.Serialize(invalid), "application/json", statusCode: invalid.StatusCode));
        }

        return (Canonical(app), null);
    }

    /// <summary>
    /// An app with every default applied, in the form it has after a store round trip. Defaulting is
    /// applied until it no longer changes anything (e.g. a health check gains portIndex 0 once the
    /// default port is listed), so comparing two definitions compares what they mean.
    /// </summary>
    internal static AppDefinition Canonical(AppDefinition app, string? parentGroupId = null)
    {
        var current = app.WithDefaults(parentGroupId);
        for (var i = 0; i < 3; i++)
        {
            var json = MarathonJson.Serialize(current);
            if (!MarathonJson.TryParseApp(json, out var reparsed, out _))
            {
                return current;
            }

            var next = reparsed.WithDefaults(parentGroupId);
            if (MarathonJson.Serialize(next) == json)
            {
                return next;
            }

            current = next;
        }

        return current;
    }

    // ------------------------------------------------------------------ JSON shapes

    private static JsonObject AppNode(AppDefinition app) => JsonNode.Parse(MarathonJson.Serialize(app))!.AsObject();

    private static JsonObject AppJson(AppSnapshot a, ClusterState cluster, HashSet<string> embed)
    {
        var node = AppNode(a.Current);
        // Counts without a view per instance: listing a thousand apps of a thousand instances stays cheap.
        var counts = cluster.SummarizeGroup(a.Current.Id!);
        node["tasksStaged"] = counts.Staged;
        node["tasksRunning"] = counts.Running;
        node["tasksHealthy"] = counts.Healthy;
        node["tasksUnhealthy"] = counts.Unhealthy;
        node["deployments"] = a.Deployment is { } d ? new JsonArray(new JsonObject { ["id"] = d.Id }) : new JsonArray();
        if (embed.Contains("tasks"))
        {
            node["tasks"] = TasksJson(cluster.ActiveTasksOfGroup(a.Current.Id!));
        }

        if (embed.Contains("lastTaskFailure") && a.LastFailure is { } f)
        {
            node["lastTaskFailure"] = new JsonObject
            {
                ["appId"] = f.AppId,
                ["taskId"] = f.TaskId,
                ["state"] = f.State,
                ["message"] = f.Message,
                ["host"] = f.Host,
                ["version"] = f.Version,
                ["timestamp"] = f.Timestamp.ToString("o"),
            };
        }

        return node;
    }

    private static JsonArray TasksJson(IEnumerable<TaskView> tasks) => new([.. tasks.Select(t => (JsonNode)TaskJson(t))]);

    private static JsonObject TaskJson(TaskView t)
    {
        var task = new JsonObject
        {
            ["id"] = t.Id,
            ["appId"] = t.AppId,
            ["host"] = t.Hostname,
            ["ports"] = new JsonArray([.. t.Ports.Select(p => (JsonNode)JsonValue.Create(p))]),
            ["servicePorts"] = new JsonArray(),
            ["slaveId"] = t.AgentId,
            ["stagedAt"] = t.SubmittedAt.ToString("o"),
            ["startedAt"] = t.StartedAt?.ToString("o"),
            ["version"] = t.AppVersion,
            ["state"] = t.State.WireName(),
        };
        if (t.HasHealthCheck)
        {
            // One entry per health check, as reported with the task's last health change (Marathon's Health JSON).
            task["healthCheckResults"] = !t.HealthResults.IsEmpty
                ? new JsonArray([.. t.HealthResults.Select(r => (JsonNode)HealthResultJson(t.Id, r.Alive, r.ConsecutiveFailures, r.LastFailureCause))])
                : t.Healthy is { } healthy
                    ? new JsonArray(HealthResultJson(t.Id, healthy, healthy ? 0 : 1, null))
                    : new JsonArray();
        }

        return task;
    }

    private static JsonObject HealthResultJson(string taskId, bool alive, int consecutiveFailures, string? lastFailureCause)
    {
        var result = new JsonObject { ["alive"] = alive, ["taskId"] = taskId, ["instanceId"] = taskId, ["consecutiveFailures"] = consecutiveFailures };
        if (lastFailureCause is not null)
        {
            result["lastFailureCause"] = lastFailureCause;
        }

        return result;
    }

    /// <summary>Marathon's <c>readinessCheckResults</c> of a deployment: one per live instance of the version being deployed.</summary>
    private static JsonArray ReadinessJson(Deployment d, ClusterState cluster)
    {
        if (d.To is not { ReadinessChecks: { Length: > 0 } checks } to)
        {
            return [];
        }

        var version = ServiceRegistry.ConfigVersion(to);
        var name = checks[0].Name ?? ReadinessCheck.DefaultName;
        return new JsonArray([.. cluster.ActiveTasksOfGroup(d.AppId)
            .Where(t => t.AppVersion == version && t.HasReadinessCheck && t.State == TaskState.Running)
            .Select(t => (JsonNode)new JsonObject { ["name"] = name, ["taskId"] = t.Id, ["ready"] = t.Ready == true })]);
    }

    private static JsonObject DeploymentJson(IReadOnlyList<Deployment> plan, ClusterState cluster)
    {
        static string[] ActionsOf(Deployment d) => d.Action == DeploymentActions.Start ? [DeploymentActions.Start, DeploymentActions.Scale] : [d.Action];

        var total = plan.Max(d => ActionsOf(d).Length);
        var steps = new JsonArray();
        for (var i = 0; i < total; i++)
        {
            var step = i;
            steps.Add(new JsonObject
            {
                ["actions"] = new JsonArray([.. plan.Where(d => ActionsOf(d).Length > step)
                    .Select(d => (JsonNode)new JsonObject { ["action"] = ActionsOf(d)[step], ["app"] = d.AppId })]),
            });
        }

        return new JsonObject
        {
            ["id"] = plan[0].Id,
            ["version"] = plan.Max(d => d.Version),
            ["affectedApps"] = new JsonArray([.. plan.Select(d => (JsonNode)JsonValue.Create(d.AppId)!)]),
            ["affectedPods"] = new JsonArray(),
            ["steps"] = steps,
            ["currentActions"] = new JsonArray([.. plan.Select(d => (JsonNode)new JsonObject
            {
                ["action"] = ActionsOf(d)[^1],
                ["app"] = d.AppId,
                ["readinessCheckResults"] = ReadinessJson(d, cluster),
            })]),
            ["currentStep"] = total,
            ["totalSteps"] = total,
        };
    }

    // ------------------------------------------------------------------ small helpers

    private static IResult Json(JsonNode node, int status = StatusCodes.Status200OK) =>
        Results.Content(node.ToJsonString(), "application/json; charset=utf-8", statusCode: status);

    /// <summary>Marathon's plain error body: <c>{"message": "..."}</c>.</summary>
    private static IResult Message(int status, string message) => Json(new JsonObject { ["message"] = message }, status);

    private static IResult NoApp(string appId) => Message(StatusCodes.Status404NotFound, $"App '{appId}' does not exist");

    /// <summary>
    /// The 409 of a change whose authorization assumed an app existed (update) or did not (create) when another
    /// request had meanwhile created or removed it; nothing changed.
    /// </summary>
    internal static IResult? Changed(ServiceRegistry.ChangeResult r) => r.Error is AppChangeError.Changed or AppChangeError.AlreadyExists
        ? Message(StatusCodes.Status409Conflict, $"App '{r.ChangedApp}' was created or removed by another request while this one was checked; nothing was changed, retry.")
        : null;

    private static IResult? Locked(ServiceRegistry.ChangeResult r) => r.Error != AppChangeError.Locked ? null : Json(new JsonObject
    {
        ["message"] = $"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{r.ConflictingDeployment}'.",
        ["deployments"] = new JsonArray(new JsonObject { ["id"] = r.ConflictingDeployment }),
    }, StatusCodes.Status409Conflict);

    private static bool Force(HttpContext http) => Bool(http, "force");

    private static bool Bool(HttpContext http, string name) =>
        string.Equals(http.Request.Query[name].ToString(), "true", StringComparison.OrdinalIgnoreCase);

    private static HashSet<string> Embeds(HttpContext http, string prefix, bool defaultAll = false)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in http.Request.Query["embed"])
        {
            if (e is not null && e.StartsWith(prefix, StringComparison.Ordinal))
            {
                set.Add(e[prefix.Length..]);
            }
        }

        if (defaultAll && set.Count == 0)
        {
            set.UnionWith(["tasks", "counts", "deployments", "lastTaskFailure"]);
        }

        return set;
    }

    private static bool MatchesLabel(AppDefinition app, string selector)
    {
        // label=key or label=key==value (Marathon's label selector, simplified to equality).
        var parts = selector.Split("==", 2);
        var labels = app.Labels ?? ImmutableSortedDictionary<string, string>.Empty;
        return parts.Length == 1 ? labels.ContainsKey(parts[0].Trim()) : labels.TryGetValue(parts[0].Trim(), out var v) && v == parts[1].Trim();
    }

    /// <summary>Splits <c>prod/web/tasks/TASKID</c> into the app id, the sub-resource and its argument.</summary>
    private static (string AppId, string? Suffix, string? Argument) SplitAppPath(string path)
    {
        var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = segments.Length - 1; i >= 1; i--)
        {
            if (segments[i] is "restart" or "tasks" or "versions")
            {
                var rest = i + 1 < segments.Length ? string.Join('/', segments[(i + 1)..]) : null;
                return ("/" + string.Join('/', segments[..i]), segments[i], rest);
            }
        }

        return ("/" + string.Join('/', segments), null, null);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonObject))]
internal sealed partial class JsonNodeContext : System.Text.Json.Serialization.JsonSerializerContext;
