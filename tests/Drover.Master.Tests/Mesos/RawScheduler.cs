using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// A Mesos scheduler written against the raw v1 HTTP API (HttpClient, JSON, RecordIO), as a third-party
/// framework would be: nothing from Drover's assemblies. Events are read in the background into a queue.
/// </summary>
internal sealed class RawScheduler : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly Channel<JsonObject> _events = Channel.CreateUnbounded<JsonObject>();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<JsonObject> _unreturned = [];
    private HttpResponseMessage? _response;
    private HttpClient? _streamHttp;
    private Task? _reader;

    private RawScheduler(Uri master, AuthenticationHeaderValue? authorization)
    {
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
        _endpoint = new Uri(master, "/api/v1/scheduler");
        Authorization = authorization;
    }

    /// <summary>Sent with the subscription and every call (HTTP Basic principal and secret on a secured master); null: none.</summary>
    public AuthenticationHeaderValue? Authorization { get; set; }

    /// <summary>The <c>Authorization</c> header of HTTP Basic with a principal and secret.</summary>
    public static AuthenticationHeaderValue Basic(string principal, string secret) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(principal + ":" + secret)));

    public string FrameworkId { get; private set; } = "";

    public string StreamId { get; private set; } = "";

    public JsonObject Subscribed { get; private set; } = [];

    /// <summary>Acknowledge every update that carries a uuid as soon as it is read (as most schedulers do).</summary>
    public bool AutoAcknowledge { get; set; }

    /// <summary>Diagnostics for a failing test: what happened when.</summary>
    public List<string> Log { get; } = [];

    /// <summary>Every event read, in order (including the ones <see cref="NextAsync"/> returned).</summary>
    public List<JsonObject> Seen { get; } = [];

    /// <summary>Completes when the current subscription's stream has ended (the master closed it, or it was dropped).</summary>
    public Task Ended => _reader ?? Task.CompletedTask;

    public static async Task<RawScheduler> SubscribeAsync(Uri master, JsonObject frameworkInfo, CancellationToken ct = default, AuthenticationHeaderValue? authorization = null)
    {
        var s = new RawScheduler(master, authorization);
        await s.SubscribeAsync(frameworkInfo, ct);
        return s;
    }

    /// <summary>(Re-)subscribes on a new connection; the previous one, if any, is dropped first.</summary>
    public async Task SubscribeAsync(JsonObject frameworkInfo, CancellationToken ct = default)
    {
        Drop();
        ForgetQueued();
        var call = new JsonObject { ["type"] = "SUBSCRIBE", ["subscribe"] = new JsonObject { ["framework_info"] = frameworkInfo.DeepClone() } };
        if (FrameworkId.Length > 0)
        {
            call["framework_id"] = new JsonObject { ["value"] = FrameworkId };
            call["subscribe"]!["framework_info"]!["id"] = new JsonObject { ["value"] = FrameworkId };
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = Json(call) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Headers.Authorization = Authorization;
        // The subscription gets a connection of its own (as Mesos' docs ask); calls go on other connections.
        _streamHttp = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
        _response = await _streamHttp.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!_response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"SUBSCRIBE answered {(int)_response.StatusCode}: {await _response.Content.ReadAsStringAsync(ct)}");
        }

        StreamId = _response.Headers.TryGetValues("Mesos-Stream-Id", out var ids) ? ids.Single() : "";
        var body = await _response.Content.ReadAsStreamAsync(ct);
        _reader = Task.Run(() => ReadAsync(body, _stop.Token), CancellationToken.None);
        Subscribed = await NextAsync("SUBSCRIBED", TimeSpan.FromSeconds(10));
        FrameworkId = (string)Subscribed["subscribed"]!["framework_id"]!["value"]!;
    }

    /// <summary>Drops the connection (the scheduler "crashes"); the master sees the stream end.</summary>
    public void Drop()
    {
        _response?.Dispose();
        _response = null;
        _streamHttp?.Dispose();
        _streamHttp = null;
    }

    /// <summary>Sends a call with this framework's id and stream id; returns the HTTP answer.</summary>
    public async Task<HttpResponseMessage> CallAsync(string type, JsonObject? body = null, string? streamId = null, bool withStreamId = true)
    {
        var call = new JsonObject { ["type"] = type, ["framework_id"] = new JsonObject { ["value"] = FrameworkId } };
        if (body is not null)
        {
            call[type.ToLowerInvariant()] = body;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = Json(call) };
        if (withStreamId)
        {
            request.Headers.Add("Mesos-Stream-Id", streamId ?? StreamId);
        }

        request.Headers.Authorization = Authorization;

        var started = DateTime.UtcNow;
        var response = await _http.SendAsync(request);
        lock (Seen)
        {
            Log.Add($"{started:HH:mm:ss.fff} call {type} -> {(int)response.StatusCode} at {DateTime.UtcNow:HH:mm:ss.fff}");
        }

        return response;
    }

    /// <summary>Sends a call and fails the test unless it is accepted (202).</summary>
    public async Task CallOkAsync(string type, JsonObject? body = null)
    {
        using var response = await CallAsync(type, body);
        if ((int)response.StatusCode != 202)
        {
            throw new HttpRequestException($"{type} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }

    public Task<JsonObject> NextAsync(string type, TimeSpan timeout) => NextAsync(e => (string?)e["type"] == type, timeout, type);

    /// <summary>
    /// The first event not yet returned that matches <paramref name="match"/>, waiting for it if need be. Events
    /// that do not match stay queued for later calls (and are all in <see cref="Seen"/>).
    /// </summary>
    public async Task<JsonObject> NextAsync(Func<JsonObject, bool> match, TimeSpan timeout, string what)
    {
        var kept = _unreturned.FindIndex(e => match(e));
        if (kept >= 0)
        {
            var e = _unreturned[kept];
            _unreturned.RemoveAt(kept);
            return e;
        }

        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var e = await _events.Reader.ReadAsync(cts.Token);
                if (match(e))
                {
                    return e;
                }

                _unreturned.Add(e);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no {what} event within {timeout.TotalSeconds} s; seen: {string.Join(", ", Seen.Select(e => (string?)e["type"]))}");
        }
    }

    /// <summary>Drops queued events not yet returned (e.g. offers from before a re-subscription).</summary>
    public void ForgetQueued() => _unreturned.Clear();

    /// <summary>The next UPDATE for <paramref name="taskId"/> in <paramref name="state"/>.</summary>
    public Task<JsonObject> UpdateAsync(string taskId, string state, TimeSpan timeout) =>
        NextAsync(e => (string?)e["type"] == "UPDATE" && (string?)e["update"]!["status"]!["task_id"]!["value"] == taskId
            && (string?)e["update"]!["status"]!["state"] == state, timeout, $"UPDATE {taskId} {state}");

    public async Task AcknowledgeAsync(JsonObject update)
    {
        var status = update["update"]!["status"]!;
        await CallOkAsync("ACKNOWLEDGE", new JsonObject
        {
            ["agent_id"] = status["agent_id"]!.DeepClone(),
            ["task_id"] = status["task_id"]!.DeepClone(),
            ["uuid"] = (string)status["uuid"]!,
        });
    }

    public static JsonObject CommandTask(string taskId, string agentId, string shell, double cpus = 0.5, double mem = 64) => new()
    {
        ["name"] = taskId,
        ["task_id"] = new JsonObject { ["value"] = taskId },
        ["agent_id"] = new JsonObject { ["value"] = agentId },
        ["resources"] = new JsonArray(Scalar("cpus", cpus), Scalar("mem", mem)),
        ["command"] = new JsonObject { ["value"] = shell },
    };

    public static JsonObject Scalar(string name, double value) => new() { ["name"] = name, ["type"] = "SCALAR", ["scalar"] = new JsonObject { ["value"] = value } };

    public static JsonObject Launch(JsonObject offer, double refuseSeconds, params JsonObject[] tasks) => new()
    {
        ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()),
        ["operations"] = new JsonArray(new JsonObject { ["type"] = "LAUNCH", ["launch"] = new JsonObject { ["task_infos"] = new JsonArray([.. tasks]) } }),
        ["filters"] = new JsonObject { ["refuse_seconds"] = refuseSeconds },
    };

    public static double ScalarOf(JsonObject offer, string name) =>
        offer["resources"]!.AsArray().Where(r => (string?)r!["name"] == name).Sum(r => (double)r!["scalar"]!["value"]!);

    private async Task ReadAsync(Stream body, CancellationToken ct)
    {
        try
        {
            var header = new StringBuilder();
            var one = new byte[1];
            while (!ct.IsCancellationRequested)
            {
                header.Clear();
                while (true)
                {
                    if (await body.ReadAsync(one, ct) == 0)
                    {
                        return;
                    }

                    if (one[0] == '\n')
                    {
                        break;
                    }

                    header.Append((char)one[0]);
                }

                var length = int.Parse(header.ToString(), CultureInfo.InvariantCulture);
                var record = new byte[length];
                await body.ReadExactlyAsync(record, ct);
                var e = JsonNode.Parse(record)!.AsObject();
                lock (Seen)
                {
                    Seen.Add(e);
                    Log.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {(string?)e["type"]} {e["update"]?["status"]?["task_id"]?["value"]} {e["update"]?["status"]?["state"]}");
                }

                if (AutoAcknowledge && (string?)e["type"] == "UPDATE" && e["update"]!["status"]!["uuid"] is not null)
                {
                    await AcknowledgeAsync(e);
                }

                await _events.Writer.WriteAsync(e, ct);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or HttpRequestException)
        {
            // The connection was dropped (by the test or by the master).
        }
    }

    private static StringContent Json(JsonNode node) => new(node.ToJsonString(), Encoding.UTF8, "application/json");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Drop();
        if (_reader is not null)
        {
            await _reader.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _http.Dispose();
        _stop.Dispose();
    }
}
