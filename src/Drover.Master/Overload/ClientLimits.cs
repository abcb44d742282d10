using System.Globalization;
using System.Threading.RateLimiting;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Overload;

/// <summary>
/// Per-client concurrency limits: each client (the authenticated person or service account, else the remote address)
/// has <see cref="OverloadOptions.ClientConcurrency"/> requests in progress and <see cref="OverloadOptions.ClientQueue"/>
/// waiting, served oldest first; past that it gets 429 with <c>Retry-After</c> in its API's error shape, while every other
/// client keeps its own slots. Runs after the security gate, so the key is who the gate authenticated.
/// <para>
/// Never limited: <c>/ping</c> and <c>/health</c> (probes must see the master as it is), the cluster's own callers (agents,
/// other masters, executors: limiting them would delay status updates and heartbeats and make healthy agents look lost),
/// and long-lived streams (<c>/v2/events</c>, Mesos' scheduler and operator APIs, followed logs), which would hold a slot for
/// hours; the event stream has its own cap (<see cref="OverloadOptions.MaxEventSubscribers"/>).
/// </para>
/// </summary>
internal static class ClientLimits
{
    /// <summary>What a refused client is told to wait, in seconds: a slot frees as soon as one of its requests ends.</summary>
    internal const int RetryAfterSeconds = 1;

    public static IServiceCollection AddDroverClientLimits(this IServiceCollection services, OverloadOptions options)
    {
        // Also a service: its statistics say how many slots a client holds (tests wait on them, metrics may show them).
        var clients = PartitionedRateLimiter.Create<HttpContext, string>(http => Partition(http, options));
        services.AddSingleton(clients);
        return services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.GlobalLimiter = clients;
            limiter.OnRejected = async (context, _) =>
            {
                var http = context.HttpContext;
                http.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await Denials.WriteAsync(http, StatusCodes.Status429TooManyRequests,
                    $"too many requests in progress from this client (at most {options.ClientConcurrency} at once and {options.ClientQueue} waiting); retry after {RetryAfterSeconds} s").ConfigureAwait(false);
            };
        });
    }

    public static WebApplication UseDroverClientLimits(this WebApplication app)
    {
        app.UseRateLimiter();
        return app;
    }

    /// <summary>The limiter of the request's client; no limiter for the callers and routes that are never limited.</summary>
    internal static RateLimitPartition<string> Partition(HttpContext http, OverloadOptions options)
    {
        if (IsExempt(http.Request))
        {
            return RateLimitPartition.GetNoLimiter("exempt");
        }

        var caller = SecurityGate.CallerOf(http);
        if (caller is { Kind: CallerKind.Agent or CallerKind.Master or CallerKind.Executor })
        {
            return RateLimitPartition.GetNoLimiter("cluster");
        }

        var key = caller is { Kind: CallerKind.User or CallerKind.ServiceAccount }
            ? caller.ToString()
            : "address:" + (http.Connection.RemoteIpAddress?.ToString() ?? "unknown");
        return RateLimitPartition.GetConcurrencyLimiter(key, _ => new ConcurrencyLimiterOptions
        {
            PermitLimit = options.ClientConcurrency,
            QueueLimit = options.ClientQueue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>Probes, the agents' and executors' protocol, and long-lived streams (see the class comment).</summary>
    internal static bool IsExempt(HttpRequest request)
    {
        var path = request.Path;
        return path.Equals("/ping", StringComparison.OrdinalIgnoreCase)
            || path.Equals("/health", StringComparison.OrdinalIgnoreCase)
            || path.StartsWithSegments("/internal", StringComparison.OrdinalIgnoreCase)
            || path.StartsWithSegments("/v2/events", StringComparison.OrdinalIgnoreCase)
            || path.StartsWithSegments("/api/v1", StringComparison.OrdinalIgnoreCase)
            || (path.StartsWithSegments("/drover/v1/tasks", StringComparison.OrdinalIgnoreCase)
                && path.Value!.EndsWith("/logs", StringComparison.OrdinalIgnoreCase)
                && string.Equals(request.Query["follow"], "true", StringComparison.OrdinalIgnoreCase));
    }
}
