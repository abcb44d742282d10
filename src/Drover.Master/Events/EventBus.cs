using System.Collections.Frozen;
using System.Threading.Channels;

namespace Drover.Master.Events;

/// <summary>Settings of the <see cref="EventBus"/>.</summary>
internal sealed record EventBusOptions
{
    /// <summary>Events a subscriber may fall behind by before it is dropped.</summary>
    public int SubscriberBuffer { get; init; } = 4096;

    /// <summary>How often an idle event stream sends a comment line, so proxies and clients see it alive.</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Marathon's event bus inside the master: publishers (the service registry, the cluster state, the
/// event stream itself) publish <see cref="MarathonEvent"/>s; each subscriber (an SSE client of
/// <c>/v2/events</c>) gets them in publication order through its own bounded buffer.
/// <para>
/// Thread-safe. Publishing never blocks and starts no thread: it offers the event to each interested
/// subscriber's buffer under one lock (so every subscriber sees the same order). A subscriber whose
/// buffer is full is dropped: its subscription completes after the buffered events, and
/// <see cref="EventSubscription.Dropped"/> says why, so the client reconnects instead of silently missing
/// events, and a stuck client can neither stall the master nor make it buffer without bound.
/// </para>
/// </summary>
internal sealed class EventBus(EventBusOptions options)
{
    private readonly Lock _lock = new();

    /// <summary>Copy-on-write, replaced under the lock; read without it by <see cref="Wants"/>.</summary>
    private volatile EventSubscription[] _subscribers = [];

    private long _dropped;

    public EventBus()
        : this(new EventBusOptions())
    {
    }

    public EventBusOptions Options => options;

    public int SubscriberCount => _subscribers.Length;

    /// <summary>Subscribers dropped for falling behind, since start.</summary>
    public long DroppedSubscribers => Interlocked.Read(ref _dropped);

    /// <summary>
    /// Subscribes to the events whose type is in <paramref name="eventTypes"/> (all when null or empty),
    /// from now on. Dispose the subscription to detach.
    /// </summary>
    public EventSubscription Subscribe(IEnumerable<string>? eventTypes = null, int? buffer = null)
    {
        var types = eventTypes?.ToFrozenSet(StringComparer.Ordinal);
        var subscription = new EventSubscription(this, types is { Count: > 0 } ? types : null, buffer ?? options.SubscriberBuffer);
        lock (_lock)
        {
            _subscribers = [.. _subscribers, subscription];
        }

        return subscription;
    }

    /// <summary>
    /// True when some subscriber would receive an event of this type: publishers skip building events
    /// nobody listens to. Lock-free.
    /// </summary>
    public bool Wants(string eventType)
    {
        foreach (var s in _subscribers)
        {
            if (s.Accepts(eventType))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Offers the event to every subscriber that wants its type; drops those that are full. Never blocks on a subscriber.</summary>
    public void Publish(MarathonEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        lock (_lock)
        {
            List<EventSubscription>? full = null;
            foreach (var s in _subscribers)
            {
                if (s.Accepts(e.EventType) && !s.TryWrite(e))
                {
                    (full ??= []).Add(s);
                }
            }

            if (full is not null)
            {
                foreach (var s in full)
                {
                    s.Complete(dropped: true);
                    Interlocked.Increment(ref _dropped);
                }

                _subscribers = [.. _subscribers.Except(full)];
            }
        }
    }

    internal void Remove(EventSubscription subscription)
    {
        lock (_lock)
        {
            subscription.Complete(dropped: false);
            if (Array.IndexOf(_subscribers, subscription) >= 0)
            {
                _subscribers = [.. _subscribers.Where(s => s != subscription)];
            }
        }
    }
}

/// <summary>
/// One subscriber's view of the <see cref="EventBus"/>: read <see cref="Reader"/> in order; it completes
/// once the subscription is disposed or dropped (after the events already buffered).
/// </summary>
internal sealed class EventSubscription : IDisposable
{
    private readonly EventBus _bus;
    private readonly FrozenSet<string>? _types;
    private readonly Channel<MarathonEvent> _channel;
    private volatile bool _dropped;

    internal EventSubscription(EventBus bus, FrozenSet<string>? types, int buffer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buffer, 1);
        _bus = bus;
        _types = types;

        // Writes happen under the bus lock only, so there is one writer at a time.
        _channel = Channel.CreateBounded<MarathonEvent>(new BoundedChannelOptions(buffer)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: the bus drops the subscriber
            SingleReader = true,
            SingleWriter = true,
            AllowSynchronousContinuations = false, // never run the reader on the publisher's thread
        });
    }

    public ChannelReader<MarathonEvent> Reader => _channel.Reader;

    /// <summary>True when the bus dropped this subscriber because it fell <see cref="EventBusOptions.SubscriberBuffer"/> events behind.</summary>
    public bool Dropped => _dropped;

    /// <summary>The event types this subscriber gets; null for all.</summary>
    public IReadOnlySet<string>? EventTypes => _types;

    public bool Accepts(string eventType) => _types is null || _types.Contains(eventType);

    internal bool TryWrite(MarathonEvent e) => _channel.Writer.TryWrite(e);

    internal void Complete(bool dropped)
    {
        if (dropped)
        {
            _dropped = true;
        }

        _channel.Writer.TryComplete();
    }

    /// <summary>Detaches from the bus. Idempotent.</summary>
    public void Dispose() => _bus.Remove(this);
}
