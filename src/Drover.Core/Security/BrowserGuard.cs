using System.Net;

namespace Drover.Core.Security;

/// <summary>
/// Refuses what a web page could make a browser send to a Drover port: a cross-site form or
/// <c>fetch</c> (any body that is not JSON, since a page can send <c>text/plain</c>,
/// <c>application/x-www-form-urlencoded</c> or <c>multipart/form-data</c> cross-site without a CORS
/// preflight), a request carrying another site's <c>Origin</c>, and a request for a host name the
/// server does not answer to (DNS rebinding: a page's own name resolving to 127.0.0.1). Applies in
/// every mode, <c>drover dev</c> without logins included. Pure: the host feeds it the request's headers.
/// </summary>
public sealed class BrowserGuard
{
    private readonly HashSet<string> _hosts;
    private readonly bool _anyHost;

    /// <param name="hostNames">Names and addresses the server answers to (no ports): its listen and advertised
    /// addresses, the machine's names, loopback names, operator additions.</param>
    /// <param name="anyHost">Accept any <c>Host</c> (an operator who fronts the master with names of their own and
    /// turned the check off); content types are still checked, and an <c>Origin</c> must name one of <paramref name="hostNames"/>.</param>
    public BrowserGuard(IEnumerable<string> hostNames, bool anyHost = false)
    {
        ArgumentNullException.ThrowIfNull(hostNames);
        _hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var h in hostNames)
        {
            if (!string.IsNullOrWhiteSpace(h))
            {
                _hosts.Add(Normalize(h));
            }
        }

        _anyHost = anyHost;
    }

    /// <summary>Loopback names every server answers to.</summary>
    public static IReadOnlyList<string> LoopbackNames { get; } = ["localhost", "127.0.0.1", "::1", "[::1]"];

    /// <summary>
    /// Null when the request may go on; else the status (403 or 415) and a sentence naming the header and the reason.
    /// </summary>
    /// <param name="method">The HTTP method.</param>
    /// <param name="host">The <c>Host</c> header (may carry a port); null or empty is refused.</param>
    /// <param name="origin">The <c>Origin</c> header, if any.</param>
    /// <param name="ownOrigins">The origins this server is: <c>scheme://host[:port]</c> as the request reached it.</param>
    /// <param name="contentType">The <c>Content-Type</c> header.</param>
    /// <param name="hasBody">Whether the request carries a body (a non-zero length or chunked).</param>
    /// <param name="routeChecksContentType">The route refuses every body but JSON (or protobuf) itself, before it acts,
    /// in its API's own words (Mesos' v1 APIs answer 415 as Mesos does): the guard leaves the check to it.</param>
    public (int Status, string Reason)? Check(string method, string? host, string? origin, string ownOrigin, string? contentType, bool hasBody, bool routeChecksContentType = false)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (!_anyHost)
        {
            var name = HostName(host);
            if (name is null || !_hosts.Contains(name))
            {
                return (403, $"Host: '{host}' is not a name this server answers to (requests for other names are refused to stop DNS rebinding); use one of its addresses, or add the name with --allowed-hosts");
            }
        }

        // With any Host accepted, the request's own origin is whatever a rebound name says: an Origin then
        // passes only when it names one of the server's known hosts.
        if (!string.IsNullOrEmpty(origin) && (_anyHost ? !KnownOrigin(origin) : !SameOrigin(origin, ownOrigin)))
        {
            return (403, $"Origin: '{origin}' is not this server's own origin ({ownOrigin}); cross-site requests are refused");
        }

        if (hasBody && !routeChecksContentType && !IsSafeMethod(method))
        {
            var media = MediaType(contentType);
            var json = media is "application/json" || (media.StartsWith("application/", StringComparison.Ordinal) && media.EndsWith("+json", StringComparison.Ordinal));
            if (!json)
            {
                return (415, string.IsNullOrEmpty(contentType)
                    ? "Content-Type: a request body must be sent as application/json"
                    : $"Content-Type: '{contentType}' is not accepted; a request body must be application/json");
            }
        }

        return null;
    }

    private static bool IsSafeMethod(string method) =>
        method.Equals("GET", StringComparison.OrdinalIgnoreCase) || method.Equals("HEAD", StringComparison.OrdinalIgnoreCase) || method.Equals("OPTIONS", StringComparison.OrdinalIgnoreCase);

    /// <summary>The media type of a Content-Type header, lower-case, without parameters.</summary>
    public static string MediaType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return "";
        }

        var semi = contentType.IndexOf(';', StringComparison.Ordinal);
        return (semi < 0 ? contentType : contentType[..semi]).Trim().ToLowerInvariant();
    }

    /// <summary>The host part of a Host header (no port, no brackets kept for IPv6 except as the set stores them), lower-case; null when malformed.</summary>
    public static string? HostName(string? host)
    {
        if (string.IsNullOrWhiteSpace(host))
        {
            return null;
        }

        host = host.Trim();
        if (host.StartsWith('['))
        {
            var close = host.IndexOf(']', StringComparison.Ordinal);
            return close < 0 ? null : Normalize(host[1..close]);
        }

        var colon = host.LastIndexOf(':');
        if (colon >= 0 && host.IndexOf(':', StringComparison.Ordinal) == colon)
        {
            host = host[..colon];
        }

        return host.Length == 0 ? null : Normalize(host);
    }

    private static string Normalize(string name)
    {
        name = name.Trim().TrimEnd('.');
        if (name.StartsWith('[') && name.EndsWith(']'))
        {
            name = name[1..^1];
        }

        return IPAddress.TryParse(name, out var ip) ? ip.ToString() : name.ToLowerInvariant();
    }

    private bool KnownOrigin(string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var o) && _hosts.Contains(Normalize(o.Host));

    private static bool SameOrigin(string origin, string ownOrigin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var o) && Uri.TryCreate(ownOrigin, UriKind.Absolute, out var own)
        && string.Equals(o.Scheme, own.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(Normalize(o.Host), Normalize(own.Host), StringComparison.OrdinalIgnoreCase)
        && o.Port == own.Port;
}
