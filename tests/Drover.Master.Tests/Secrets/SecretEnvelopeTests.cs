using System.Text;
using Drover.Master.Secrets;
using Drover.Testing;

namespace Drover.Master.Tests.Secrets;

/// <summary>
/// The envelope encryption of secret values: what goes in comes out, and every way of tampering with a sealed record
/// — a flipped bit, a record moved to another path, a data key moved to another secret, the wrong key-encryption key —
/// fails with a sentence instead of yielding bytes.
/// </summary>
public sealed class SecretEnvelopeTests
{
    private const string Path1 = "/drover/secrets/values/team-a/db";
    private const string Path2 = "/drover/secrets/values/team-b/db";
    private static readonly byte[] Value = Encoding.UTF8.GetBytes("s3cr3t-p4ssw0rd");

    [Fact]
    public void Open_SealedValue_ReturnsIt()
    {
        var ring = SecretKeyRing.Random();
        var sealedSecret = SecretEnvelope.Seal(ring, Path1, Value);

        var (value, error) = SecretEnvelope.Open(ring, Path1, sealedSecret);

        Assert.Null(error);
        Assert.Equal(Value, value);
        Assert.Equal(ring.Primary.Id, sealedSecret.KeyId);
    }

    [Fact]
    public void Seal_SameValueTwice_DifferentCiphertextsWithoutThePlaintext()
    {
        var ring = SecretKeyRing.Random();
        var a = SecretEnvelope.Seal(ring, Path1, Value);
        var b = SecretEnvelope.Seal(ring, Path1, Value);

        Assert.NotEqual(a.Ciphertext, b.Ciphertext); // a fresh data key and nonce each time
        Assert.NotEqual(a.WrappedKey, b.WrappedKey);
        Assert.False(Contains(a.Ciphertext, Value));
        Assert.False(Contains(a.WrappedKey, ring.Primary.Key));
    }

    [Theory]
    [InlineData(0)] // in the nonce
    [InlineData(12)] // in the ciphertext
    [InlineData(-1)] // in the tag
    public void Open_CiphertextBitFlipped_FailsAuthentication(int at)
    {
        var ring = SecretKeyRing.Random();
        var sealedSecret = SecretEnvelope.Seal(ring, Path1, Value);
        var tampered = (byte[])sealedSecret.Ciphertext.Clone();
        tampered[at < 0 ? tampered.Length + at : at] ^= 0x01;

        var (value, error) = SecretEnvelope.Open(ring, Path1, sealedSecret with { Ciphertext = tampered });

        Assert.Null(value);
        Assert.Contains("does not authenticate", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_WrappedKeyBitFlipped_FailsAuthentication()
    {
        var ring = SecretKeyRing.Random();
        var sealedSecret = SecretEnvelope.Seal(ring, Path1, Value);
        var tampered = (byte[])sealedSecret.WrappedKey.Clone();
        tampered[20] ^= 0x80;

        var (value, error) = SecretEnvelope.Open(ring, Path1, sealedSecret with { WrappedKey = tampered });

        Assert.Null(value);
        Assert.Contains("data key was altered", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_RecordMovedToAnotherPath_Fails()
    {
        var ring = SecretKeyRing.Random();
        var sealedSecret = SecretEnvelope.Seal(ring, Path1, Value);

        var (value, error) = SecretEnvelope.Open(ring, Path2, sealedSecret);

        Assert.Null(value);
        Assert.Contains("does not authenticate", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_DataKeyOfAnotherSecretSpliced_Fails()
    {
        var ring = SecretKeyRing.Random();
        var mine = SecretEnvelope.Seal(ring, Path1, Value);
        var theirs = SecretEnvelope.Seal(ring, Path2, "other"u8);

        // The attacker's own record at Path1 with team-b's wrapped data key: the key is bound to Path2.
        var (value, _) = SecretEnvelope.Open(ring, Path1, mine with { WrappedKey = theirs.WrappedKey });
        var (value2, _) = SecretEnvelope.Open(ring, Path1, theirs);

        Assert.Null(value);
        Assert.Null(value2);
    }

    [Fact]
    public void Open_WithAnotherKeyEncryptionKey_FailsNamingTheKeyId()
    {
        var sealedSecret = SecretEnvelope.Seal(SecretKeyRing.Random(), Path1, Value);
        var other = SecretKeyRing.Random();

        var (value, error) = SecretEnvelope.Open(other, Path1, sealedSecret);

        Assert.Null(value);
        Assert.Contains($"encrypted under key {sealedSecret.KeyId}", error, StringComparison.Ordinal);
        Assert.Contains("--secrets-key-file", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_KeyIdRelabelledToTheRingsKey_FailsAuthentication()
    {
        var sealedSecret = SecretEnvelope.Seal(SecretKeyRing.Random(), Path1, Value);
        var other = SecretKeyRing.Random();

        var (value, error) = SecretEnvelope.Open(other, Path1, sealedSecret with { KeyId = other.Primary.Id });

        Assert.Null(value);
        Assert.Contains("does not authenticate", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Rewrap_AfterRotation_NewKeyOpensItAndTheOldRingNoLonger()
    {
        var old = SecretKeyRing.Random();
        var sealedSecret = SecretEnvelope.Seal(old, Path1, Value);
        var rotated = new SecretKeyRing([SecretKeyRing.Random().Primary, old.Primary], "rotated");

        Assert.Equal(Value, SecretEnvelope.Open(rotated, Path1, sealedSecret).Value); // the old key still opens it
        var (rewrapped, error) = SecretEnvelope.Rewrap(rotated, Path1, sealedSecret);

        Assert.Null(error);
        Assert.Equal(rotated.Primary.Id, rewrapped!.KeyId);
        Assert.Equal(sealedSecret.Ciphertext, rewrapped.Ciphertext); // values are not re-encrypted
        Assert.Equal(Value, SecretEnvelope.Open(new SecretKeyRing([rotated.Primary], "new only"), Path1, rewrapped).Value);
        Assert.Null(SecretEnvelope.Open(old, Path1, rewrapped).Value);
    }

    [Fact]
    public void Load_KeyFileReadableByOthers_RefusedNamingTheFlagAndMode()
    {
        var dir = Directory.CreateTempSubdirectory("drover-kek-").FullName;
        try
        {
            var path = SecretsKeyFiles.Create(Path.Combine(dir, "k"));
            File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100); // 0644

            var (ring, error) = SecretKeyRing.Load(path);

            Assert.Null(ring);
            Assert.StartsWith($"--secrets-key-file {path}: others can read it (mode 644)", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("not base64!\n", "line 1 is not base64 of exactly 32 bytes")]
    [InlineData("# only a comment\n\n", "holds no key")]
    [InlineData("AAAA\n", "line 1 is not base64 of exactly 32 bytes")]
    public void Load_BadKeyFile_RefusedWithTheReason(string text, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("drover-kek-").FullName;
        try
        {
            var path = SecretsKeyFiles.Create(Path.Combine(dir, "k"));
            File.WriteAllText(path, text);

            var (ring, error) = SecretKeyRing.Load(path);

            Assert.Null(ring);
            Assert.Contains(expected, error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Load_TwoKeys_FirstIsPrimaryBothOpen()
    {
        var dir = Directory.CreateTempSubdirectory("drover-kek-").FullName;
        try
        {
            var path = SecretsKeyFiles.Create(Path.Combine(dir, "k"), keys: 2);

            var (ring, error) = SecretKeyRing.Load(path);

            Assert.Null(error);
            Assert.Equal(2, ring!.Keys.Length);
            Assert.Same(ring.Keys[0], ring.Primary);
            Assert.NotNull(ring.Find(ring.Keys[1].Id));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void LoadOrCreate_NoKeyYet_GeneratesOwnerOnlyFileAndKeepsIt()
    {
        var dir = Directory.CreateTempSubdirectory("drover-kek-").FullName;
        try
        {
            var (first, error) = SecretKeyRing.LoadOrCreate(dir);
            var file = Path.Combine(dir, SecretKeyRing.GeneratedFileName);

            Assert.Null(error);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            Assert.Equal(first!.Primary.Id, SecretKeyRing.LoadOrCreate(dir).Ring!.Primary.Id); // the same key on the next start
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
