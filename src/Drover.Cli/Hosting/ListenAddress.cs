using System.Net;
using System.Net.Sockets;

namespace Drover.Cli.Hosting;

/// <summary>Parses <c>HOST:PORT</c> or a URL into the URL Kestrel binds.</summary>
public static class ListenAddress
{
    public static bool TryParse(string text, out Uri url, out string? error)
    {
        url = null!;
        error = null;
        var candidate = text.Contains("://", StringComparison.Ordinal) ? text : "http://" + text;
        if (!Uri.TryCreate(candidate, UriKind.Absolute, out var parsed) || parsed.Scheme != "http" || parsed.AbsolutePath != "/")
        {
            error = $"'{text}' is not HOST:PORT (e.g. 127.0.0.1:5050)";
            return false;
        }

        if (!text.Contains(':', StringComparison.Ordinal) || parsed.IsDefaultPort && !text.EndsWith(":80", StringComparison.Ordinal))
        {
            error = $"'{text}' has no port (e.g. 127.0.0.1:5050)";
            return false;
        }

        url = parsed;
        return true;
    }

    /// <summary>
    /// The address others should use to reach a server bound to <paramref name="bound"/>: itself, unless
    /// it is a wildcard (0.0.0.0 / [::]), in which case this machine's first non-loopback IPv4 address.
    /// </summary>
    public static Uri Advertise(Uri bound)
    {
        if (!IPAddress.TryParse(bound.Host.Trim('[', ']'), out var ip) || !(ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)))
        {
            return bound;
        }

        var address = Dns.GetHostAddresses(Dns.GetHostName())
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)) ?? IPAddress.Loopback;
        return new UriBuilder(bound) { Host = address.ToString() }.Uri;
    }
}
