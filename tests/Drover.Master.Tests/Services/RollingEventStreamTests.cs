using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Testing;

namespace Drover.Master.Tests.Services;

/// <summary>
/// A rolling restart watched two ways at once: through <c>GET /v2/events</c> (replayed into a model of
/// which instances are healthy) and through the API (sampled). Neither may ever see fewer healthy
/// instances than the upgrade strategy's floor. Real in-process cluster; needs root.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class RollingEventStreamTests() : ServiceClusterTest("rollev-host", "cpus:8;mem:4096;disk:1024", 200)
{
    private const string AppId = "/rollev";
    private const int Instances = 10;
    private const int Floor = 5; // minimumHealthCapacity 0.5 of 10

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static string HttpApp(string id, int instances, string extra) => $$"""
        {"id": "{{id}}", "cmd": "python3 -m http.server $PORT0", "cpus": 0.05, "mem": 48, "instances": {{instances}}{{extra}},
         "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 3, "maxConsecutiveFailures": 3, "delaySeconds": 0}]}
        """;

    private Task<JsonObject> App() => App(AppId);

    private static bool IsHealthy(JsonNode? task) => task!["state"]!.GetValue<string>() == "TASK_RUNNING"
        && task["healthCheckResults"]!.AsArray().Any(r => r!["alive"]!.GetValue<bool>());

    private static bool Settled(JsonObject app, int n) => app["tasksHealthy"]!.GetValue<int>() == n
        && app["deployments"]!.AsArray().Count == 0 && app["tasks"]!.AsArray().Count == n;

    [Fact]
    public async Task RollingRestart_TenInstancesHalfCapacity_EventStreamAndApiNeverBelowFiveHealthy()
    {
        if (Cluster is null)
        {
            return;
        }

        var strategy = ""","upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}""";
        var (created, _) = await Send(HttpMethod.Post, "/v2/apps", HttpApp(AppId, Instances, strategy));
        Assert.Equal(HttpStatusCode.Created, created);
        var before = await Wait.UntilAsync(App, a => Settled(a, Instances), Timeout, "10 healthy instances");
        var oldVersion = before["version"]!.GetValue<string>();

        // Attach to the event stream before the restart; seed the model with the instances the API calls
        // healthy once our own event_stream_attached has arrived (nothing changes while the app is settled).
        var model = new HealthModel(AppId);
        await using var stream = await SseEventStream.OpenAsync(Http, "/v2/events", (_, e, ct) => model.OnEventAsync(e, ct));
        await Wait.UntilAsync(() => Task.FromResult(model.Attached), Timeout, "our own event_stream_attached");
        var atAttach = await App();
        var seed = atAttach["tasks"]!.AsArray().Where(IsHealthy).Select(t => t!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(Instances, seed.Count);
        Assert.All(atAttach["tasks"]!.AsArray(), t => Assert.Equal(oldVersion, t!["version"]!.GetValue<string>()));
        model.Seed(seed);

        var (status, restart) = await Send(HttpMethod.Post, "/v2/apps" + AppId + "/restart");
        Assert.Equal(HttpStatusCode.OK, status);
        var newVersion = restart!["version"]!.GetValue<string>();
        var deploymentId = restart["deploymentId"]!.GetValue<string>();
        Assert.NotEqual(oldVersion, newVersion);

        // Meanwhile the stream is replayed into the model in the background; sample the API every 50 ms.
        var apiMinHealthy = int.MaxValue;
        var apiMaxTotal = 0;
        var done = await Wait.UntilAsync(async () =>
        {
            var app = await App();
            var tasks = app["tasks"]!.AsArray();
            apiMinHealthy = Math.Min(apiMinHealthy, tasks.Count(IsHealthy));
            apiMaxTotal = Math.Max(apiMaxTotal, tasks.Count(t => t!["state"]!.GetValue<string>() != "TASK_KILLING"));
            return app;
        }, a => Settled(a, Instances) && a["tasks"]!.AsArray().All(t => t!["version"]!.GetValue<string>() == newVersion),
        Timeout, "all 10 instances on the new version", interval: TimeSpan.FromMilliseconds(50));

        // The stream may trail the API by a little: wait until it has seen the whole rollout, ending with
        // exactly the API's final instances healthy.
        var finalIds = done["tasks"]!.AsArray().Select(t => t!["id"]!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        var seen = await Wait.UntilAsync(() => Task.FromResult(model.Snapshot(newVersion)),
            s => s.DeploymentsSucceeded.Contains(deploymentId) && s.NewBecameHealthy >= Instances && s.OldKilled >= Instances && s.Healthy.SetEquals(finalIds),
            TimeSpan.FromSeconds(15), "the event stream to show the whole rollout", describe: s => s.ToString());
        Assert.False(stream.Completion.IsCompleted, "the event stream ended during the rollout");

        Assert.True(apiMinHealthy >= Floor, $"the API showed {apiMinHealthy} healthy instances during the rolling restart; the floor is {Floor}");
        Assert.True(apiMaxTotal <= Instances, $"the API showed {apiMaxTotal} instances running at once");
        Assert.True(seen.MinHealthy >= Floor,
            $"the event stream showed {seen.MinHealthy} healthy instances during the rolling restart; the floor is {Floor}. Events: {model.Log()}");
        Assert.True(seen.NewBecameHealthy >= Instances, $"only {seen.NewBecameHealthy} new-version instances became healthy on the stream");
        Assert.True(seen.OldKilled >= Instances, $"only {seen.OldKilled} old instances were killed on the stream");
        Assert.Equal(Instances, done["tasksHealthy"]!.GetValue<int>());
        Assert.Empty(done["deployments"]!.AsArray());
    }

    /// <summary>What the event stream says so far.</summary>
    private sealed record Seen(int MinHealthy, HashSet<string> Healthy, int NewBecameHealthy, int OldKilled, int Events, HashSet<string> DeploymentsSucceeded)
    {
        public override string ToString() =>
            $"min healthy {MinHealthy}, healthy now {Healthy.Count}, new became healthy {NewBecameHealthy}, old killed {OldKilled}, events {Events}, deployments succeeded [{string.Join(", ", DeploymentsSucceeded)}]";
    }

    /// <summary>
    /// Which of one app's instances are healthy, according to the event stream alone: healthy on
    /// <c>health_status_changed_event</c> alive=true or <c>instance_health_changed_event</c> healthy=true; not
    /// healthy on alive/healthy=false, on <c>unhealthy_instance_kill_event</c>, or on a
    /// <c>status_update_event</c> that is TASK_KILLING or terminal (after which the instance stays down).
    /// The minimum healthy count is recorded after every event. Thread-safe.
    /// </summary>
    private sealed class HealthModel(string appId)
    {
        private static readonly HashSet<string> Live = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"];

        private readonly Lock _lock = new();
        private readonly TaskCompletionSource _seeded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly HashSet<string> _healthy = new(StringComparer.Ordinal);
        private readonly HashSet<string> _down = new(StringComparer.Ordinal);
        private readonly HashSet<string> _old = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _becameHealthy = new(StringComparer.Ordinal); // task -> version
        private readonly HashSet<string> _succeeded = new(StringComparer.Ordinal);
        private readonly List<string> _log = [];
        private int _min = int.MaxValue;
        private int _events;
        private volatile bool _attached;

        public bool Attached => _attached;

        public void Seed(IEnumerable<string> healthy)
        {
            lock (_lock)
            {
                _healthy.UnionWith(healthy);
                _old.UnionWith(_healthy);
                _min = _healthy.Count;
                _log.Add($"seed -> {_healthy.Count}");
            }

            _seeded.TrySetResult();
        }

        /// <summary>Called by the stream reader for each event, in order. Events before our own attach are skipped.</summary>
        public async Task OnEventAsync(JsonObject e, CancellationToken ct)
        {
            var type = Str(e, "eventType");
            if (!_attached)
            {
                if (type == "event_stream_attached")
                {
                    _attached = true;
                    await _seeded.Task.WaitAsync(ct); // later events apply on top of the seed
                }

                return;
            }

            lock (_lock)
            {
                _events++;
                string? task = null;
                string? change = null;
                switch (type)
                {
                    case "health_status_changed_event" when Str(e, "appId") == appId:
                        task = Str(e, "taskId");
                        change = Health(task!, e["alive"]!.GetValue<bool>(), Str(e, "version"));
                        break;
                    case "instance_health_changed_event" when Str(e, "runSpecId") == appId:
                        task = Str(e, "instanceId");
                        change = Health(task!, (e["healthy"] ?? e["alive"])!.GetValue<bool>(), Str(e, "runSpecVersion"));
                        break;
                    case "unhealthy_instance_kill_event" when Str(e, "appId") == appId:
                        task = Str(e, "taskId");
                        change = Down(task!, "unhealthy kill");
                        break;
                    case "status_update_event" when Str(e, "appId") == appId:
                        task = Str(e, "taskId");
                        var status = Str(e, "taskStatus")!;
                        change = Live.Contains(status) ? status : Down(task!, status);
                        break;
                    case "deployment_success":
                        _succeeded.Add(Str(e, "id")!);
                        change = "deployment_success";
                        break;
                }

                _min = Math.Min(_min, _healthy.Count);
                if (change is not null)
                {
                    _log.Add($"{Short(task)} {change} -> {_healthy.Count}");
                }
            }
        }

        private string Health(string task, bool alive, string? version)
        {
            if (_down.Contains(task))
            {
                return $"alive={alive} (ignored: down)";
            }

            if (alive)
            {
                _healthy.Add(task);
                _becameHealthy.TryAdd(task, version ?? "");
            }
            else
            {
                _healthy.Remove(task);
            }

            return $"alive={alive}";
        }

        private string Down(string task, string why)
        {
            _down.Add(task);
            _healthy.Remove(task);
            return why;
        }

        public Seen Snapshot(string newVersion)
        {
            lock (_lock)
            {
                return new Seen(
                    _min,
                    new HashSet<string>(_healthy, StringComparer.Ordinal),
                    _becameHealthy.Count(kv => kv.Value == newVersion && !_old.Contains(kv.Key)),
                    _old.Count(_down.Contains),
                    _events,
                    new HashSet<string>(_succeeded, StringComparer.Ordinal));
            }
        }

        public string Log()
        {
            lock (_lock)
            {
                return string.Join("; ", _log);
            }
        }

        private static string Short(string? task) => task is null ? "" : task.Length <= 12 ? task : "…" + task[^12..];

        private static string? Str(JsonObject e, string field) => e[field]?.GetValue<string>();
    }
}
