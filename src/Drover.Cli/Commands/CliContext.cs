using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Drover.Client;
using Drover.Client.Auth;
using Drover.Client.Iam;
using Drover.Core.Json;

namespace Drover.Cli.Commands;

/// <summary>Options every client command shares, and helpers to print results.</summary>
internal static class CliContext
{
    public const string DefaultMaster = "http://127.0.0.1:5050";

    public static readonly Option<string> Master = new("--master")
    {
        Description = "Master URL, or several comma-separated (or set DROVER_MASTER): an agent's masters; a client calls the first, and a redirect carries the login only to those named",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DROVER_MASTER") is { Length: > 0 } m ? m : DefaultMaster,
    };

    public static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table", Recursive = true };

    public static readonly Option<string?> CaCert = new("--ca-cert")
    {
        Description = "PEM file of the CA to trust for the master's HTTPS certificate (or set DROVER_CA_CERT); default: the CA pinned for that master, else the system's",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DROVER_CA_CERT") is { Length: > 0 } f ? f : null,
    };

    private static readonly JsonSerializerOptions Indented = new(DroverJsonContext.Default.Options) { WriteIndented = true };

    /// <summary>
    /// The master URL of <c>--master</c> (or <c>DROVER_MASTER</c>), the first of several. Without a scheme it is https://, what
    /// <c>drover master</c> serves; the default is <c>drover dev</c>'s plain http://127.0.0.1:5050.
    /// </summary>
    public static Uri MasterUrl(ParseResult result)
    {
        var text = result.GetValue(Master)!.Split(',', StringSplitOptions.TrimEntries)[0];
        if (!text.Contains("://", StringComparison.Ordinal))
        {
            text = "https://" + text;
        }

        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new CliException($"--master: '{text}' is not an http(s) URL", 2);
    }

    /// <summary>
    /// The login token to send to <paramref name="master"/>: <c>DROVER_TOKEN</c> when set, else the one
    /// <c>drover login</c> stored for that master, else none.
    /// </summary>
    public static string? Token(Uri master) =>
        Environment.GetEnvironmentVariable("DROVER_TOKEN") is { Length: > 0 } token ? token.Trim() : TokenFiles.Default().Read(master);

    /// <summary>The CA this invocation trusts for <paramref name="master"/>: <c>--ca-cert</c>, a pinned CA, or the system's (<see cref="Security.CliTrust"/>).</summary>
    public static MasterTrust Trust(ParseResult result, Uri master) => Security.CliTrust.For(master, result.GetValue(CaCert));

    /// <summary>
    /// The handler every client command talks to the master through: its TLS trust, the login token, and a 401
    /// turned into <see cref="MasterLoginRequiredException"/> (one sentence telling the user to log in).
    /// </summary>
    public static HttpMessageHandler Handler(ParseResult result)
    {
        var master = MasterUrl(result);
        return MasterHttp.Create(master, Token(master), loginRequiredOn401: true, Trust(result, master), NamedMasters(result));
    }

    /// <summary>
    /// Every master <c>--master</c> names (comma-separated, the first being <see cref="MasterUrl"/>): a follower's redirect
    /// may carry the login token to these, and to nowhere else (<see cref="MasterAuthHandler"/>).
    /// </summary>
    public static IEnumerable<Uri> NamedMasters(ParseResult result)
    {
        var scheme = MasterUrl(result).Scheme;
        foreach (var text in result.GetValue(Master)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Uri.TryCreate(text.Contains("://", StringComparison.Ordinal) ? text : $"{scheme}://{text}", UriKind.Absolute, out var uri))
            {
                yield return uri;
            }
        }
    }

    public static DroverClient Client(ParseResult result) => new(MasterUrl(result), Handler(result));

    public static IamClient Iam(ParseResult result) => new(MasterUrl(result), Handler(result));

    public static void PrintJson<T>(T value)
    {
        var info = (JsonTypeInfo<T>)Indented.GetTypeInfo(typeof(T));
        Console.Out.WriteLine(JsonSerializer.Serialize(value, info));
    }
}

/// <summary>An error to print (without a stack trace) and the exit code to leave with.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
