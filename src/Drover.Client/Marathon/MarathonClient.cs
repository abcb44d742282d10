using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Drover.Client.Marathon;

/// <summary>One entry of Marathon's error <c>details</c>: a JSON path (<c>/cpus</c>, <c>/healthChecks(0)/path</c>) and its errors.</summary>
public sealed record MarathonErrorEntry(string Path, IReadOnlyList<string> Errors);

/// <summary>
/// An error answer from the master's Marathon API (<c>/v2</c>): the HTTP status and Marathon's body
/// <c>{"message": "...", "details": [{"path": "/cpus", "errors": ["error.min"]}]}</c>.
/// </summary>
public sealed class MarathonApiException(int statusCode, string apiMessage, IReadOnlyList<MarathonErrorEntry> details, JsonNode? body)
    : Exception($"{apiMessage} (HTTP {statusCode})")
{
    public int StatusCode { get; } = statusCode;

    /// <summary>Marathon's <c>message</c> (or the raw body / reason phrase when the body is not Marathon's).</summary>
    public string ApiMessage { get; } = apiMessage;

    public IReadOnlyList<MarathonErrorEntry> Details { get; } = details;

    /// <summary>The whole error body when it was JSON (a 409 carries the blocking <c>deployments</c>).</summary>
    public JsonNode? Body { get; } = body;

    /// <summary>For a 409 "app is locked": the ids of the deployments holding the app.</summary>
    public IReadOnlyList<string> LockingDeployments =>
        Body?["deployments"] is JsonArray deps
            ? [.. deps.Select(d => d?["id"]?.GetValue<string>()).Where(id => id is not null).Select(id => id!)]
            : [];
}

/// <summary>
/// What a change to an app answers: the deployment that carries it out and the app version it
/// deploys (Marathon's <c>{"deploymentId", "version"}</c>). <see cref="Body"/> is the raw answer.
/// </summary>
public sealed record DeploymentRef(string? DeploymentId, string? Version, JsonNode? Body)
{
    /// <summary>Marathon's usual answer shape, <c>{"deploymentId": …, "version": …}</c>, for printing.</summary>
    public JsonObject ToJson() => new() { ["deploymentId"] = DeploymentId, ["version"] = Version };
}

/// <summary>
/// Typed client for the master's Marathon-compatible service API (<c>/v2/apps</c>, <c>/v2/groups</c>,
/// <c>/v2/deployments</c>, <c>/v2/queue</c>). Answers are returned as JSON nodes in Marathon's shapes; errors throw
/// <see cref="MarathonApiException"/>. App ids may be given as <c>web</c>, <c>/web</c> or <c>/prod/web</c>.
/// Thread-safe as HttpClient is; the caller owns the HttpClient's lifetime when it passes one in.
/// </summary>
public sealed class MarathonClient : IDisposable
{
    private const string DeploymentHeader = "Marathon-Deployment-Id";

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    public MarathonClient(Uri master, HttpClient? http = null)
    {
        ArgumentNullException.ThrowIfNull(master);
        _ownsHttp = http is null;
        _http = http ?? new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        Master = master.AbsoluteUri.EndsWith('/') ? master : new Uri(master.AbsoluteUri + "/");
    }

    /// <summary>A client over <paramref name="handler"/> (e.g. <see cref="Auth.MasterHttp.Create"/>: login token, TLS trust), which it owns.</summary>
    public MarathonClient(Uri master, HttpMessageHandler handler)
        : this(master, new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan })
    {
        _ownsHttp = true;
    }

    public Uri Master { get; }

    /// <summary><c>web</c>, <c>/web</c>, <c>web/</c> → <c>/web</c>; <c>prod/web</c> → <c>/prod/web</c>.</summary>
    /// <exception cref="ArgumentException">The id is empty or the root.</exception>
    public static string NormalizeAppId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var trimmed = id.Trim().Trim('/');
        return trimmed.Length == 0
            ? throw new ArgumentException("an app id must name an app, e.g. /web or /prod/web", nameof(id))
            : "/" + trimmed;
    }

    // ------------------------------------------------------------------ apps

    /// <summary><c>GET /v2/apps</c>; <paramref name="embed"/> takes Marathon's values (<c>apps.tasks</c>, <c>apps.lastTaskFailure</c>…).</summary>
    public async Task<JsonArray> ListAppsAsync(IEnumerable<string>? embed = null, CancellationToken ct = default)
    {
        var body = await SendAsync(HttpMethod.Get, "v2/apps" + Embed(embed), null, ct).ConfigureAwait(false);
        return body.Node?["apps"] as JsonArray ?? [];
    }

    /// <summary><c>GET /v2/apps/{id}</c>: the app with its tasks, counts, deployments and last failure.</summary>
    /// <exception cref="MarathonApiException">404 when there is no such app.</exception>
    public async Task<JsonObject> GetAppAsync(string id, IEnumerable<string>? embed = null, CancellationToken ct = default)
    {
        var body = await SendAsync(HttpMethod.Get, AppPath(id) + Embed(embed), null, ct).ConfigureAwait(false);
        return body.Node?["app"] as JsonObject ?? throw Unexpected("GET", AppPath(id), body.Node);
    }

    /// <summary>Like <see cref="GetAppAsync"/> but null when the app does not exist.</summary>
    public async Task<JsonObject?> FindAppAsync(string id, IEnumerable<string>? embed = null, CancellationToken ct = default)
    {
        try
        {
            return await GetAppAsync(id, embed, ct).ConfigureAwait(false);
        }
        catch (MarathonApiException e) when (e.StatusCode == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary><c>POST /v2/apps</c>: creates the app (409 if it exists).</summary>
    public Task<DeploymentRef> CreateAppAsync(JsonObject app, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Post, "v2/apps" + Query(("force", Flag(force))), app, ct);

    /// <summary>
    /// <c>PUT /v2/apps/{id}</c>: creates or updates the app. With <paramref name="partialUpdate"/> (Marathon's
    /// default) the body is merged onto the current definition; without it the body replaces it.
    /// <paramref name="force"/> overrides a deployment that holds the app.
    /// </summary>
    public Task<DeploymentRef> PutAppAsync(string id, JsonObject app, bool force = false, bool partialUpdate = true, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Put, AppPath(id) + Query(("force", Flag(force)), ("partialUpdate", partialUpdate ? null : "false")), app, ct);

    /// <summary><c>PATCH /v2/apps/{id}</c>: merges <paramref name="changes"/> onto the app (404 if it does not exist).</summary>
    public Task<DeploymentRef> PatchAppAsync(string id, JsonObject changes, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Patch, AppPath(id) + Query(("force", Flag(force))), changes, ct);

    /// <summary>Sets the instance count (<c>PUT /v2/apps/{id}</c> with <c>{"instances": n}</c>); the version stays.</summary>
    public Task<DeploymentRef> ScaleAppAsync(string id, int instances, bool force = false, CancellationToken ct = default) =>
        PutAppAsync(id, new JsonObject { ["instances"] = instances }, force, partialUpdate: true, ct);

    /// <summary><c>DELETE /v2/apps/{id}</c>: kills the instances, then removes the app.</summary>
    public Task<DeploymentRef> DeleteAppAsync(string id, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Delete, AppPath(id) + Query(("force", Flag(force))), null, ct);

    /// <summary><c>POST /v2/apps/{id}/restart</c>: rolls every instance over to a new version of the same definition.</summary>
    public Task<DeploymentRef> RestartAppAsync(string id, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Post, AppPath(id) + "/restart" + Query(("force", Flag(force))), null, ct);

    /// <summary><c>GET /v2/apps/{id}/versions</c>: version ids, newest first.</summary>
    public async Task<IReadOnlyList<string>> ListVersionsAsync(string id, CancellationToken ct = default)
    {
        var body = await SendAsync(HttpMethod.Get, AppPath(id) + "/versions", null, ct).ConfigureAwait(false);
        return body.Node?["versions"] is JsonArray versions ? [.. versions.Select(v => v?.GetValue<string>() ?? "")] : [];
    }

    /// <summary><c>GET /v2/apps/{id}/versions/{version}</c>: the definition as it was in that version.</summary>
    public async Task<JsonObject> GetAppVersionAsync(string id, string version, CancellationToken ct = default)
    {
        var path = AppPath(id) + "/versions/" + Uri.EscapeDataString(version);
        var body = await SendAsync(HttpMethod.Get, path, null, ct).ConfigureAwait(false);
        return body.Node as JsonObject ?? throw Unexpected("GET", path, body.Node);
    }

    /// <summary><c>GET /v2/apps/{id}/tasks</c>: the app's live instances.</summary>
    public async Task<JsonArray> ListAppTasksAsync(string id, CancellationToken ct = default)
    {
        var body = await SendAsync(HttpMethod.Get, AppPath(id) + "/tasks", null, ct).ConfigureAwait(false);
        return body.Node?["tasks"] as JsonArray ?? [];
    }

    /// <summary>
    /// <c>DELETE /v2/apps/{id}/tasks/{taskId}</c>: kills one instance (the app replaces it unless
    /// <paramref name="scale"/>, which also lowers the instance count). Returns the raw answer.
    /// </summary>
    public async Task<JsonNode?> KillAppTaskAsync(string appId, string taskId, bool scale = false, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Delete, AppPath(appId) + "/tasks/" + Uri.EscapeDataString(taskId) + Query(("scale", Flag(scale))), null, ct).ConfigureAwait(false)).Node;

    /// <summary><c>DELETE /v2/apps/{id}/tasks[?host=]</c>: kills all instances (on one host). Returns the raw answer.</summary>
    public async Task<JsonNode?> KillAppTasksAsync(string appId, string? host = null, bool scale = false, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Delete, AppPath(appId) + "/tasks" + Query(("scale", Flag(scale)), ("host", host)), null, ct).ConfigureAwait(false)).Node;

    // ------------------------------------------------------------------ groups

    /// <summary><c>/</c> or empty → <c>/</c> (the root group); <c>prod</c>, <c>/prod/</c> → <c>/prod</c>.</summary>
    public static string NormalizeGroupId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return "/" + id.Trim().Trim('/');
    }

    /// <summary><c>GET /v2/groups/{id}</c>: the group with its apps and subgroups, recursively (<c>/</c> is the root).</summary>
    /// <exception cref="MarathonApiException">404 when there is no such group.</exception>
    public async Task<JsonObject> GetGroupAsync(string id, CancellationToken ct = default)
    {
        var body = await SendAsync(HttpMethod.Get, GroupPath(id), null, ct).ConfigureAwait(false);
        return body.Node as JsonObject ?? throw Unexpected("GET", GroupPath(id), body.Node);
    }

    /// <summary>Like <see cref="GetGroupAsync"/> but null when the group does not exist.</summary>
    public async Task<JsonObject?> FindGroupAsync(string id, CancellationToken ct = default)
    {
        try
        {
            return await GetGroupAsync(id, ct).ConfigureAwait(false);
        }
        catch (MarathonApiException e) when (e.StatusCode == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary><c>POST /v2/groups</c>: creates the group named by the body's <c>id</c> (409 if it exists) as one deployment plan.</summary>
    public Task<DeploymentRef> CreateGroupAsync(JsonObject group, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Post, "v2/groups" + Query(("force", Flag(force))), group, ct);

    /// <summary>
    /// <c>PUT /v2/groups/{id}</c>: makes the group what the body says, as one deployment plan (apps of the
    /// group missing from the body are removed). <paramref name="force"/> overrides deployments holding its apps.
    /// </summary>
    public Task<DeploymentRef> PutGroupAsync(string id, JsonObject group, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Put, GroupPath(id) + Query(("force", Flag(force))), group, ct);

    /// <summary><c>DELETE /v2/groups/{id}</c>: stops every app of the group, then removes them.</summary>
    public Task<DeploymentRef> DeleteGroupAsync(string id, bool force = false, CancellationToken ct = default) =>
        ChangeAsync(HttpMethod.Delete, GroupPath(id) + Query(("force", Flag(force))), null, ct);

    // ------------------------------------------------------------------ deployments, queue

    /// <summary><c>GET /v2/deployments</c>: the deployments in progress (a finished one is gone).</summary>
    public async Task<JsonArray> ListDeploymentsAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "v2/deployments", null, ct).ConfigureAwait(false)).Node as JsonArray ?? [];

    /// <summary>
    /// <c>DELETE /v2/deployments/{id}</c>: without <paramref name="force"/>, rolls back (a new deployment,
    /// returned, restores the previous definition); with it, stops the deployment where it stands and
    /// returns null.
    /// </summary>
    public async Task<DeploymentRef?> CancelDeploymentAsync(string deploymentId, bool force = false, CancellationToken ct = default)
    {
        var result = await ChangeAsync(HttpMethod.Delete, "v2/deployments/" + Uri.EscapeDataString(deploymentId) + Query(("force", Flag(force))), null, ct).ConfigureAwait(false);
        return result.DeploymentId is null ? null : result;
    }

    /// <summary><c>GET /v2/queue</c>: instances waiting to launch, with why (<c>lastUnusedOfferReasons</c>) and launch delays.</summary>
    public async Task<JsonArray> GetQueueAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "v2/queue", null, ct).ConfigureAwait(false)).Node?["queue"] as JsonArray ?? [];

    /// <summary><c>GET /v2/info</c>.</summary>
    public async Task<JsonObject> GetInfoAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "v2/info", null, ct).ConfigureAwait(false)).Node as JsonObject ?? [];

    // ------------------------------------------------------------------ plumbing

    private static string AppPath(string id) =>
        "v2/apps/" + string.Join('/', NormalizeAppId(id).Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.EscapeDataString));

    private static string GroupPath(string id) =>
        "v2/groups" + string.Concat(NormalizeGroupId(id).Split('/', StringSplitOptions.RemoveEmptyEntries).Select(s => "/" + Uri.EscapeDataString(s)));

    private static string Embed(IEnumerable<string>? embed) =>
        embed is null ? "" : string.Concat(embed.Select((e, i) => (i == 0 ? "?" : "&") + "embed=" + Uri.EscapeDataString(e)));

    /// <summary>A query string of the parameters that have a value (<c>?force=true&amp;…</c>), or "".</summary>
    private static string Query(params (string Name, string? Value)[] parameters) =>
        string.Concat(parameters.Where(p => p.Value is not null).Select((p, i) => $"{(i == 0 ? "?" : "&")}{p.Name}={Uri.EscapeDataString(p.Value!)}"));

    private static string? Flag(bool on) => on ? "true" : null;

    private async Task<DeploymentRef> ChangeAsync(HttpMethod method, string path, JsonNode? content, CancellationToken ct)
    {
        var (node, deploymentHeader) = await SendAsync(method, path, content, ct).ConfigureAwait(false);
        string? Str(string name) => node is JsonObject o && o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

        // PUT/DELETE/restart answer {"version", "deploymentId"}; POST answers the app and names the deployment in a header.
        return new DeploymentRef(deploymentHeader ?? Str("deploymentId"), Str("version"), node);
    }

    private async Task<(JsonNode? Node, string? DeploymentHeader)> SendAsync(HttpMethod method, string path, JsonNode? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(Master, path));
        if (content is not null)
        {
            request.Content = new StringContent(content.ToJsonString(), Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        var node = ParseOrNull(text);
        if (!response.IsSuccessStatusCode)
        {
            throw ErrorOf((int)response.StatusCode, response.ReasonPhrase, text, node);
        }

        var header = response.Headers.TryGetValues(DeploymentHeader, out var values) ? values.FirstOrDefault() : null;
        return (node, header);
    }

    private static JsonNode? ParseOrNull(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static MarathonApiException ErrorOf(int status, string? reason, string text, JsonNode? node)
    {
        var message = node is JsonObject o && o["message"] is JsonValue m && m.TryGetValue<string>(out var s)
            ? s
            : text.Length > 0 ? text.Trim() : reason ?? $"HTTP {status}";
        var details = new List<MarathonErrorEntry>();
        if (node?["details"] is JsonArray entries)
        {
            foreach (var d in entries.OfType<JsonObject>())
            {
                var path = d["path"] is JsonValue p && p.TryGetValue<string>(out var ps) ? ps : "/";
                var errors = d["errors"] is JsonArray errs
                    ? errs.Select(e => e is JsonValue ev && ev.TryGetValue<string>(out var es) ? es : e?.ToJsonString() ?? "").ToList()
                    : [];
                details.Add(new MarathonErrorEntry(path, errors));
            }
        }

        return new MarathonApiException(status, message, details, node);
    }

    private static InvalidOperationException Unexpected(string method, string path, JsonNode? node) =>
        new($"unexpected answer from {method} /{path}: {node?.ToJsonString() ?? "(empty)"}");

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }
}
