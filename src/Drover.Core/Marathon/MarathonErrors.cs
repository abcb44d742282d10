using System.Collections.Immutable;
using System.Text.Json.Serialization;

namespace Drover.Core.Marathon;

/// <summary>
/// Marathon's error body: <c>{"message":"Object is not valid","details":[{"path":"/cpus","errors":["error.min"]}]}</c>.
/// Each path appears once, with every error found for it. Paths are JSON-pointer-like with array
/// indices in parentheses, as Marathon writes them: <c>/healthChecks(0)/portIndex</c>; <c>/</c> is the
/// app as a whole.
/// </summary>
public sealed record MarathonError
{
    public required string Message { get; init; }

    public ImmutableArray<MarathonErrorDetail> Details { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>
    /// The HTTP status Marathon answers with: 422 for a body that does not describe a valid app (wrong
    /// types included), 400 for a body that is not JSON at all. Not part of the body.
    /// </summary>
    [JsonIgnore]
    public int StatusCode { get; init; } = 422;

    /// <summary>The errors of one path, or empty when the path has none.</summary>
    public ImmutableArray<string> ErrorsAt(string path)
    {
        foreach (var d in Details)
        {
            if (d.Path == path)
            {
                return d.Errors;
            }
        }

        return [];
    }
}

public sealed record MarathonErrorDetail(string Path, ImmutableArray<string> Errors);

/// <summary>Marathon's fixed error strings, so callers and tests do not repeat them.</summary>
public static class MarathonErrorText
{
    /// <summary>The message of a 422 from semantic validation.</summary>
    public const string ObjectIsNotValid = "Object is not valid";

    /// <summary>The message when the body does not parse, or a field has the wrong JSON type.</summary>
    public const string InvalidJson = "Invalid JSON";

    // Play JSON / RAML reader errors (Marathon checks types, ranges, patterns and enums while reading).
    public const string Min = "error.min";
    public const string Max = "error.max";
    public const string MinLength = "error.minLength";
    public const string Pattern = "error.pattern";
    public const string PathMissing = "error.path.missing";
    public const string UnknownEnumLiteral = "error.unknown.enum.literal";
    public const string ExpectedString = "error.expected.jsstring";
    public const string ExpectedNumber = "error.expected.jsnumber";
    public const string ExpectedInt = "error.expected.int";
    public const string ExpectedLong = "error.expected.long";
    public const string ExpectedBoolean = "error.expected.jsboolean";
    public const string ExpectedArray = "error.expected.jsarray";
    public const string ExpectedObject = "error.expected.jsobject";

    // Marathon's semantic validation messages (AppValidation, SchedulingValidation, PathIdValidation, …).
    public const string CmdArgsOrContainer = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";
    public const string PathMustHaveElement = "Path must contain at least one path element";
    public const string PortNamesUnique = "Port names must be unique.";
    public const string PortsUnique = "Ports must be unique.";
    public const string DeprecatedPortsUnique = "ports must be unique";
    public const string PortsAndPortDefinitions = "cannot specify both ports and port definitions";
    public const string HealthCheckPortIndex = "Health check port indices must address an element of the ports array or container port mappings.";
    public const string AtMostOneMesosHealthCheck = "AppDefinition can contain at most one Mesos health check";
    public const string ConstraintFieldCount = "Each constraint must have either 2 or 3 fields";
    public const string ConstraintMissingFieldAndOperator = "Missing field and operator";
    public const string ConstraintOperator = "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS";
    public const string ConstraintValueNotUsed = "Value specified but not used";
    public const string ConstraintMissingValue = "Missing value";
    public const string ConstraintGroupByNotNumber = "Value was specified but is not a number";
    public const string ConstraintMaxPerNotNumber = "Value was not specified or is not a number";
    public const string ConstraintRegexRequired = "A regular expression value must be provided";
    public const string SingleInstanceApp = "Single instance app may only have one instance";
    public const string EnvNameTooLong = "variable name must be 254 chars or less";
    public const string MustNotBeEmpty = "must not be empty";

    // Drover's refusals: fields Marathon accepts that Drover cannot honour yet. Never silently ignored.
    public const string NoContainerImages = "Drover does not support container images yet";
    public const string NoVolumes = "Drover does not support volumes yet";
    public const string NoPortMappings = "Drover does not support container port mappings yet (only host networking)";
    public const string NoContainerOption = "Drover does not support this container option yet";
    public const string NoFetch = "Drover does not support fetching artifacts yet";
    public const string NoStoreUrls = "Drover does not support the artifact store yet";
    public const string NoVolumesButSecrets = "Drover does not support volumes yet, except secret volumes ({\"containerPath\": \"path\", \"secret\": \"name\"})";

    /// <summary>Marathon's SecretValidation message for an env or volume naming a secret the app does not define.</summary>
    public const string UndefinedSecret = "references an undefined secret";

    public const string SecretSourceRequired = "must be the secret's path in the secret store";
    public const string ContainerPathUnique = "secret volume container paths must be unique";
    public const string NoResidency = "Drover does not support resident tasks (persistent volumes) yet";
    public const string NoIpAddress = "Drover does not support IP-per-task networking yet (only host networking)";
    public const string OnlyHostNetworking = "Drover supports only host networking yet: use a single {\"mode\": \"host\"}";
    public const string NoExecutor = "Drover does not support custom executors yet (only \"\" or \"//cmd\")";
    public const string BadUser = "must be a user name of up to 32 letters, digits, '_', '-' or '.'";
    public const string NoRoles = "Drover does not support resource roles yet (only \"*\")";
    public const string NoChecks = "Drover does not support Mesos checks yet (use healthChecks)";
    public const string NoTty = "Drover does not support a TTY for tasks yet";
    public const string NoResourceLimits = "Drover does not support resource limits above the requested resources yet";
    public const string UnknownField = "Drover does not know this field";

    /// <summary>accord's message for <c>should be &lt;= max</c>.</summary>
    public static string AtMost(long value, long max) => FormattableString.Invariant($"got {value}, expected {max} or less");

    /// <summary>accord's message for <c>should be &lt; limit</c>.</summary>
    public static string LessThan(long value, long limit) => FormattableString.Invariant($"got {value}, expected less than {limit}");

    public static string NoPortDefinitionForName(string name) => $"No port definition reference for portName {name}";

    /// <summary>Drover's cap on an id's length (<see cref="InputLimits.MaxAppIdLength"/>).</summary>
    public static string IdTooLong(int length) =>
        FormattableString.Invariant($"is {length} characters; an id may have at most {InputLimits.MaxAppIdLength} (as an absolute path)");

    public static string NotChildOf(AppId group) => $"Identifier is not child of {group}. Hint: use relative paths.";

    public static string InactiveAfterNegative(long inactive) =>
        FormattableString.Invariant($"inactiveAfterSeconds ({inactive}) must be greater than or equal to 0");

    public static string InactiveAfterAboveExpunge(long inactive, long expunge) =>
        FormattableString.Invariant($"inactiveAfterSeconds ({inactive}) must be less or equal to expungeAfterSeconds, which is {expunge}");

    public static string InvalidRegex(string value) => $"'{value}' is not a valid regular expression";
}

/// <summary>Collects (path, error) pairs in the order found and groups them by path, as Marathon does.</summary>
internal sealed class MarathonErrorBuilder
{
    private readonly List<(string Path, List<string> Errors)> _byPath = [];

    public int Count => _byPath.Count;

    public void Add(string path, string error)
    {
        foreach (var (p, errors) in _byPath)
        {
            if (p == path)
            {
                if (!errors.Contains(error))
                {
                    errors.Add(error);
                }

                return;
            }
        }

        _byPath.Add((path, [error]));
    }

    public MarathonError? Build(string message, int statusCode = 422) => _byPath.Count == 0
        ? null
        : new MarathonError
        {
            Message = message,
            Details = [.. _byPath.Select(e => new MarathonErrorDetail(e.Path, [.. e.Errors]))],
            StatusCode = statusCode,
        };
}
