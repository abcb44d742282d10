using System.Collections.Immutable;
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

    /// <summary>
    /// How long a task an agent runs but the master has no record of keeps running (reported on the agent's
    /// view and in metrics) before the master kills it (<c>--unknown-task-grace</c>). A master that lost its
    /// records must not kill the cluster's work on first sight (docs/fault-tolerance.md).
    /// </summary>
    public TimeSpan UnknownTaskGrace { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Ended tasks kept for the API (Mesos' max_completed_tasks_per_framework).</summary>
    public int MaxCompletedTasks { get; init; } = 10_000;

    /// <summary>Upper bound of pending tasks considered by one placement pass.</summary>
    public int MaxPlacementBatch { get; init; } = 5_000;

    public PlacementStrategy Strategy { get; init; } = PlacementStrategy.BinPack;

    /// <summary>Per-client request limits and the event stream's caps (<see cref="Overload.OverloadOptions"/>).</summary>
    public Overload.OverloadOptions Overload { get; init; } = new();

    /// <summary>Authentication, authorization and browser protections (<see cref="Security.SecurityOptions"/>): on by default.</summary>
    public Security.SecurityOptions Security { get; init; } = new();

    /// <summary>
    /// TLS and agent identities (docs/security.md): HTTPS with a certificate of the cluster CA (or the
    /// operator's), agents joining with tokens and calling with mutual TLS. Null serves plain HTTP with no
    /// agent identities: <c>drover dev</c> and <c>drover master --insecure</c>, loopback only.
    /// </summary>
    public Security.Pki.MasterTlsOptions? Tls { get; init; }

    /// <summary>
    /// The key-encryption key(s) of the secret store (<c>--secrets-key-file</c>, see <see cref="Secrets.SecretKeyRing"/>).
    /// Null: a single master generates one into <see cref="DataDir"/>; masters on etcd must be given the same file.
    /// </summary>
    public string? SecretsKeyFile { get; init; }

    /// <summary>
    /// The etcd cluster holding all master state (<c>--store etcd://…</c>); null keeps the embedded
    /// SQLite store in <see cref="DataDir"/> (the default: one master).
    /// </summary>
    public EtcdEndpoints? Etcd { get; init; }

    /// <summary>
    /// TLS to etcd (<c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c>): etcd's certificate is
    /// verified against these CAs only, and the client certificate is presented to etcd's
    /// <c>--client-cert-auth</c>. Set, <see cref="Etcd"/>'s endpoints are https; null is plain HTTP.
    /// </summary>
    public EtcdTlsOptions? StoreTls { get; init; }

    /// <summary>Key prefix in etcd, so several Drover clusters can share one etcd (<c>--store-prefix</c>).</summary>
    public string StorePrefix { get; init; } = EtcdStoreOptions.DefaultPrefix;

    /// <summary>
    /// The cluster this master serves (<see cref="Drover.Store.ClusterIdentity"/>). Before the store is checked at
    /// start, the one <c>--cluster-id</c> demands (null: any); after it, the store's, told to agents at
    /// registration so an agent of another cluster refuses this master. Null in hosts that skip the check (tests).
    /// </summary>
    public string? ClusterId { get; init; }

    /// <summary>
    /// The store was empty, corrupt or lost and <c>--recover-from-agents</c> started a fresh one (keeping the cluster
    /// id): the task list is to be rebuilt from what agents report instead of their unknown tasks being killed. For
    /// <see cref="AgentUnreachableTimeout"/> after the master starts, tasks agents report that it does not know are
    /// adopted as records (spec and ports from the agents' checkpoints) instead of waiting out
    /// <see cref="UnknownTaskGrace"/> (State/ClusterState.Reconcile.cs). App definitions are not recoverable this way.
    /// </summary>
    public bool RecoverFromAgents { get; init; }

    /// <summary>TTL of the leader's etcd lease (<c>--leader-lease</c>): how long a dead leader keeps the role.</summary>
    public TimeSpan LeaderLease { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The request body cap of every route that declares no limit of its own (<c>--max-request-body</c>, bytes); a larger
    /// body is a 413 (docs/limits.md). Routes with their own, smaller limits (login, secrets, IAM) keep them.
    /// </summary>
    public long MaxRequestBodyBytes { get; init; } = Drover.Core.Security.RequestLimits.DefaultMaxBody;

    // ---------------------------------------------------------------- Mesos scheduler API (src/Drover.Master/Mesos/README.md)

    /// <summary>An offer not accepted or declined within this long is rescinded and its resources go back (<c>--offer-timeout</c>).</summary>
    public TimeSpan OfferTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Between HEARTBEAT events on scheduler and operator streams (Mesos' default is 15 s).</summary>
    public TimeSpan SchedulerHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The longest time between allocator passes (they also run on every change that frees resources).</summary>
    public TimeSpan AllocationInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A pending built-in task submitted less than this long ago has first claim on free resources: the allocator
    /// offers only what such tasks do not need, and rescinds offers they need. Older pending tasks (those that
    /// cannot be placed for another reason, e.g. a constraint) no longer hold resources back from frameworks.
    /// </summary>
    public TimeSpan BuiltInPriorityWindow { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Weighted DRF weights by role (<c>--role-weights web=2,batch=1</c>); a role not listed weighs 1.</summary>
    public ImmutableDictionary<string, double> RoleWeights { get; init; } = ImmutableDictionary<string, double>.Empty;
}
