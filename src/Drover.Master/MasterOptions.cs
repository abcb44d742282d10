using Drover.Placement;
using Drover.Store.Etcd;

namespace Drover.Master;

/// <summary>Master settings. Defaults suit a small cluster; every timeout is a setting so tests can shrink them.</summary>
public sealed record MasterOptions
{
    /// <summary>Where the master keeps its data (the embedded store arrives with durable state).</summary>
    public string DataDir { get; init; } = ".drover/master";

    /// <summary>How often agents heartbeat.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>No heartbeat for this long → the agent is unreachable and its tasks TASK_UNREACHABLE.</summary>
    public TimeSpan AgentUnreachableTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Unreachable for this long → the agent is removed and its tasks TASK_GONE.</summary>
    public TimeSpan AgentRemovalTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>A launch or kill the agent has not acted on after this long is sent again.</summary>
    public TimeSpan CommandResendAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Ended tasks kept for the API (Mesos' max_completed_tasks_per_framework).</summary>
    public int MaxCompletedTasks { get; init; } = 10_000;

    /// <summary>Upper bound of pending tasks considered by one placement pass.</summary>
    public int MaxPlacementBatch { get; init; } = 5_000;

    public PlacementStrategy Strategy { get; init; } = PlacementStrategy.BinPack;

    /// <summary>
    /// The etcd cluster holding all master state (<c>--store etcd://…</c>); null keeps the embedded
    /// SQLite store in <see cref="DataDir"/> (the default: one master).
    /// </summary>
    public EtcdEndpoints? Etcd { get; init; }

    /// <summary>Key prefix in etcd, so several Drover clusters can share one etcd (<c>--store-prefix</c>).</summary>
    public string StorePrefix { get; init; } = EtcdStoreOptions.DefaultPrefix;

    /// <summary>TTL of the leader's etcd lease (<c>--leader-lease</c>): how long a dead leader keeps the role.</summary>
    public TimeSpan LeaderLease { get; init; } = TimeSpan.FromSeconds(3);
}
