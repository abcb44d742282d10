using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;

namespace Drover.Master.Events;

/// <summary>Settings of the <see cref="EventBus"/> (<c>--max-event-subscribers</c>, <c>--event-subscriber-buffer</c>, <c>--slow-subscriber-grace</c>).</summary>
internal sealed record EventBusOptions
{
    /// <summary>Open event streams at most; one more is refused with 503 and <c>Retry-After</c>. Each costs a socket (an fd) and a little memory.</summary>
    public int MaxSubscribers { get; init; } = 1000;

    /// <summary>
    /// Bytes of serialized events a subscriber may fall behind by before it counts as full. The frames are shared by every
    /// subscriber (serialized once), so this bounds what one slow reader makes the master hold, not a copy per reader.
    /// </summary>
    public long SubscriberBufferBytes { get; init; } = 8L * 1024 * 1024;

    /// <summary>A subscriber that stays full this long is detached (with an <c>event_stream_detached</c> event saying why); a burst it catches up with costs it nothing.</summary>
    public TimeSpan SlowSubscriberGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often an idle event stream sends a comment line, so proxies and clients see it alive.</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A full subscriber keeps receiving events during <see cref="SlowSubscriberGrace"/> up to this multiple of
    /// <see cref="SubscriberBufferBytes"/>; past it, it is detached at once. The memory guard: what a stuck reader holds never exceeds it.
    /// </summary>
    public const int HardLimitMultiple = 4;

    /// <summary>Bytes charged per queued event on top of its frame: the queue's own slot, so a flood of tiny events is bounded too.</summary>
    public const int PerEventOverhead = 64;
}

/// <summary>
/// Marathon's event bus inside the master: publishers (the service registry, the cluster state, the
/// event stream itself) publish <see cref="MarathonEvent"/>s; each subscriber (an SSE client of
/// <c>/v2/events</c>) gets them in publication order through its own queue.
/// <para>
/// Thread-safe. Publishing never blocks and starts no thread: it serializes the event once (outside the lock; every
/// subscriber shares those bytes) and then offers it to each interested subscriber's queue under one lock (so every
/// subscriber sees the same order). Queues are measured in bytes. A subscriber more than
/// <see cref="EventBusOptions.SubscriberBufferBytes"/> behind is full; one that stays full for
/// <see cref="EventBusOptions.SlowSubscriberGrace"/>, or reaches <see cref="EventBusOptions.HardLimitMultiple"/> times the
/// buffer, is dropped: its subscription completes after the buffered events and <see cref="EventSubscription.Dropped"/>
/// says why, so the client reconnects instead of silently missing events, and a stuck client can neither stall the master
/// nor make it buffer without bound. At most <see cref="EventBusOptions.MaxSubscribers"/> subscribe at once.
/// </para>
/// </summary>
internal sealed class EventBus(EventBusOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();

    /// <summary>Copy-on-write, replaced under the lock; read without it by <see cref="Wants"/>.</summary>
    private volatile EventSubscription[] _subscribers = [];

    private long _dropped;

    public EventBus()
        : this(new EventBusOptions())
    {
    }

    public EventBus(EventBusOptions options)
        : this(options, TimeProvider.System)
    {
    }

    public EventBusOptions Options => options;

    public int SubscriberCount => _subscribers.Length;

    /// <summary>Subscribers dropped for falling behind, since start.</summary>
    public long DroppedSubscribers => Interlocked.Read(ref _dropped);

    /// <summary>
    /// Subscribes to the events whose type is in <paramref name="eventTypes"/> (all when null or empty),
    /// from now on. Dispose the subscription to detach. Throws when <see cref="EventBusOptions.MaxSubscribers"/>
    /// are subscribed already; callers that can refuse use <see cref="TrySubscribe"/>.
    /// </summary>
    public EventSubscription Subscribe(IEnumerable<string>? eventTypes = null, long? bufferBytes = null) =>
        TrySubscribe(eventTypes, out var subscription, bufferBytes)
            ? subscription
            : throw new InvalidOperationException($"the event bus has {options.MaxSubscribers} subscribers, its maximum");

    /// <summary>Like <see cref="Subscribe"/>, but false (and no subscription) when the bus is at its cap.</summary>
    public bool TrySubscribe(IEnumerable<string>? eventTypes, [NotNullWhen(true)] out EventSubscription? subscription, long? bufferBytes = null)
    {
        var types = eventTypes?.ToFrozenSet(StringComparer.Ordinal);
        lock (_lock)
        {
            if (_subscribers.Length >= options.MaxSubscribers)
            {
                subscription = null;
                return false;
            }

            subscription = new EventSubscription(this, types is { Count: > 0 } ? types : null, bufferBytes ?? options.SubscriberBufferBytes);
            _subscribers = [.. _subscribers, subscription];
            return true;
        }
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

    /// <summary>
    /// Offers the event to every subscriber that wants its type; drops those that stayed full too long or reached
    /// the hard limit. Never blocks on a subscriber.
    /// </summary>
    public void Publish(MarathonEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (!Wants(e.EventType))
        {
            return;
        }

        // Serialized once, before the lock; every subscriber's queue then holds the same bytes.
        var cost = (long)e.Frame().Length + EventBusOptions.PerEventOverhead;
        var now = time.GetUtcNow().UtcTicks; // the wall clock's ticks: a test's clock controls it
        lock (_lock)
        {
            List<EventSubscription>? drop = null;
            foreach (var s in _subscribers)
            {
                if (s.Accepts(e.EventType) && !s.Offer(e, cost, now, options.SlowSubscriberGrace))
                {
                    (drop ??= []).Add(s);
                }
            }

            if (drop is not null)
            {
                foreach (var s in drop)
                {
                    s.Complete(dropped: true);
                    Interlocked.Increment(ref _dropped);
                }

                _subscribers = [.. _subscribers.Except(drop)];
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
    private readonly Channel<(MarathonEvent Event, long Cost)> _channel;
    private readonly long _buffer;
    private long _queuedBytes;

    /// <summary>When the queue went over the buffer (UTC ticks of the bus's clock); 0 while it is not full. Written under the bus lock.</summary>
    private long _fullSince;

    private volatile bool _dropped;

    internal EventSubscription(EventBus bus, FrozenSet<string>? types, long bufferBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferBytes, 1);
        _bus = bus;
        _types = types;
        _buffer = bufferBytes;

        // Unbounded as a channel: the bus bounds it in bytes. Writes happen under the bus lock only, so there is one writer at a time.
        _channel = Channel.CreateUnbounded<(MarathonEvent, long)>(new UnboundedChannelOptions
        {
            SingleReader = true,
            SingleWriter = true,
            AllowSynchronousContinuations = false, // never run the reader on the publisher's thread
        });
        Reader = new CountingReader(this);
    }

    /// <summary>The events in publication order; each read gives its bytes back to the subscriber's buffer.</summary>
    public ChannelReader<MarathonEvent> Reader { get; }

    /// <summary>True when the bus dropped this subscriber because it stayed too far behind (see <see cref="EventBus"/>).</summary>
    public bool Dropped => _dropped;

    /// <summary>The bytes of the events this subscriber has yet to read, with <see cref="EventBusOptions.PerEventOverhead"/> each.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>The event types this subscriber gets; null for all.</summary>
    public IReadOnlySet<string>? EventTypes => _types;

    public bool Accepts(string eventType) => _types is null || _types.Contains(eventType);

    /// <summary>
    /// Queues the event unless this subscriber must go: false when it has been full for <paramref name="grace"/>
    /// or the event would take it past the hard limit. Called under the bus lock.
    /// </summary>
    internal bool Offer(MarathonEvent e, long cost, long now, TimeSpan grace)
    {
        var queued = Interlocked.Read(ref _queuedBytes);
        if (queued <= _buffer)
        {
            _fullSince = 0;
        }
        else if (_fullSince == 0)
        {
            _fullSince = now;
        }
        else if (now - _fullSince >= grace.Ticks)
        {
            return false;
        }

        if (queued + cost > _buffer * EventBusOptions.HardLimitMultiple)
        {
            return false;
        }

        Interlocked.Add(ref _queuedBytes, cost);
        return _channel.Writer.TryWrite((e, cost));
    }

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

    private sealed class CountingReader(EventSubscription owner) : ChannelReader<MarathonEvent>
    {
        private ChannelReader<(MarathonEvent Event, long Cost)> Inner => owner._channel.Reader;

        public override Task Completion => Inner.Completion;

        public override bool TryRead([MaybeNullWhen(false)] out MarathonEvent item)
        {
            if (Inner.TryRead(out var entry))
            {
                Interlocked.Add(ref owner._queuedBytes, -entry.Cost);
                item = entry.Event;
                return true;
            }

            item = null;
            return false;
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => Inner.WaitToReadAsync(cancellationToken);
    }
}
