using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;

namespace Drover.Master.Secrets;

/// <summary>One key-encryption key (KEK): 32 random bytes (AES-256) and the id stored with what it wraps.</summary>
public sealed record KeyEncryptionKey(string Id, byte[] Key)
{
    /// <summary>
    /// The id of a key: the first 8 bytes of SHA-256 over a label and the key, in hex. Stored with each wrapped
    /// data key, so a master tells "wrapped under a key I do not hold" from "tampered" and rotation knows what to re-wrap.
    /// It reveals nothing of the key (a one-way hash of 256 random bits).
    /// </summary>
    public static string IdOf(byte[] key) =>
        Convert.ToHexStringLower(SHA256.HashData([.. "drover-secrets-kek-id\n"u8, .. key]))[..16];
}

/// <summary>
/// The key-encryption keys a master holds: the first (<see cref="Primary"/>) wraps every new data key, the others
/// only unwrap what older keys wrapped until the master re-wraps it (rotation, docs/security.md).
/// <para>
/// The file (<c>--secrets-key-file</c>) holds one key per line, base64 of exactly 32 random bytes
/// (<c>head -c 32 /dev/urandom | base64</c>); blank lines and lines starting with <c>#</c> are ignored. It must not
/// be readable by group or others. Without the flag a single master generates <see cref="GeneratedFileName"/> in its
/// data dir (mode 0600) on its first start; masters sharing an etcd store must share one key file instead.
/// </para>
/// </summary>
public sealed class SecretKeyRing
{
    public const string GeneratedFileName = "secrets.key";

    public const int KeyBytes = 32;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly ImmutableDictionary<string, KeyEncryptionKey> _byId;

    public SecretKeyRing(IReadOnlyList<KeyEncryptionKey> keys, string source)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Count == 0)
        {
            throw new ArgumentException("a key ring needs at least one key", nameof(keys));
        }

        Keys = [.. keys];
        Source = source;
        _byId = keys.GroupBy(k => k.Id, StringComparer.Ordinal).ToImmutableDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
    }

    /// <summary>The key new secrets are wrapped under.</summary>
    public KeyEncryptionKey Primary => Keys[0];

    public ImmutableArray<KeyEncryptionKey> Keys { get; }

    /// <summary>Where the keys came from (a file path), for error messages.</summary>
    public string Source { get; }

    public KeyEncryptionKey? Find(string id) => _byId.GetValueOrDefault(id);

    /// <summary>A ring of fresh random keys, for tests.</summary>
    public static SecretKeyRing Random(int count = 1) =>
        new([.. Enumerable.Range(0, count).Select(_ => RandomNumberGenerator.GetBytes(KeyBytes)).Select(k => new KeyEncryptionKey(KeyEncryptionKey.IdOf(k), k))], "(random)");

    /// <summary>The text of a key file holding one new random key.</summary>
    public static string NewKeyFileText() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(KeyBytes)) + "\n";

    /// <summary>
    /// Reads <paramref name="path"/> (<c>--secrets-key-file</c>). An unusable file is the operator's to fix: the
    /// answer is null and one sentence naming the flag, the file and what is wrong.
    /// </summary>
    public static (SecretKeyRing? Ring, string? Error) Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        const string Flag = "--secrets-key-file";
        if (!File.Exists(path))
        {
            return (null, $"{Flag} {path}: no such file (make one with: (umask 077; head -c 32 /dev/urandom | base64 > {path}))");
        }

        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & ~(OwnerOnly | UnixFileMode.UserExecute)) != 0)
        {
            return (null, $"{Flag} {path}: others can read it (mode {Convert.ToString((int)File.GetUnixFileMode(path), 8)}); it must be readable by its owner only: chmod 600 {path}");
        }

        string[] lines;
        try
        {
            lines = File.ReadAllLines(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, $"{Flag} {path}: cannot be read: {e.Message}");
        }

        var keys = new List<KeyEncryptionKey>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var key = new byte[KeyBytes + 1];
            if (!Convert.TryFromBase64String(line, key, out var written) || written != KeyBytes)
            {
                return (null, $"{Flag} {path}: line {i + 1} is not base64 of exactly {KeyBytes} bytes (make a key with: head -c 32 /dev/urandom | base64)");
            }

            key = key[..KeyBytes];
            keys.Add(new KeyEncryptionKey(KeyEncryptionKey.IdOf(key), key));
        }

        return keys.Count == 0
            ? (null, $"{Flag} {path}: holds no key (one base64 line of {KeyBytes} random bytes: head -c 32 /dev/urandom | base64)")
            : (new SecretKeyRing(keys, path), null);
    }

    /// <summary>
    /// A single master without <c>--secrets-key-file</c>: the key in <c>{dataDir}/</c><see cref="GeneratedFileName"/>,
    /// made there (0600, written beside and renamed into place) on the first start.
    /// </summary>
    public static (SecretKeyRing? Ring, string? Error) LoadOrCreate(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, GeneratedFileName);
        if (!File.Exists(path))
        {
            Security.PrivateFile.Write(path, Encoding.ASCII.GetBytes(
                "# Drover secrets key-encryption key (generated; back it up with the state store: without it no secret can be read)\n" + NewKeyFileText()),
                overwrite: false);
        }

        return Load(path);
    }
}
