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

    /// <summary>A service account's RSA public key (PEM, SubjectPublicKeyInfo, as <see cref="ServiceKeys"/> normalises it): verifies the JWT it logs in with.</summary>
    public string? PublicKey { get; init; }

    /// <summary>
    /// Bumped when the password or key changes; a login token names it, so older tokens stop working. A new account
    /// starts at a random value, so a deleted account's tokens do not work for a new one with the same uid.
    /// </summary>
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

/// <summary>
/// Drover's password rule: at least 8 characters (DC/OS accepts 5; 8 is NIST SP 800-63B's floor for a password a
/// person chooses, and what the bootstrap password already needed), at most 1,024.
/// </summary>
public static class IamRules
{
    public const int MinPasswordLength = 8;
    public const int MaxPasswordLength = 1024;

    /// <summary>At most 1,024 characters: the DC/OS description field is free text, not a document.</summary>
    public const int MaxDescriptionLength = 1024;

    public static bool IsValidPassword(string? password, out string reason)
    {
        if (password is null || password.Length < MinPasswordLength)
        {
            reason = $"must be at least {MinPasswordLength} characters";
            return false;
        }

        if (password.Length > MaxPasswordLength)
        {
            reason = $"must be at most {MaxPasswordLength} characters";
            return false;
        }

        reason = "";
        return true;
    }
}

/// <summary>Service accounts' public keys: RSA only (DC/OS verifies their login JWTs with RS256 only), at least 2,048 bits.</summary>
public static class ServiceKeys
{
    public const int MinRsaBits = 2048;

    /// <summary>
    /// A public key in PEM (<c>PUBLIC KEY</c>, SubjectPublicKeyInfo, or <c>RSA PUBLIC KEY</c>, PKCS#1) as the
    /// SubjectPublicKeyInfo PEM to store, or the reason it is refused. A private key is refused: it must never be sent.
    /// </summary>
    public static bool TryNormalize(string? pem, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? normalized, out string reason)
    {
        normalized = null;
        if (string.IsNullOrWhiteSpace(pem) || !System.Security.Cryptography.PemEncoding.TryFind(pem, out var fields))
        {
            reason = "is not a PEM-encoded public key (-----BEGIN PUBLIC KEY-----)";
            return false;
        }

        var label = pem[fields.Label];
        if (label is not ("PUBLIC KEY" or "RSA PUBLIC KEY"))
        {
            reason = label.Contains("PRIVATE", StringComparison.Ordinal)
                ? "is a private key; send only the public key (openssl rsa -in key.pem -pubout)"
                : $"is a PEM '{label}', not a public key";
            return false;
        }

        using var rsa = System.Security.Cryptography.RSA.Create();
        try
        {
            rsa.ImportFromPem(pem[fields.Location]);
        }
        catch (Exception e) when (e is ArgumentException or System.Security.Cryptography.CryptographicException)
        {
            reason = "is not an RSA public key";
            return false;
        }

        if (rsa.KeySize < MinRsaBits)
        {
            reason = $"is a {rsa.KeySize}-bit RSA key; at least {MinRsaBits} bits are needed";
            return false;
        }

        normalized = rsa.ExportSubjectPublicKeyInfoPem();
        reason = "";
        return true;
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IamUser))]
[JsonSerializable(typeof(IamGroup))]
[JsonSerializable(typeof(IamAcl))]
internal sealed partial class IamStoreJsonContext : JsonSerializerContext;
