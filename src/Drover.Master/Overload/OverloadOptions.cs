namespace Drover.Master.Overload;

/// <summary>
/// How much load the master accepts before it refuses, so one client or a burst cannot take its memory or its
/// threads (docs/benchmarks.md has the memory budget these defaults keep). Every value is a flag of
/// <c>drover master</c> and <c>drover dev</c>.
/// </summary>
public sealed record OverloadOptions
{
    /// <summary>Requests one client may have in progress at once (<c>--client-concurrency</c>); more wait in its queue.</summary>
    public int ClientConcurrency { get; init; } = 32;

    /// <summary>Requests of one client waiting for a slot (<c>--client-queue</c>); past it, 429 with <c>Retry-After</c>.</summary>
    public int ClientQueue { get; init; } = 256;

    /// <summary>Open <c>/v2/events</c> streams at most (<c>--max-event-subscribers</c>); past it, 503 with <c>Retry-After</c>.</summary>
    public int MaxEventSubscribers { get; init; } = 1000;

    /// <summary>Bytes of events one event-stream subscriber may fall behind by before it counts as full (<c>--event-subscriber-buffer</c>, MiB on the command line).</summary>
    public long EventSubscriberBufferBytes { get; init; } = 8L * 1024 * 1024;

    /// <summary>How long a subscriber may stay full before it is detached (<c>--slow-subscriber-grace</c>).</summary>
    public TimeSpan SlowSubscriberGrace { get; init; } = TimeSpan.FromSeconds(10);
}
