using System.Text;
using System.Text.Json.Nodes;

namespace Drover.Testing;

/// <summary>
/// A minimal Server-Sent Events reader for tests: reads <c>event:</c>/<c>data:</c> frames in the
/// background and hands each event (its name and its JSON data) to a callback, in order, one at a
/// time. Ends quietly when the server closes the stream or the reader is disposed.
/// </summary>
public sealed class SseEventStream : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly Func<string?, JsonObject, CancellationToken, Task> _onEvent;
    private readonly CancellationTokenSource _stop = new();
    private int _disposed;

    private SseEventStream(HttpResponseMessage response, Func<string?, JsonObject, CancellationToken, Task> onEvent)
    {
        _response = response;
        _onEvent = onEvent;
        Completion = Task.Run(ReadAsync);
    }

    public string? ContentType => _response.Content.Headers.ContentType?.MediaType;

    /// <summary>Completes when the stream ends (server closed it, or disposed).</summary>
    public Task Completion { get; }

    /// <summary>Opens <paramref name="path"/> and starts reading; fails unless the server answers 2xx.</summary>
    public static async Task<SseEventStream> OpenAsync(HttpClient http, string path, Func<string?, JsonObject, CancellationToken, Task> onEvent)
    {
        var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        return new SseEventStream(response, onEvent);
    }

    private async Task ReadAsync()
    {
        try
        {
            using var reader = new StreamReader(await _response.Content.ReadAsStreamAsync(_stop.Token));
            string? type = null;
            var data = new StringBuilder();
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (data.Length > 0)
                    {
                        await _onEvent(type, JsonNode.Parse(data.ToString())!.AsObject(), _stop.Token);
                    }

                    (type, data) = (null, new StringBuilder());
                }
                else if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    type = line["event: ".Length..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data.Append(line["data: ".Length..]);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await _stop.CancelAsync();
            _response.Dispose();
            await Completion;
            _stop.Dispose();
        }
    }
}
