using Drover.Core;

namespace Drover.Agent.Host;

/// <summary>Agent settings, from <c>drover agent</c> flags.</summary>
public sealed record AgentOptions
{
    /// <summary>Master base URLs; the agent uses the first that answers and fails over to the others.</summary>
    public required IReadOnlyList<Uri> Masters { get; init; }

    /// <summary>Sandboxes, the agent id and (later) checkpoints live here.</summary>
    public required string WorkDir { get; init; }

    /// <summary>The URL the master uses to reach this agent's HTTP endpoint.</summary>
    public required Uri AdvertisedAddress { get; init; }

    public required string Hostname { get; init; }

    /// <summary>What the agent offers; discovered from the machine unless given.</summary>
    public required Resources Resources { get; init; }

    public Attributes Attributes { get; init; } = Attributes.Empty;

    public FaultDomain? Domain { get; init; }

    /// <summary>
    /// The agent's certificate and the CAs it trusts (<see cref="Security.AgentCredentials"/>): with them every
    /// call to a master is mutual TLS and the agent id is the one its certificate names. Null: plain HTTP
    /// (<c>drover dev</c>, a master run with <c>--insecure</c>).
    /// </summary>
    public Security.AgentCredentials? Credentials { get; init; }

    /// <summary>Used until the master tells the agent its own interval at registration.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);
}
