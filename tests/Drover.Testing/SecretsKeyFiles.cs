using System.Security.Cryptography;

namespace Drover.Testing;

/// <summary>Key files for <c>--secrets-key-file</c> (what masters sharing an etcd store must be given).</summary>
public static class SecretsKeyFiles
{
    /// <summary>Writes a new key file (one random 32-byte key, base64, mode 0600) at <paramref name="path"/> and returns the path.</summary>
    public static string Create(string path, int keys = 1)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var text = string.Concat(Enumerable.Range(0, keys).Select(_ => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) + "\n"));
        using (var f = new FileStream(path, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        {
            f.Write(System.Text.Encoding.ASCII.GetBytes(text));
        }

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }
}
