using System.Text.Json;
using Drover.Core.Iam;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Drover.Master.Iam;

/// <summary>
/// Answers and request bodies of the IAM API in DC/OS' shapes: every error is
/// <c>{"title": "400 Bad Request", "description": "...", "code": "ERR_..."}</c>; bodies are JSON objects of
/// strings with only the fields the route knows (bouncer is strict: an unknown field is a 400).
/// </summary>
internal static class IamHttp
{
    public static IResult Error(int status, string code, string description) =>
        Results.Json(new IamErrorBody { Title = $"{status} {ReasonPhrases.GetReasonPhrase(status)}", Description = description, Code = code },
            IamJsonContext.Default.IamErrorBody, statusCode: status);

    public static IResult InvalidData(string description) => Error(StatusCodes.Status400BadRequest, "ERR_INVALID_DATA", description);

    /// <summary>
    /// A refused change in DC/OS' status and code. Unknown ids are 400, not 404, as bouncer answers them;
    /// existing ones 409.
    /// </summary>
    public static IResult Failure(IamResult result)
    {
        var (status, code) = result.Error switch
        {
            IamError.InvalidUid => (400, "ERR_INVALID_USER_ID"),
            IamError.InvalidGid => (400, "ERR_INVALID_GROUP_ID"),
            IamError.InvalidRid => (400, "ERR_INVALID_RESOURCE_ID"),
            IamError.InvalidData => (400, "ERR_INVALID_DATA"),
            IamError.UnknownUser => (400, "ERR_UNKNOWN_USER_ID"),
            IamError.UnknownGroup => (400, "ERR_UNKNOWN_GROUP_ID"),
            IamError.UnknownAcl => (400, "ERR_UNKNOWN_RESOURCE_ID"),
            IamError.UserExists => (409, "ERR_USER_EXISTS"),
            IamError.GroupExists => (409, "ERR_GROUP_EXISTS"),
            IamError.AclExists => (409, "ERR_ACL_EXISTS"),
            IamError.AlreadyMember => (409, "ERR_USER_ALREADY_IN_GROUP"),
            IamError.NotMember => (400, "ERR_USER_NOT_IN_GROUP"),
            IamError.UserNotInAcl => (400, "ERR_USER_NOT_IN_ACL"),
            IamError.GroupNotInAcl => (400, "ERR_GROUP_NOT_IN_ACL"),
            IamError.ActionNotHeld => (400, "ERR_ACTION_NOT_YET_STORED"),
            IamError.LastSuperuser => (400, "ERR_NO_MORE_SUPERUSERS"),
            IamError.Concurrent => (409, "ERR_CONCURRENT_CHANGE"),
            _ => (500, "ERR_INTERNAL"),
        };
        return Error(status, code, result.Message);
    }

    /// <summary>201 (created) or 204 (changed) with an empty body, or the failure.</summary>
    public static IResult Created(IamResult result) => result.Succeeded ? Results.StatusCode(StatusCodes.Status201Created) : Failure(result);

    public static IResult NoContent(IamResult result) => result.Succeeded ? Results.NoContent() : Failure(result);

    public static IResult Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => Results.Json(value, type);

    /// <summary>
    /// Reads a JSON object whose fields are all among <paramref name="allowed"/> and all strings. An absent body is
    /// an empty object unless <paramref name="required"/>. Returns the fields, or (with no fields) the 400 that names what is wrong.
    /// </summary>
    public static async Task<(Dictionary<string, string> Fields, IResult? Error)> ReadBodyAsync(HttpContext http, bool required, params string[] allowed)
    {
        var request = http.Request;
        var hasBody = request.ContentLength > 0 || (request.ContentLength is null && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true); // HTTP/2 bodies carry no length
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!hasBody)
        {
            return required
                ? ([], InvalidData($"Request body is required: a JSON object with {Describe(allowed)}."))
                : (fields, null);
        }

        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, default, http.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            return ([], Error(StatusCodes.Status400BadRequest, "ERR_MALFORMED_DATA", "Request has bad JSON: " + e.Message));
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return ([], InvalidData($"The request body must be a JSON object with {Describe(allowed)}."));
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (Array.IndexOf(allowed, property.Name) < 0)
                {
                    return ([], InvalidData($"Unknown field `{property.Name}`: this request takes {Describe(allowed)}."));
                }

                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    return ([], InvalidData($"`{property.Name}` must be a string."));
                }

                if (!fields.TryAdd(property.Name, property.Value.GetString()!))
                {
                    return ([], InvalidData($"`{property.Name}` is given twice."));
                }
            }
        }

        return (fields, null);
    }

    private static string Describe(string[] allowed) => allowed.Length == 0 ? "no fields" : string.Join(", ", allowed.Select(a => $"`{a}`"));
}
