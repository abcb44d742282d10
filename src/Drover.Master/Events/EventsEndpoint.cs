using Drover.Master.Security;
using Drover.Core.Security;
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Events;

/// <summary>
/// <c>GET /v2/events</c>: Marathon's event stream as Server-Sent Events. Each event is one frame,
/// <c>event: TYPE\ndata: JSON\n\n</c>; an idle stream gets a comment line every
/// <see cref="EventBusOptions.KeepAlive"/>. <c>?event_type=T</c> (repeatable) keeps only those types;
/// <c>?plan-format=light</c> leaves the original and target groups out of deployment events. The stream
/// ends when the client goes, when the master stops, when the client falls too far behind (it is told
/// so in a comment, and reconnects), or when the caller's login ends (<see cref="CredentialLease"/>: the token
/// expired, the account's credentials changed or the account was removed; a comment says so). Answers with SSE
/// whatever the Accept header says.
/// </summary>
internal static partial class EventsEndpoint
{
    /// <summary>Events written before a flush at most, so a fast publisher cannot grow the response buffer.</summary>
    internal const int MaxBatch = 64;

    private static readonly byte[] KeepAliveComment = Encoding.UTF8.GetBytes(": keep-alive\n\n");
    private static readonly byte[] DroppedComment = Encoding.UTF8.GetBytes(": dropped: this client fell too far behind; reconnect\n\n");
    private static readonly byte[] LoginEndedComment = Encoding.UTF8.GetBytes(": ended: the login expired or was revoked; log in again and reconnect\n\n");

    /// <summary>The <c>reason</c> of the <c>event_stream_detached</c> event of a stream the master dropped for falling behind.</summary>
    internal const string SlowReason = "slow_consumer: the client stayed too far behind the event stream";

    /// <summary>What a refused subscriber is told to wait, in seconds.</summary>
    private const string RetryAfterSeconds = "5";

    public static void Map(IEndpointRouteBuilder app)
    {
        // Attach the publisher's hooks now, before the first request can change anything.
        _ = app.ServiceProvider.GetService<EventPublisher>();
        app.MapGet("/v2/events", StreamAsync)
            .Access(RouteAccess.Permission(Rids.MarathonService, PermissionAction.Read).And(Rids.MarathonEvents, PermissionAction.Read));
    }

    private static async Task StreamAsync(HttpContext http, EventBus bus, IHostApplicationLifetime lifetime, TimeProvider time, ILoggerFactory loggers)
    {
        var query = http.Request.Query;
        var types = query["event_type"]
            .SelectMany(v => (v ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToList();
        var light = string.Equals(query["plan-format"].ToString(), "light", StringComparison.OrdinalIgnoreCase);
        var remote = http.Connection.RemoteIpAddress?.ToString() ?? "";
        var visible = Visibility(http);
        var logger = loggers.CreateLogger(typeof(EventsEndpoint).FullName!);
        using var lease = CredentialLease.For(http);
        if (!lease.IsCurrent())
        {
            await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, lease.Reason).ConfigureAwait(false);
            return;
        }

        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache, no-store";
        http.Response.Headers["X-Accel-Buffering"] = "no"; // nginx and friends: do not buffer the stream
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        // Long-lived: it must end when the master stops, or shutdown would wait for the client.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping, lease.Expired);
        if (!bus.TrySubscribe(types, out var subscription))
        {
            // Marathon's error shape; the client retries later, when other streams have ended.
            LogRefused(logger, remote, bus.Options.MaxSubscribers);
            http.Response.Headers.RetryAfter = RetryAfterSeconds;
            await Results.Json(new System.Text.Json.Nodes.JsonObject { ["message"] = $"too many event stream subscribers ({bus.Options.MaxSubscribers}, the master's --max-event-subscribers); retry later" },
                statusCode: StatusCodes.Status503ServiceUnavailable).ExecuteAsync(http).ConfigureAwait(false);
            return;
        }

        LogAttached(logger, remote, types.Count == 0 ? "all" : string.Join(',', types));
        bus.Publish(EventFactory.StreamAttached(time.GetUtcNow(), remote));
        try
        {
            await http.Response.StartAsync(stop.Token).ConfigureAwait(false);
            await http.Response.BodyWriter.FlushAsync(stop.Token).ConfigureAwait(false); // the headers now, not with the first event
            await WriteAsync(http.Response.BodyWriter, subscription, light, bus.Options.KeepAlive, stop.Token, visible, lease.IsCurrent, remote, time).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // The client went away mid-write.
        }
        finally
        {
            subscription.Dispose();
            bus.Publish(EventFactory.StreamDetached(time.GetUtcNow(), remote, subscription.Dropped ? SlowReason : null));
            LogDetached(logger, remote, subscription.Dropped);
        }

        if (!lease.IsCurrent())
        {
            LogLoginEnded(logger, remote, lease.Reason);
            await TryWriteAsync(http, LoginEndedComment).ConfigureAwait(false);
        }
    }

    /// <summary>A last comment to a client that may already be gone.</summary>
    private static async Task TryWriteAsync(HttpContext http, byte[] comment)
    {
        try
        {
            http.Response.BodyWriter.Write(comment);
            await http.Response.BodyWriter.FlushAsync(http.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
        }
    }

    /// <summary>
    /// Which events the caller may see: the stream's permission (admin:events) shows the event stream, and
    /// an event about apps only if the caller may also read each of them, so a grant of the stream to a team
    /// shows it its own apps' events, never another team's definitions or instances. Null: everything (a
    /// dev cluster without logins). Evaluated per event against the live IAM snapshot, so a revoked grant
    /// takes effect on an open stream.
    /// </summary>
    private static Func<MarathonEvent, bool>? Visibility(HttpContext http)
    {
        var caller = http.Caller();
        if (caller.Kind == CallerKind.DevAnonymous)
        {
            return null;
        }

        var authorizer = http.RequestServices.GetRequiredService<Authorizer>();
        return e =>
        {
            foreach (var app in e.AppIds)
            {
                if (!authorizer.Allows(caller, Rids.MarathonPath(app), PermissionAction.Read))
                {
                    return false;
                }
            }

            return true;
        };
    }

    /// <summary>
    /// Writes the subscription's events to <paramref name="output"/> as SSE frames until it completes,
    /// <paramref name="ct"/> is cancelled, or <paramref name="current"/> (asked before each event and keep-alive: the
    /// caller's <see cref="CredentialLease.IsCurrent"/>) says the caller may no longer be served. Events <paramref name="visible"/> refuses are skipped. Flushes as soon as no further event is ready (and every
    /// <see cref="MaxBatch"/> events), so no event waits in a buffer; a flush waits for a slow client, whose
    /// subscription then fills and is dropped rather than holding up the bus. Internal for tests.
    /// </summary>
    internal static async Task WriteAsync(PipeWriter output, EventSubscription subscription, bool light, TimeSpan keepAlive, CancellationToken ct,
        Func<MarathonEvent, bool>? visible = null, Func<bool>? current = null, string remote = "", TimeProvider? time = null)
    {
        var reader = subscription.Reader;
        CancellationTokenSource? idle = null;
        try
        {
            while (true)
            {
                var batch = 0;
                while (batch < MaxBatch && reader.TryRead(out var e))
                {
                    if (current is not null && !current())
                    {
                        // Whatever is already written goes out; nothing after it.
                        await FlushEndedAsync(output, ct).ConfigureAwait(false);
                        return;
                    }

                    if (visible is not null && !visible(e))
                    {
                        continue;
                    }

                    output.Write(e.Frame(light).Span);
                    batch++;
                }

                if (batch > 0)
                {
                    if (await FlushEndedAsync(output, ct).ConfigureAwait(false))
                    {
                        return;
                    }

                    continue;
                }

                idle ??= CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(keepAlive);
                bool more;
                try
                {
                    more = await reader.WaitToReadAsync(idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    idle.Dispose();
                    idle = null;
                    if (current is not null && !current())
                    {
                        return;
                    }

                    output.Write(KeepAliveComment);
                    if (await FlushEndedAsync(output, ct).ConfigureAwait(false))
                    {
                        return;
                    }

                    continue;
                }

                if (!idle.TryReset())
                {
                    idle.Dispose();
                    idle = null;
                }

                if (!more)
                {
                    // Detached or dropped; everything buffered has been written.
                    if (subscription.Dropped)
                    {
                        // As Marathon ends a stream it detaches: an event_stream_detached, here with the reason, then our comment.
                        output.Write(EventFactory.StreamDetached((time ?? TimeProvider.System).GetUtcNow(), remote, SlowReason).Frame().Span);
                        output.Write(DroppedComment);
                        await FlushEndedAsync(output, ct).ConfigureAwait(false);
                    }

                    return;
                }
            }
        }
        finally
        {
            idle?.Dispose();
        }
    }

    private static async ValueTask<bool> FlushEndedAsync(PipeWriter output, CancellationToken ct)
    {
        var result = await output.FlushAsync(ct).ConfigureAwait(false);
        return result.IsCompleted || result.IsCanceled;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Event stream of {Remote} refused: {Max} streams are open, the maximum")]
    private static partial void LogRefused(ILogger logger, string remote, int max);

    [LoggerMessage(Level = LogLevel.Information, Message = "Event stream attached for {Remote} (event types: {Types})")]
    private static partial void LogAttached(ILogger logger, string remote, string types);

    [LoggerMessage(Level = LogLevel.Information, Message = "Event stream of {Remote} ended: {Reason}")]
    private static partial void LogLoginEnded(ILogger logger, string remote, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Event stream detached for {Remote} (dropped for falling behind: {Dropped})")]
    private static partial void LogDetached(ILogger logger, string remote, bool dropped);
}

/// <summary>Registers the event bus and its publisher.</summary>
internal static class EventServices
{
    public static IServiceCollection AddDroverEvents(this IServiceCollection services)
    {
        services.AddHttpContextAccessor(); // api_post_event names the client and the URI of the change
        services.TryAddSingleton(new EventBusOptions());
        services.AddSingleton(sp => new EventBus(sp.GetRequiredService<EventBusOptions>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new EventPublisher(
            sp.GetRequiredService<EventBus>(),
            sp.GetRequiredService<Services.ServiceRegistry>(),
            sp.GetRequiredService<State.ClusterState>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<IHttpContextAccessor>()));
        services.AddHostedService(sp => sp.GetRequiredService<EventPublisher>());
        return services;
    }
}
