using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Http;

/// <summary>Makes <see cref="StreamedJson{T}"/> answers.</summary>
internal static class StreamedJson
{
    /// <summary>Bytes written before the body is flushed to the client.</summary>
    internal const int FlushBytes = 32 * 1024;

    /// <summary>
    /// Lists being turned into bytes at once, across all clients: half the cores (at least one), so readers of large
    /// lists cannot take every core from short requests (<c>/ping</c>, agents' updates, writes). Held only while a
    /// chunk is made, never while it is sent: a slow client waits for its socket without holding anyone else back.
    /// </summary>
    internal static readonly SemaphoreSlim Writers = new(Math.Max(1, Environment.ProcessorCount / 2));

    /// <summary>
    /// <c>{"NAME":[…]}</c> of JSON trees, each built by the lazy <paramref name="items"/> as it is written: the bytes of
    /// <c>new JsonObject { [NAME] = new JsonArray(items) }.ToJsonString()</c>.
    /// </summary>
    public static StreamedJson<JsonNode> Nodes(string property, IEnumerable<JsonNode> items) =>
        new(property, items, static (w, n) => n.WriteTo(w), default);

    /// <summary>
    /// <c>{"NAME":[…]}</c> of records serialized with <paramref name="type"/>: the bytes the serializer writes for a
    /// record holding the list as NAME with the same options (its encoder, its indentation).
    /// </summary>
    public static StreamedJson<T> Of<T>(string property, IEnumerable<T> items, JsonTypeInfo<T> type) =>
        new(property, items, (w, item) => JsonSerializer.Serialize(w, item, type),
            new JsonWriterOptions { Encoder = type.Options.Encoder, Indented = type.Options.WriteIndented });
}

/// <summary>
/// A JSON answer <c>{"NAME":[item, item, …]}</c> written to the response while its items are built: each item is
/// made (by the lazy <c>items</c>), written and let go, and the body is flushed every <see cref="StreamedJson.FlushBytes"/>, so
/// a list of thousands of apps or tasks costs the master one item and one chunk at a time instead of the whole answer
/// as a string and as a tree. The body is byte for byte what building the whole answer wrote; it is sent chunked rather
/// than with a Content-Length. A failure after the first chunk can only cut the response short (the client sees
/// invalid JSON), as any streamed answer.
/// </summary>
internal sealed class StreamedJson<T>(string property, IEnumerable<T> items, Action<Utf8JsonWriter, T> write, JsonWriterOptions writerOptions) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        await WriteAsync(response.BodyWriter, httpContext.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Writes the whole answer to <paramref name="output"/>, flushing it in chunks. Internal for tests.</summary>
    internal async Task WriteAsync(PipeWriter output, CancellationToken ct)
    {
        await using var writer = new Utf8JsonWriter(output, writerOptions);
        await StreamedJson.Writers.WaitAsync(ct).ConfigureAwait(false);
        var holding = true;
        try
        {
            writer.WriteStartObject();
            writer.WritePropertyName(property);
            writer.WriteStartArray();
            long flushed = 0;
            foreach (var item in items)
            {
                write(writer, item);
                if (writer.BytesCommitted + writer.BytesPending - flushed >= StreamedJson.FlushBytes)
                {
                    await writer.FlushAsync(ct).ConfigureAwait(false); // hands the bytes to the pipe
                    flushed = writer.BytesCommitted;
                    StreamedJson.Writers.Release();
                    holding = false;
                    var result = await output.FlushAsync(ct).ConfigureAwait(false); // waits while the client is slow: backpressure, not buffering
                    if (result.IsCanceled || result.IsCompleted)
                    {
                        return;
                    }

                    // A fast client never makes the flush wait, so without this one long list would hold a thread-pool
                    // thread to its end while short requests (/ping, an agent's update) queue behind it.
                    await Task.Yield();
                    await StreamedJson.Writers.WaitAsync(ct).ConfigureAwait(false);
                    holding = true;
                }
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            await writer.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            if (holding)
            {
                StreamedJson.Writers.Release();
            }
        }

        await output.FlushAsync(ct).ConfigureAwait(false);
    }
}
