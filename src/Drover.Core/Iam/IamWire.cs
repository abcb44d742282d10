using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Core.Iam;

/// <summary>
/// A user or service account as DC/OS' IAM API (bouncer) shows it. Drover keeps only local accounts, so
/// <see cref="IsRemote"/> is false and <see cref="ProviderType"/> is <c>internal</c>.
/// </summary>
public sealed record IamUserView
{
    public required string Uid { get; init; }

    /// <summary>The account's own path, e.g. <c>/acs/api/v1/users/alice</c>.</summary>
    public required string Url { get; init; }

    public string Description { get; init; } = "";

    public bool IsRemote { get; init; }

    /// <summary>A service account (logs in with a JWT signed by its private key) rather than a person with a password.</summary>
    public bool IsService { get; init; }

    public string ProviderType { get; init; } = "internal";

    public string ProviderId { get; init; } = "";

    /// <summary>A service account's RSA public key (PEM, SubjectPublicKeyInfo); absent for a password user.</summary>
    public string? PublicKey { get; init; }
}

public sealed record IamGroupView
{
    public required string Gid { get; init; }

    public required string Url { get; init; }

    public string Description { get; init; } = "";

    public string ProviderType { get; init; } = "internal";
}

/// <summary>An ACL: a protected resource id (DC/OS permission string) with a description.</summary>
public sealed record IamAclView
{
    public required string Rid { get; init; }

    public required string Url { get; init; }

    public string Description { get; init; } = "";
}

/// <summary>One granted action (<c>create</c>, <c>read</c>, <c>update</c>, <c>delete</c> or <c>full</c>) and where to manage it.</summary>
public sealed record IamActionView(string Name, string Url);

/// <summary>DC/OS lists come wrapped: <c>{"array": [...]}</c>.</summary>
public sealed record IamArray<T>(ImmutableArray<T> Array);

/// <summary>An entry of <c>GET /users/{uid}/groups</c>.</summary>
public sealed record IamUserGroupEntry
{
    public required IamGroupView Group { get; init; }

    [JsonPropertyName("membershipurl")]
    public required string MembershipUrl { get; init; }
}

/// <summary>An entry of <c>GET /groups/{gid}/users</c>.</summary>
public sealed record IamGroupUserEntry
{
    [JsonPropertyName("membershipurl")]
    public required string MembershipUrl { get; init; }

    public required IamUserView User { get; init; }
}

/// <summary>Actions held on one resource: a user's direct grants and <c>GET /groups/{gid}/permissions</c>.</summary>
public sealed record IamPermissionEntry
{
    public required string Rid { get; init; }

    public string Description { get; init; } = "";

    [JsonPropertyName("aclurl")]
    public required string AclUrl { get; init; }

    public ImmutableArray<IamActionView> Actions { get; init; } = [];
}

/// <summary>Actions a user holds on one resource through one of its groups.</summary>
public sealed record IamGroupPermissionEntry
{
    public required string Rid { get; init; }

    public required string Gid { get; init; }

    public string Description { get; init; } = "";

    [JsonPropertyName("aclurl")]
    public required string AclUrl { get; init; }

    [JsonPropertyName("membershipurl")]
    public required string MembershipUrl { get; init; }

    public ImmutableArray<IamActionView> Actions { get; init; } = [];
}

/// <summary><c>GET /users/{uid}/permissions</c>: grants held directly and through groups.</summary>
public sealed record IamUserPermissions
{
    public ImmutableArray<IamPermissionEntry> Direct { get; init; } = [];

    public ImmutableArray<IamGroupPermissionEntry> Groups { get; init; } = [];
}

public sealed record IamAclUserActions
{
    public required string Uid { get; init; }

    [JsonPropertyName("userurl")]
    public required string UserUrl { get; init; }

    public ImmutableArray<IamActionView> Actions { get; init; } = [];
}

public sealed record IamAclGroupActions
{
    public required string Gid { get; init; }

    [JsonPropertyName("groupurl")]
    public required string GroupUrl { get; init; }

    public ImmutableArray<IamActionView> Actions { get; init; } = [];
}

/// <summary><c>GET /acls/{rid}/permissions</c>: who holds what on one resource.</summary>
public sealed record IamAclPermissions
{
    public ImmutableArray<IamAclUserActions> Users { get; init; } = [];

    public ImmutableArray<IamAclGroupActions> Groups { get; init; } = [];
}

/// <summary><c>GET /acls/{rid}/users/{uid}/{action}</c>: whether the action is allowed.</summary>
public sealed record IamAllowed(bool Allowed);

/// <summary>Every IAM error: <c>{"title": "400 Bad Request", "description": "...", "code": "ERR_..."}</c>.</summary>
public sealed record IamErrorBody
{
    public string Title { get; init; } = "";

    public string Description { get; init; } = "";

    public string? Code { get; init; }
}

/// <summary>
/// The body of <c>PUT /users/{uid}</c> (exactly one of <see cref="Password"/> and <see cref="PublicKey"/>)
/// and of <c>PATCH /users/{uid}</c> (any of them; a public key only for a service account).
/// </summary>
public sealed record IamUserRequest
{
    public string? Description { get; init; }

    public string? Password { get; init; }

    public string? PublicKey { get; init; }
}

/// <summary>The body of <c>PUT</c>/<c>PATCH</c> of a group or an ACL.</summary>
public sealed record IamDescriptionRequest(string? Description);

/// <summary><c>POST /acs/api/v1/auth/login</c>: a uid with a password, or with a JWT signed by the service account's key.</summary>
public sealed record IamLoginRequest
{
    public required string Uid { get; init; }

    public string? Password { get; init; }

    public string? Token { get; init; }
}

public sealed record IamLoginResponse(string Token);

/// <summary>One RSA signing key in JWK form (RFC 7517): what <c>GET /acs/api/v1/auth/jwks</c> lists.</summary>
public sealed record IamJwk
{
    public required string Kid { get; init; }

    public string Kty { get; init; } = "RSA";

    public string Alg { get; init; } = "RS256";

    public string Use { get; init; } = "sig";

    /// <summary>The modulus, base64url without padding.</summary>
    public required string N { get; init; }

    /// <summary>The public exponent, base64url without padding.</summary>
    public required string E { get; init; }
}

public sealed record IamJwks(ImmutableArray<IamJwk> Keys);

/// <summary>
/// Paths of the IAM API. A resource id goes into a URL as DC/OS puts it: each <c>/</c> as <c>%252F</c>
/// (double-encoded, so no proxy decodes it into a path separator), colons as they are, anything else
/// percent-encoded once.
/// </summary>
public static class IamPaths
{
    public const string Base = "/acs/api/v1";

    public static string User(string uid) => $"{Base}/users/{Uri.EscapeDataString(uid)}";

    public static string Group(string gid) => $"{Base}/groups/{Uri.EscapeDataString(gid)}";

    public static string Membership(string gid, string uid) => $"{Group(gid)}/users/{Uri.EscapeDataString(uid)}";

    public static string Acl(string rid) => $"{Base}/acls/{EncodeRid(rid)}";

    public static string AclUser(string rid, string uid) => $"{Acl(rid)}/users/{Uri.EscapeDataString(uid)}";

    public static string AclGroup(string rid, string gid) => $"{Acl(rid)}/groups/{Uri.EscapeDataString(gid)}";

    public static string EncodeRid(string rid)
    {
        ArgumentNullException.ThrowIfNull(rid);
        return Uri.EscapeDataString(rid).Replace("%3A", ":", StringComparison.Ordinal).Replace("%2F", "%252F", StringComparison.Ordinal);
    }

    /// <summary>
    /// The resource id in a route segment as the server received it (percent-decoded once, which leaves
    /// <c>%2F</c> as it is): <c>%2F</c> in either case is a <c>/</c>, as bouncer reads it.
    /// </summary>
    public static string DecodeRid(string segment)
    {
        ArgumentNullException.ThrowIfNull(segment);
        return segment.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>
/// Source-generated JSON of the IAM API: snake_case names (<c>is_service</c>, <c>public_key</c>) as bouncer
/// writes them; the <c>…url</c> fields carry their DC/OS names explicitly.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(IamUserView))]
[JsonSerializable(typeof(IamGroupView))]
[JsonSerializable(typeof(IamAclView))]
[JsonSerializable(typeof(IamArray<IamUserView>))]
[JsonSerializable(typeof(IamArray<IamGroupView>))]
[JsonSerializable(typeof(IamArray<IamAclView>))]
[JsonSerializable(typeof(IamArray<IamUserGroupEntry>))]
[JsonSerializable(typeof(IamArray<IamGroupUserEntry>))]
[JsonSerializable(typeof(IamArray<IamPermissionEntry>))]
[JsonSerializable(typeof(IamArray<IamActionView>))]
[JsonSerializable(typeof(IamUserPermissions))]
[JsonSerializable(typeof(IamAclPermissions))]
[JsonSerializable(typeof(IamAllowed))]
[JsonSerializable(typeof(IamErrorBody))]
[JsonSerializable(typeof(IamUserRequest))]
[JsonSerializable(typeof(IamDescriptionRequest))]
[JsonSerializable(typeof(IamLoginRequest))]
[JsonSerializable(typeof(IamLoginResponse))]
[JsonSerializable(typeof(IamJwks))]
public sealed partial class IamJsonContext : JsonSerializerContext;
