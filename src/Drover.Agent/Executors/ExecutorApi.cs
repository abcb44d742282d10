using System.Text.Json;
using Drover.Core;
using Drover.Core.Mesos;
using Drover.Core.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Net.Http.Headers;

namespace Drover.Agent.Executors;

/// <summary>
/// <c>POST /api/v1/executor</c>: Mesos' v1 executor HTTP API, JSON only. Every call is authenticated first, with the
/// executor's own token (<see cref="ExecutorTokens"/>; 401 and <c>WWW-Authenticate</c> without a valid one), and
/// authorized next: the call's framework and executor ids must be the token's, and the token's container the
/// executor's current one (403 otherwise), before anything changes. Errors are answered as a Mesos agent does —
/// status code and a plain-text reason (400 bad call, 401 no valid token, 403 another executor's ids or not
/// subscribed, 415 content type, 406 accept) — because executors written against Mesos read them that way.
/// </summary>
public static class ExecutorApi
{
    public const string Path = "/api/v1/executor";
    private const string Json = "application/json";
    private const string Protobuf = "application/x-protobuf";

    public static void Map(IEndpointRouteBuilder app, ExecutorManager manager)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Executors prove themselves with their own token, checked by the handler against each call's ids.
        app.MapPost(Path, (HttpContext http) => HandleAsync(http, manager)).WithMetadata(RouteAccess.Executor);
    }

    private static async Task HandleAsync(HttpContext http, ExecutorManager manager)
    {
        var request = http.Request;
        // Before the body is even read, as Mesos' authenticator runs before its handler.
        var authentication = await manager.Tokens.AuthenticateAsync(request.Headers.Authorization.ToString());
        if (authentication.Principal is not { } caller)
        {
            http.Response.Headers.WWWAuthenticate = ExecutorTokens.Challenge(authentication.Error);
            await Text(http, 401, authentication.Error is null
                ? "Executor authentication required: send 'Authorization: Bearer $MESOS_EXECUTOR_AUTHENTICATION_TOKEN'"
                : "Executor authentication failed: " + authentication.Error);
            return;
        }

        if (string.IsNullOrEmpty(request.ContentType))
        {
            await Text(http, 400, "Expecting 'Content-Type' to be present");
            return;
        }

        var mediaType = MediaTypeHeaderValue.TryParse(request.ContentType, out var parsed) ? parsed.MediaType.Value : request.ContentType;
        if (!string.Equals(mediaType, Json, StringComparison.OrdinalIgnoreCase))
        {
            await Text(http, 415, string.Equals(mediaType, Protobuf, StringComparison.OrdinalIgnoreCase)
                ? $"Drover supports only '{Json}' on this endpoint; protobuf is not implemented"
                : $"Expecting 'Content-Type' of {Json} or {Protobuf}");
            return;
        }

        ExecutorCall? call;
        try
        {
            call = await JsonSerializer.DeserializeAsync(request.Body, ExecutorJsonContext.Default.ExecutorCall, http.RequestAborted);
        }
        catch (JsonException e)
        {
            await Text(http, 400, "Failed to convert JSON into Call protobuf: " + e.Message);
            return;
        }

        if (call is null)
        {
            await Text(http, 400, "Failed to convert JSON into Call protobuf: the body is null");
            return;
        }

        if (ValidateCall(call) is { } invalid)
        {
            await Text(http, 400, "Failed to validate Executor::Call: " + invalid);
            return;
        }

        if (Authorize(caller, call.FrameworkId!.Value!, call.ExecutorId!.Value!) is { } forbidden)
        {
            await Text(http, 403, forbidden);
            return;
        }

        switch (call.Type)
        {
            case "HEARTBEAT":
                await Answer(http, manager.Heartbeat(caller));
                return;
            case "SUBSCRIBE":
                if (!AcceptsJson(request))
                {
                    await Text(http, 406, $"Expecting 'Accept' to allow '{Json}' (protobuf is not implemented)");
                    return;
                }

                var (outcome, subscription) = manager.Subscribe(caller, call.Subscribe!);
                if (subscription is null)
                {
                    await Text(http, outcome.StatusCode, outcome.Error ?? "");
                    return;
                }

                await StreamAsync(http, manager, subscription);
                return;
            case "UPDATE":
                await Answer(http, manager.Update(caller, call.Update!.Status!));
                return;
            case "MESSAGE":
                await Answer(http, manager.Message(caller, call.Message!.Data!));
                return;
            default:
                await Text(http, 501, $"Call type '{call.Type}' is not implemented");
                return;
        }
    }

    /// <summary>
    /// Mesos' <c>verifyExecutorClaims</c> for the ids a call names: null when they are the token's, else the reason
    /// (403). The container claim is checked by the manager, against the executor's current container.
    /// </summary>
    internal static string? Authorize(ExecutorPrincipal caller, string frameworkId, string executorId)
    {
        if (caller.FrameworkId != frameworkId)
        {
            return $"Authenticated principal does not contain an '{ExecutorTokens.FrameworkClaim}' claim with the framework ID {frameworkId}, which is set in the call";
        }

        if (caller.ExecutorId != executorId)
        {
            return $"Authenticated principal does not contain an '{ExecutorTokens.ExecutorClaim}' claim with the executor ID {executorId}, which is set in the call";
        }

        return null;
    }

    /// <summary>Mesos' <c>validateExecutorCall</c> rules: null when valid, else the reason.</summary>
    internal static string? ValidateCall(ExecutorCall call)
    {
        if (string.IsNullOrEmpty(call.Type))
        {
            return "Expecting 'type' to be present";
        }

        if (string.IsNullOrEmpty(call.ExecutorId?.Value))
        {
            return "Expecting 'executor_id' to be present";
        }

        if (string.IsNullOrEmpty(call.FrameworkId?.Value))
        {
            return "Expecting 'framework_id' to be present";
        }

        switch (call.Type)
        {
            case "SUBSCRIBE":
                return call.Subscribe is null ? "Expecting 'subscribe' to be present" : null;
            case "UPDATE":
                if (call.Update?.Status is not { } status)
                {
                    return "Expecting 'update' to be present";
                }

                return ValidateStatus(status, call.ExecutorId!.Value!);
            case "MESSAGE":
                return call.Message?.Data is null ? "Expecting 'message' to be present" : null;
            case "HEARTBEAT":
                return null;
            default:
                return $"Unknown call type '{call.Type}'";
        }
    }

    /// <summary>Validates a TaskStatus an executor sends (UPDATE, or an unacknowledged update on SUBSCRIBE).</summary>
    internal static string? ValidateStatus(MTaskStatus status, string executorId)
    {
        // task_id and state are required members of MTaskStatus, so a status without them already failed to
        // parse (as proto2 required fields do in Mesos); an explicit JSON null still gets here.
        if (string.IsNullOrEmpty(status.TaskId?.Value))
        {
            return "Expecting 'task_id' to be present in 'update.status'";
        }

        if (string.IsNullOrEmpty(status.Uuid))
        {
            return "Expecting 'uuid' to be present";
        }

        if (!IsUuid(status.Uuid))
        {
            return "Invalid 'uuid': expecting the base64 encoding of 16 bytes";
        }

        if (status.ExecutorId?.Value is { } statusExecutor && statusExecutor != executorId)
        {
            return $"ExecutorID in Call: {executorId} does not match ExecutorID in TaskStatus: {statusExecutor}";
        }

        if (status.Source != TaskSources.Executor)
        {
            return $"Received Call from executor {executorId} with invalid source, expecting '{TaskSources.Executor}'";
        }

        if (string.IsNullOrEmpty(status.State) || !TaskStates.TryParse(status.State, out var state) || !status.State.StartsWith("TASK_", StringComparison.Ordinal))
        {
            return $"Unknown task state '{status.State}'";
        }

        if (state == TaskState.Staging)
        {
            return $"Received TASK_STAGING from executor {executorId} which is not allowed";
        }

        return null;
    }

    private static bool IsUuid(string base64)
    {
        Span<byte> bytes = stackalloc byte[32];
        return Convert.TryFromBase64String(base64, bytes, out var written) && written == 16;
    }

    private static bool AcceptsJson(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        if (string.IsNullOrWhiteSpace(accept))
        {
            return true;
        }

        return MediaTypeHeaderValue.TryParseList([accept], out var list)
            && list.Any(m => m.MediaType.Value is Json or "*/*" or "application/*");
    }

    /// <summary>
    /// RecordIO events until the subscription ends (a newer one, the executor's end), the executor hangs up, or the
    /// agent stops: the stream is then ended at once (rather than holding the server's shutdown), and the executor,
    /// which outlives the agent process, subscribes again to the next one.
    /// </summary>
    private static async Task StreamAsync(HttpContext http, ExecutorManager manager, ExecutorSubscription subscription)
    {
        var response = http.Response;
        response.StatusCode = 200;
        response.ContentType = Json;
        response.Headers.CacheControl = "no-cache";
        var stopping = http.RequestServices.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stopping);
        try
        {
            await response.StartAsync(ended.Token);
            await foreach (var e in subscription.Events.ReadAllAsync(ended.Token))
            {
                await response.Body.WriteAsync(ExecutorJsonContext.RecordIo(e), ended.Token);
                await response.Body.FlushAsync(ended.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The executor hung up (or the agent is stopping): it is disconnected until it subscribes again.
        }
        finally
        {
            manager.Unsubscribe(subscription);
        }
    }

    private static Task Answer(HttpContext http, CallOutcome outcome)
    {
        if (outcome.Error is null)
        {
            http.Response.StatusCode = outcome.StatusCode;
            return Task.CompletedTask;
        }

        return Text(http, outcome.StatusCode, outcome.Error);
    }

    private static Task Text(HttpContext http, int status, string message)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/plain; charset=utf-8";
        return http.Response.WriteAsync(message, http.RequestAborted);
    }
}
