using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Master.Tests.Events;

/// <summary><c>GET /v2/events</c> on a real in-process cluster running a real app (needs root).</summary>
public sealed class EventStreamEndToEndTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private InProcessCluster? _cluster;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        _cluster = await InProcessCluster.StartAsync();
        await _cluster.AddAgentAsync("ev-host", "cpus:2;mem:1024;disk:1024;ports:[31000-31100]");
        _http = new HttpClient { BaseAddress = _cluster.Master.Url, Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    private static string Type(JsonObject e) => e["eventType"]!.GetValue<string>();

    private static string? Str(JsonObject e, string field) => e[field]?.GetValue<string>();

    private static bool IsStatus(JsonObject e, string taskStatus, string? taskId = null) =>
        Type(e) == "status_update_event" && Str(e, "taskStatus") == taskStatus && (taskId is null || Str(e, "taskId") == taskId);

    private static int IndexOf(IReadOnlyList<JsonObject> events, Func<JsonObject, bool> match, int from = 0)
    {
        for (var i = from; i < events.Count; i++)
        {
            if (match(events[i]))
            {
                return i;
            }
        }

        return -1;
    }

    [Fact]
    public async Task EventStream_AppLifecycle_EventsInOrderFilteredAndStreamsEndOnShutdown()
    {
        if (_cluster is null)
        {
            return;
        }

        await using var all = await SseClient.OpenAsync(_http, "/v2/events");
        await using var statusOnly = await SseClient.OpenAsync(_http, "/v2/events?event_type=status_update_event&plan-format=light");
        Assert.Equal("text/event-stream", all.ContentType);
        await all.WaitForAsync(e => Type(e) == "event_stream_attached", "our own event_stream_attached");
        await all.WaitForAsync(e => Type(e) == "event_stream_attached" && all.Events.Count(x => Type(x) == "event_stream_attached") >= 2, "the second stream's attach");

        // Create the app: the whole deployment shows up, in order.
        using var post = await _http.PostAsync("/v2/apps", new StringContent("""{"id":"/ev","cmd":"sleep 1000","cpus":0.1,"mem":32,"instances":1}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, post.StatusCode);
        var deploymentId = post.Headers.GetValues("Marathon-Deployment-Id").Single();
        var events = await all.WaitForAsync(e => Type(e) == "deployment_success" && Str(e, "id") == deploymentId, "deployment_success");

        var attached = IndexOf(events, e => Type(e) == "event_stream_attached");
        var apiPost = IndexOf(events, e => Type(e) == "api_post_event", attached);
        var info = IndexOf(events, e => Type(e) == "deployment_info", apiPost);
        var running = IndexOf(events, e => IsStatus(e, "TASK_RUNNING"), info);
        var success = IndexOf(events, e => Type(e) == "deployment_success", running);
        Assert.True(attached >= 0 && apiPost > attached && info > apiPost && running > info && success > running,
            $"expected attached < api_post_event < deployment_info < TASK_RUNNING < deployment_success, got [{string.Join(", ", events.Select(Type))}]");
        Assert.Equal("/v2/apps", Str(events[apiPost], "uri"));
        Assert.Equal("/ev", events[apiPost]["appDefinition"]!["id"]!.GetValue<string>());
        Assert.Equal(deploymentId, events[info]["plan"]!["id"]!.GetValue<string>());
        Assert.Equal("/ev", Str(events[running], "appId"));
        Assert.Equal("ev-host", Str(events[running], "host"));
        Assert.Contains(events, e => Type(e) == "instance_changed_event" && Str(e, "condition") == "Running");
        Assert.Contains(events, e => Type(e) == "group_change_success");
        var victim = Str(events[running], "taskId")!;

        // Kill the instance's processes behind the master's back: it fails and is replaced. TASK_RUNNING
        // comes as soon as the shim is spawned, and the shim joins the task's cgroup a moment later: read
        // the cgroup at once and it may be empty, nothing is killed and nothing ever ends (issue 18).
        var procs = Path.Combine("/sys/fs/cgroup/memory", DroverHosts.CgroupNameFor(Path.Combine(_cluster.Root, "ev-host")), victim, "cgroup.procs");
        await TaskProcesses.WaitForAsync(procs, "sleep", Timeout);
        foreach (var pid in File.ReadAllLines(procs))
        {
            try
            {
                Process.GetProcessById(int.Parse(pid, CultureInfo.InvariantCulture)).Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                // already gone
            }
        }

        events = await all.WaitForAsync(e => IsStatus(e, "TASK_RUNNING") && Str(e, "taskId") != victim, "a replacement TASK_RUNNING");
        var ended = IndexOf(events, e => (IsStatus(e, "TASK_FAILED", victim) || IsStatus(e, "TASK_KILLED", victim)));
        var replacement = IndexOf(events, e => IsStatus(e, "TASK_RUNNING") && Str(e, "taskId") != victim);
        Assert.True(ended >= 0 && ended < replacement, $"expected the victim's end before its replacement runs, got [{string.Join(", ", events.Select(e => Type(e) + ":" + Str(e, "taskStatus")))}]");
        Assert.Contains(events, e => Type(e) == "instance_changed_event" && Str(e, "instanceId") == victim && Str(e, "condition") is "Failed" or "Killed");

        // Delete the app: its stop deployment ends with the app terminated.
        using var delete = await _http.DeleteAsync("/v2/apps/ev");
        Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        await all.WaitForAsync(e => Type(e) == "app_terminated_event" && Str(e, "appId") == "/ev", "app_terminated_event");

        // The filtered stream saw the same task updates and nothing else.
        var filtered = await statusOnly.WaitForAsync(e => IsStatus(e, "TASK_KILLED"), "the filtered stream's TASK_KILLED");
        Assert.All(filtered, e => Assert.Equal("status_update_event", Type(e)));
        Assert.Contains(filtered, e => IsStatus(e, "TASK_RUNNING", victim));

        // Closing a stream is announced on the others.
        await statusOnly.DisposeAsync();
        await all.WaitForAsync(e => Type(e) == "event_stream_detached", "event_stream_detached");

        // Stopping the master ends the open stream at once: it must not hold up shutdown.
        var stopping = Stopwatch.StartNew();
        await _cluster.DisposeAsync();
        _cluster = null;
        await all.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(8), $"shutdown took {stopping.Elapsed.TotalSeconds:F1} s with a stream open");
    }

    [Fact]
    public async Task EventStream_EventTypeFilter_OnlyThoseTypesIncludingOwnAttach()
    {
        if (_cluster is null)
        {
            return;
        }

        await using var attachOnly = await SseClient.OpenAsync(_http, "/v2/events?event_type=event_stream_attached&event_type=event_stream_detached");
        await attachOnly.WaitForAsync(e => Type(e) == "event_stream_attached", "its own attach");

        var opening = Stopwatch.StartNew();
        await using (var other = await SseClient.OpenAsync(_http, "/v2/events?event_type=deployment_success"))
        {
            Assert.True(opening.Elapsed < TimeSpan.FromSeconds(5), "the response headers come at once, not with the first matching event or keep-alive");
            await attachOnly.WaitForAsync(e => attachOnly.Events.Count(x => Type(x) == "event_stream_attached") >= 2, "the other stream's attach");
            using var post = await _http.PostAsync("/v2/apps", new StringContent("""{"id":"/quiet","cmd":"sleep 1000","cpus":0.1,"mem":32,"instances":0}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, post.StatusCode);
            await other.WaitForAsync(e => Type(e) == "deployment_success", "the zero-instance deployment to finish");
            Assert.All(other.Events, e => Assert.Equal("deployment_success", Type(e)));
        }

        var events = await attachOnly.WaitForAsync(e => Type(e) == "event_stream_detached", "the other stream's detach");
        Assert.Equal(["event_stream_attached", "event_stream_attached", "event_stream_detached"], events.Select(Type));
    }

    /// <summary>Collects every event of a stream (checking each frame's name is its eventType) for assertions.</summary>
    private sealed class SseClient : IAsyncDisposable
    {
        private readonly List<JsonObject> _events = [];
        private SseEventStream _stream = null!;

        public string? ContentType => _stream.ContentType;

        /// <summary>Completes when the server ends the stream.</summary>
        public Task Completion => _stream.Completion;

        public IReadOnlyList<JsonObject> Events
        {
            get
            {
                lock (_events)
                {
                    return [.. _events];
                }
            }
        }

        public static async Task<SseClient> OpenAsync(HttpClient http, string path)
        {
            var client = new SseClient();
            client._stream = await SseEventStream.OpenAsync(http, path, client.OnEvent);
            return client;
        }

        /// <summary>Waits until an event matches; returns every event received so far.</summary>
        public Task<IReadOnlyList<JsonObject>> WaitForAsync(Func<JsonObject, bool> match, string what) =>
            Wait.UntilAsync(() => Task.FromResult(Events), events => events.Any(match), Timeout, what,
                describe: events => "[" + string.Join(", ", events.Select(e => e["eventType"] + (e["taskStatus"] is { } s ? ":" + s : ""))) + "]");

        private Task OnEvent(string? type, JsonObject json, CancellationToken ct)
        {
            Assert.Equal(type, json["eventType"]!.GetValue<string>()); // the SSE event name is the eventType
            lock (_events)
            {
                _events.Add(json);
            }

            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync() => _stream.DisposeAsync();
    }
}
