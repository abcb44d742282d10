using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Master.Events;
using Drover.Testing;

namespace Drover.Master.Tests.Events;

public sealed class EventBusTests
{
    private static readonly DateTimeOffset At = new(2026, 3, 1, 23, 29, 30, 158, TimeSpan.Zero);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static MarathonEvent Event(string type, int n = 0) => new(type, At, _ => new JsonObject { ["n"] = n });

    private static List<MarathonEvent> Drain(EventSubscription s)
    {
        var list = new List<MarathonEvent>();
        while (s.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }

    private static int N(MarathonEvent e) => e.ToJson()["n"]!.GetValue<int>();

    [Fact]
    public void Publish_ManyEvents_SubscriberReadsThemInOrder()
    {
        var bus = new EventBus();
        using var sub = bus.Subscribe();

        for (var i = 0; i < 1000; i++)
        {
            bus.Publish(Event("status_update_event", i));
        }

        Assert.Equal(Enumerable.Range(0, 1000), Drain(sub).Select(N));
    }

    [Fact]
    public void Subscribe_WithEventTypes_ReceivesOnlyThoseTypes()
    {
        var bus = new EventBus();
        using var filtered = bus.Subscribe(["deployment_info", "deployment_success"]);
        using var all = bus.Subscribe();

        bus.Publish(Event("status_update_event", 1));
        bus.Publish(Event("deployment_info", 2));
        bus.Publish(Event("api_post_event", 3));
        bus.Publish(Event("deployment_success", 4));

        Assert.Equal([2, 4], Drain(filtered).Select(N));
        Assert.Equal([1, 2, 3, 4], Drain(all).Select(N));
    }

    [Fact]
    public void Wants_OnlyTypesSomeSubscriberTakes()
    {
        var bus = new EventBus();
        Assert.False(bus.Wants("status_update_event"));

        using (bus.Subscribe(["deployment_info"]))
        {
            Assert.True(bus.Wants("deployment_info"));
            Assert.False(bus.Wants("status_update_event"));
        }

        Assert.False(bus.Wants("deployment_info"));
        using var all = bus.Subscribe([]);
        Assert.True(bus.Wants("status_update_event"));
    }

    /// <summary>The bytes an <see cref="Event"/> costs in a subscriber's buffer.</summary>
    private static long Cost(int n) => Event("status_update_event", n).Frame().Length + EventBusOptions.PerEventOverhead;

    [Fact]
    public void Publish_SubscriberFullForLessThanGrace_KeepsEveryEventThenDetachedAfterGrace()
    {
        var clock = new ManualTimeProvider();
        var bus = new EventBus(new EventBusOptions { SubscriberBufferBytes = 5 * Cost(0), SlowSubscriberGrace = TimeSpan.FromSeconds(10) }, clock);
        using var slow = bus.Subscribe();
        using var fast = bus.Subscribe();
        var fastSeen = new List<MarathonEvent>();

        for (var i = 0; i < 10; i++)
        {
            bus.Publish(Event("status_update_event", i)); // never blocks, though slow reads nothing
            fastSeen.AddRange(Drain(fast));
        }

        clock.Advance(TimeSpan.FromSeconds(9.9));
        bus.Publish(Event("status_update_event", 10));
        Assert.False(slow.Dropped); // full, but not for the grace yet: it keeps every event

        clock.Advance(TimeSpan.FromSeconds(0.1));
        bus.Publish(Event("status_update_event", 11));

        Assert.True(slow.Dropped);
        Assert.False(fast.Dropped);
        Assert.Equal(Enumerable.Range(0, 11), Drain(slow).Select(N)); // all it had buffered, in order, then the end
        Assert.True(slow.Reader.Completion.IsCompleted);
        fastSeen.AddRange(Drain(fast));
        Assert.Equal(Enumerable.Range(0, 12), fastSeen.Select(N));
        Assert.Equal(1, bus.SubscriberCount);
        Assert.Equal(1, bus.DroppedSubscribers);
    }

    [Fact]
    public void Publish_FullSubscriberCatchesUpWithinGrace_NotDetached()
    {
        var clock = new ManualTimeProvider();
        var bus = new EventBus(new EventBusOptions { SubscriberBufferBytes = 5 * Cost(0), SlowSubscriberGrace = TimeSpan.FromSeconds(10) }, clock);
        using var sub = bus.Subscribe();
        var seen = new List<MarathonEvent>();

        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 10; i++)
            {
                bus.Publish(Event("status_update_event", (round * 10) + i)); // over the buffer: full
            }

            clock.Advance(TimeSpan.FromSeconds(9));
            seen.AddRange(Drain(sub)); // caught up before the grace ended
        }

        Assert.False(sub.Dropped);
        Assert.Equal(Enumerable.Range(0, 30), seen.Select(N));
        Assert.Equal(0, sub.QueuedBytes);
    }

    [Fact]
    public void Publish_SubscriberReachesHardLimit_DetachedAtOnce()
    {
        var clock = new ManualTimeProvider();
        var bus = new EventBus(new EventBusOptions { SubscriberBufferBytes = 5 * Cost(0), SlowSubscriberGrace = TimeSpan.FromHours(1) }, clock);
        using var stuck = bus.Subscribe();

        var published = 0;
        while (!stuck.Dropped && published < 1000)
        {
            bus.Publish(Event("status_update_event", published++));
        }

        // The memory guard: never more than HardLimitMultiple buffers held for one reader, whatever the grace.
        Assert.True(stuck.Dropped);
        Assert.InRange(Drain(stuck).Count, 15, 20);
    }

    [Fact]
    public void TrySubscribe_AtMaxSubscribers_RefusedUntilOneLeaves()
    {
        var bus = new EventBus(new EventBusOptions { MaxSubscribers = 2 });
        using var first = bus.Subscribe();
        var second = bus.Subscribe();

        Assert.False(bus.TrySubscribe(null, out var refused));
        Assert.Null(refused);
        second.Dispose();
        Assert.True(bus.TrySubscribe(null, out var third));
        third.Dispose();
    }

    [Fact]
    public async Task Publish_BurstOf2000Deployments_EveryHealthySubscriberGetsEveryEvent()
    {
        // Seven events per deployment, as a POST /v2/apps makes (api_post, deployment_info and step_success per step,
        // deployment_success, group_change_success): 14,000 events, more than the old 4,096-event buffer.
        string[] types = ["api_post_event", "deployment_info", "deployment_step_success", "deployment_info", "deployment_step_success", "deployment_success", "group_change_success"];
        var bus = new EventBus();
        var subscribers = Enumerable.Range(0, 50).Select(_ => bus.Subscribe()).ToList();
        var readers = subscribers.Select(s => Task.Run(async () =>
        {
            var seen = new List<int>();
            await foreach (var e in s.Reader.ReadAllAsync())
            {
                seen.Add(N(e));
            }

            return seen;
        })).ToList();

        var n = 0;
        for (var d = 0; d < 2000; d++)
        {
            foreach (var type in types)
            {
                bus.Publish(Event(type, n++));
            }
        }

        Assert.Equal(0, bus.DroppedSubscribers);
        subscribers.ForEach(s => s.Dispose());
        foreach (var reader in readers)
        {
            Assert.Equal(Enumerable.Range(0, n), await reader.WaitAsync(Timeout));
        }
    }

    [Fact]
    public void Dispose_Detaches_ReaderEndsAndLaterEventsGoElsewhere()
    {
        var bus = new EventBus();
        var leaving = bus.Subscribe();
        using var staying = bus.Subscribe();
        bus.Publish(Event("a", 1));

        leaving.Dispose();
        leaving.Dispose(); // idempotent
        bus.Publish(Event("a", 2));

        Assert.Equal([1], Drain(leaving).Select(N));
        Assert.True(leaving.Reader.Completion.IsCompleted);
        Assert.False(leaving.Dropped);
        Assert.Equal([1, 2], Drain(staying).Select(N));
        Assert.Equal(1, bus.SubscriberCount);
    }

    [Fact]
    public async Task Publish_ConcurrentPublishers_EverySubscriberSeesTheSameOrder()
    {
        var bus = new EventBus(new EventBusOptions { SubscriberBufferBytes = 64L * 1024 * 1024 });
        using var first = bus.Subscribe();
        using var second = bus.Subscribe();
        const int Publishers = 4, Each = 1000;

        await Task.WhenAll(Enumerable.Range(0, Publishers).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < Each; i++)
            {
                bus.Publish(Event("e", (p * Each) + i));
            }
        })));

        var a = Drain(first).Select(N).ToList();
        var b = Drain(second).Select(N).ToList();
        Assert.Equal(Publishers * Each, a.Count);
        Assert.Equal(a, b);
        for (var p = 0; p < Publishers; p++)
        {
            var own = a.Where(n => n / Each == p).ToList();
            Assert.Equal(own.Order(), own); // each publisher's events in its order
        }
    }

    [Fact]
    public void Frame_IsSseEventWithTypeAndTimestamp()
    {
        var e = new MarathonEvent("event_stream_attached", At, _ => new JsonObject { ["remoteAddress"] = "127.0.0.1" });

        var text = Encoding.UTF8.GetString(e.Frame().Span);

        Assert.Equal("event: event_stream_attached\ndata: {\"remoteAddress\":\"127.0.0.1\",\"eventType\":\"event_stream_attached\",\"timestamp\":\"2026-03-01T23:29:30.158Z\"}\n\n", text);
        Assert.True(e.Frame().Span.SequenceEqual(e.Frame().Span));
    }

    [Fact]
    public void Frame_Light_UsesLightPayloadOnlyWhenTheEventHasOne()
    {
        var calls = 0;
        var deployment = new MarathonEvent("deployment_info", At, light =>
        {
            calls++;
            return new JsonObject { ["light"] = light };
        }, hasLightForm: true);
        var plain = new MarathonEvent("status_update_event", At, light => new JsonObject { ["light"] = light });

        Assert.Contains("\"light\":true", Encoding.UTF8.GetString(deployment.Frame(light: true).Span), StringComparison.Ordinal);
        Assert.Contains("\"light\":false", Encoding.UTF8.GetString(deployment.Frame(light: false).Span), StringComparison.Ordinal);
        _ = deployment.Frame(light: true);
        Assert.Equal(2, calls); // built once per form
        Assert.Contains("\"light\":false", Encoding.UTF8.GetString(plain.Frame(light: true).Span), StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ the SSE writer

    private static async Task<string> ReadUntil(PipeReader reader, StringBuilder seen, string expected)
    {
        return await Wait.UntilAsync(async () =>
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            try
            {
                var result = await reader.ReadAsync(cts.Token);
                foreach (var segment in result.Buffer)
                {
                    seen.Append(Encoding.UTF8.GetString(segment.Span));
                }

                reader.AdvanceTo(result.Buffer.End);
            }
            catch (OperationCanceledException)
            {
            }

            return seen.ToString();
        }, s => s.Contains(expected, StringComparison.Ordinal), Timeout, $"the stream to contain {expected}", interval: TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task WriteAsync_EventsThenIdle_FramesInOrderThenKeepAliveComments()
    {
        var bus = new EventBus();
        var pipe = new Pipe();
        using var sub = bus.Subscribe();
        using var cts = new CancellationTokenSource();
        var writing = EventsEndpoint.WriteAsync(pipe.Writer, sub, light: false, keepAlive: TimeSpan.FromMilliseconds(50), cts.Token);
        var seen = new StringBuilder();

        bus.Publish(Event("first", 1));
        bus.Publish(Event("second", 2));
        var text = await ReadUntil(pipe.Reader, seen, ": keep-alive\n\n");

        Assert.StartsWith("event: first\ndata: {\"n\":1,", text, StringComparison.Ordinal);
        Assert.Contains("\n\nevent: second\ndata: {\"n\":2,", text, StringComparison.Ordinal);

        bus.Publish(Event("third", 3)); // still streaming after a keep-alive
        await ReadUntil(pipe.Reader, seen, "event: third\n");

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => writing);
    }

    [Fact]
    public async Task WriteAsync_SubscriberDropped_WritesWhatWasBufferedThenSaysSoAndEnds()
    {
        // Half an event's bytes of buffer (rounded up): the hard limit (four buffers) holds two events; the third drops the subscriber.
        var bus = new EventBus(new EventBusOptions { SubscriberBufferBytes = (Event("e", 0).Frame().Length + EventBusOptions.PerEventOverhead + 1) / 2 });
        var pipe = new Pipe();
        using var sub = bus.Subscribe();
        for (var i = 0; i < 5; i++)
        {
            bus.Publish(Event("e", i)); // nobody reads yet: dropped at the third
        }

        await EventsEndpoint.WriteAsync(pipe.Writer, sub, light: false, keepAlive: TimeSpan.FromSeconds(30), CancellationToken.None, remote: "10.0.0.7");
        await pipe.Writer.CompleteAsync();

        var text = Encoding.UTF8.GetString((await pipe.Reader.ReadAsync()).Buffer.ToArray());
        Assert.Equal(2, text.Split("event: e\n").Length - 1);
        // Marathon's event_stream_detached, with why, then our comment.
        Assert.Contains("\n\nevent: event_stream_detached\ndata: {\"remoteAddress\":\"10.0.0.7\",\"reason\":\"" + EventsEndpoint.SlowReason + "\",\"eventType\":\"event_stream_detached\"", text, StringComparison.Ordinal);
        Assert.EndsWith("\n\n: dropped: this client fell too far behind; reconnect\n\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteAsync_CallerNoLongerCurrent_WritesNothingMoreAndEnds()
    {
        var bus = new EventBus();
        var pipe = new Pipe();
        using var sub = bus.Subscribe();
        bus.Publish(Event("before", 1));
        bus.Publish(Event("revoked", 2));
        bus.Publish(Event("after", 3));

        // The caller's login holds for one event, then ends (as a deleted user's lease says on its next check).
        var checks = 0;
        await EventsEndpoint.WriteAsync(pipe.Writer, sub, light: false, keepAlive: TimeSpan.FromSeconds(30), CancellationToken.None,
            current: () => ++checks == 1).WaitAsync(Timeout);
        await pipe.Writer.CompleteAsync();

        var text = Encoding.UTF8.GetString((await pipe.Reader.ReadAsync()).Buffer.ToArray());
        Assert.Equal("event: before\n", text[..("event: before\n".Length)]);
        Assert.DoesNotContain("revoked", text, StringComparison.Ordinal);
        Assert.DoesNotContain("after", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteAsync_SubscriptionDisposed_Ends()
    {
        var bus = new EventBus();
        var pipe = new Pipe();
        var sub = bus.Subscribe();
        var writing = EventsEndpoint.WriteAsync(pipe.Writer, sub, light: false, keepAlive: TimeSpan.FromSeconds(30), CancellationToken.None);

        sub.Dispose();

        await writing.WaitAsync(Timeout);
    }
}
