using System.Security.Cryptography;
using System.Text;

namespace Drover.Core.Security.Pki;

/// <summary>
/// A join token's text: <c>drover1.&lt;id&gt;.&lt;secret&gt;.&lt;ca hash&gt;</c>. The id names the token in the
/// master's store; the secret (256 random bits, base64url) is what proves the holder may join and is
/// stored only as its SHA-256; the CA hash is the SHA-256 of the public key of the CA the master's
/// serving certificate chains to (as kubeadm's <c>--discovery-token-ca-cert-hash</c>), so a joining
/// agent checks the master before it sends the secret.
/// </summary>
public sealed record JoinToken(string Id, string Secret, string CaHash)
{
    public const string Prefix = "drover1";
    private const int IdBytes = 6;
    private const int SecretBytes = 32;

    /// <summary>A new token for a CA whose public-key hash is <paramref name="caHash"/> (<see cref="PemCertificates.PublicKeyHash"/>).</summary>
    public static JoinToken Create(string caHash)
    {
        if (!IsCaHash(caHash))
        {
            throw new ArgumentException($"'{caHash}' is not sha256:<64 hex digits>", nameof(caHash));
        }

        return new JoinToken(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdBytes)), Base64Url(RandomNumberGenerator.GetBytes(SecretBytes)), caHash);
    }

    /// <summary>The text an operator copies to <c>drover agent --join-token</c>.</summary>
    public string Text => $"{Prefix}.{Id}.{Secret}.{CaHash["sha256:".Length..]}";

    /// <summary>What the master keeps instead of the secret.</summary>
    public string SecretHash => HashSecret(Secret);

    /// <summary>The token without its CA hash (<c>&lt;id&gt;.&lt;secret&gt;</c>): what the agent sends the master.</summary>
    public string Credential => $"{Id}.{Secret}";

    public override string ToString() => $"join token {Id}"; // never the secret

    public static string HashSecret(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Parses a token's text; null with the reason when it is not one.</summary>
    public static (JoinToken? Token, string? Error) Parse(string? text)
    {
        var parts = (text ?? "").Trim().Split('.');
        if (parts.Length != 4 || parts[0] != Prefix)
        {
            return (null, $"a join token has the form {Prefix}.<id>.<secret>.<ca hash> (from `drover node token create`)");
        }

        if (parts[1].Length != IdBytes * 2 || !parts[1].All(char.IsAsciiHexDigitLower))
        {
            return (null, "the join token's id is malformed");
        }

        if (parts[2].Length != 43 || !parts[2].All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            return (null, "the join token's secret is malformed");
        }

        var hash = "sha256:" + parts[3].ToLowerInvariant();
        return IsCaHash(hash) ? (new JoinToken(parts[1], parts[2], hash), null) : (null, "the join token's CA hash is not 64 hex digits");
    }

    /// <summary>Parses the <c>&lt;id&gt;.&lt;secret&gt;</c> credential an agent sends; null when malformed.</summary>
    public static (string Id, string Secret)? ParseCredential(string? credential)
    {
        var parts = (credential ?? "").Split('.');
        return parts.Length == 2 && parts[0].Length == IdBytes * 2 && parts[0].All(char.IsAsciiHexDigitLower) && parts[1].Length is > 0 and <= 64
            ? (parts[0], parts[1])
            : null;
    }

    /// <summary>Constant-time comparison of a presented secret with the stored hash.</summary>
    public static bool SecretMatches(string presentedSecret, string storedHash) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(HashSecret(presentedSecret)), Encoding.ASCII.GetBytes(storedHash));

    private static bool IsCaHash(string text) =>
        text.StartsWith("sha256:", StringComparison.Ordinal) && text.Length == 7 + 64 && text.AsSpan(7).ToString().All(char.IsAsciiHexDigitLower);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
