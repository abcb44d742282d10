using Drover.Core.Api;
using Drover.Core.Security;
using Drover.Master.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Security.Audit;

/// <summary>
/// <c>GET /drover/v1/audit?since=&amp;caller=&amp;limit=&amp;log=</c>: the newest audit records (admin: <c>drover:audit</c> read);
/// <c>log=unauthenticated</c> reads the calls refused before authentication and the failed logins.
/// </summary>
internal static class AuditEndpoint
{
    public const int DefaultLimit = 1000;
    public const int MaxLimit = 10_000;

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/drover/v1/audit", async (string? since, string? caller, int? limit, string? log, AuditLog audit, CancellationToken ct) =>
        {
            if (log is not (null or "main" or AuditLog.UnauthenticatedLog))
            {
                return ApiResults.Validation([new FieldError("log", $"'{log}' is not 'main' or '{AuditLog.UnauthenticatedLog}'")]);
            }

            if (limit is < 1 or > MaxLimit)
            {
                return ApiResults.Validation([new FieldError("limit", $"must be between 1 and {MaxLimit}")]);
            }

            if (since is not null && !DateTimeOffset.TryParse(since, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out _))
            {
                return ApiResults.Validation([new FieldError("since", $"'{since}' is not a timestamp (e.g. 2026-12-07T16:41:01.932Z)")]);
            }

            var from = since is null ? null : DateTimeOffset.Parse(since, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal)
                .UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
            var records = await audit.ReadAsync(from, caller, limit ?? DefaultLimit, ct, unauthenticated: log == AuditLog.UnauthenticatedLog);
            return Results.Json(new AuditPage { Records = records }, AuditJsonContext.Default.AuditPage);
        }).Access(RouteAccess.Permission(Rids.Audit, PermissionAction.Read));
    }

    /// <summary>Lets a handler add what the path does not say (a Mesos call type, a login's uid) to its audit record.</summary>
    public static void Note(HttpContext http, string detail)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.Items[DetailKey] = detail;
    }

    internal static readonly object DetailKey = new();
}
