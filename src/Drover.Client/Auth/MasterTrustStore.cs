using System.Security.Cryptography.X509Certificates;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;

namespace Drover.Client.Auth;

/// <summary>
/// CAs pinned per master, kept with that master's login token (<see cref="TokenFiles"/>:
/// <c>$XDG_CONFIG_HOME/drover/masters/&lt;host&gt;_&lt;port&gt;/ca.pem</c>, 0600 in 0700 directories). A pinned CA is
/// trusted for that master only. <c>drover ca pin</c> (and <c>drover login</c>) pin through
/// <see cref="FetchAndPinAsync"/>, once the user has confirmed the fingerprint.
/// </summary>
public sealed class MasterTrustStore(TokenFiles files)
{
    public static MasterTrustStore ForUser() => new(TokenFiles.Default());

    /// <summary>The file holding <paramref name="master"/>'s pinned CA (whether or not it exists).</summary>
    public string PathFor(Uri master) => files.CaPath(master);

    /// <summary>The CA pinned for <paramref name="master"/>, or null.</summary>
    /// <exception cref="InvalidDataException">The file exists but holds no certificate.</exception>
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

    /// <summary>Pins <paramref name="caPem"/> for <paramref name="master"/> (replacing an earlier pin); returns the file.</summary>
    public Task<string> PinAsync(Uri master, string caPem, CancellationToken ct = default) =>
        PemCertificates.LoadAll(caPem).Succeeded ? files.WriteCaAsync(master, caPem, ct) : throw new ArgumentException("not PEM certificates", nameof(caPem));

    /// <summary>
    /// Fetches the CA <paramref name="master"/> publishes (unverified: <see cref="MasterTls.FetchCaAsync"/>), shows it
    /// (its SHA-256 fingerprint above all) through <paramref name="confirm"/>, and pins it if that returns true.
    /// Returns the CA's description and the pinned file (null when not confirmed).
    /// </summary>
    public async Task<(CaInfo Ca, string? PinnedPath)> FetchAndPinAsync(Uri master, Func<CaInfo, bool> confirm, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(confirm);
        var (_, info) = await MasterTls.FetchCaAsync(master, ct).ConfigureAwait(false);
        return confirm(info) ? (info, await PinAsync(master, info.Certificate, ct).ConfigureAwait(false)) : (info, null);
    }
}
