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
            var expected = ExpectedPrimitive(e.InnerException?.Message) ?? ExpectedType(e.Message);
            if (field is not null)
            {
                var reason = expected is not null ? $"must be {expected}" : $"has the wrong type or form ({FirstSentence(e.InnerException?.Message ?? e.Message)})";
                return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.ValidationFailed, $"{field}: {reason}", [new FieldError(field, reason)]));
            }

            if (expected is not null && e.Path is "$")
            {
                return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.InvalidJson, "the request body must be a JSON object"));
            }

            return (null, Error(StatusCodes.Status400BadRequest, ErrorCodes.InvalidJson,
                $"the request body is not valid JSON: {FirstSentence(e.InnerException?.Message ?? e.Message)} (line {e.LineNumber + 1}, byte {e.BytePositionInLine})"));
        }
    }

    /// <summary>
    /// For a primitive mismatch the serializer names the parent type, but its inner error says what
    /// was wanted: "Cannot get the value of a token type 'Number' as a string." → "a string"; a string
    /// where a number goes: "… is not in a supported format, or is out of bounds for a Double." → "a number".
    /// </summary>
    private static string? ExpectedPrimitive(string? inner)
    {
        if (inner?.StartsWith("Either the JSON value is not in a supported format, or is out of bounds for a", StringComparison.Ordinal) == true)
        {
            return "a number";
        }

        const string Marker = "' as a ";
        var at = inner?.IndexOf(Marker, StringComparison.Ordinal) ?? -1;
        if (at < 0 || !inner!.StartsWith("Cannot get the value of a token type", StringComparison.Ordinal))
        {
            return null;
        }

        return inner[(at + Marker.Length)..].TrimEnd('.') switch
        {
            "boolean" => "true or false",
            var word => word.StartsWith('n') ? "a number" : "a " + word,
        };
    }

    /// <summary>Turns System.Text.Json's "could not be converted to System.String" into "a string".</summary>
    private static string? ExpectedType(string message)
    {
        const string Marker = "could not be converted to ";
        var at = message.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        // "... could not be converted to System.String. Path: $.cmd | LineNumber: 0 ..."
        var rest = message[(at + Marker.Length)..];
        var end = rest.IndexOf(". Path", StringComparison.Ordinal);
        var type = end >= 0 ? rest[..end] : rest.TrimEnd('.');
        return type switch
        {
            "System.String" => "a string",
            "System.Boolean" => "true or false",
            "System.Double" or "System.Int32" or "System.Int64" or "System.Decimal" => "a number",
            _ when type.Contains("ImmutableArray", StringComparison.Ordinal) || type.Contains("[]", StringComparison.Ordinal) => "an array",
            _ when type.Contains("Dictionary", StringComparison.Ordinal) => "an object of strings",
            _ => "an object",
        };
    }

    private static string FirstSentence(string message)
    {
        var dot = message.IndexOf(". ", StringComparison.Ordinal);
        return dot > 0 ? message[..dot] : message.TrimEnd('.');
    }
}
