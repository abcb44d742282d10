using System.Net;
using System.Text.Json.Nodes;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Master.Security.Audit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security;

/// <summary>
/// The one gate in front of every master (and, in <c>drover dev</c>, agent) endpoint. Per request:
/// <list type="number">
/// <item>browser protections (<see cref="BrowserGuard"/>: JSON bodies only, same origin, known Host) → 415/403;</item>
/// <item>the route's <see cref="RouteAccess"/> (endpoint metadata; none declared → 500, a bug);</item>
/// <item>authentication (<see cref="Authenticator"/>) unless the route is anonymous → 401 with <c>WWW-Authenticate</c>;</item>
/// <item>the route-level permission (<see cref="AccessGate.Decide"/>) → 403.</item>
/// </list>
/// Handlers of <see cref="AccessKind.PermissionThenObjects"/> routes then check each object with
/// <see cref="SecurityHttpContextExtensions.Allows"/>. The caller is kept on the request for them and for the audit log.
/// </summary>
public static partial class SecurityGate
{
    private static readonly object CallerKey = new();

    /// <summary>Adds the gate to the pipeline; call after <c>UseRouting</c>.</summary>
    public static IApplicationBuilder UseDroverSecurityGate(this IApplicationBuilder app, BrowserGuard guard)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(guard);
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Drover.Security");
        return app.Use(async (http, next) =>
        {
            var request = http.Request;
            var hasBody = request.ContentLength > 0 || (request.ContentLength is null && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true); // HTTP/2 bodies carry no length
            var own = $"{request.Scheme}://{request.Host}";
            var endpoint = http.GetEndpoint();
            var access = endpoint?.Metadata.GetMetadata<RouteAccess>();
            var path = request.Path.Value ?? "";
            RouteSecurity.ApplyDefaultBodyLimit(http);
            if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && !HttpMethods.IsOptions(request.Method) && access?.Audited != false)
            {
                AuditWhenAnswered(http);
            }

            if (guard.Check(request.Method, request.Host.Value, request.Headers.Origin.ToString(), own, request.ContentType, hasBody,
                    routeChecksContentType: request.Path.StartsWithSegments("/api/v1")) is { } refused)
            {
                await Denials.WriteAsync(http, refused.Status, refused.Reason);
                return;
            }

            // A declared length over the route's limit is refused before anything reads a byte of it (chunked bodies
            // and HTTP/2 ones without a length are cut off by Kestrel at the limit as they are read: 413 from MasterHost).
            if (request.ContentLength is { } length
                && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize is { } max && length > max)
            {
                Denials.CloseAfterResponse(http);
                await Denials.WriteAsync(http, StatusCodes.Status413PayloadTooLarge,
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the request body is {length} bytes; this route accepts at most {max}"));
                return;
            }

            if (access is null)
            {
                LogUndeclared(logger, request.Method, path, (endpoint as RouteEndpoint)?.RoutePattern.RawText ?? endpoint?.DisplayName ?? "?");
                await Denials.WriteAsync(http, StatusCodes.Status500InternalServerError, "this route declares no access rule (a bug): refused");
                return;
            }

            Caller? caller = null;
            // Executors and joining agents carry their own kind of token, which their handler checks.
            if (access.Kind is not (AccessKind.Anonymous or AccessKind.Executor or AccessKind.JoinToken))
            {
                var authenticator = http.RequestServices.GetRequiredService<Authenticator>();
                var result = await authenticator.AuthenticateAsync(http);
                caller = result.Caller;
                if (result.Error is { } error)
                {
                    if (result.RetryAfter is { } retry)
                    {
                        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                        await Denials.WriteAsync(http, StatusCodes.Status429TooManyRequests, error);
                        return;
                    }

                    await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, error);
                    return;
                }

                if (caller is not null)
                {
                    http.Items[CallerKey] = caller; // for the handler and for the audit record, refused or not
                }
            }

            var authorizer = http.RequestServices.GetRequiredService<Authorizer>();
            var routeAgentId = access.Kind == AccessKind.Agent ? request.RouteValues["id"] as string : null;
            var decision = AccessGate.Decide(access, caller, routeAgentId, (rid, action) => authorizer.Allows(caller!, rid, action));
            switch (decision.Outcome)
            {
                case AccessOutcome.Allowed:
                    break;
                case AccessOutcome.Unauthenticated:
                    await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, decision.Reason);
                    return;
                case AccessOutcome.Forbidden:
                    await Denials.WriteAsync(http, StatusCodes.Status403Forbidden, decision.Reason);
                    return;
                default:
                    await Denials.WriteAsync(http, StatusCodes.Status500InternalServerError, decision.Reason);
                    return;
            }

            await next(http);
        });
    }

    /// <summary>Queues the call's audit record as its response starts (streams are recorded when they open, not when they end).</summary>
    private static void AuditWhenAnswered(HttpContext http)
    {
        var log = http.RequestServices.GetRequiredService<AuditLog>();
        http.Response.OnStarting(() =>
        {
            var status = http.Response.StatusCode;
            var record = new AuditRecord
            {
                Time = log.Now(),
                Caller = CallerOf(http)?.ToString() ?? "anonymous",
                From = $"{http.Connection.RemoteIpAddress}:{http.Connection.RemotePort}",
                Method = http.Request.Method,
                Path = http.Request.Path.Value + http.Request.QueryString.Value,
                Detail = http.Items.TryGetValue(AuditEndpoint.DetailKey, out var d) ? d as string : null,
                Status = status,
                Result = status switch
                {
                    < 400 => "allowed",
                    401 or 403 => "denied",
                    < 500 => "refused",
                    _ => "failed",
                },
            };
            // Refused before anyone was authenticated (and failed logins): kept apart, see AuditLog.
            var unauthenticated = CallerOf(http) is null && status is 401 or 403 or 429 or 415;
            return log.AppendAsync(record, unauthenticated).AsTask();
        });
    }

    /// <summary>The caller the gate authenticated (null on anonymous routes).</summary>
    internal static Caller? CallerOf(HttpContext http) => http.Items.TryGetValue(CallerKey, out var c) ? c as Caller : null;

    [LoggerMessage(Level = LogLevel.Error, Message = "Refused {Method} {Path}: endpoint {Endpoint} declares no access rule (RouteAccess metadata)")]
    private static partial void LogUndeclared(ILogger logger, string method, string path, string endpoint);
}

/// <summary>Whether a caller holds a permission: IAM grants for people, everything for a dev cluster without logins, nothing for machines.</summary>
public sealed class Authorizer(IamStore iam)
{
    public bool Allows(Caller caller, string rid, PermissionAction action)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return caller.Kind switch
        {
            CallerKind.DevAnonymous => true,
            CallerKind.User or CallerKind.ServiceAccount => iam.Snapshot.Allows(caller.Id, rid, action),
            _ => false,
        };
    }
}

/// <summary>Per-object checks for handlers, after the gate let the request in.</summary>
public static class SecurityHttpContextExtensions
{
    /// <summary>The authenticated caller; <see cref="Caller.Dev"/> on a dev cluster without logins.</summary>
    public static Caller Caller(this HttpContext http) =>
        SecurityGate.CallerOf(http) ?? throw new InvalidOperationException("no authenticated caller on this request (anonymous route?)");

    /// <summary>Whether the caller holds <paramref name="action"/> on <paramref name="rid"/>.</summary>
    public static bool Allows(this HttpContext http, string rid, PermissionAction action)
    {
        ArgumentNullException.ThrowIfNull(http);
        return SecurityGate.CallerOf(http) is { } caller && http.RequestServices.GetRequiredService<Authorizer>().Allows(caller, rid, action);
    }

    /// <summary>A 403 in the route family's error shape, naming the permission that is missing.</summary>
    public static IResult Forbidden(this HttpContext http, string rid, PermissionAction action)
    {
        ArgumentNullException.ThrowIfNull(http);
        var who = SecurityGate.CallerOf(http)?.Id ?? "the caller";
        return new DenialResult(StatusCodes.Status403Forbidden, $"'{who}' lacks permission '{rid}' with action '{PermissionActions.Describe(action)}'");
    }

    private sealed class DenialResult(int status, string reason) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) => Denials.WriteAsync(httpContext, status, reason);
    }
}

/// <summary>
/// 401/403/415 answers in the shape each API family's clients parse: Marathon's <c>{"message"}</c> under
/// <c>/v2</c>, Mesos' plain text under <c>/api/v1</c> and the Mesos endpoints, DC/OS IAM's
/// <c>{"title","description","code"}</c> under <c>/acs</c>, Drover's <see cref="ApiError"/> elsewhere.
/// A 401 carries <c>WWW-Authenticate</c>.
/// </summary>
public static class Denials
{
    /// <summary>
    /// Tells an HTTP/1.x client not to reuse the connection: after a refusal whose body is left unread (413), the server
    /// cannot drain it and closes the connection, and a client that sent its next request on it would see it cut.
    /// </summary>
    public static void CloseAfterResponse(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!http.Response.HasStarted && (HttpProtocol.IsHttp11(http.Request.Protocol) || HttpProtocol.IsHttp10(http.Request.Protocol)))
        {
            http.Response.Headers.Connection = "close";
        }
    }

    public static async Task WriteAsync(HttpContext http, int status, string reason)
    {
        ArgumentNullException.ThrowIfNull(http);
        var path = http.Request.Path.Value ?? "";
        var response = http.Response;
        response.StatusCode = status;
        if (status == StatusCodes.Status401Unauthorized)
        {
            response.Headers.WWWAuthenticate = IsMesos(path)
                ? new Microsoft.Extensions.Primitives.StringValues([$"Basic realm=\"{MesosRealm(path)}\"", "Bearer realm=\"drover\""])
                : new Microsoft.Extensions.Primitives.StringValues(["acsjwt", "Bearer realm=\"drover\""]);
        }

        if (path.StartsWith("/v2/", StringComparison.Ordinal) || path == "/v2")
        {
            await Results.Json(new JsonObject { ["message"] = reason }, statusCode: status).ExecuteAsync(http);
        }
        else if (IsMesos(path))
        {
            response.ContentType = "text/plain; charset=utf-8";
            await response.WriteAsync(reason);
        }
        else if (path.StartsWith("/acs/", StringComparison.Ordinal))
        {
            var (title, code) = status switch
            {
                // DC/OS' titles are the status line ("401 Unauthorized").
                401 => ("401 Unauthorized", "ERR_MISSING_AUTH_TOKEN"),
                403 => ("403 Forbidden", "ERR_FORBIDDEN"),
                400 => ("400 Bad Request", "ERR_INVALID_DATA"),
                413 => ("413 Payload Too Large", "ERR_INVALID_DATA"),
                415 => ("415 Unsupported Media Type", "ERR_INVALID_DATA"),
                429 => ("429 Too Many Requests", "ERR_TOO_MANY_REQUESTS"),
                _ => ($"{status} {ReasonPhrase(status)}", "ERR_INTERNAL"),
            };
            await Results.Json(new JsonObject { ["title"] = title, ["description"] = reason, ["code"] = code }, statusCode: status).ExecuteAsync(http);
        }
        else
        {
            var code = status switch
            {
                401 => "unauthorized",
                403 => "forbidden",
                400 => "bad_request",
                413 => "payload_too_large",
                415 => "unsupported_media_type",
                429 => "too_many_requests",
                _ => ErrorCodes.Internal,
            };
            await Results.Json(new ApiError { Code = code, Message = reason, Details = [] }, DroverJsonContext.Default.ApiError, statusCode: status).ExecuteAsync(http);
        }
    }

    /// <summary>
    /// Mesos' HTTP authentication realm of a path (Mesos 1.11): frameworks authenticate in
    /// <c>mesos-master-scheduler</c>, the operator API in <c>mesos-master-readwrite</c>, the read-only endpoints
    /// (<c>/master/state</c>, …) in <c>mesos-master-readonly</c>; the executor API (served here by <c>drover dev</c>)
    /// is the agent's <c>mesos-agent-executor</c>.
    /// </summary>
    internal static string MesosRealm(string path) =>
        IsPathOrBelow(path, "/api/v1/scheduler") ? "mesos-master-scheduler"
        : IsPathOrBelow(path, "/api/v1/executor") ? "mesos-agent-executor"
        : path.StartsWith("/api/v1", StringComparison.Ordinal) ? "mesos-master-readwrite"
        : "mesos-master-readonly";

    private static bool IsPathOrBelow(string path, string prefix) =>
        path.StartsWith(prefix, StringComparison.Ordinal) && (path.Length == prefix.Length || path[prefix.Length] == '/');

    private static bool IsMesos(string path) =>
        path.StartsWith("/api/v1", StringComparison.Ordinal) || path.StartsWith("/master/", StringComparison.Ordinal) || path == "/state.json";

    private static string ReasonPhrase(int status) => ((HttpStatusCode)status).ToString();
}
