using System.Net;
using System.Net.NetworkInformation;
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

    /// <summary>Whether the URL's host is a loopback address or <c>localhost</c> (where plain HTTP is allowed).</summary>
    public static bool IsLoopback(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var host = url.Host.Trim('[', ']');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>
    /// The address others should use to reach a server bound to <paramref name="bound"/>: itself, unless
    /// it is a wildcard (0.0.0.0 / [::]). Then it is the local address this machine would use to reach
    /// <paramref name="peer"/> (the master), found by routing a UDP socket towards it (connect on UDP
    /// sends nothing), else the first non-loopback IPv4 address of an interface that is up. Inside a
    /// network namespace both see that namespace's interfaces, unlike a DNS lookup of the hostname.
    /// </summary>
    public static Uri Advertise(Uri bound, Uri? peer = null)
    {
        if (!IPAddress.TryParse(bound.Host.Trim('[', ']'), out var ip) || !(ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)))
        {
            return bound;
        }

        var address = (peer is null ? null : LocalAddressTowards(peer)) ?? FirstInterfaceAddress() ?? IPAddress.Loopback;
        return new UriBuilder(bound) { Host = address.ToString() }.Uri;
    }

    private static IPAddress? LocalAddressTowards(Uri peer)
    {
        try
        {
            var remote = IPAddress.TryParse(peer.Host.Trim('[', ']'), out var ip)
                ? ip
                : Dns.GetHostAddresses(peer.Host).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
            if (remote is null)
            {
                return null;
            }

            using var socket = new Socket(remote.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(remote, peer.Port > 0 ? peer.Port : 9);
            return (socket.LocalEndPoint as IPEndPoint)?.Address;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    private static IPAddress? FirstInterfaceAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));

    /// <summary>
    /// The host names a server bound to <paramref name="listen"/> answers to, for the browser guard's Host check:
    /// loopback names, the machine's name, the bound and advertised hosts, every interface address when bound to
    /// a wildcard, and the operator's <paramref name="extra"/> names.
    /// </summary>
    public static IReadOnlyList<string> HostNames(Uri listen, Uri? advertise, IEnumerable<string> extra)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(extra);
        var names = new List<string>(Core.Security.BrowserGuard.LoopbackNames) { Environment.MachineName, listen.Host };
        if (advertise is not null)
        {
            names.Add(advertise.Host);
        }

        if (IPAddress.TryParse(listen.Host.Trim('[', ']'), out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)))
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                names.AddRange(nic.GetIPProperties().UnicastAddresses.Select(a => a.Address.ToString()));
            }
        }

        names.AddRange(extra);
        return names;
    }
}
