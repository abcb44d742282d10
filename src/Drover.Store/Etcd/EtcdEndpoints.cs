using System.Collections.Immutable;
using System.Globalization;

namespace Drover.Store.Etcd;

/// <summary>
/// The members of an etcd cluster and, optionally, the key prefix, as written on a command line:
/// <c>etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379</c> or <c>etcd://h1,h2,h3/drover-prod</c>
/// (port 2379 when left out, IPv6 in brackets: <c>[fd00::1]:2379</c>).
/// </summary>
public sealed record EtcdEndpoints(ImmutableArray<Uri> Uris, string? Prefix)
{
    public const string Scheme = "etcd://";
    public const int DefaultPort = 2379;

    /// <summary>Parses <paramref name="text"/>.</summary>
    /// <exception cref="FormatException">It is not of that form; the message names the part that is wrong.</exception>
    public static EtcdEndpoints Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new FormatException($"'{text}' is not an etcd address: it must start with {Scheme} (e.g. {Scheme}10.0.0.1:2379,10.0.0.2:2379)");
        }

        var rest = text[Scheme.Length..];
        string? prefix = null;
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            prefix = rest[slash..];
            rest = rest[..slash];
            if (prefix.Contains('?', StringComparison.Ordinal) || prefix.Contains('#', StringComparison.Ordinal))
            {
                throw new FormatException($"the key prefix '{prefix}' in '{text}' may not contain '?' or '#'");
            }
        }

        if (rest.Length == 0)
        {
            throw new FormatException($"'{text}' names no etcd endpoint (expected {Scheme}HOST:PORT[,HOST:PORT…])");
        }

        var parts = rest.Split(',');
        var uris = ImmutableArray.CreateBuilder<Uri>(parts.Length);
        for (var i = 0; i < parts.Length; i++)
        {
            uris.Add(ParseEndpoint(parts[i].Trim(), i + 1, text));
        }

        var duplicate = uris.GroupBy(u => u.Authority, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new FormatException($"endpoint '{duplicate.Key}' appears more than once in '{text}'");
        }

        return new EtcdEndpoints(uris.MoveToImmutable(), prefix);
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

    public override string ToString() => Scheme + string.Join(',', Uris.Select(u => u.Authority)) + Prefix;

    private static Uri ParseEndpoint(string part, int position, string text)
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

        var number = DefaultPort;
        if (port is not null && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number is < 1 or > 65535))
        {
            throw new FormatException($"the port '{port}' of endpoint '{part}' in '{text}' is not a number between 1 and 65535");
        }

        if (Uri.CheckHostName(host.Trim('[', ']')) == UriHostNameType.Unknown)
        {
            throw new FormatException($"'{host}' (endpoint '{part}' in '{text}') is not a host name or IP address");
        }

        return new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{host}:{number}/"));
    }
}
