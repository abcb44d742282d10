using Drover.Master.Security;
using Drover.Core.Security;
using System.Text.Json.Nodes;
using Drover.Core.Api;
using Drover.Master.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.HighAvailability;

/// <summary>
/// What a master serves about leadership. A follower answers <c>GET /master/redirect</c> itself and sends
/// every other request (<c>/v2/leader</c> included) to the leader with a 307 (same method and body, same
/// path and query), or a 503 <c>no_leader</c> error while none is elected.
/// The leader serves <c>/master/redirect</c> too (to itself); its <c>/v2/leader</c> is the Marathon endpoint.
/// Redirects keep the request's scheme: masters of one cluster all serve HTTPS, or all plain HTTP.
/// </summary>
public static class LeaderEndpoints
{
    /// <summary>Every endpoint of a master that follows.</summary>
    public static WebApplication MapDroverFollower(this WebApplication app, LeaderElection election)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(election);
        // A follower holds no users: it answers only what a client needs before it can authenticate (where the
        // leader is) and sends everything else, /v2/leader included, to the leader, which checks credentials.
        app.MapGet("/health", () => Results.Text("ok\n")).Access(RouteAccess.Anonymous);
        app.MapGet("/master/redirect", (HttpContext http) => election.Leader is { } leader
            ? Results.Redirect($"{http.Request.Scheme}://{leader}", permanent: false, preserveMethod: true)
            : NoLeader()).Access(RouteAccess.Anonymous);
        // A catch-all endpoint, tried after every other route (not MapFallback: its pattern skips paths
        // that look like file names, and task ids have dots; not terminal middleware: minimal hosting
        // runs endpoints after it, so it would swallow /v2/leader).
        app.Map("/{**path}", (HttpContext http) => (election.Leader is { } leader
            ? Results.Redirect($"{http.Request.Scheme}://{leader}{http.Request.PathBase}{http.Request.Path}{http.Request.QueryString}", permanent: false, preserveMethod: true)
            : NoLeader()).ExecuteAsync(http)).WithOrder(int.MaxValue).Access(RouteAccess.Anonymous);
        return app;
    }

    /// <summary>The leader's own <c>/master/redirect</c>.</summary>
    public static WebApplication MapLeaderRedirect(this WebApplication app, string address)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/master/redirect", (HttpContext http) => Results.Redirect($"{http.Request.Scheme}://{address}", permanent: false, preserveMethod: true))
            .Access(RouteAccess.Anonymous);
        return app;
    }

    private static IResult NoLeader() =>
        ApiResults.Error(StatusCodes.Status503ServiceUnavailable, ErrorCodes.NoLeader, "no master is the leader yet; retry shortly");
}
