using System.Text;

namespace Drover.Client.Auth;

/// <summary>
/// Where <c>drover login</c> keeps login tokens: one directory per master under the user's configuration directory,
/// <c>$XDG_CONFIG_HOME/drover/masters/&lt;host&gt;_&lt;port&gt;/token</c> (<c>~/.config/drover/…</c> without
/// <c>XDG_CONFIG_HOME</c>). Directories are 0700 and the token file 0600, created that way (never briefly readable by
/// others) and replaced atomically. The per-master directory is also where that master's pinned CA belongs.
/// </summary>
public sealed class TokenFiles(string configDirectory)
{
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode FileMode600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The <c>drover</c> configuration directory: <c>$XDG_CONFIG_HOME/drover</c>, else <c>~/.config/drover</c>.</summary>
    public string ConfigDirectory { get; } = configDirectory;

    public static TokenFiles Default()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var root = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
            ? xdg // the XDG spec: a relative value is invalid and ignored
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return new TokenFiles(Path.Combine(root, "drover"));
    }

    /// <summary>The directory of one master, named by its host and port (the scheme does not matter: one port serves one of them).</summary>
    public string MasterDirectory(Uri master)
    {
        ArgumentNullException.ThrowIfNull(master);
        var name = new StringBuilder();
        foreach (var c in $"{master.IdnHost}_{master.Port}".ToLowerInvariant())
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_');
        }

        return Path.Combine(ConfigDirectory, "masters", name.ToString());
    }

    public string TokenPath(Uri master) => Path.Combine(MasterDirectory(master), "token");

    /// <summary>The stored token for <paramref name="master"/>, or null.</summary>
    public string? Read(Uri master)
    {
        var path = TokenPath(master);
        return File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } token ? token : null;
    }

    /// <summary>Stores <paramref name="token"/> for <paramref name="master"/> and returns the file's path.</summary>
    public Task<string> WriteAsync(Uri master, string token, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(token);
        return WritePrivateAsync(master, TokenPath(master), token + "\n", ct);
    }

    /// <summary>Where the CA pinned for <paramref name="master"/> is kept (<see cref="MasterTrustStore"/>).</summary>
    public string CaPath(Uri master) => Path.Combine(MasterDirectory(master), "ca.pem");

    /// <summary>Stores the pinned CA (PEM) for <paramref name="master"/> and returns the file's path.</summary>
    public Task<string> WriteCaAsync(Uri master, string caPem, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(caPem);
        return WritePrivateAsync(master, CaPath(master), caPem, ct);
    }

    /// <summary>Writes a file of <paramref name="master"/>'s directory, 0600 from its creation, replaced atomically.</summary>
    private async Task<string> WritePrivateAsync(Uri master, string path, string text, CancellationToken ct)
    {
        var directory = MasterDirectory(master);
        foreach (var d in new[] { ConfigDirectory, Path.Combine(ConfigDirectory, "masters"), directory })
        {
            Directory.CreateDirectory(d, DirectoryMode);
            File.SetUnixFileMode(d, DirectoryMode); // an existing directory is tightened too
        }

        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = FileMode600 };
        await using (var file = new FileStream(temporary, options))
        {
            File.SetUnixFileMode(temporary, FileMode600); // in case it existed with another mode
            await file.WriteAsync(Encoding.UTF8.GetBytes(text), ct).ConfigureAwait(false);
            await file.FlushAsync(ct).ConfigureAwait(false);
        }

        File.Move(temporary, path, overwrite: true);
        return path;
    }

    /// <summary>Removes the stored token for <paramref name="master"/>; false when there was none.</summary>
    public bool Delete(Uri master)
    {
        var path = TokenPath(master);
        if (!File.Exists(path))
        {
            return false;
        }

        File.Delete(path);
        return true;
    }
}
