using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Drover.Core.Api;
using Drover.Core.Json;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Http;

/// <summary>The one place that shapes /drover/v1 errors (see <see cref="ApiError"/>).</summary>
internal static class ApiResults
{
    public static IResult Error(int status, string code, string message, ImmutableArray<FieldError> details = default) =>
        Results.Json(new ApiError { Code = code, Message = message, Details = details.IsDefault ? [] : details }, DroverJsonContext.Default.ApiError, statusCode: status);

    public static IResult Validation(ImmutableArray<FieldError> details) =>
        Error(StatusCodes.Status400BadRequest, ErrorCodes.ValidationFailed,
            details.Length == 1 ? $"{details[0].Field}: {details[0].Reason}" : $"{details.Length} fields are invalid", details);

    public static IResult NotFound(string what) => Error(StatusCodes.Status404NotFound, ErrorCodes.NotFound, what);

    public static IResult Json<T>(T value, JsonTypeInfo<T> type, int status = StatusCodes.Status200OK) => Results.Json(value, type, statusCode: status);

    /// <summary>
    /// Reads a JSON body. Malformed JSON and wrong types become a 400 naming the field (from the
    /// JSON path) and the reason, instead of an exception.
    /// </summary>
    public static async Task<(T? Value, IResult? Error)> ReadBody<T>(HttpRequest request, JsonTypeInfo<T> type, CancellationToken ct)
        where T : class
    {
        if (request.ContentLength == 0)
        {
            return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.InvalidJson, "the request body is empty; a JSON object is required"));
        }

        try
        {
            var value = await JsonSerializer.DeserializeAsync(request.Body, type, ct).ConfigureAwait(false);
            return value is null
                ? (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.InvalidJson, "the request body must be a JSON object, not null"))
                : (value, null);
        }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : null;
            var reason = e.InnerException?.Message ?? e.Message;
            if (field is not null)
            {
                return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.ValidationFailed, $"{field}: has the wrong type or form",
                    [new FieldError(field, $"has the wrong type or form ({FirstSentence(reason)})")]));
            }

            return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.InvalidJson,
                $"the request body is not valid JSON: {FirstSentence(reason)} (line {e.LineNumber + 1}, byte {e.BytePositionInLine})"));
        }
    }

    private static string FirstSentence(string message)
    {
        var dot = message.IndexOf(". ", StringComparison.Ordinal);
        return dot > 0 ? message[..dot] : message.TrimEnd('.');
    }
}
