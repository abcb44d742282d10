using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Drover.Master.Tests.Executors;

/// <summary>
/// The test speaking Mesos' executor HTTP API itself (JSON over HTTP, RecordIO events), for calls a
/// well-behaved executor would never make and for precise control of (re-)subscription.
/// </summary>
internal sealed class RawExecutor(Uri agent, string frameworkId, string executorId) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = agent, Timeout = System.Threading.Timeout.InfiniteTimeSpan };

    public static string NewUuid() => Convert.ToBase64String(Guid.NewGuid().ToByteArray());

    /// <summary>The <c>update</c> object of an UPDATE call (also an element of <c>unacknowledged_updates</c>).</summary>
    public string Update(string taskId, string state, string uuid) =>
        $$$"""{"status":{"task_id":{"value":"{{{taskId}}}"},"state":"{{{state}}}","source":"SOURCE_EXECUTOR","uuid":"{{{uuid}}}"}}""";

    /// <summary>A call of <paramref name="type"/> with its body field (<c>update</c>, <c>message</c>…) set to <paramref name="field"/>.</summary>
    public Task<(int Status, string Body)> CallAsync(string type, string? field)
    {
        var name = type.ToLowerInvariant();
        var body = $$"""{"type":"{{type}}","framework_id":{"value":"{{frameworkId}}"},"executor_id":{"value":"{{executorId}}"}""";
        return PostAsync(field is null ? body + "}" : body + $$""","{{name}}":{{field}}}""");
    }

    public async Task<(int Status, string Body)> PostAsync(string json, string contentType = "application/json")
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        using var response = await _http.PostAsync("api/v1/executor", content);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<EventStream> SubscribeAsync(string subscribe)
    {
        var body = $$"""{"type":"SUBSCRIBE","framework_id":{"value":"{{frameworkId}}"},"executor_id":{"value":"{{executorId}}"},"subscribe":{{subscribe}}}""";
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/executor") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json");
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
