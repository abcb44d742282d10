using Drover.Master.Security;
using Drover.Core.Security;
using Drover.Core.Mesos;
using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using System.Threading.Channels;
using Drover.Core.Api;
using Drover.Master.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Net.Http.Headers;

namespace Drover.Master.Mesos;

/// <summary>
/// <c>POST /api/v1/scheduler</c>: Mesos' v1 scheduler HTTP API, JSON only. SUBSCRIBE answers 200 with a
/// stream of RecordIO-framed events (<c>&lt;length&gt;\n&lt;json&gt;</c>) and the <c>Mesos-Stream-Id</c>
/// header; every other call answers 202 (or 400/403 with the reason) and needs that header.
/// </summary>
internal static class SchedulerEndpoint
{
    public const string StreamIdHeader = "Mesos-Stream-Id";

    public static void Map(IEndpointRouteBuilder app)
    {
        // Any authenticated principal: SUBSCRIBE then checks the framework's principal, roles and user (FrameworkManager).
        app.MapPost("/api/v1/scheduler", HandleAsync).Access(RouteAccess.Authenticated);
    }

    private static async Task HandleAsync(HttpContext http, FrameworkManager frameworks, Authorizer authorizer, MasterOptions options, IHostApplicationLifetime lifetime)
    {
        if (ContentTypeError(http.Request) is { } refused)
        {
            await refused.ExecuteAsync(http);
            return;
        }

        var (call, error) = await ApiResults.ReadBody(http.Request, MesosV1JsonContext.Default.MCall, http.RequestAborted);
        if (error is not null)
        {
            await error.ExecuteAsync(http);
            return;
        }

        var streamId = http.Request.Headers[StreamIdHeader].ToString();
        var caller = SchedulerCallerOf(http, authorizer);
        if (call!.Type != "SUBSCRIBE")
        {
            var result = frameworks.Handle(call, streamId, caller);
            await (result.Error is null
                ? Results.StatusCode(result.Status)
                : ApiResults.Error(result.Status, result.Status == StatusCodes.Status403Forbidden ? "forbidden" : ErrorCodes.ValidationFailed, result.Error)).ExecuteAsync(http);
            return;
        }

        if (streamId.Length > 0)
        {
            await ApiResults.Error(StatusCodes.Status400BadRequest, ErrorCodes.ValidationFailed, "Subscribe calls should not include the 'Mesos-Stream-Id' header").ExecuteAsync(http);
            return;
        }

        // The stream lasts as long as the principal's login: it ends when the token expires or the account's
        // credentials change or it is removed (the framework then re-subscribes with its new credentials).
        using var lease = CredentialLease.For(http);
        if (!lease.IsCurrent())
        {
            await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, lease.Reason);
            return;
        }

        var (fw, stream, failed, refusal) = frameworks.Subscribe(call, http.Request.Host.Value ?? "localhost", caller);
        if (fw is null && refusal is null)
        {
            await ApiResults.Error(failed.Status, ErrorCodes.ValidationFailed, failed.Error ?? "invalid SUBSCRIBE").ExecuteAsync(http);
            return;
        }

        if (fw is not null)
        {
            try
            {
                // A new framework's id is given out only once its record is durable (a store failure: 503, retried).
                await fw.Issued;
            }
            catch
            {
                frameworks.StreamEnded(fw, stream!);
                throw;
            }
        }

        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "application/json";
        http.Response.Headers.CacheControl = "no-cache";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        if (refusal is not null)
        {
            // Mesos tells a torn-down framework, and one it may not register or take over, so on the stream, then closes it.
            WriteRecord(http.Response.BodyWriter, FrameworkManager.Encode(new MEvent { Type = "ERROR", Error = new MError(refusal) }));
            await http.Response.BodyWriter.FlushAsync(http.RequestAborted);
            return;
        }

        http.Response.Headers[StreamIdHeader] = stream!.Id;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping, lease.Expired);
        try
        {
            await http.Response.StartAsync(stop.Token);
            await WriteStreamAsync(http.Response.BodyWriter, stream.Reader, HeartbeatEvent, options.SchedulerHeartbeatInterval, stop.Token, lease.IsCurrent);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // The scheduler went away mid-write.
        }
        finally
        {
            frameworks.StreamEnded(fw!, stream);
        }
    }

    /// <summary>
    /// The principal the gate authenticated (HTTP Basic or a login token), whose permissions the scheduler calls are
    /// checked against; on a dev cluster without logins, <see cref="SchedulerCaller.Anyone"/>.
    /// </summary>
    private static SchedulerCaller SchedulerCallerOf(HttpContext http, Authorizer authorizer)
    {
        var caller = http.Caller();
        return caller.Kind == CallerKind.DevAnonymous
            ? SchedulerCaller.Anyone
            : new SchedulerCaller(caller.Id, (rid, action) => authorizer.Allows(caller, rid, action));
    }

    private static readonly byte[] HeartbeatEvent = FrameworkManager.Encode(new MEvent { Type = "HEARTBEAT" });

    /// <summary>415 for a body that is not JSON (protobuf is not spoken), 406 when the client accepts no JSON.</summary>
    internal static IResult? ContentTypeError(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || !type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return ApiResults.Error(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                $"Content-Type '{request.ContentType}' is not supported: Drover's Mesos v1 API speaks JSON only (send 'Content-Type: application/json'); protobuf is not supported");
        }

        var accept = request.Headers.Accept.ToString();
        if (accept.Length > 0 && MediaTypeHeaderValue.TryParseList(request.Headers.Accept, out var accepted)
            && !accepted.Any(a => a.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || a.MediaType.Equals("*/*", StringComparison.Ordinal) || a.MediaType.Equals("application/*", StringComparison.OrdinalIgnoreCase)))
        {
            return ApiResults.Error(StatusCodes.Status406NotAcceptable, "not_acceptable", $"Accept '{accept}': Drover answers in application/json only");
        }

        return null;
    }

    /// <summary>
    /// Writes queued events as RecordIO records until the queue completes, <paramref name="ct"/> is cancelled or
    /// <paramref name="current"/> (asked before each event and heartbeat: the caller's <see cref="CredentialLease.IsCurrent"/>)
    /// says the caller may no longer be served, and a heartbeat whenever nothing was written for <paramref name="heartbeat"/>.
    /// Flushes whenever the queue is drained, so no event waits in a buffer.
    /// </summary>
    internal static async Task WriteStreamAsync(PipeWriter output, ChannelReader<byte[]> reader, byte[] heartbeatEvent, TimeSpan heartbeat, CancellationToken ct,
        Func<bool>? current = null)
    {
        while (true)
        {
            var wrote = 0;
            while (wrote < 256 && reader.TryRead(out var e))
            {
                if (current is not null && !current())
                {
                    await output.FlushAsync(ct); // what was written before goes out; nothing after it
                    return;
                }

                WriteRecord(output, e);
                wrote++;
            }

            if (wrote > 0)
            {
                var flushed = await output.FlushAsync(ct);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    return;
                }

                continue;
            }

            using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
            idle.CancelAfter(heartbeat);
            try
            {
                if (!await reader.WaitToReadAsync(idle.Token))
                {
                    return; // closed: failover by another connection, teardown, or too slow a reader
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                if (current is not null && !current())
                {
                    return;
                }

                WriteRecord(output, heartbeatEvent);
                var flushed = await output.FlushAsync(ct);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    return;
                }
            }
        }
    }

    /// <summary>One RecordIO record: the length of the JSON in bytes, a newline, the JSON.</summary>
    internal static void WriteRecord(PipeWriter output, byte[] json)
    {
        var header = Encoding.ASCII.GetBytes(json.Length.ToString(CultureInfo.InvariantCulture) + "\n");
        output.Write(header);
        output.Write(json);
    }
}
