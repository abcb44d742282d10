using System.Collections.Immutable;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Drover.Testing;

namespace Drover.Master.Tests.Executors;

/// <summary>
/// The test speaking Mesos' executor HTTP API itself (JSON over HTTP, RecordIO events), for calls a
/// well-behaved executor would never make and for precise control of (re-)subscription. Every call carries
/// <paramref name="token"/> (the executor's <c>MESOS_EXECUTOR_AUTHENTICATION_TOKEN</c>) as a bearer token, unless a
/// test sends its own <c>Authorization</c> (<see cref="SendAsync"/>).
/// </summary>
internal sealed class RawExecutor(Uri agent, string frameworkId, string executorId, string? token) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = agent, Timeout = System.Threading.Timeout.InfiniteTimeSpan };

    /// <summary>
    /// The command of an executor the test speaks for: it never calls the agent itself, but leaves the token the agent
    /// gave it in its sandbox (<see cref="ReadTokenAsync"/>) and sleeps.
    /// </summary>
    public static ImmutableArray<string> SilentArgs =>
        ["sh", "-c", "printf %s \"$MESOS_EXECUTOR_AUTHENTICATION_TOKEN\" > token.tmp && mv token.tmp token && exec sleep 600"];

    /// <summary>The token a <see cref="SilentArgs"/> executor left in its sandbox.</summary>
    public static async Task<string> ReadTokenAsync(Func<string?> sandbox)
    {
        var path = await Wait.UntilAsync(() => Task.FromResult(sandbox() is { } dir ? Path.Combine(dir, "token") : null),
            p => p is not null && File.Exists(p), TimeSpan.FromSeconds(30), "the executor to write its token");
        var text = await File.ReadAllTextAsync(path!);
        Assert.False(string.IsNullOrEmpty(text), "the agent gave the executor no MESOS_EXECUTOR_AUTHENTICATION_TOKEN");
        return text;
    }

    /// <summary>The executor's token (null: none).</summary>
    public string? Token => token;

    public static string NewUuid() => Convert.ToBase64String(Guid.NewGuid().ToByteArray());

    /// <summary>The <c>update</c> object of an UPDATE call (also an element of <c>unacknowledged_updates</c>).</summary>
    public string Update(string taskId, string state, string uuid) =>
        $$$"""{"status":{"task_id":{"value":"{{{taskId}}}"},"state":"{{{state}}}","source":"SOURCE_EXECUTOR","uuid":"{{{uuid}}}"}}""";

    /// <summary>A call of <paramref name="type"/> with its body field (<c>update</c>, <c>message</c>…) set to <paramref name="field"/>.</summary>
    public Task<(int Status, string Body)> CallAsync(string type, string? field) => PostAsync(Call(frameworkId, executorId, type, field));

    /// <summary>The body of a call of <paramref name="type"/> naming these ids, with its body field (<c>update</c>, <c>message</c>…) set to <paramref name="field"/>.</summary>
    public static string Call(string frameworkId, string executorId, string type, string? field)
    {
        var name = type.ToLowerInvariant();
        var body = $$"""{"type":"{{type}}","framework_id":{"value":"{{frameworkId}}"},"executor_id":{"value":"{{executorId}}"}""";
        return field is null ? body + "}" : body + $$""","{{name}}":{{field}}}""";
    }

    public async Task<(int Status, string Body)> PostAsync(string json, string contentType = "application/json")
    {
        var (status, body, _) = await SendAsync(json, token is null ? null : "Bearer " + token, contentType);
        return (status, body);
    }

    /// <summary>A call with exactly <paramref name="authorization"/> as its <c>Authorization</c> header (null: none); the answer's <c>WWW-Authenticate</c> too.</summary>
    public async Task<(int Status, string Body, string? Challenge)> SendAsync(string json, string? authorization, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/executor") { Content = new StringContent(json, Encoding.UTF8) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        if (authorization is not null)
        {
            Assert.True(request.Headers.TryAddWithoutValidation("Authorization", authorization));
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var challenge = response.Headers.WwwAuthenticate.Count > 0 ? response.Headers.WwwAuthenticate.ToString() : null;
        // A SUBSCRIBE that was let in answers an endless event stream: its status says enough (and the test fails at once).
        var body = response.StatusCode == System.Net.HttpStatusCode.OK && response.Content.Headers.ContentType?.MediaType == "application/json"
            ? "(an event stream)"
            : await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, body, challenge);
    }

    /// <summary>A SUBSCRIBE call's body, for this executor's ids or others'.</summary>
    public static string SubscribeCall(string frameworkId, string executorId, string subscribe = "{}") =>
        $$"""{"type":"SUBSCRIBE","framework_id":{"value":"{{frameworkId}}"},"executor_id":{"value":"{{executorId}}"},"subscribe":{{subscribe}}}""";

    public async Task<EventStream> SubscribeAsync(string subscribe)
    {
        var body = SubscribeCall(frameworkId, executorId, subscribe);
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/executor") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        return new EventStream(response, await response.Content.ReadAsStreamAsync());
    }

    public void Dispose() => _http.Dispose();

    /// <summary>A subscription's events, RecordIO-decoded; HEARTBEATs are skipped unless asked for.</summary>
    internal sealed class EventStream(HttpResponseMessage response, Stream stream) : IAsyncDisposable
    {
        public async Task<(string Type, JsonElement Json)> NextAsync(bool skipHeartbeats = true)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (true)
            {
                var length = new StringBuilder();
                var one = new byte[1];
                while (true)
                {
                    if (await stream.ReadAsync(one, timeout.Token) == 0)
                    {
                        throw new EndOfStreamException("the event stream ended");
                    }

                    if (one[0] == '\n')
                    {
                        break;
                    }

                    length.Append((char)one[0]);
                }

                var record = new byte[int.Parse(length.ToString(), System.Globalization.CultureInfo.InvariantCulture)];
                await stream.ReadExactlyAsync(record, timeout.Token);
                var json = JsonDocument.Parse(record).RootElement.Clone();
                var type = json.GetProperty("type").GetString()!;
                if (type != "HEARTBEAT" || !skipHeartbeats)
                {
                    return (type, json);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync();
            response.Dispose();
        }
    }
}
