using System.Text.Json;
using System.Text.Json.Serialization;
using Drover.Core.Iam;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Iam;

/// <summary>
/// <c>POST /acs/api/v1/auth/login</c>, DC/OS' login: <c>{"uid","password"}</c> for a user, or
/// <c>{"uid","token"}</c> for a service account (a JWT signed with the account's private key). Answers
/// <c>{"token": "&lt;JWT&gt;"}</c>, which every API then takes as <c>Authorization: token=…</c> or <c>Bearer …</c>.
/// </summary>
internal static class LoginEndpoint
{
    public const string Path = "/acs/api/v1/auth/login";

    /// <summary>A login body is a uid and a password or a token: 64 KiB is generous.</summary>
    private const long MaxBody = 64 * 1024;

    public const string JwksPath = "/acs/api/v1/auth/jwks";

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost(Path, LoginAsync).Access(RouteAccess.Anonymous with { Audited = true }).MaxBody(MaxBody);

        // The public key that verifies login tokens (DC/OS serves it without credentials; Drover's allow-list is only
        // health and login, so any logged-in account may read it: a tool that verifies tokens holds one).
        app.MapGet(JwksPath, (TokenService tokens) => Results.Json(new IamJwks([tokens.PublicJwk()]), IamJsonContext.Default.IamJwks))
            .Access(RouteAccess.Authenticated).MaxBody(1024);
    }

    private static async Task<IResult> LoginAsync(HttpContext http, IamStore iam, TokenService tokens, SecurityOptions options)
    {
        LoginRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(http.Request.Body, LoginJsonContext.Default.LoginRequest, http.RequestAborted);
        }
        catch (JsonException e)
        {
            return IamHttp.Error(StatusCodes.Status400BadRequest, "ERR_MALFORMED_DATA", "Request has bad JSON: " + e.Message);
        }

        if (body?.Uid is { Length: > 0 and <= 96 } named)
        {
            Security.Audit.AuditEndpoint.Note(http, "uid=" + named);
        }

        if (body?.Uid is not { Length: > 0 } uid)
        {
            return IamHttp.InvalidData("`uid` is required.");
        }

        if ((body.Password is null) == (body.Token is null))
        {
            return IamHttp.InvalidData("Exactly one of `token` and `password` must be provided in the request body");
        }

        if (body.Password is "" || body.Token is "")
        {
            return IamHttp.InvalidData(body.Password is "" ? "`password` must not be empty." : "`token` must not be empty.");
        }

        if (!options.Enabled)
        {
            return IamHttp.InvalidData("This cluster runs without logins (drover dev without --auth): no token is needed.");
        }

        var throttle = http.RequestServices.GetRequiredService<CredentialThrottle>();
        var client = http.Connection.RemoteIpAddress?.ToString() ?? "?";
        if (throttle.Blocked(client) is { } wait)
        {
            return TooMany(http, wait);
        }

        IamUser? user;
        if (body.Password is { } password)
        {
            var (ran, verified) = await throttle.RunAsync(() => iam.VerifyPassword(uid, password), http.RequestAborted);
            if (!ran)
            {
                return TooMany(http, CredentialThrottle.SlotWait);
            }

            user = verified;
        }
        else
        {
            user = iam.Snapshot.Users.GetValueOrDefault(uid);
            if (user is not null && await tokens.ValidateServiceLoginAsync(body.Token!, user) is not null)
            {
                user = null;
            }
        }

        if (user is null)
        {
            throttle.Failed(client);
            // One answer for every failure, so the endpoint does not tell which uids exist.
            http.Response.Headers.WWWAuthenticate = "acsjwt";
            return IamHttp.Error(StatusCodes.Status401Unauthorized, "ERR_INVALID_CREDENTIALS", "Invalid credentials.");
        }

        return Results.Json(new IamLoginResponse(tokens.Issue(user, options.TokenLifetime)), IamJsonContext.Default.IamLoginResponse);
    }

    /// <summary>429 in DC/OS' error shape, with <c>Retry-After</c>: a client over its failure budget, or every password check slot busy.</summary>
    private static IResult TooMany(HttpContext http, TimeSpan retryAfter)
    {
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return IamHttp.Error(StatusCodes.Status429TooManyRequests, "ERR_TOO_MANY_REQUESTS", "Too many login attempts; retry later.");
    }
}

internal sealed record LoginRequest
{
    public string? Uid { get; init; }

    public string? Password { get; init; }

    public string? Token { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LoginRequest))]
internal sealed partial class LoginJsonContext : JsonSerializerContext;
