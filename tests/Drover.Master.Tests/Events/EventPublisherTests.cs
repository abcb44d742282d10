using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Marathon;
using Drover.Master.Events;
using Drover.Master.Services;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Events;

/// <summary>What the master's hooks publish, without HTTP or agents.</summary>
public sealed class EventPublisherTests : IDisposable
{
    private readonly ManualTimeProvider _time = new();
    private readonly ServiceRegistry _registry;
    private readonly EventBus _bus = new();
    private readonly EventPublisher _publisher;
    private readonly EventSubscription _events;

    public EventPublisherTests()
    {
        _registry = new ServiceRegistry(null, _time, NullLogger<ServiceRegistry>.Instance);
        var cluster = new ClusterState(new MasterOptions(), _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _publisher = new EventPublisher(_bus, _registry, cluster, _time);
        _events = _bus.Subscribe();
    }

    public void Dispose()
    {
        _events.Dispose();
        _publisher.Dispose();
    }

    private static AppDefinition App(string json) =>
        MarathonJson.TryParseApp(json, out var app, out var error) ? app.WithDefaults() : throw new ArgumentException(error.Message);

    private static AppDefinition Sleep(string id = "/ev", int instances = 1) =>
        App($$"""{"id": "{{id}}", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "instances": {{instances}}}""");

    private List<JsonObject> Drain()
    {
        var list = new List<JsonObject>();
        while (_events.Reader.TryRead(out var e))
        {
            list.Add(e.ToJson());
        }

        return list;
    }

    private static string[] Types(IEnumerable<JsonObject> events) => [.. events.Select(e => e["eventType"]!.GetValue<string>())];

    private static TaskView View(TaskState state, bool? healthy = null, string? reason = null, string? appId = "/ev", string id = "ev.1") => new()
    {
        Id = id,
        Name = appId ?? id,
        State = state,
        Cpus = 0.1m,
        Mem = 32,
        Disk = 0,
        Ports = [31001],
        AgentId = "agent-1",
        Hostname = "host-1",
        SubmittedAt = DateTimeOffset.UnixEpoch,
        AppId = appId,
        AppVersion = "2026-01-01T00:00:00.000Z",
        Healthy = healthy,
        HasHealthCheck = healthy is not null,
        Reason = reason,
        Statuses = [new TaskStatus { TaskId = id, State = state, Message = $"now {state}", Reason = reason, Healthy = healthy }],
    };

    [Fact]
    public void Put_NewApp_ApiPostThenDeploymentStepsThenGroupChange()
    {
        var result = _registry.Put(Sleep(), mustCreate: true, force: false);

        var events = Drain();
        Assert.Equal(["api_post_event", "deployment_info", "deployment_step_success", "deployment_info", "group_change_success"], Types(events));
        Assert.Equal("/ev", events[0]["appDefinition"]!["id"]!.GetValue<string>());
        Assert.Equal("sleep 1000", events[0]["appDefinition"]!["cmd"]!.GetValue<string>());
        var plan = events[1]["plan"]!;
        Assert.Equal(result.Deployment!.Id, plan["id"]!.GetValue<string>());
        Assert.Equal("StartApplication", plan["steps"]![0]!["actions"]![0]!["action"]!.GetValue<string>());
        Assert.Equal("ScaleApplication", plan["steps"]![1]!["actions"]![0]!["action"]!.GetValue<string>());
        Assert.Empty(plan["original"]!["apps"]!.AsArray());
        Assert.Equal("/ev", plan["target"]!["apps"]![0]!["id"]!.GetValue<string>());
        Assert.Equal("StartApplication", events[1]["currentStep"]!["actions"]![0]!["action"]!.GetValue<string>());
        Assert.Equal("ScaleApplication", events[3]["currentStep"]!["actions"]![0]!["action"]!.GetValue<string>());
        Assert.Equal("/", events[4]["groupId"]!.GetValue<string>());
        Assert.Equal(result.Deployment.Version, events[4]["version"]!.GetValue<string>());
        Assert.All(events, e => Assert.Equal("2026-01-01T00:00:00.000Z", e["timestamp"]!.GetValue<string>()));
    }

    [Fact]
    public void FinishDeployment_LastStepThenSuccess()
    {
        var dep = _registry.Put(Sleep(), mustCreate: true, force: false).Deployment!;
        Drain();

        _registry.FinishDeployment("/ev", dep.Id);

        var events = Drain();
        Assert.Equal(["deployment_step_success", "deployment_success"], Types(events));
        Assert.Equal(dep.Id, events[1]["id"]!.GetValue<string>());
        Assert.Equal("ScaleApplication", events[0]["currentStep"]!["actions"]![0]!["action"]!.GetValue<string>());
    }

    [Fact]
    public void Put_ForceWhileDeploying_OldDeploymentFailsBeforeTheNewStarts()
    {
        var first = _registry.Put(Sleep(), mustCreate: true, force: false).Deployment!;
        Drain();

        var second = _registry.Put(Sleep(instances: 3), mustCreate: false, force: true).Deployment!;

        var events = Drain();
        Assert.Equal(["api_post_event", "deployment_step_failure", "deployment_failed", "deployment_info", "group_change_success"], Types(events));
        Assert.Equal(first.Id, events[2]["id"]!.GetValue<string>());
        Assert.Equal(second.Id, events[3]["plan"]!["id"]!.GetValue<string>());
    }

    [Fact]
    public void CancelDeployment_Force_Failed()
    {
        var dep = _registry.Put(Sleep(), mustCreate: true, force: false).Deployment!;
        Drain();

        _registry.CancelDeployment(dep.Id, force: true);

        var events = Drain();
        Assert.Equal(["deployment_step_failure", "deployment_failed"], Types(events));
        Assert.Equal(dep.Id, events[1]["id"]!.GetValue<string>());
    }

    [Fact]
    public void DeleteThenFinish_StopDeploymentSucceedsAndAppTerminated()
    {
        var created = _registry.Put(Sleep(), mustCreate: true, force: false).Deployment!;
        _registry.FinishDeployment("/ev", created.Id);
        Drain();

        var stop = _registry.Delete("/ev", force: false).Deployment!;
        _registry.FinishDeployment("/ev", stop.Id);

        var events = Drain();
        Assert.Equal(["deployment_info", "group_change_success", "app_terminated_event", "deployment_step_success", "deployment_success"], Types(events));
        Assert.Equal("StopApplication", events[0]["currentStep"]!["actions"]![0]!["action"]!.GetValue<string>());
        Assert.Equal("/ev", events[2]["appId"]!.GetValue<string>());
    }

    [Fact]
    public void GroupPlan_TwoApps_OnePlanSucceedsOnceWhenBothFinished()
    {
        var plan = _registry.PutPlan([(Sleep("/g/a"), []), (Sleep("/g/b"), ["/g/a"])], [], force: false).Deployment!;

        var started = Drain();
        Assert.Equal(
            ["api_post_event", "deployment_info", "deployment_step_success", "deployment_info", "group_change_success",
             "api_post_event", "deployment_info", "deployment_step_success", "deployment_info"],
            Types(started));
        Assert.Equal("/g", started[4]["groupId"]!.GetValue<string>());
        var fullPlan = started[^1]["plan"]!;
        Assert.Equal(plan.Id, fullPlan["id"]!.GetValue<string>());
        Assert.Equal(["/g/a", "/g/b"], fullPlan["steps"]![0]!["actions"]!.AsArray().Select(a => a!["app"]!.GetValue<string>()));
        Assert.Equal(2, fullPlan["target"]!["apps"]!.AsArray().Count);

        _registry.FinishDeployment("/g/a", plan.Id);
        Assert.Equal(["deployment_step_success"], Types(Drain()));

        _registry.FinishDeployment("/g/b", plan.Id);
        var done = Drain();
        Assert.Equal(["deployment_step_success", "deployment_success"], Types(done));
        Assert.Equal(plan.Id, done[1]["id"]!.GetValue<string>());
    }

    [Fact]
    public void GroupPlan_CancelledWithForce_EachStepFailsAndThePlanFailsOnce()
    {
        var plan = _registry.PutPlan([(Sleep("/g/a"), []), (Sleep("/g/b"), [])], [], force: false).Deployment!;
        Drain();

        _registry.CancelDeployment(plan.Id, force: true);

        var events = Drain();
        Assert.Equal(["deployment_step_failure", "deployment_failed", "deployment_step_failure"], Types(events));
        Assert.Equal(plan.Id, events[1]["id"]!.GetValue<string>());
    }

    [Fact]
    public void DeploymentEndedBeforeItsStartHook_StartAnnouncedFirstAndNotTwice()
    {
        var dep = new Deployment { Id = "d1", AppId = "/ev", To = Sleep(), Action = DeploymentActions.Scale, StartedAt = _time.GetUtcNow() };

        _publisher.OnDeploymentEnded(dep, true);
        _publisher.OnDeploymentStarted(dep);

        Assert.Equal(["deployment_info", "group_change_success", "deployment_step_success", "deployment_success"], Types(Drain()));
    }

    [Fact]
    public void LightPlanFormat_LeavesOriginalAndTargetOut()
    {
        _registry.Put(Sleep(), mustCreate: true, force: false);
        MarathonEvent? info = null;
        while (_events.Reader.TryRead(out var e))
        {
            info ??= e.EventType == "deployment_info" ? e : null;
        }

        var light = info!.ToJson(light: true)["plan"]!.AsObject();
        Assert.False(light.ContainsKey("original"));
        Assert.False(light.ContainsKey("target"));
        Assert.True(light.ContainsKey("steps"));
        Assert.True(info.ToJson()["plan"]!.AsObject().ContainsKey("target"));
    }

    [Fact]
    public void TaskChanged_Lifecycle_StatusUpdatesAndInstanceChangesPerStateOnly()
    {
        _publisher.OnTaskChanged(View(TaskState.Staging));
        _publisher.OnTaskChanged(View(TaskState.Starting));
        _publisher.OnTaskChanged(View(TaskState.Running));
        _publisher.OnTaskChanged(View(TaskState.Running)); // nothing new
        _publisher.OnTaskChanged(View(TaskState.Failed));
        _publisher.OnTaskChanged(View(TaskState.Running)); // late and out of order: ignored

        var events = Drain();
        Assert.Equal(
            ["status_update_event", "instance_changed_event", "status_update_event", "instance_changed_event", "status_update_event", "instance_changed_event", "status_update_event", "instance_changed_event"],
            Types(events));
        Assert.Equal(["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"], events.Where(e => e.ContainsKey("taskStatus")).Select(e => e["taskStatus"]!.GetValue<string>()));
        Assert.Equal(["Staging", "Starting", "Running", "Failed"], events.Where(e => e.ContainsKey("condition")).Select(e => e["condition"]!.GetValue<string>()));

        var running = events[4];
        Assert.Equal("agent-1", running["slaveId"]!.GetValue<string>());
        Assert.Equal("ev.1", running["taskId"]!.GetValue<string>());
        Assert.Equal("/ev", running["appId"]!.GetValue<string>());
        Assert.Equal("host-1", running["host"]!.GetValue<string>());
        Assert.Equal(31001, running["ports"]![0]!.GetValue<int>());
        Assert.Equal("2026-01-01T00:00:00.000Z", running["version"]!.GetValue<string>());
        Assert.Equal("now Running", running["message"]!.GetValue<string>());
        var changed = events[5];
        Assert.Equal("ev.1", changed["instanceId"]!.GetValue<string>());
        Assert.Equal("/ev", changed["runSpecId"]!.GetValue<string>());
        Assert.Equal("agent-1", changed["agentId"]!.GetValue<string>());
        Assert.Equal("2026-01-01T00:00:00.000Z", changed["runSpecVersion"]!.GetValue<string>());
    }

    [Fact]
    public void TaskChanged_NotAnAppsTask_NothingPublished()
    {
        _publisher.OnTaskChanged(View(TaskState.Running, appId: null));

        Assert.Empty(Drain());
    }

    [Fact]
    public void TaskChanged_HealthTurnsAndKilledForIt_HealthEventsThenUnhealthyKill()
    {
        _registry.Put(App("""{"id": "/ev", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]}"""), mustCreate: true, force: false);
        var version = _registry.Get("/ev")!.Current.Version;
        Drain();
        TaskView Versioned(TaskView t) => t with { AppVersion = version };

        _publisher.OnTaskChanged(Versioned(View(TaskState.Running)) with { HasHealthCheck = true });
        _publisher.OnTaskChanged(Versioned(View(TaskState.Running, healthy: true, reason: TaskReasons.TaskHealthCheckStatusUpdated)));
        var healthy = Drain();
        _publisher.OnTaskChanged(Versioned(View(TaskState.Running, healthy: false, reason: TaskReasons.TaskHealthCheckStatusUpdated)));
        var unhealthy = Drain();
        _publisher.OnTaskChanged(Versioned(View(TaskState.Killed, healthy: false, reason: TaskReasons.TaskHealthCheckStatusUpdated)));
        var killed = Drain();

        Assert.Equal(["status_update_event", "instance_changed_event", "health_status_changed_event", "instance_health_changed_event"], Types(healthy));
        Assert.True(healthy[2]["alive"]!.GetValue<bool>());
        Assert.Equal("ev.1", healthy[2]["instanceId"]!.GetValue<string>());
        Assert.True(healthy[3]["healthy"]!.GetValue<bool>());

        Assert.Equal(["health_status_changed_event", "instance_health_changed_event", "failed_health_check_event"], Types(unhealthy));
        Assert.False(unhealthy[0]["alive"]!.GetValue<bool>());
        Assert.Equal("COMMAND", unhealthy[2]["healthCheck"]!["protocol"]!.GetValue<string>());
        Assert.Equal("ev.1", unhealthy[2]["taskId"]!.GetValue<string>());

        Assert.Equal(["status_update_event", "instance_changed_event", "unhealthy_instance_kill_event"], Types(killed));
        Assert.Equal("TASK_KILLED", killed[0]["taskStatus"]!.GetValue<string>());
        Assert.Equal("Killed", killed[1]["condition"]!.GetValue<string>());
        Assert.Equal("ev.1", killed[2]["taskId"]!.GetValue<string>());
        Assert.Equal("now Killed", killed[2]["reason"]!.GetValue<string>());
        Assert.Equal("agent-1", killed[2]["slaveId"]!.GetValue<string>());
    }

    [Fact]
    public void TaskChanged_KilledForHealthWithoutUnhealthyReportFirst_FailedHealthCheckToo()
    {
        _publisher.OnTaskChanged(View(TaskState.Running, healthy: true));
        Drain();

        _publisher.OnTaskChanged(View(TaskState.Killed, healthy: false, reason: TaskReasons.TaskHealthCheckStatusUpdated));

        Assert.Equal(["status_update_event", "instance_changed_event", "failed_health_check_event", "unhealthy_instance_kill_event"], Types(Drain()));
    }

    [Fact]
    public void NoSubscriberForAType_ItIsNotPublished()
    {
        using var onlyStatus = _bus.Subscribe(["status_update_event"]);
        _events.Dispose();

        _registry.Put(Sleep(), mustCreate: true, force: false);
        _publisher.OnTaskChanged(View(TaskState.Running));

        Assert.True(onlyStatus.Reader.TryRead(out var e));
        Assert.Equal("status_update_event", e.EventType);
        Assert.False(onlyStatus.Reader.TryRead(out _));
    }

    [Fact]
    public void UnknownTaskKilledAfterTheGrace_PublishesUnknownInstanceTerminatedWithTheAppReadFromTheId()
    {
        var options = new MasterOptions();
        var cluster = new ClusterState(options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        using var publisher = new EventPublisher(_bus, _registry, cluster, _time);
        const string taskId = "shop_web.0123456789abcdef";
        var agentId = cluster.Register(Build.Agent() with { Tasks = [new Core.TaskStatus { TaskId = taskId, State = TaskState.Running }] }).Registered.AgentId;
        Drain();

        _time.Advance(options.UnknownTaskGrace - TimeSpan.FromSeconds(1));
        cluster.Heartbeat(agentId, new Core.Protocol.AgentHeartbeat { ActiveTaskIds = [taskId] });
        Assert.Empty(Drain());

        _time.Advance(TimeSpan.FromSeconds(1));
        cluster.Heartbeat(agentId, new Core.Protocol.AgentHeartbeat { ActiveTaskIds = [taskId] });

        var e = Assert.Single(Drain());
        Assert.Equal(("unknown_instance_terminated_event", taskId, "/shop/web", "Killed"),
            (e["eventType"]!.GetValue<string>(), e["instanceId"]!.GetValue<string>(), e["runSpecId"]!.GetValue<string>(), e["condition"]!.GetValue<string>()));
        cluster.Heartbeat(agentId, new Core.Protocol.AgentHeartbeat { ActiveTaskIds = [taskId] });
        Assert.Empty(Drain()); // once per task
    }
}
