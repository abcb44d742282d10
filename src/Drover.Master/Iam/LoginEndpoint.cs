using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

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

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost(Path, LoginAsync).Access(RouteAccess.Anonymous with { Audited = true }).MaxBody(MaxBody);
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
            return Error(StatusCodes.Status400BadRequest, "Bad Request", "Request has bad JSON: " + e.Message, "ERR_MALFORMED_DATA");
        }

        if (body?.Uid is { Length: > 0 and <= 96 } named)
        {
            Security.Audit.AuditEndpoint.Note(http, "uid=" + named);
        }

        if (body?.Uid is not { Length: > 0 } uid)
        {
            return Error(StatusCodes.Status400BadRequest, "Bad Request", "uid: is required", "ERR_INVALID_DATA");
        }

        if ((body.Password is null) == (body.Token is null))
        {
            return Error(StatusCodes.Status400BadRequest, "Bad Request", "exactly one of password and token is required", "ERR_INVALID_DATA");
        }

        if (!options.Enabled)
        {
            return Error(StatusCodes.Status400BadRequest, "Bad Request", "this cluster runs without logins (drover dev without --auth): no token is needed", "ERR_INVALID_DATA");
        }

        IamUser? user;
        if (body.Password is { } password)
        {
            user = iam.VerifyPassword(uid, password);
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
            // One answer for every failure, so the endpoint does not tell which uids exist.
            return Error(StatusCodes.Status401Unauthorized, "Invalid credentials", "Invalid credentials.", "ERR_INVALID_CREDENTIALS");
        }

        return Results.Json(new JsonObject { ["token"] = tokens.Issue(user, options.TokenLifetime) });
    }

    private static IResult Error(int status, string title, string description, string code) =>
        Results.Json(new JsonObject { ["title"] = title, ["description"] = description, ["code"] = code }, statusCode: status);
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
