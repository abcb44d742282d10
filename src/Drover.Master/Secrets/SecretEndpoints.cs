using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Secrets;
using Drover.Core.Security;
using Drover.Master.Http;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Secrets;

/// <summary>
/// The secrets API: Drover's <c>/drover/v1/secrets</c> and DC/OS' <c>/secrets/v1/secret/default</c>. Every route is
/// open to any authenticated caller at the gate (<see cref="RouteAccess.Authenticated"/>); the handler validates
/// the path, then checks the caller's permission on that very secret (<see cref="Rids.Secret"/> with create, read,
/// update or delete; listing needs <see cref="Rids.SecretList"/> read) before it looks at anything else, so a
/// caller without permission learns nothing, not even whether the secret exists. Only a GET of one secret by a
/// caller holding its read permission answers a value.
/// </summary>
internal static class SecretEndpoints
{
    /// <summary>A request body's limit: a value of <see cref="SecretPaths.MaxValueBytes"/> in base64 or JSON-escaped text fits.</summary>
    public const long MaxBody = 1024 * 1024;

    public const int MaxDescription = 1024;

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/drover/v1/secrets", (string? prefix, HttpContext http, SecretStore secrets) =>
        {
            if (SecretPaths.CanonicalPrefix(prefix, out var error) is not { } p)
            {
                return ApiResults.Validation([new FieldError("prefix", error)]);
            }

            var rid = Rids.SecretList(p);
            return http.Allows(rid, PermissionAction.Read)
                ? ApiResults.Json(new SecretList { Secrets = secrets.List(p) }, DroverJsonContext.Default.SecretList)
                : http.Forbidden(rid, PermissionAction.Read);
        }).Access(RouteAccess.Authenticated);

        app.MapGet("/drover/v1/secrets/{**path}", (string? path, HttpContext http, SecretStore secrets) =>
        {
            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            if (!http.Allows(Rids.Secret(p), PermissionAction.Read))
            {
                return http.Forbidden(Rids.Secret(p), PermissionAction.Read);
            }

            var (value, error) = secrets.Reveal(p);
            if (value is null)
            {
                return error is null ? NoSecret(p) : ApiResults.Error(StatusCodes.Status500InternalServerError, ErrorCodes.Internal, error);
            }

            try
            {
                var info = secrets.Info(p)!;
                var text = AsText(value);
                http.Response.Headers.CacheControl = "no-store";
                return ApiResults.Json(View(info) with { Value = text, Data = text is null ? [.. value] : null }, DroverJsonContext.Default.SecretView);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(value);
            }
        }).Access(RouteAccess.Authenticated);

        app.MapPut("/drover/v1/secrets/{**path}", async (string? path, HttpContext http, SecretStore secrets, CancellationToken ct) =>
        {
            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            if (WriteForbidden(http, p, secrets.Exists(p)) is { } forbidden)
            {
                return forbidden;
            }

            var (body, error) = await ApiResults.ReadBody(http.Request, DroverJsonContext.Default.SecretWrite, ct);
            if (error is not null)
            {
                return error;
            }

            var (value, invalid) = ValueOf(body!.Value, body.Data, body.Description);
            if (invalid is not null)
            {
                return invalid;
            }

            try
            {
                var outcome = await secrets.PutAsync(p, value!, http.Caller().Id, body.Description, SecretWriteMode.Upsert, ct);
                return outcome switch
                {
                    SecretOutcome.Created => ApiResults.Json(View(secrets.Info(p)!), DroverJsonContext.Default.SecretView, StatusCodes.Status201Created),
                    SecretOutcome.Replaced => ApiResults.Json(View(secrets.Info(p)!), DroverJsonContext.Default.SecretView),
                    _ => Changed(p),
                };
            }
            finally
            {
                CryptographicOperations.ZeroMemory(value);
            }
        }).Access(RouteAccess.Authenticated).MaxBody(MaxBody);

        app.MapDelete("/drover/v1/secrets/{**path}", async (string? path, HttpContext http, SecretStore secrets, CancellationToken ct) =>
        {
            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            if (!http.Allows(Rids.Secret(p), PermissionAction.Delete))
            {
                return http.Forbidden(Rids.Secret(p), PermissionAction.Delete);
            }

            return await secrets.DeleteAsync(p, http.Caller().Id, ct) switch
            {
                SecretOutcome.Deleted => Results.NoContent(),
                SecretOutcome.NotFound => NoSecret(p),
                _ => Changed(p),
            };
        }).Access(RouteAccess.Authenticated);

        MapDcos(app);
    }

    /// <summary>
    /// DC/OS' secrets API (store <c>default</c>): PUT <c>{"value"}</c> creates (201; 409 when it exists), PATCH replaces
    /// (204), GET answers <c>{"value", "author", "created", "description", "labels"}</c> (a value that is not UTF-8
    /// as raw bytes), <c>GET …?list=true</c> the names under a path as <c>{"array": […]}</c>, DELETE removes (204).
    /// </summary>
    private static void MapDcos(IEndpointRouteBuilder app)
    {
        const string Root = "/secrets/v1/secret/default";
        app.MapGet(Root + "/{**path}", (string? path, bool? list, HttpContext http, SecretStore secrets) =>
        {
            if (list == true)
            {
                if (SecretPaths.CanonicalPrefix(path, out var error) is not { } prefix)
                {
                    return ApiResults.Validation([new FieldError("path", error)]);
                }

                var rid = Rids.SecretList(prefix);
                if (!http.Allows(rid, PermissionAction.Read))
                {
                    return http.Forbidden(rid, PermissionAction.Read);
                }

                var names = secrets.List(prefix).Select(n => prefix.Length == 0 ? n : n[(prefix.Length + 1)..]);
                return Results.Json(new JsonObject { ["array"] = new JsonArray([.. names.Select(n => (JsonNode)JsonValue.Create(n))]) }, SecretJsonNodes.Default.JsonObject);
            }

            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            if (!http.Allows(Rids.Secret(p), PermissionAction.Read))
            {
                return http.Forbidden(Rids.Secret(p), PermissionAction.Read);
            }

            var (value, revealError) = secrets.Reveal(p);
            if (value is null)
            {
                return revealError is null ? NoSecret(p) : ApiResults.Error(StatusCodes.Status500InternalServerError, ErrorCodes.Internal, revealError);
            }

            http.Response.Headers.CacheControl = "no-store";
            var text = AsText(value);
            if (text is null)
            {
                return Results.Bytes(value, "application/octet-stream"); // DC/OS answers binary secrets as bytes
            }

            CryptographicOperations.ZeroMemory(value);
            var info = secrets.Info(p)!;
            return Results.Json(new JsonObject
            {
                ["value"] = text,
                ["author"] = info.Author ?? "",
                ["created"] = info.Created.ToString("o", System.Globalization.CultureInfo.InvariantCulture),
                ["description"] = info.Description ?? "",
                ["labels"] = new JsonObject(),
            }, SecretJsonNodes.Default.JsonObject);
        }).Access(RouteAccess.Authenticated);

        app.MapMethods(Root + "/{**path}", ["PUT", "PATCH"], async (string? path, HttpContext http, SecretStore secrets, CancellationToken ct) =>
        {
            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            var create = HttpMethods.IsPut(http.Request.Method);
            var action = create ? PermissionAction.Create : PermissionAction.Update;
            if (!http.Allows(Rids.Secret(p), action))
            {
                return http.Forbidden(Rids.Secret(p), action);
            }

            JsonObject? body;
            try
            {
                body = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: ct) as JsonObject;
            }
            catch (JsonException)
            {
                body = null;
            }

            if (body is null || body["value"] is not JsonValue v || !v.TryGetValue<string>(out var text))
            {
                return ApiResults.Validation([new FieldError("value", "must be a string: the body is {\"value\": \"…\"}")]);
            }

            var description = body["description"] is JsonValue d && d.TryGetValue<string>(out var ds) ? ds : null;
            var (value, invalid) = ValueOf(text, null, description);
            if (invalid is not null)
            {
                return invalid;
            }

            try
            {
                var outcome = await secrets.PutAsync(p, value!, http.Caller().Id, description, create ? SecretWriteMode.CreateOnly : SecretWriteMode.ReplaceOnly, ct);
                return outcome switch
                {
                    SecretOutcome.Created => Results.StatusCode(StatusCodes.Status201Created),
                    SecretOutcome.Replaced => Results.NoContent(),
                    SecretOutcome.Exists => ApiResults.Error(StatusCodes.Status409Conflict, ErrorCodes.Conflict, $"Secret '{p}' already exists: PATCH it to change its value"),
                    SecretOutcome.NotFound => NoSecret(p),
                    _ => Changed(p),
                };
            }
            finally
            {
                CryptographicOperations.ZeroMemory(value);
            }
        }).Access(RouteAccess.Authenticated).MaxBody(MaxBody);

        app.MapDelete(Root + "/{**path}", async (string? path, HttpContext http, SecretStore secrets, CancellationToken ct) =>
        {
            if (PathOf(path) is not { } p)
            {
                return BadPath(path);
            }

            if (!http.Allows(Rids.Secret(p), PermissionAction.Delete))
            {
                return http.Forbidden(Rids.Secret(p), PermissionAction.Delete);
            }

            return await secrets.DeleteAsync(p, http.Caller().Id, ct) == SecretOutcome.Deleted ? Results.NoContent() : NoSecret(p);
        }).Access(RouteAccess.Authenticated);
    }

    /// <summary>
    /// 403 unless the caller may create (a new secret) or update (an existing one) the path. A caller holding neither
    /// is told both are missing, so the answer does not say whether the secret exists.
    /// </summary>
    private static IResult? WriteForbidden(HttpContext http, string path, bool exists)
    {
        var rid = Rids.Secret(path);
        var needed = exists ? PermissionAction.Update : PermissionAction.Create;
        if (http.Allows(rid, needed))
        {
            return null;
        }

        var other = exists ? PermissionAction.Create : PermissionAction.Update;
        return http.Forbidden(rid, http.Allows(rid, other) ? needed : PermissionAction.Create | PermissionAction.Update);
    }

    /// <summary>The value's bytes from exactly one of text and base64 bytes, within the size limit; or a 400 naming the field.</summary>
    private static (byte[]? Value, IResult? Error) ValueOf(string? text, byte[]? data, string? description)
    {
        if ((text is null) == (data is null))
        {
            return (null, ApiResults.Validation([new FieldError("value", "give exactly one of 'value' (text) and 'data' (base64 bytes)")]));
        }

        if (description is { Length: > MaxDescription })
        {
            return (null, ApiResults.Validation([new FieldError("description", $"is at most {MaxDescription} characters")]));
        }

        var bytes = data ?? Encoding.UTF8.GetBytes(text!);
        if (bytes.Length > SecretPaths.MaxValueBytes)
        {
            var field = data is null ? "value" : "data";
            CryptographicOperations.ZeroMemory(bytes);
            return (null, ApiResults.Validation([new FieldError(field, $"is {bytes.Length} bytes; a secret holds at most {SecretPaths.MaxValueBytes}")]));
        }

        return (bytes, null);
    }

    private static string? PathOf(string? raw) => SecretPaths.Canonical(raw, out _);

    private static IResult BadPath(string? raw)
    {
        SecretPaths.Canonical(raw, out var error);
        return ApiResults.Validation([new FieldError("path", error)]);
    }

    private static IResult NoSecret(string path) => ApiResults.NotFound($"secret '{path}' does not exist");

    private static IResult Changed(string path) =>
        ApiResults.Error(StatusCodes.Status409Conflict, ErrorCodes.Conflict, $"secret '{path}' changed while this request was served; retry");

    private static SecretView View(SecretInfo info) => new()
    {
        Path = info.Path,
        Author = info.Author,
        Created = info.Created,
        Updated = info.Updated,
        Description = info.Description,
    };

    /// <summary>The value as text when it is valid UTF-8, else null (answered as base64 <c>data</c>).</summary>
    private static string? AsText(byte[] value)
    {
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(value);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonObject))]
internal sealed partial class SecretJsonNodes : System.Text.Json.Serialization.JsonSerializerContext;
