using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;

namespace Drover.Master.Secrets;

/// <summary>
/// A secret as stored: its value encrypted under a data key of its own, that data key wrapped by a key-encryption
/// key (<see cref="KeyId"/>), and metadata. Everything but the metadata is authenticated.
/// </summary>
public sealed record SealedSecret
{
    public const int CurrentVersion = 1;

    /// <summary>The format version (<see cref="CurrentVersion"/>), part of the associated data.</summary>
    public required int V { get; init; }

    /// <summary>The id of the key-encryption key that wrapped <see cref="WrappedKey"/> (<see cref="KeyEncryptionKey.IdOf"/>).</summary>
    public required string KeyId { get; init; }

    /// <summary>The data key, AES-256-GCM-encrypted by the KEK: nonce (12) ‖ ciphertext (32) ‖ tag (16).</summary>
    public required byte[] WrappedKey { get; init; }

    /// <summary>The value, AES-256-GCM-encrypted by the data key: nonce (12) ‖ ciphertext ‖ tag (16).</summary>
    public required byte[] Ciphertext { get; init; }

    /// <summary>Who stored it (a uid), when, and what for: shown by the API, not authenticated.</summary>
    public string? Author { get; init; }

    public DateTimeOffset Created { get; init; }

    public DateTimeOffset Updated { get; init; }

    public string? Description { get; init; }
}

/// <summary>
/// Envelope encryption of secret values (pure; <see cref="System.Security.Cryptography.AesGcm"/>):
/// <list type="bullet">
/// <item>each value gets a fresh random 256-bit data key and a random 96-bit nonce: AES-256-GCM, associated data
/// <c>"drover-secret\n" ‖ version ‖ "\n" ‖ binding</c>;</item>
/// <item>the data key is wrapped by the primary key-encryption key (AES-256-GCM, random nonce), associated data
/// <c>"drover-data-key\n" ‖ version ‖ "\n" ‖ binding ‖ "\n" ‖ key id</c>.</item>
/// </list>
/// The binding is the secret's store key (its path), so a ciphertext copied or moved to another path, or a data key
/// moved to another secret, fails to open; a flipped bit anywhere fails the tag. Rotating the KEK re-wraps data keys
/// only (<see cref="Rewrap"/>); values are never re-encrypted. A data key encrypts one value once, so nonce reuse
/// under it cannot happen, and a KEK wraps one 32-byte key per write, far below AES-GCM's random-nonce limit.
/// </summary>
public static class SecretEnvelope
{
    private const int KeyBytes = 32;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    public static SealedSecret Seal(SecretKeyRing ring, string binding, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(binding);
        var kek = ring.Primary;
        var dataKey = RandomNumberGenerator.GetBytes(KeyBytes);
        try
        {
            return new SealedSecret
            {
                V = SealedSecret.CurrentVersion,
                KeyId = kek.Id,
                WrappedKey = Encrypt(kek.Key, dataKey, KeyAd(binding, kek.Id)),
                Ciphertext = Encrypt(dataKey, value, ValueAd(binding)),
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>
    /// The value, or null with a sentence: the KEK is not in the ring (another key file?), or the record does not
    /// authenticate (tampered, moved to another path, or wrapped by a different key with the same id — impossible
    /// unless SHA-256 collides).
    /// </summary>
    public static (byte[]? Value, string? Error) Open(SecretKeyRing ring, string binding, SealedSecret sealedSecret)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(sealedSecret);
        var (dataKey, error) = UnwrapKey(ring, binding, sealedSecret);
        if (dataKey is null)
        {
            return (null, error);
        }

        try
        {
            var value = Decrypt(dataKey, sealedSecret.Ciphertext, ValueAd(binding));
            return value is null
                ? (null, $"secret '{binding}' does not authenticate: its ciphertext was altered, or moved from another path")
                : (value, null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>The record with its data key wrapped by the ring's primary key instead (rotation); the ciphertext is unchanged.</summary>
    public static (SealedSecret? Rewrapped, string? Error) Rewrap(SecretKeyRing ring, string binding, SealedSecret sealedSecret)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(sealedSecret);
        var (dataKey, error) = UnwrapKey(ring, binding, sealedSecret);
        if (dataKey is null)
        {
            return (null, error);
        }

        try
        {
            var kek = ring.Primary;
            return (sealedSecret with { KeyId = kek.Id, WrappedKey = Encrypt(kek.Key, dataKey, KeyAd(binding, kek.Id)) }, null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private static (byte[]? DataKey, string? Error) UnwrapKey(SecretKeyRing ring, string binding, SealedSecret s)
    {
        if (s.V != SealedSecret.CurrentVersion)
        {
            return (null, $"secret '{binding}' is in format version {s.V}, which this master does not read");
        }

        if (ring.Find(s.KeyId) is not { } kek)
        {
            return (null, $"secret '{binding}' was encrypted under key {s.KeyId}, which {ring.Source} does not hold (was the master started with another --secrets-key-file?)");
        }

        var dataKey = Decrypt(kek.Key, s.WrappedKey, KeyAd(binding, kek.Id));
        if (dataKey is null || dataKey.Length != KeyBytes)
        {
            return (null, $"secret '{binding}' does not authenticate under key {kek.Id}: its data key was altered, or the record moved from another path");
        }

        return (dataKey, null);
    }

    private static byte[] Encrypt(byte[] key, ReadOnlySpan<byte> plaintext, byte[] associatedData)
    {
        var output = new byte[NonceBytes + plaintext.Length + TagBytes];
        var nonce = output.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(key, TagBytes);
        gcm.Encrypt(nonce, plaintext, output.AsSpan(NonceBytes, plaintext.Length), output.AsSpan(NonceBytes + plaintext.Length), associatedData);
        return output;
    }

    /// <summary>The plaintext, or null when the input does not authenticate (or is too short to be ours).</summary>
    private static byte[]? Decrypt(byte[] key, byte[]? input, byte[] associatedData)
    {
        if (input is null || input.Length < NonceBytes + TagBytes)
        {
            return null;
        }

        var length = input.Length - NonceBytes - TagBytes;
        var plaintext = new byte[length];
        try
        {
            using var gcm = new AesGcm(key, TagBytes);
            gcm.Decrypt(input.AsSpan(0, NonceBytes), input.AsSpan(NonceBytes, length), input.AsSpan(NonceBytes + length), plaintext, associatedData);
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    private static byte[] ValueAd(string binding) => Encoding.UTF8.GetBytes($"drover-secret\n{SealedSecret.CurrentVersion}\n{binding}");

    private static byte[] KeyAd(string binding, string keyId) => Encoding.UTF8.GetBytes($"drover-data-key\n{SealedSecret.CurrentVersion}\n{binding}\n{keyId}");
}

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SealedSecret))]
internal sealed partial class SecretStoreJsonContext : JsonSerializerContext;
