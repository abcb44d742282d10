using System.Collections.Immutable;
using System.Globalization;

namespace Drover.Store.Etcd;

/// <summary>
/// The members of an etcd cluster and, optionally, the key prefix, as written on a command line, in
/// one of two forms:
/// <list type="bullet">
/// <item><c>etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379</c> or <c>etcd://h1,h2,h3/drover-prod</c>
/// (port 2379 when left out, IPv6 in brackets: <c>[fd00::1]:2379</c>): the scheme follows the TLS
/// settings, <c>http</c> until <see cref="WithTls"/> makes it <c>https</c>;</item>
/// <item><c>https://10.0.0.1:2379,https://10.0.0.2:2379[/prefix]</c> (or <c>http://…</c>), as etcdctl's
/// <c>--endpoints</c> and Kubernetes' <c>--etcd-servers</c> take them: every endpoint with the same
/// scheme and a port, the prefix after the last one.</item>
/// </list>
/// </summary>
public sealed record EtcdEndpoints(ImmutableArray<Uri> Uris, string? Prefix)
{
    public const string Scheme = "etcd://";
    public const int DefaultPort = 2379;

    /// <summary>Whether the text wrote the scheme (<c>http://</c>, <c>https://</c>) rather than <c>etcd://</c>.</summary>
    public bool SchemeWritten { get; init; }

    /// <summary>Whether the endpoints are <c>https</c>.</summary>
    public bool IsTls => Uris.Length > 0 && Uris[0].Scheme == Uri.UriSchemeHttps;

    /// <summary>Parses <paramref name="text"/>.</summary>
    /// <exception cref="FormatException">It is not of either form; the message names the part that is wrong.</exception>
    public static EtcdEndpoints Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (StartsWithScheme(text, Uri.UriSchemeHttp) || StartsWithScheme(text, Uri.UriSchemeHttps))
        {
            return ParseUrls(text);
        }

        if (!text.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new FormatException($"'{text}' is not an etcd address: it must start with {Scheme} (e.g. {Scheme}10.0.0.1:2379,10.0.0.2:2379) or be a list of https:// URLs");
        }

        var rest = text[Scheme.Length..];
        string? prefix = null;
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            prefix = CheckPrefix(rest[slash..], text);
            rest = rest[..slash];
        }

        if (rest.Length == 0)
        {
            throw new FormatException($"'{text}' names no etcd endpoint (expected {Scheme}HOST:PORT[,HOST:PORT…])");
        }

        var parts = rest.Split(',');
        var uris = ImmutableArray.CreateBuilder<Uri>(parts.Length);
        for (var i = 0; i < parts.Length; i++)
        {
            uris.Add(ParseEndpoint(parts[i].Trim(), i + 1, text, Uri.UriSchemeHttp, portRequired: false));
        }

        return Checked(new EtcdEndpoints(uris.MoveToImmutable(), prefix), text);
    }

    /// <summary>Parses like <see cref="Parse"/>; false with the reason in <paramref name="error"/> instead of throwing.</summary>
    public static bool TryParse(string text, out EtcdEndpoints? endpoints, out string? error)
    {
        try
        {
            endpoints = Parse(text);
            error = null;
            return true;
        }
        catch (FormatException e)
        {
            endpoints = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>The same endpoints over TLS: <c>https</c> for the <c>etcd://</c> form; the written form must already be <c>https</c>.</summary>
    /// <exception cref="InvalidOperationException">The endpoints were written as <c>http://</c>.</exception>
    public EtcdEndpoints WithTls()
    {
        if (IsTls)
        {
            return this;
        }

        return SchemeWritten
            ? throw new InvalidOperationException($"{this} names plain http:// endpoints")
            : this with { Uris = [.. Uris.Select(u => new UriBuilder(u) { Scheme = Uri.UriSchemeHttps, Port = u.Port }.Uri)] };
    }

    public override string ToString() => SchemeWritten
        ? string.Join(',', Uris.Select(u => u.GetLeftPart(UriPartial.Authority))) + Prefix
        : Scheme + string.Join(',', Uris.Select(u => u.Authority)) + Prefix;

    private static bool StartsWithScheme(string text, string scheme) =>
        text.Length > scheme.Length + 3 && text.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) && text.AsSpan(scheme.Length).StartsWith("://", StringComparison.Ordinal);

    /// <summary><c>https://h1:2379,https://h2:2379[/prefix]</c>: one scheme for all, a port on each, a path only after the last.</summary>
    private static EtcdEndpoints ParseUrls(string text)
    {
        var scheme = StartsWithScheme(text, Uri.UriSchemeHttps) ? Uri.UriSchemeHttps : Uri.UriSchemeHttp;
        var parts = text.Split(',');
        var uris = ImmutableArray.CreateBuilder<Uri>(parts.Length);
        string? prefix = null;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i].Trim();
            if (!StartsWithScheme(part, scheme))
            {
                throw new FormatException(part.Contains("://", StringComparison.Ordinal)
                    ? $"'{text}' mixes schemes: endpoint {i + 1} '{part}' is not {scheme}:// like the first"
                    : $"endpoint {i + 1} '{part}' of '{text}' has no scheme: write each endpoint as {scheme}://HOST:PORT");
            }

            var authority = part[(scheme.Length + 3)..];
            var slash = authority.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0)
            {
                if (i < parts.Length - 1)
                {
                    throw new FormatException($"endpoint '{part}' of '{text}' has a path; only the last endpoint may carry the key prefix");
                }

                prefix = CheckPrefix(authority[slash..], text);
                authority = authority[..slash];
            }

            uris.Add(ParseEndpoint(authority, i + 1, text, scheme, portRequired: true));
        }

        return Checked(new EtcdEndpoints(uris.MoveToImmutable(), prefix is "/" ? null : prefix) { SchemeWritten = true }, text);
    }

    private static string CheckPrefix(string prefix, string text) =>
        prefix.Contains('?', StringComparison.Ordinal) || prefix.Contains('#', StringComparison.Ordinal)
            ? throw new FormatException($"the key prefix '{prefix}' in '{text}' may not contain '?' or '#'")
            : prefix;

    private static EtcdEndpoints Checked(EtcdEndpoints endpoints, string text)
    {
        var duplicate = endpoints.Uris.GroupBy(u => u.Authority, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        return duplicate is null ? endpoints : throw new FormatException($"endpoint '{duplicate.Key}' appears more than once in '{text}'");
    }

    private static Uri ParseEndpoint(string part, int position, string text, string scheme, bool portRequired)
    {
        if (part.Length == 0)
        {
            throw new FormatException($"endpoint {position} of '{text}' is empty");
        }

        string host;
        string? port = null;
        if (part.StartsWith('['))
        {
            var close = part.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new FormatException($"endpoint '{part}' in '{text}' opens '[' for an IPv6 address but never closes it");
            }

            host = part[..(close + 1)];
            var after = part[(close + 1)..];
            if (after.Length > 0)
            {
                port = after.StartsWith(':') ? after[1..] : throw new FormatException($"endpoint '{part}' in '{text}': expected ':PORT' after '{host}', found '{after}'");
            }
        }
        else
        {
            var colon = part.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0 && part.IndexOf(':', colon + 1) >= 0)
            {
                throw new FormatException($"endpoint '{part}' in '{text}' has several ':'; write an IPv6 address in brackets, e.g. [fd00::1]:2379");
            }

            host = colon < 0 ? part : part[..colon];
            port = colon < 0 ? null : part[(colon + 1)..];
        }

        if (host.Length == 0 || host == "[]")
        {
            throw new FormatException($"endpoint '{part}' in '{text}' has no host");
        }

        if (port is null && portRequired)
        {
            throw new FormatException($"endpoint '{part}' in '{text}' has no port: write {scheme}://{host}:{DefaultPort} (etcd's client port)");
        }

        var number = DefaultPort;
        if (port is not null && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number is < 1 or > 65535))
        {
            throw new FormatException($"the port '{port}' of endpoint '{part}' in '{text}' is not a number between 1 and 65535");
        }

        if (Uri.CheckHostName(host.Trim('[', ']')) == UriHostNameType.Unknown)
        {
            throw new FormatException($"'{host}' (endpoint '{part}' in '{text}') is not a host name or IP address");
        }

        return new Uri(string.Create(CultureInfo.InvariantCulture, $"{scheme}://{host}:{number}/"));
    }
}
