using System.Collections.Immutable;

namespace Drover.Master.Security;

/// <summary>Who may call the master, and how. Secure unless <see cref="Enabled"/> is turned off for a loopback dev cluster.</summary>
public sealed record SecurityOptions
{
    /// <summary>
    /// Authentication and authorization on every route. Off only for <c>drover dev</c> on loopback (one person's
    /// machine): then every caller may do everything, and the browser protections still apply.
    /// </summary>
    public bool Enabled { get; init; } = true;

    /// <summary>How long a login token is valid (DC/OS: 5 days).</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromDays(5);

    /// <summary>The first admin's password on a new cluster (<c>--bootstrap-password-file</c>); null: generated into the data dir.</summary>
    public string? BootstrapPasswordFile { get; init; }

    /// <summary>Host names (no ports) the master also answers to besides its own addresses and names (<c>--allowed-hosts</c>).</summary>
    public ImmutableArray<string> AllowedHosts { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Accept any <c>Host</c> header (<c>--allowed-hosts '*'</c>): behind a proxy that sets names of its own.</summary>
    public bool AnyHost { get; init; }

    /// <summary>For tests and <c>drover dev</c>: no logins (loopback only).</summary>
    public static SecurityOptions Disabled { get; } = new() { Enabled = false };
}
