using System.Collections.Immutable;
using System.Net.Http.Json;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Secrets;

namespace Drover.Client;

/// <summary>An error answer from the master, carrying its <see cref="ApiError"/> body.</summary>
public sealed class DroverApiException(int statusCode, ApiError error)
    : Exception($"{error.Message} (HTTP {statusCode}, {error.Code})")
{
    public int StatusCode { get; } = statusCode;

    public ApiError Error { get; } = error;
}

/// <summary>
/// Typed client for the master's /drover/v1 API, used by the CLI and tests. Thread-safe as
/// HttpClient is; the caller owns the HttpClient's lifetime when it passes one in.
/// </summary>
public sealed class DroverClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    public DroverClient(Uri master, HttpClient? http = null)
    {
        _ownsHttp = http is null;
        _http = http ?? new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        Master = master.AbsoluteUri.EndsWith('/') ? master : new Uri(master.AbsoluteUri + "/");
    }

    /// <summary>A client over <paramref name="handler"/> (e.g. <see cref="Auth.MasterHttp.Create"/>: login token, TLS trust), which it owns.</summary>
    public DroverClient(Uri master, HttpMessageHandler handler)
        : this(master, new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan })
    {
        _ownsHttp = true;
    }

    public Uri Master { get; }

    public Task<TaskView> SubmitTaskAsync(TaskSubmission submission, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "drover/v1/tasks", JsonContent.Create(submission, DroverJsonContext.Default.TaskSubmission), DroverJsonContext.Default.TaskView, ct);

    public Task<TaskView> GetTaskAsync(string id, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, $"drover/v1/tasks/{Uri.EscapeDataString(id)}", null, DroverJsonContext.Default.TaskView, ct);

    public async Task<ImmutableArray<TaskView>> ListTasksAsync(TaskState? state = null, CancellationToken ct = default)
    {
        var query = state is { } s ? $"?state={s.WireName()}" : "";
        var list = await SendAsync(HttpMethod.Get, "drover/v1/tasks" + query, null, DroverJsonContext.Default.TaskList, ct).ConfigureAwait(false);
        return list.Tasks;
    }

    public Task<TaskView> KillTaskAsync(string id, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"drover/v1/tasks/{Uri.EscapeDataString(id)}/kill", null, DroverJsonContext.Default.TaskView, ct);

    public async Task<ImmutableArray<AgentView>> ListAgentsAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "drover/v1/agents", null, DroverJsonContext.Default.AgentList, ct).ConfigureAwait(false)).Agents;

    public Task<AgentView> GetAgentAsync(string id, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, $"drover/v1/agents/{Uri.EscapeDataString(id)}", null, DroverJsonContext.Default.AgentView, ct);

    /// <summary>
    /// Drains an agent: no new work goes there, app instances move elsewhere, and whatever is left is
    /// killed at the deadline (the master's default, one hour, when <paramref name="deadline"/> is null).
    /// </summary>
    public Task<AgentView> DrainAgentAsync(string id, TimeSpan? deadline = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"drover/v1/agents/{Uri.EscapeDataString(id)}/drain",
            deadline is { } d ? JsonContent.Create(new DrainRequest { DeadlineSeconds = d.TotalSeconds }, DroverJsonContext.Default.DrainRequest) : null,
            DroverJsonContext.Default.AgentView, ct);

    /// <summary>Ends an agent's drain: it takes new work again.</summary>
    public Task<AgentView> UndrainAgentAsync(string id, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"drover/v1/agents/{Uri.EscapeDataString(id)}/undrain", null, DroverJsonContext.Default.AgentView, ct);

    public Task<FileChunk> ReadFileAsync(string id, string path, long offset, int? length = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, $"drover/v1/tasks/{Uri.EscapeDataString(id)}/files/read?path={path}&offset={offset}" + (length is { } l ? $"&length={l}" : ""),
            null, DroverJsonContext.Default.FileChunk, ct);

    /// <summary>
    /// Copies a task's stdout or stderr to <paramref name="destination"/> from <paramref name="offset"/>.
    /// With <paramref name="follow"/> it returns only once the task has ended and all output was copied.
    /// Returns the number of bytes copied.
    /// </summary>
    public async Task<long> CopyLogsAsync(string id, Stream destination, bool stderr = false, bool follow = false, long offset = 0, CancellationToken ct = default)
    {
        var url = new Uri(Master, $"drover/v1/tasks/{Uri.EscapeDataString(id)}/logs?stream={(stderr ? "stderr" : "stdout")}&offset={offset}&follow={(follow ? "true" : "false")}");
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        await ThrowIfErrorAsync(response, ct).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[16 * 1024];
        long total = 0;
        int n;
        while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            await destination.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            await destination.FlushAsync(ct).ConfigureAwait(false);
            total += n;
        }

        return total;
    }

    /// <summary>Polls until the task reaches a terminal state (or <paramref name="until"/> holds) and returns it.</summary>
    public async Task<TaskView> WaitForTaskAsync(string id, Func<TaskView, bool>? until = null, TimeSpan? poll = null, CancellationToken ct = default)
    {
        until ??= t => t.State.IsTerminal();
        while (true)
        {
            var task = await GetTaskAsync(id, ct).ConfigureAwait(false);
            if (until(task))
            {
                return task;
            }

            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Stores a secret (create or replace); the answer carries its metadata, never its value.</summary>
    public Task<SecretView> PutSecretAsync(string path, byte[] value, string? description = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Put, SecretUrl(path), JsonContent.Create(new SecretWrite { Data = value, Description = description }, DroverJsonContext.Default.SecretWrite),
            DroverJsonContext.Default.SecretView, ct);

    /// <summary>Reads a secret's value back (needs read permission on it): <see cref="SecretView.Value"/> for text, else <see cref="SecretView.Data"/>.</summary>
    public Task<SecretView> GetSecretAsync(string path, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, SecretUrl(path), null, DroverJsonContext.Default.SecretView, ct);

    /// <summary>The paths of the secrets under <paramref name="prefix"/> (names only).</summary>
    public async Task<ImmutableArray<string>> ListSecretsAsync(string? prefix = null, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "drover/v1/secrets" + (string.IsNullOrEmpty(prefix) ? "" : "?prefix=" + Uri.EscapeDataString(prefix)), null,
            DroverJsonContext.Default.SecretList, ct).ConfigureAwait(false)).Secrets;

    public async Task DeleteSecretAsync(string path, CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri(Master, SecretUrl(path)), ct).ConfigureAwait(false);
        await ThrowIfErrorAsync(response, ct).ConfigureAwait(false);
    }

    private static string SecretUrl(string path) =>
        "drover/v1/secrets/" + string.Join('/', path.TrimStart('/').Split('/').Select(Uri.EscapeDataString));

    public async Task<string> GetStringAsync(string path, CancellationToken ct = default)
    {
        using var response = await _http.GetAsync(new Uri(Master, path), ct).ConfigureAwait(false);
        await ThrowIfErrorAsync(response, ct).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
    }

    /// <summary>A join token for <c>drover agent --join-token</c>, valid for <paramref name="ttl"/> (the master's default, one hour, when null).</summary>
    public Task<JoinTokenCreated> CreateJoinTokenAsync(TimeSpan? ttl = null, string? description = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "drover/v1/join-tokens",
            JsonContent.Create(new JoinTokenRequest { TtlSeconds = ttl?.TotalSeconds, Description = description }, DroverJsonContext.Default.JoinTokenRequest),
            DroverJsonContext.Default.JoinTokenCreated, ct);

    public async Task<ImmutableArray<JoinTokenView>> ListJoinTokensAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "drover/v1/join-tokens", null, DroverJsonContext.Default.JoinTokenList, ct).ConfigureAwait(false)).Tokens;

    /// <summary>Revokes a join token at once (agents that joined with it keep their certificates).</summary>
    public async Task RevokeJoinTokenAsync(string id, CancellationToken ct = default)
    {
        using var response = await _http.DeleteAsync(new Uri(Master, $"drover/v1/join-tokens/{Uri.EscapeDataString(id)}"), ct).ConfigureAwait(false);
        await ThrowIfErrorAsync(response, ct).ConfigureAwait(false);
    }

    private async Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? content, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(Master, path)) { Content = content };
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        await ThrowIfErrorAsync(response, ct).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync(type, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"empty response from {method} {path}");
    }

    private static async Task ThrowIfErrorAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        ApiError? error = null;
        try
        {
            error = JsonSerializer.Deserialize(text, DroverJsonContext.Default.ApiError);
        }
        catch (JsonException)
        {
        }

        throw new DroverApiException((int)response.StatusCode, error ?? new ApiError { Code = "http_" + (int)response.StatusCode, Message = text.Length > 0 ? text : response.ReasonPhrase ?? "error" });
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }
}
