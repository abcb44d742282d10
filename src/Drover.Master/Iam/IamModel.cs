using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Drover.Core.Security;

namespace Drover.Master.Iam;

public enum AccountKind
{
    /// <summary>A person: logs in with a password.</summary>
    User,

    /// <summary>A program: logs in with a JWT signed by its own private key (DC/OS service accounts), or a secret over HTTP Basic.</summary>
    Service,
}

/// <summary>A user or service account as stored (<c>/iam/users/{uid}</c>). Secrets are stored only as hashes; public keys as PEM.</summary>
public sealed record IamUser
{
    public required string Uid { get; init; }

    public AccountKind Kind { get; init; }

    public string Description { get; init; } = "";

    /// <summary><see cref="PasswordHasher"/> form; null for a service account with only a key.</summary>
    public string? PasswordHash { get; init; }

    /// <summary>A service account's public key (PEM, RSA or EC): verifies the JWT it logs in with.</summary>
    public string? PublicKey { get; init; }

    /// <summary>Bumped when the password or key changes; a login token names it, so older tokens stop working.</summary>
    public int CredentialVersion { get; init; }

    public DateTimeOffset Created { get; init; }
}

/// <summary>A group (<c>/iam/groups/{gid}</c>): its members receive the group's grants.</summary>
public sealed record IamGroup
{
    public required string Gid { get; init; }

    public string Description { get; init; } = "";

    public ImmutableSortedSet<string> Members { get; init => field = value ?? []; } = [];
}

/// <summary>A resource id with the actions granted on it to users and to groups (<c>/iam/acls/{rid}</c>).</summary>
public sealed record IamAcl
{
    public required string Rid { get; init; }

    public string Description { get; init; } = "";

    public ImmutableSortedDictionary<string, PermissionAction> Users { get; init => field = value ?? ImmutableSortedDictionary<string, PermissionAction>.Empty; } = ImmutableSortedDictionary<string, PermissionAction>.Empty;

    public ImmutableSortedDictionary<string, PermissionAction> Groups { get; init => field = value ?? ImmutableSortedDictionary<string, PermissionAction>.Empty; } = ImmutableSortedDictionary<string, PermissionAction>.Empty;
}

/// <summary>Names of users and groups: what DC/OS accepts, so existing scripts keep working.</summary>
public static partial class IamNames
{
    [GeneratedRegex("^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,95}$", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    public static bool IsValidId(string? id, out string reason)
    {
        if (string.IsNullOrEmpty(id))
        {
            reason = "is empty";
            return false;
        }

        if (!IdPattern().IsMatch(id))
        {
            reason = "must be 1 to 96 characters of letters, digits, '.', '_', '@' and '-', starting with a letter or digit";
            return false;
        }

        reason = "";
        return true;
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IamUser))]
[JsonSerializable(typeof(IamGroup))]
[JsonSerializable(typeof(IamAcl))]
internal sealed partial class IamStoreJsonContext : JsonSerializerContext;
