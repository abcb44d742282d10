using System.Data.Common;
using System.Globalization;
using Drover.Master;
using Drover.Store;
using Microsoft.Extensions.Logging;

namespace Drover.Cli.Hosting;

/// <summary>
/// What a master does with its store before it loads anything from it (docs/fault-tolerance.md, "Broken state"):
/// an empty or corrupt SQLite file, a lost store (no cluster id, but the data dir's marker names one) and a foreign
/// store (another cluster id) are refused with one line naming the store and the fix. With
/// <c>--recover-from-agents</c> a broken file is moved aside (<c>state.db.broken-&lt;UTC time&gt;</c>), a fresh store
/// gets the cluster id again, and <see cref="MasterOptions.RecoverFromAgents"/> is set. A new data dir with no
/// store is a new cluster. The caller holds the data dir's <see cref="DirectoryLock"/>.
/// </summary>
internal static class MasterStoreCheck
{
    public const string RecoverFlag = "--recover-from-agents";

    /// <summary>
    /// Checks (and for a new cluster creates) the store of a single master (SQLite, or etcd without an election) and
    /// returns the options to start with: <see cref="MasterOptions.ClusterId"/> set to the store's, and
    /// <see cref="MasterOptions.RecoverFromAgents"/> when it was rebuilt. Throws <see cref="HostStartException"/> when refused.
    /// </summary>
    public static async Task<MasterOptions> PrepareAsync(MasterOptions options, bool recover, TimeProvider time, ILogger logger, Action<string> announce, CancellationToken ct)
    {
        var name = StoreName(options);
        var movedAside = false;
        for (var attempt = 0; ; attempt++)
        {
            IStateStore store;
            try
            {
                store = MasterHost.OpenStore(options, time, logger);
            }
            catch (StateStoreCorruptException e) when (recover && attempt == 0)
            {
                announce(MoveAside(e.Path, e.Reason, time));
                movedAside = true;
                continue;
            }
            catch (StateStoreCorruptException e)
            {
                throw Refused(e.Message, e);
            }

            ClusterIdCheck check;
            DbException? unreadable = null;
            await using (store.ConfigureAwait(false))
            {
                try
                {
                    check = await ClusterIdentity.EnsureAsync(store, name, options.DataDir, options.ClusterId, recover, ct).ConfigureAwait(false);
                }
                catch (DbException e) when (options.Etcd is null)
                {
                    // The header read fine but a page did not: the same as a corrupt file (handled once the store is closed).
                    unreadable = e;
                    check = new ClusterIdCheck();
                }
                catch (IOException e) when (e is not StateStoreUnavailableException)
                {
                    throw new HostStartException($"cannot read {Path.Combine(options.DataDir, ClusterIdentity.MarkerFile)}: {e.Message}", e);
                }
            }

            if (unreadable is not null)
            {
                var reason = $"is not a readable Drover store (SQLite: {unreadable.Message})";
                if (!(recover && attempt == 0))
                {
                    throw Refused($"{SqlitePath(options)} {reason}", unreadable);
                }

                announce(MoveAside(SqlitePath(options), reason, time));
                movedAside = true;
                continue;
            }

            return Accept(options, check, recover, movedAside, announce);
        }
    }

    /// <summary>The same check for a highly available master, on the etcd store it already opened (before it campaigns).</summary>
    public static async Task<MasterOptions> PrepareAsync(MasterOptions options, IStateStore store, bool recover, CancellationToken ct, Action<string> announce)
    {
        ClusterIdCheck check;
        try
        {
            check = await ClusterIdentity.EnsureAsync(store, StoreName(options), options.DataDir, options.ClusterId, recover, ct).ConfigureAwait(false);
        }
        catch (IOException e) when (e is not StateStoreUnavailableException)
        {
            throw new HostStartException($"cannot read {Path.Combine(options.DataDir, ClusterIdentity.MarkerFile)}: {e.Message}", e);
        }

        return Accept(options, check, recover, movedAside: false, announce);
    }

    private static MasterOptions Accept(MasterOptions options, ClusterIdCheck check, bool recover, bool movedAside, Action<string> announce)
    {
        if (check.Problem != ClusterIdProblem.None)
        {
            var fix = check.Problem switch
            {
                ClusterIdProblem.Lost => $"restore the store from a backup, or start with {RecoverFlag} to rebuild the task list from what the agents report",
                ClusterIdProblem.Foreign when options.ClusterId is not null => "give the --cluster-id of the cluster this store and data dir belong to, or point the master at its own store",
                ClusterIdProblem.Foreign => $"point the master at its own cluster's store (or restore it from a backup); if this data dir is to serve that other cluster, remove {Path.Combine(options.DataDir, ClusterIdentity.MarkerFile)}",
                _ => $"restore it from a backup, or remove {Path.Combine(options.DataDir, ClusterIdentity.MarkerFile)} if the store is right",
            };
            throw new HostStartException($"refusing to start: {check.Reason}; {fix}", new InvalidDataException(check.Reason));
        }

        var rebuilt = movedAside || check.Recovered;
        if (recover && !rebuilt)
        {
            announce($"  {RecoverFlag}: the store is sound (cluster {check.ClusterId}); starting from it as usual");
        }
        else if (rebuilt)
        {
            announce($"  {RecoverFlag}: started a fresh store for cluster {check.ClusterId}; the task list is rebuilt from what the agents report");
        }

        return options with { ClusterId = check.ClusterId, RecoverFromAgents = rebuilt };
    }

    private static HostStartException Refused(string what, Exception inner) =>
        new($"refusing to start: {what}; restore it from a backup, or start with {RecoverFlag} to move it aside and rebuild the task list from what the agents report", inner);

    /// <summary>Moves the store file (and its WAL and shared-memory files) to <c>&lt;file&gt;.broken-&lt;UTC time&gt;</c>; never deletes it.</summary>
    private static string MoveAside(string path, string reason, TimeProvider time)
    {
        var aside = $"{path}.broken-{time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}";
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            if (File.Exists(path + suffix))
            {
                File.Move(path + suffix, aside + suffix);
            }
        }

        return $"  {RecoverFlag}: {path} {reason}; moved it to {aside}";
    }

    private static string SqlitePath(MasterOptions options) => Path.Combine(options.DataDir, MasterHost.StoreFileName);

    private static string StoreName(MasterOptions options) =>
        options.Etcd is { } etcd ? $"the etcd store {etcd} (prefix {options.StorePrefix})" : SqlitePath(options);
}
