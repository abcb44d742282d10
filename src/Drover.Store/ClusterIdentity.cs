using System.Text;

namespace Drover.Store;

/// <summary>Why a store is refused for a master's data dir.</summary>
public enum ClusterIdProblem
{
    None,

    /// <summary>The store has no cluster id, but the data dir's marker says this master served a cluster: the store was lost or wiped.</summary>
    Lost,

    /// <summary>The store belongs to another cluster than the marker or <c>--cluster-id</c> names.</summary>
    Foreign,

    /// <summary>The marker or the id in the store is not a valid cluster id.</summary>
    Invalid,
}

/// <summary>The outcome of <see cref="ClusterIdentity.EnsureAsync"/>: the cluster id, or why the store is refused.</summary>
public sealed record ClusterIdCheck
{
    /// <summary>The cluster this store and master serve; null when refused.</summary>
    public string? ClusterId { get; init; }

    /// <summary>True when this call wrote the id into the store (a new store, or one rebuilt after a loss).</summary>
    public bool Created { get; init; }

    /// <summary>True when the store was lost (the marker named a cluster it did not hold) and was given the marker's id again.</summary>
    public bool Recovered { get; init; }

    public ClusterIdProblem Problem { get; init; }

    /// <summary>One sentence naming what is wrong (without the fix); null when accepted.</summary>
    public string? Reason { get; init; }
}

/// <summary>
/// A store's cluster id: a random id written into a new store at creation (<see cref="Key"/>), and the marker file
/// <see cref="MarkerFile"/> in the master's data dir recording which cluster that master served. Together they tell
/// a lost or wiped store (no id, but the marker names one) and a foreign one (another id) from a new cluster (no
/// id, no marker), so a master never starts on a store that would make it forget or kill the cluster's tasks, as
/// Mesos' replicated registry refuses a log of another cluster.
/// <code>
///   store id   marker   --cluster-id   →
///   none       none     none / E       new cluster: write E or a random id into the store, then the marker
///   none       M        —              Lost (refused), unless recovering: write M (or E) into the store
///   S          none     none / S       accepted (an upgraded store has an id once a master wrote it); marker written
///   S          M ≠ S    —              Foreign
///   S          —        E ≠ S          Foreign
/// </code>
/// </summary>
public static class ClusterIdentity
{
    /// <summary>The store key holding the cluster id (UTF-8).</summary>
    public const string Key = "/drover/cluster/id";

    /// <summary>The marker in a master's data dir: the id of the cluster it served.</summary>
    public const string MarkerFile = "cluster-id";

    public const int MaxLength = 64;

    /// <summary>A fresh random cluster id (a UUID, as Mesos names its masters and frameworks).</summary>
    public static string NewId() => Guid.NewGuid().ToString();

    /// <summary>1–64 characters of letters, digits, '.', '_' and '-'.</summary>
    public static bool IsValid(string? id) =>
        id is { Length: > 0 and <= MaxLength } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>The id the data dir's marker records; null when there is none. An unreadable marker is an <see cref="IOException"/>.</summary>
    public static string? ReadMarker(string dataDir)
    {
        var path = Path.Combine(dataDir, MarkerFile);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    /// <summary>Writes the marker whole or not at all (temp file, flushed, renamed).</summary>
    public static void WriteMarker(string dataDir, string clusterId)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, MarkerFile);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            file.Write(Encoding.UTF8.GetBytes(clusterId + "\n"));
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Checks <paramref name="store"/> against the marker in <paramref name="dataDir"/> and <paramref name="expected"/>
    /// (<c>--cluster-id</c>), writing the id into a new store and the marker into the data dir when accepted (see the
    /// table above). <paramref name="recover"/>: a lost store is accepted and given the marker's id (or
    /// <paramref name="expected"/>). <paramref name="storeName"/> names the store in reasons (a file or etcd endpoints).
    /// </summary>
    public static async Task<ClusterIdCheck> EnsureAsync(IStateStore store, string storeName, string dataDir, string? expected, bool recover, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        var markerPath = Path.Combine(dataDir, MarkerFile);
        var marker = ReadMarker(dataDir);
        if (marker is not null && !IsValid(marker))
        {
            return Refuse(ClusterIdProblem.Invalid, $"{markerPath} does not hold a cluster id");
        }

        if (expected is not null && marker is not null && marker != expected)
        {
            return Refuse(ClusterIdProblem.Foreign, $"{markerPath} says this master served cluster {marker}, not cluster {expected} (--cluster-id)");
        }

        var created = false;
        var stored = await ReadAsync(store, ct).ConfigureAwait(false);
        if (stored is null)
        {
            if (marker is not null && !recover)
            {
                return Refuse(ClusterIdProblem.Lost, $"{storeName} has no cluster id, but {markerPath} says this master served cluster {marker}: the store was lost or wiped");
            }

            var id = marker ?? expected ?? NewId();
            // Create-if-absent: masters of a new highly available cluster racing here agree on the first one's id.
            created = await store.CompareAndSwapAsync(Key, 0, Encoding.UTF8.GetBytes(id), ct).ConfigureAwait(false);
            stored = created ? id : await ReadAsync(store, ct).ConfigureAwait(false);
        }

        if (!IsValid(stored))
        {
            return Refuse(ClusterIdProblem.Invalid, $"{storeName} holds '{stored}' under {Key}, which is not a cluster id");
        }

        if (marker is not null && marker != stored)
        {
            return Refuse(ClusterIdProblem.Foreign, $"{storeName} belongs to cluster {stored}, but {markerPath} says this master served cluster {marker}");
        }

        if (expected is not null && expected != stored)
        {
            return Refuse(ClusterIdProblem.Foreign, $"{storeName} belongs to cluster {stored}, not cluster {expected} (--cluster-id)");
        }

        if (marker != stored)
        {
            WriteMarker(dataDir, stored!);
        }

        return new ClusterIdCheck { ClusterId = stored, Created = created, Recovered = created && marker is not null };
    }

    private static async Task<string?> ReadAsync(IStateStore store, CancellationToken ct) =>
        await store.GetAsync(Key, ct).ConfigureAwait(false) is { } entry ? Encoding.UTF8.GetString(entry.Value) : null;

    private static ClusterIdCheck Refuse(ClusterIdProblem problem, string reason) => new() { Problem = problem, Reason = reason };
}
