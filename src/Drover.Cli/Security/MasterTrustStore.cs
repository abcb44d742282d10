using System.Security.Cryptography.X509Certificates;
using Drover.Client;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;

namespace Drover.Cli.Security;

/// <summary>
/// CAs pinned per master in the user's configuration (<c>$XDG_CONFIG_HOME/drover/ca/</c>, else
/// <c>~/.config/drover/ca/</c>; one PEM file per master, named after its host and port, 0600 in a 0700
/// directory). A pinned CA is trusted for that master only. <c>drover ca pin</c> and <c>drover login</c>
/// pin through <see cref="FetchAndPinAsync"/>, after the user confirmed the fingerprint.
/// </summary>
public sealed class MasterTrustStore(string directory)
{
    /// <summary>The per-user store (<c>$XDG_CONFIG_HOME/drover/ca</c>, or <c>~/.config/drover/ca</c>).</summary>
    public static MasterTrustStore ForUser() => new(Path.Combine(ConfigDirectory(), "ca"));

    /// <summary><c>$XDG_CONFIG_HOME/drover</c>, or <c>~/.config/drover</c>: where the CLI keeps per-user state.</summary>
    public static string ConfigDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var baseDir = xdg is { Length: > 0 } && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(baseDir, "drover");
    }

    public string Directory { get; } = directory;

    /// <summary>The file holding <paramref name="master"/>'s pinned CA (whether or not it exists).</summary>
    public string PathFor(Uri master)
    {
        ArgumentNullException.ThrowIfNull(master);
        var name = $"{master.IdnHost.Trim('[', ']')}_{master.Port}".ToLowerInvariant();
        var safe = new string([.. name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_')]);
        return Path.Combine(Directory, safe + ".pem");
    }

    /// <summary>The CA pinned for <paramref name="master"/>, or null.</summary>
    public X509Certificate2Collection? Pinned(Uri master)
    {
        var path = PathFor(master);
        if (!File.Exists(path))
        {
            return null;
        }

        var roots = PemCertificates.LoadAll(File.ReadAllText(path));
        return roots.Succeeded ? roots.Value : throw new InvalidDataException($"the pinned CA {path} cannot be read ({roots.Error}); remove it and pin again");
    }

    /// <summary>Pins <paramref name="caPem"/> for <paramref name="master"/> (replacing an earlier pin).</summary>
    public string Pin(Uri master, string caPem)
    {
        if (!PemCertificates.LoadAll(caPem).Succeeded)
        {
            throw new ArgumentException("not PEM certificates", nameof(caPem));
        }

        System.IO.Directory.CreateDirectory(Directory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var path = PathFor(master);
        var tmp = path + ".tmp";
        File.Delete(tmp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var file = new FileStream(tmp, options))
        {
            file.Write(System.Text.Encoding.UTF8.GetBytes(caPem));
        }

        File.Move(tmp, path, overwrite: true);
        return path;
    }

    /// <summary>
    /// Fetches the CA <paramref name="master"/> publishes (unverified: <see cref="MasterTls.FetchCaAsync"/>), shows its
    /// SHA-256 fingerprint through <paramref name="confirm"/>, and pins it if that returns true. Returns the
    /// CA's description and the pinned file (null when not confirmed).
    /// </summary>
    public async Task<(CaInfo Ca, string? PinnedPath)> FetchAndPinAsync(Uri master, Func<CaInfo, bool> confirm, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(confirm);
        var (_, info) = await MasterTls.FetchCaAsync(master, ct).ConfigureAwait(false);
        return confirm(info) ? (info, Pin(master, info.Certificate)) : (info, null);
    }
}
