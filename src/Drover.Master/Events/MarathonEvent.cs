using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Drover.Master.Events;

/// <summary>
/// One event of Marathon's event bus: its <c>eventType</c>, when it happened, and its JSON. Immutable and
/// shared by every subscriber. The JSON is built lazily, once per form, by whichever subscriber needs it
/// first, so publishing is cheap and an event nobody reads is never serialized.
/// </summary>
internal sealed class MarathonEvent
{
    private readonly Func<bool, JsonObject> _payload;
    private readonly bool _hasLightForm;
    private byte[]? _frame;
    private byte[]? _lightFrame;

    /// <param name="eventType">Marathon's <c>eventType</c>, also the SSE event name.</param>
    /// <param name="timestamp">When it happened.</param>
    /// <param name="payload">
    /// Builds the event's fields (without <c>eventType</c> and <c>timestamp</c>, which are appended); its
    /// argument asks for the light form (<c>?plan-format=light</c>). Must only read immutable data: it may
    /// run later, on another thread.
    /// </param>
    /// <param name="hasLightForm">True when the light form differs (deployment events), so it is built separately.</param>
    /// <param name="appIds">The apps the event tells about (see <see cref="AppIds"/>); default: none.</param>
    public MarathonEvent(string eventType, DateTimeOffset timestamp, Func<bool, JsonObject> payload, bool hasLightForm = false, ImmutableArray<string> appIds = default)
    {
        EventType = eventType;
        Timestamp = timestamp;
        _payload = payload;
        _hasLightForm = hasLightForm;
        AppIds = appIds.IsDefault ? [] : appIds;
    }

    public string EventType { get; }

    public DateTimeOffset Timestamp { get; }

    /// <summary>
    /// The apps whose ids, definitions or instances the event carries: a subscriber gets the event only if it
    /// may read every one of them. Empty for events about no app (the stream's own attach and detach).
    /// </summary>
    public ImmutableArray<string> AppIds { get; }

    /// <summary>The event as Marathon's JSON.</summary>
    public JsonObject ToJson(bool light = false)
    {
        var json = _payload(light && _hasLightForm);
        json["eventType"] = EventType;
        json["timestamp"] = FormatTimestamp(Timestamp);
        return json;
    }

    /// <summary>The SSE frame, <c>event: TYPE\ndata: JSON\n\n</c>, as UTF-8; built once per form.</summary>
    public ReadOnlyMemory<byte> Frame(bool light = false)
    {
        light &= _hasLightForm;
        ref var slot = ref light ? ref _lightFrame : ref _frame;
        var frame = Volatile.Read(ref slot);
        if (frame is null)
        {
            // Compact JSON has no line breaks, so the data is one line.
            frame = Encoding.UTF8.GetBytes($"event: {EventType}\ndata: {ToJson(light).ToJsonString()}\n\n");
            frame = Interlocked.CompareExchange(ref slot, frame, null) ?? frame;
        }

        return frame;
    }

    /// <summary>Marathon's timestamp format: ISO-8601 UTC with milliseconds, e.g. <c>2014-03-01T23:29:30.158Z</c>.</summary>
    public static string FormatTimestamp(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public override string ToString() => EventType;
}
