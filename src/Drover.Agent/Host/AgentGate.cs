using System.Security.Cryptography.X509Certificates;
using Drover.Core.Security;
using Drover.Core.Security.Pki;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Drover.Agent.Host;

/// <summary>
/// The gate of a stand-alone agent's HTTP endpoint (in <c>drover dev</c> the master's gate covers these routes):
/// browser protections, then each route's <see cref="RouteAccess"/> — the sandbox routes answer only a master
/// presenting a cluster certificate, the executor API checks executor tokens itself, health is open. An agent
/// without TLS (loopback tests and dev only) lets every caller through after the browser checks.
/// </summary>
public static class AgentGate
{
    /// <param name="clusterRoots">With TLS, the cluster CA: a caller's certificate must chain to it (checked per request, expiry included); null: no TLS.</param>
    public static IApplicationBuilder UseAgentGate(this IApplicationBuilder app, BrowserGuard guard, X509Certificate2Collection? clusterRoots)
    {
        var secure = clusterRoots is not null;
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(guard);
        return app.Use(async (http, next) =>
        {
            var request = http.Request;
            if (http.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata>() is null
                && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = RequestLimits.DefaultMaxBody;
            }

            var hasBody = request.ContentLength > 0 || (request.ContentLength is null && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true); // HTTP/2 bodies carry no length
            if (guard.Check(request.Method, request.Host.Value, request.Headers.Origin.ToString(), $"{request.Scheme}://{request.Host}", request.ContentType, hasBody,
                    routeChecksContentType: request.Path.StartsWithSegments("/api/v1")) is { } refused)
            {
                await Refuse(http, refused.Status, refused.Reason);
                return;
            }

            var access = http.GetEndpoint()?.Metadata.GetMetadata<RouteAccess>();
            Caller? caller = Caller.Dev;
            if (secure)
            {
                var time = http.RequestServices.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System;
                var (identity, _) = PeerIdentity.Of(http.Connection.ClientCertificate, clusterRoots!, time.GetUtcNow());
                caller = identity?.ToCaller();
            }

            var decision = AccessGate.Decide(access, caller, null, static (_, _) => false);
            switch (decision.Outcome)
            {
                case AccessOutcome.Allowed:
                    await next(http);
                    return;
                case AccessOutcome.Unauthenticated:
                    http.Response.Headers.WWWAuthenticate = "Basic realm=\"mesos-agent-readonly\"";
                    await Refuse(http, StatusCodes.Status401Unauthorized, decision.Reason);
                    return;
                case AccessOutcome.Forbidden:
                    await Refuse(http, StatusCodes.Status403Forbidden, decision.Reason);
                    return;
                default:
                    await Refuse(http, StatusCodes.Status500InternalServerError, decision.Reason);
                    return;
            }
        });
    }

    /// <summary>Mesos' agent answers refusals in plain text.</summary>
    private static async Task Refuse(HttpContext http, int status, string reason)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/plain; charset=utf-8";
        await http.Response.WriteAsync(reason);
    }
}
