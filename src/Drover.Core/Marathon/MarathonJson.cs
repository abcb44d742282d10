using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Core.Marathon;

/// <summary>
/// Source-generated JSON for Marathon's <c>/v2</c> API: camelCase, nulls omitted. Numbers are read the
/// way Marathon (Play JSON) reads them: an integer field takes <c>3</c> or <c>3.0</c> but not <c>3.5</c>,
/// and a wrong JSON type fails with Play's error string (<c>error.expected.jsnumber</c>, …).
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    Converters = [typeof(MarathonIntConverter), typeof(MarathonLongConverter), typeof(MarathonDecimalConverter), typeof(MarathonBoolConverter), typeof(MarathonStringConverter)])]
[JsonSerializable(typeof(AppDefinition))]
[JsonSerializable(typeof(MarathonError))]
public sealed partial class MarathonJsonContext : JsonSerializerContext;

/// <summary>Parsing and writing Marathon app definitions and errors.</summary>
public static class MarathonJson
{
    private static readonly MarathonJsonContext Ctx = MarathonJsonContext.Default;

    /// <summary>
    /// Reads an app definition. On failure <paramref name="error"/> is Marathon's answer: 400 with
    /// <c>Invalid JSON</c> when the body is not JSON, 422 with <c>Invalid JSON</c> and the offending path
    /// when a field has the wrong type. Semantic checks are <see cref="MarathonValidator.Validate"/>'s.
    /// </summary>
    public static bool TryParseApp(string json, [NotNullWhen(true)] out AppDefinition? app, [NotNullWhen(false)] out MarathonError? error)
    {
        ArgumentNullException.ThrowIfNull(json);
        return TryParseApp(Encoding.UTF8.GetBytes(json), out app, out error);
    }

    /// <inheritdoc cref="TryParseApp(string, out AppDefinition?, out MarathonError?)"/>
    public static bool TryParseApp(ReadOnlySpan<byte> utf8Json, [NotNullWhen(true)] out AppDefinition? app, [NotNullWhen(false)] out MarathonError? error)
    {
        app = null;
        error = null;

        // Syntax first, so a malformed body (400) is told apart from a well-formed one of the wrong shape (422).
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            while (reader.Read())
            {
            }
        }
        catch (JsonException e)
        {
            error = new MarathonError
            {
                Message = MarathonErrorText.InvalidJson,
                Details = [new MarathonErrorDetail("/", [StripPosition(e.Message)])],
                StatusCode = 400,
            };
            return false;
        }

        try
        {
            app = JsonSerializer.Deserialize(utf8Json, Ctx.AppDefinition);
        }
        catch (JsonException e)
        {
            error = new MarathonError
            {
                Message = MarathonErrorText.InvalidJson,
                Details = [new MarathonErrorDetail(ToMarathonPath(e.Path), [TypeError(e)])],
            };
            return false;
        }

        if (app is null)
        {
            error = new MarathonError
            {
                Message = MarathonErrorText.InvalidJson,
                Details = [new MarathonErrorDetail("/", [MarathonErrorText.ExpectedObject])],
            };
            return false;
        }

        return true;
    }

    public static string Serialize(AppDefinition app) => JsonSerializer.Serialize(app, Ctx.AppDefinition);

    public static string Serialize(MarathonError error) => JsonSerializer.Serialize(error, Ctx.MarathonError);

    /// <summary>
    /// Turns System.Text.Json's path (<c>$.healthChecks[0].portIndex</c>, <c>$.env['A.B']</c>) into
    /// Marathon's (<c>/healthChecks(0)/portIndex</c>, <c>/env/A.B</c>).
    /// </summary>
    public static string ToMarathonPath(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$")
        {
            return "/";
        }

        var sb = new StringBuilder();
        var i = jsonPath.StartsWith('$') ? 1 : 0;
        while (i < jsonPath.Length)
        {
            var c = jsonPath[i];
            if (c == '.')
            {
                var end = i + 1;
                while (end < jsonPath.Length && jsonPath[end] is not '.' and not '[')
                {
                    end++;
                }

                sb.Append('/').Append(jsonPath, i + 1, end - i - 1);
                i = end;
            }
            else if (c == '[' && i + 1 < jsonPath.Length && jsonPath[i + 1] == '\'')
            {
                var close = jsonPath.IndexOf("']", i + 2, StringComparison.Ordinal);
                var end = close < 0 ? jsonPath.Length : close;
                sb.Append('/').Append(jsonPath, i + 2, end - i - 2);
                i = close < 0 ? jsonPath.Length : close + 2;
            }
            else if (c == '[')
            {
                var close = jsonPath.IndexOf(']', i + 1);
                var end = close < 0 ? jsonPath.Length : close;
                sb.Append('(').Append(jsonPath, i + 1, end - i - 1).Append(')');
                i = close < 0 ? jsonPath.Length : close + 1;
            }
            else
            {
                sb.Append(c);
                i++;
            }
        }

        return sb.Length == 0 ? "/" : sb.ToString();
    }

    /// <summary>
    /// Our converters throw Play's own strings; System.Text.Json's messages ("The JSON value could not be
    /// converted to …") name the .NET type it could not build, from which the expected JSON type follows.
    /// </summary>
    private static string TypeError(JsonException e)
    {
        var message = e.Message;
        if (!message.StartsWith("The ", StringComparison.Ordinal))
        {
            return message;
        }

        return message.Contains("ImmutableArray", StringComparison.Ordinal) || message.Contains("[]", StringComparison.Ordinal)
            ? MarathonErrorText.ExpectedArray
            : MarathonErrorText.ExpectedObject;
    }

    private static string StripPosition(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return cut < 0 ? message : message[..cut].TrimEnd(' ', '|');
    }
}

/// <summary>Integers as Play reads them: any JSON number with an integral value in range.</summary>
public sealed class MarathonIntConverter : JsonConverter<int>
{
    public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw new JsonException(MarathonErrorText.ExpectedNumber);
        }

        if (reader.TryGetInt32(out var i))
        {
            return i;
        }

        if (reader.TryGetDecimal(out var d) && decimal.Truncate(d) == d && d is >= int.MinValue and <= int.MaxValue)
        {
            return (int)d;
        }

        throw new JsonException(MarathonErrorText.ExpectedInt);
    }

    public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

/// <summary>Longs as Play reads them: any JSON number with an integral value in range.</summary>
public sealed class MarathonLongConverter : JsonConverter<long>
{
    public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw new JsonException(MarathonErrorText.ExpectedNumber);
        }

        if (reader.TryGetInt64(out var l))
        {
            return l;
        }

        if (reader.TryGetDecimal(out var d) && decimal.Truncate(d) == d && d is >= long.MinValue and <= long.MaxValue)
        {
            return (long)d;
        }

        throw new JsonException(MarathonErrorText.ExpectedLong);
    }

    public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

/// <summary>Fractional numbers, exact: ints and floats alike (<c>1</c>, <c>0.1</c>, <c>1e2</c>).</summary>
public sealed class MarathonDecimalConverter : JsonConverter<decimal>
{
    public override decimal Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw new JsonException(MarathonErrorText.ExpectedNumber);
        }

        if (reader.TryGetDecimal(out var d))
        {
            return d;
        }

        // Decimal's parser rejects some exponent forms (1E+2) that are plain numbers.
        if (reader.TryGetDouble(out var f) && double.IsFinite(f) && Math.Abs(f) < 7.9e28)
        {
            return decimal.Parse(f.ToString("R", CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        throw new JsonException(MarathonErrorText.ExpectedNumber);
    }

    public override void Write(Utf8JsonWriter writer, decimal value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

public sealed class MarathonBoolConverter : JsonConverter<bool>
{
    public override bool Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw new JsonException(MarathonErrorText.ExpectedBoolean),
    };

    public override void Write(Utf8JsonWriter writer, bool value, JsonSerializerOptions options) => writer.WriteBooleanValue(value);
}

/// <summary>Strings only (no numbers or booleans coerced), with Play's error; also used for map keys.</summary>
public sealed class MarathonStringConverter : JsonConverter<string>
{
    public override string Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw new JsonException(MarathonErrorText.ExpectedString);

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);

    public override string ReadAsPropertyName(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetString()!;

    public override void WriteAsPropertyName(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WritePropertyName(value);
}

/// <summary><c>"value"</c> or <c>{"secret": "name"}</c>.</summary>
public sealed class EnvVarValueJsonConverter : JsonConverter<EnvVarValue>
{
    public override EnvVarValue Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return new EnvVarValue { Value = reader.GetString() };
            case JsonTokenType.StartObject:
                string? secret = null;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var name = reader.GetString();
                    reader.Read();
                    if (name == "secret" && reader.TokenType == JsonTokenType.String)
                    {
                        secret = reader.GetString();
                    }
                    else
                    {
                        reader.Skip();
                    }
                }

                return secret is null ? throw new JsonException(MarathonErrorText.ExpectedString) : new EnvVarValue { Secret = secret };
            default:
                throw new JsonException(MarathonErrorText.ExpectedString);
        }
    }

    public override void Write(Utf8JsonWriter writer, EnvVarValue value, JsonSerializerOptions options)
    {
        if (value.Secret is { } secret)
        {
            writer.WriteStartObject();
            writer.WriteString("secret", secret);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteStringValue(value.Value);
        }
    }
}

/// <summary><c>"disabled"</c> or <c>{"inactiveAfterSeconds": n, "expungeAfterSeconds": m}</c>.</summary>
public sealed class UnreachableStrategyJsonConverter : JsonConverter<UnreachableStrategy>
{
    public override UnreachableStrategy Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return string.Equals(reader.GetString(), UnreachableStrategy.DisabledLiteral, StringComparison.OrdinalIgnoreCase)
                    ? UnreachableStrategy.Disabled
                    : throw new JsonException(MarathonErrorText.UnknownEnumLiteral);
            case JsonTokenType.StartObject:
                long? inactive = null, expunge = null;
                List<string>? unknown = null;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var name = reader.GetString();
                    reader.Read();
                    switch (name)
                    {
                        case "inactiveAfterSeconds" when reader.TokenType != JsonTokenType.Null:
                            inactive = ReadLong(ref reader);
                            break;
                        case "expungeAfterSeconds" when reader.TokenType != JsonTokenType.Null:
                            expunge = ReadLong(ref reader);
                            break;
                        case "inactiveAfterSeconds" or "expungeAfterSeconds":
                            break;
                        default:
                            // Kept so the validator can name them; they would otherwise vanish silently.
                            (unknown ??= []).Add(name!);
                            reader.Skip();
                            break;
                    }
                }

                return new UnreachableStrategy { InactiveAfterSeconds = inactive, ExpungeAfterSeconds = expunge, UnknownFields = [.. unknown ?? []] };
            default:
                throw new JsonException(MarathonErrorText.ExpectedObject);
        }
    }

    public override void Write(Utf8JsonWriter writer, UnreachableStrategy value, JsonSerializerOptions options)
    {
        if (value.IsDisabled)
        {
            writer.WriteStringValue(UnreachableStrategy.DisabledLiteral);
            return;
        }

        writer.WriteStartObject();
        if (value.InactiveAfterSeconds is { } inactive)
        {
            writer.WriteNumber("inactiveAfterSeconds", inactive);
        }

        if (value.ExpungeAfterSeconds is { } expunge)
        {
            writer.WriteNumber("expungeAfterSeconds", expunge);
        }

        writer.WriteEndObject();
    }

    private static long ReadLong(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw new JsonException(MarathonErrorText.ExpectedNumber);
        }

        if (reader.TryGetInt64(out var l))
        {
            return l;
        }

        return reader.TryGetDecimal(out var d) && decimal.Truncate(d) == d && d is >= long.MinValue and <= long.MaxValue
            ? (long)d
            : throw new JsonException(MarathonErrorText.ExpectedLong);
    }
}
