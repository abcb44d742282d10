using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.Services;

namespace Drover.Master.Events;

/// <summary>Marathon's event types (<c>eventType</c>), as its event bus names them.</summary>
internal static class EventTypes
{
    public const string ApiPost = "api_post_event";
    public const string DeploymentInfo = "deployment_info";
    public const string DeploymentSuccess = "deployment_success";
    public const string DeploymentFailed = "deployment_failed";
    public const string DeploymentStepSuccess = "deployment_step_success";
    public const string DeploymentStepFailure = "deployment_step_failure";
    public const string GroupChangeSuccess = "group_change_success";
    public const string AppTerminated = "app_terminated_event";
    public const string StatusUpdate = "status_update_event";
    public const string InstanceChanged = "instance_changed_event";
    public const string HealthStatusChanged = "health_status_changed_event";
    public const string InstanceHealthChanged = "instance_health_changed_event";
    public const string FailedHealthCheck = "failed_health_check_event";
    public const string UnhealthyInstanceKill = "unhealthy_instance_kill_event";
    public const string UnknownInstanceTerminated = "unknown_instance_terminated_event";
    public const string StreamAttached = "event_stream_attached";
    public const string StreamDetached = "event_stream_detached";
}

/// <summary>
/// Builds Marathon's events with Marathon's JSON shapes (field names as in its event bus docs). Each
/// payload closes over immutable values only, since it is serialized lazily (<see cref="MarathonEvent"/>).
/// Drover's task ids double as Marathon's instance ids (one task per instance).
/// </summary>
internal static class EventFactory
{
    // ------------------------------------------------------------------ API and streams

    public static MarathonEvent ApiPost(DateTimeOffset at, string clientIp, string uri, AppDefinition app) =>
        new(EventTypes.ApiPost, at, _ => new JsonObject
        {
            ["clientIp"] = clientIp,
            ["uri"] = uri,
            ["appDefinition"] = AppNode(app),
        }, appIds: [app.Id!]);

    public static MarathonEvent StreamAttached(DateTimeOffset at, string remoteAddress) =>
        new(EventTypes.StreamAttached, at, _ => new JsonObject { ["remoteAddress"] = remoteAddress });

    /// <summary>
    /// Marathon's <c>event_stream_detached</c> (<c>remoteAddress</c>, <c>eventType</c>, <c>timestamp</c>). When the master
    /// detached the stream itself, <paramref name="reason"/> says why in an extra <c>reason</c> field (clients that do not
    /// know it ignore it); a stream the client closed has none, as in Marathon.
    /// </summary>
    public static MarathonEvent StreamDetached(DateTimeOffset at, string remoteAddress, string? reason = null) =>
        new(EventTypes.StreamDetached, at, _ => reason is null
            ? new JsonObject { ["remoteAddress"] = remoteAddress }
            : new JsonObject { ["remoteAddress"] = remoteAddress, ["reason"] = reason });

    // ------------------------------------------------------------------ deployments

    /// <summary>The actions of one app's deployment, one per step (as <c>/v2/deployments</c> shows them).</summary>
    public static string[] StepActions(Deployment d) =>
        d.Action == DeploymentActions.Start ? [DeploymentActions.Start, DeploymentActions.Scale] : [d.Action];

    /// <summary><c>deployment_info</c>: step <paramref name="step"/> (0-based) of <paramref name="app"/>'s deployment in <paramref name="plan"/> starts.</summary>
    public static MarathonEvent DeploymentInfo(DateTimeOffset at, ImmutableArray<Deployment> plan, Deployment app, int step) =>
        PlanStep(EventTypes.DeploymentInfo, at, plan, app, step);

    public static MarathonEvent DeploymentStepSuccess(DateTimeOffset at, ImmutableArray<Deployment> plan, Deployment app, int step) =>
        PlanStep(EventTypes.DeploymentStepSuccess, at, plan, app, step);

    public static MarathonEvent DeploymentStepFailure(DateTimeOffset at, ImmutableArray<Deployment> plan, Deployment app, int step) =>
        PlanStep(EventTypes.DeploymentStepFailure, at, plan, app, step);

    public static MarathonEvent DeploymentSuccess(DateTimeOffset at, ImmutableArray<Deployment> plan) =>
        new(EventTypes.DeploymentSuccess, at, light => new JsonObject
        {
            ["id"] = plan[0].Id,
            ["plan"] = Plan(plan, light),
        }, hasLightForm: true, appIds: AppsOf(plan));

    public static MarathonEvent DeploymentFailed(DateTimeOffset at, ImmutableArray<Deployment> plan) =>
        new(EventTypes.DeploymentFailed, at, light => new JsonObject
        {
            ["id"] = plan[0].Id,
            ["plan"] = Plan(plan, light),
        }, hasLightForm: true, appIds: AppsOf(plan));

    /// <summary><c>group_change_success</c> for the group holding the deployment's app.</summary>
    public static MarathonEvent GroupChangeSuccess(DateTimeOffset at, Deployment d) =>
        new(EventTypes.GroupChangeSuccess, at, _ => new JsonObject
        {
            ["groupId"] = ParentGroup(d.AppId),
            ["version"] = PlanVersion(d),
        }, appIds: [d.AppId]);

    public static MarathonEvent AppTerminated(DateTimeOffset at, string appId) =>
        new(EventTypes.AppTerminated, at, _ => new JsonObject { ["appId"] = appId }, appIds: [appId]);

    /// <summary>
    /// Marathon's deployment plan over the apps' deployments of one plan id (one app, or the apps of a
    /// group change). Steps are laid out as <c>/v2/deployments</c> does. The full form carries the
    /// <c>original</c> and <c>target</c> groups, holding the plan's apps (flat, under <c>/</c>); the light form
    /// (<c>?plan-format=light</c>) leaves both out.
    /// </summary>
    public static JsonObject Plan(ImmutableArray<Deployment> plan, bool light)
    {
        var version = plan.Select(PlanVersion).Max(StringComparer.Ordinal)!;
        var steps = new JsonArray();
        var total = plan.Max(d => StepActions(d).Length);
        for (var i = 0; i < total; i++)
        {
            var step = i;
            steps.Add(new JsonObject
            {
                ["actions"] = new JsonArray([.. plan.Where(d => StepActions(d).Length > step).Select(d => (JsonNode)Action(StepActions(d)[step], d.AppId))]),
            });
        }

        var json = new JsonObject
        {
            ["id"] = plan[0].Id,
            ["version"] = version,
            ["steps"] = steps,
        };
        if (!light)
        {
            var from = plan.Where(d => d.From is not null).Select(d => d.From!).ToList();
            json["original"] = Group(from, from.Select(a => a.Version).Max(StringComparer.Ordinal) ?? version);
            json["target"] = Group([.. plan.Where(d => d.To is not null).Select(d => d.To!)], version);
        }

        return json;
    }

    private static MarathonEvent PlanStep(string type, DateTimeOffset at, ImmutableArray<Deployment> plan, Deployment app, int step) =>
        new(type, at, light => new JsonObject
        {
            ["plan"] = Plan(plan, light),
            ["currentStep"] = new JsonObject { ["actions"] = new JsonArray(Action(StepActions(app)[step], app.AppId)) },
        }, hasLightForm: true, appIds: AppsOf(plan));

    private static ImmutableArray<string> AppsOf(ImmutableArray<Deployment> plan) => [.. plan.Select(d => d.AppId).Distinct()];

    /// <summary>A task event is about the task's app (publishers send them for app instances only).</summary>
    private static ImmutableArray<string> AppOf(TaskView t) => t.AppId is { } app ? [app] : [];

    private static string PlanVersion(Deployment d) => d.To?.Version ?? MarathonEvent.FormatTimestamp(d.StartedAt);

    private static JsonObject Action(string action, string appId) => new() { ["action"] = action, ["app"] = appId };

    private static JsonObject Group(List<AppDefinition> apps, string version) => new()
    {
        ["id"] = "/",
        ["apps"] = new JsonArray([.. apps.Select(a => (JsonNode)AppNode(a))]),
        ["pods"] = new JsonArray(),
        ["groups"] = new JsonArray(),
        ["dependencies"] = new JsonArray(),
        ["version"] = version,
    };

    private static string ParentGroup(string appId) =>
        AppId.TryParse(appId, out var id, out _) ? id.Parent.ToString() is { Length: > 0 } p ? p : "/" : "/";

    // ------------------------------------------------------------------ tasks

    /// <summary><c>status_update_event</c>: the task's latest status, as Marathon relays Mesos' updates.</summary>
    public static MarathonEvent StatusUpdate(DateTimeOffset at, TaskView t) =>
        new(EventTypes.StatusUpdate, at, _ => new JsonObject
        {
            ["slaveId"] = t.AgentId ?? "",
            ["taskId"] = t.Id,
            ["taskStatus"] = t.State.WireName(),
            ["message"] = LatestMessage(t),
            ["appId"] = t.AppId,
            ["host"] = t.Hostname ?? "",
            ["ipAddresses"] = new JsonArray(),
            ["ports"] = new JsonArray([.. t.Ports.Select(p => (JsonNode)JsonValue.Create(p))]),
            ["version"] = t.AppVersion ?? "",
        }, appIds: AppOf(t));

    public static MarathonEvent InstanceChanged(DateTimeOffset at, TaskView t) =>
        new(EventTypes.InstanceChanged, at, _ => new JsonObject
        {
            ["instanceId"] = t.Id,
            ["condition"] = Condition(t),
            ["runSpecId"] = t.AppId,
            ["agentId"] = t.AgentId ?? "",
            ["host"] = t.Hostname ?? "",
            ["runSpecVersion"] = t.AppVersion ?? "",
        }, appIds: AppOf(t));

    public static MarathonEvent HealthStatusChanged(DateTimeOffset at, TaskView t, bool alive) =>
        new(EventTypes.HealthStatusChanged, at, _ => new JsonObject
        {
            ["appId"] = t.AppId,
            ["taskId"] = t.Id,
            ["instanceId"] = t.Id,
            ["version"] = t.AppVersion ?? "",
            ["alive"] = alive,
        }, appIds: AppOf(t));

    public static MarathonEvent InstanceHealthChanged(DateTimeOffset at, TaskView t, bool healthy) =>
        new(EventTypes.InstanceHealthChanged, at, _ => new JsonObject
        {
            ["instanceId"] = t.Id,
            ["runSpecId"] = t.AppId,
            ["runSpecVersion"] = t.AppVersion ?? "",
            ["healthy"] = healthy,
        }, appIds: AppOf(t));

    /// <summary><c>failed_health_check_event</c>, with the app's health check when <paramref name="app"/> is known.</summary>
    public static MarathonEvent FailedHealthCheck(DateTimeOffset at, TaskView t, AppDefinition? app) =>
        new(EventTypes.FailedHealthCheck, at, _ => new JsonObject
        {
            ["appId"] = t.AppId,
            ["taskId"] = t.Id,
            ["instanceId"] = t.Id,
            ["healthCheck"] = app is null ? null : AppNode(app)["healthChecks"]?.AsArray().FirstOrDefault()?.DeepClone(),
        }, appIds: AppOf(t));

    public static MarathonEvent UnhealthyInstanceKill(DateTimeOffset at, TaskView t) =>
        new(EventTypes.UnhealthyInstanceKill, at, _ => new JsonObject
        {
            ["appId"] = t.AppId,
            ["taskId"] = t.Id,
            ["instanceId"] = t.Id,
            ["version"] = t.AppVersion ?? "",
            ["reason"] = LatestMessage(t),
            ["host"] = t.Hostname ?? "",
            ["slaveId"] = t.AgentId,
        }, appIds: AppOf(t));

    /// <summary>
    /// A task an agent ran that the master had no record of, killed after <c>--unknown-task-grace</c>. Marathon's
    /// <c>runSpecId</c> is read back from the task id as Marathon does from an instance id (<c>a_b.suffix</c> is
    /// <c>/a/b</c>): the master has no spec for it. A subscriber sees the event only if it may read that app.
    /// </summary>
    public static MarathonEvent UnknownInstanceTerminated(DateTimeOffset at, string taskId)
    {
        var dot = taskId.LastIndexOf('.');
        var runSpecId = "/" + (dot > 0 ? taskId[..dot] : taskId).Replace('_', '/');
        return new(EventTypes.UnknownInstanceTerminated, at, _ => new JsonObject
        {
            ["instanceId"] = taskId,
            ["runSpecId"] = runSpecId,
            ["condition"] = "Killed",
        }, appIds: [runSpecId]);
    }

    /// <summary>Marathon's instance condition for a task state.</summary>
    public static string Condition(TaskView t) => t.State switch
    {
        TaskState.Pending => "Scheduled",
        TaskState.Staging => "Staging",
        TaskState.Starting => "Starting",
        TaskState.Running => "Running",
        TaskState.Killing => "Killing",
        TaskState.Finished => "Finished",
        TaskState.Failed => "Failed",
        TaskState.Killed => "Killed",
        TaskState.Error => "Error",
        TaskState.Dropped => "Dropped",
        TaskState.Unreachable => "Unreachable",
        TaskState.Gone or TaskState.GoneByOperator => "Gone",
        TaskState.Lost when t.Reason == TaskReasons.AgentRemoved => "Gone",
        _ => "Unknown",
    };

    /// <summary>True for the terminal update of a task its agent killed for failing its health check.</summary>
    /// <summary>
    /// Killed by its agent for failing health checks. Decided on the final status itself: the task's
    /// sticky Reason comes from earlier health updates too, so an ordinary kill would otherwise look alike.
    /// </summary>
    public static bool KilledForHealth(TaskView t) =>
        t.State == TaskState.Killed && t.Statuses.LastOrDefault() is { State: TaskState.Killed } last
        && last.Reason == TaskReasons.TaskHealthCheckStatusUpdated && last.Healthy == false;

    private static string LatestMessage(TaskView t) => (t.Statuses.IsEmpty ? t.Message : t.Statuses[^1].Message) ?? "";

    private static JsonObject AppNode(AppDefinition app) => JsonNode.Parse(MarathonJson.Serialize(app))!.AsObject();
}
