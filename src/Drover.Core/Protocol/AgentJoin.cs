using System.Collections.Immutable;

namespace Drover.Core.Protocol;

// How an agent gets and keeps its identity (docs/security.md, "Joining agents"):
//
//   agent                                           master
//     | GET  /drover/v1/ca                     ---> |  the CA clients must trust (public; checked against the token's CA hash)
//     | POST /internal/v1/agents/join          ---> |  AgentJoinRequest (token credential + CSR) → AgentJoinResponse
//     |      (TLS, trusting only that CA)           |  the master assigns the agent id and signs the CSR's key for it
//     | …every agent-protocol call with mTLS…       |
//     | POST /internal/v1/agents/{id}/certificate   |  CertificateRenewal (new CSR) → CertificateIssued, mTLS as {id}

/// <summary>A joining agent's request: the join token without its CA hash, and a CSR for a key the agent made.</summary>
public sealed record AgentJoinRequest
{
    /// <summary><c>&lt;id&gt;.&lt;secret&gt;</c> of a join token (<see cref="Security.Pki.JoinToken.Credential"/>); checked before anything else (401).</summary>
    public string? Token { get; init; }

    /// <summary>PEM PKCS#10 request; only its public key is used.</summary>
    public string? Csr { get; init; }

    /// <summary>For the master's log only: the id is the master's choice.</summary>
    public string? Hostname { get; init; }
}

public sealed record AgentJoinResponse
{
    /// <summary>The id the master assigned; the certificate names it (<c>spiffe://drover/agent/&lt;id&gt;</c>).</summary>
    public required string AgentId { get; init; }

    /// <summary>PEM of the agent's certificate.</summary>
    public required string Certificate { get; init; }

    /// <summary>PEM of the cluster CA: it signs the master's client certificate, which the agent's endpoint accepts.</summary>
    public required string ClusterCa { get; init; }
}

/// <summary>An agent renewing its certificate (called with its current one, mTLS).</summary>
public sealed record CertificateRenewal
{
    public required string Csr { get; init; }
}

public sealed record CertificateIssued
{
    public required string Certificate { get; init; }

    public required string ClusterCa { get; init; }
}

/// <summary>Answers of <c>GET /drover/v1/ca</c> in JSON (the default answer is the PEM itself).</summary>
public sealed record CaInfo
{
    /// <summary>PEM of the CA(s) a client must trust to talk to this master.</summary>
    public required string Certificate { get; init; }

    /// <summary>SHA-256 fingerprint of the (first) CA certificate, <c>AB:CD:…</c>.</summary>
    public required string Fingerprint { get; init; }

    /// <summary><c>sha256:&lt;hex&gt;</c> of its public key, the hash a join token embeds.</summary>
    public required string PublicKeyHash { get; init; }
}

/// <summary><c>POST /drover/v1/agents/join-tokens</c>.</summary>
public sealed record JoinTokenRequest
{
    /// <summary>How long the token may be used; default one hour, at most a day.</summary>
    public double? TtlSeconds { get; init; }

    public string? Description { get; init; }
}

public sealed record JoinTokenCreated
{
    /// <summary>The token text for <c>drover agent --join-token</c>; shown once, the master keeps only a hash of its secret.</summary>
    public required string Token { get; init; }

    public required string Id { get; init; }

    public required DateTimeOffset ExpiresAt { get; init; }
}

public sealed record JoinTokenView
{
    public required string Id { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required DateTimeOffset ExpiresAt { get; init; }

    public string? Description { get; init; }
}

public sealed record JoinTokenList
{
    public ImmutableArray<JoinTokenView> Tokens { get; init => field = value.IsDefault ? [] : value; } = [];
}
