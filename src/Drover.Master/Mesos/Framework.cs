using Drover.Core.Mesos;
using System.Collections.Immutable;
using System.Threading.Channels;
using Drover.Core;

namespace Drover.Master.Mesos;

/// <summary>
/// One SUBSCRIBE response stream: events are queued as encoded JSON and written in RecordIO framing by the
/// request that subscribed. Thread-safe. Bounded: a scheduler that stops reading is disconnected (it
/// re-subscribes and gets its unacknowledged updates again) rather than growing the master's memory.
/// </summary>
internal sealed class SchedulerStream
{
    public const int MaxQueued = 50_000;

    private readonly Channel<byte[]> _events = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(MaxQueued) { SingleReader = true });

    public string Id { get; } = Guid.NewGuid().ToString();

    public ChannelReader<byte[]> Reader => _events.Reader;

    /// <summary>Queues an event; a full queue closes the stream.</summary>
    public void Send(byte[] encoded)
    {
        if (!_events.Writer.TryWrite(encoded))
        {
            Close();
        }
    }

    public void Close() => _events.Writer.TryComplete();
}

/// <summary>An outstanding offer: resources held on one agent for one framework (and one of its roles).</summary>
internal sealed record Offer(string Id, string FrameworkId, string AgentId, string Hostname, Resources Resources, string Role, DateTimeOffset CreatedAt);

/// <summary>A refusal of <paramref name="Resources"/> on one agent until <paramref name="Until"/> (Mesos' offer filter).</summary>
internal sealed record OfferFilter(Resources Resources, DateTimeOffset Until);

/// <summary>An inverse offer sent for an agent's drain (one per framework, agent and drain).</summary>
internal sealed record InverseOffer(string Id, string AgentId, DateTimeOffset DrainStartedAt);

/// <summary>The master's record of one framework. Mutable; only touched under <see cref="FrameworkManager"/>'s lock.</summary>
internal sealed class Framework(string id, MFrameworkInfo info, DateTimeOffset registeredAt)
{
    public const int MaxUnacknowledged = 10_000;

    public string Id { get; } = id;

    public MFrameworkInfo Info { get; set; } = info;

    public DateTimeOffset RegisteredAt { get; } = registeredAt;

    public DateTimeOffset? ReregisteredAt { get; set; }

    public SchedulerStream? Stream { get; set; }

    /// <summary>When the scheduler's stream dropped (or the master restarted); null while connected.</summary>
    public DateTimeOffset? DisconnectedAt { get; set; }

    /// <summary>Recovered from the store and not yet re-subscribed since the master started.</summary>
    public bool Recovered { get; set; }

    public ImmutableArray<string> Roles => RolesOf(Info);

    public ImmutableHashSet<string> Capabilities =>
        [.. (Info.Capabilities ?? []).Select(c => c.Type ?? "").Where(c => c.Length > 0)];

    public bool PartitionAware => Capabilities.Contains("PARTITION_AWARE");

    public bool TaskKillingState => Capabilities.Contains("TASK_KILLING_STATE");

    public TimeSpan FailoverTimeout
    {
        get
        {
            var asked = Info.FailoverTimeout is { } s && double.IsFinite(s) && s > 0
                ? TimeSpan.FromSeconds(Math.Min(s, TimeSpan.MaxValue.TotalSeconds / 4)) : TimeSpan.Zero;
            return asked > MinimumFailover ? asked : MinimumFailover;
        }
    }

    /// <summary>A floor on <see cref="FailoverTimeout"/> for a framework recovered after a master restart, until it re-subscribes.</summary>
    public TimeSpan MinimumFailover { get; set; }

    public HashSet<string> SuppressedRoles { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Offer filters by agent (Mesos' DECLINE / ACCEPT <c>filters.refuse_seconds</c>): each covers the resources the
    /// framework declined or left unused there, until it expires. The agent is not offered to the framework while
    /// what it has to offer is contained in an unexpired filter; once more is free there (a task ended), it is.
    /// </summary>
    public Dictionary<string, List<OfferFilter>> Filters { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, Offer> Offers { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Resources of accepted offers whose tasks are being created (between the ACCEPT's validation and the
    /// ledger's launch), so DRF still counts them in that gap.
    /// </summary>
    public Resources Launching { get; set; } = Resources.Zero;

    public Dictionary<string, InverseOffer> InverseOffers { get; } = new(StringComparer.Ordinal);

    /// <summary>Updates sent and not acknowledged, by uuid, in the order sent.</summary>
    public List<MTaskStatus> Unacknowledged { get; } = [];

    public bool Connected => Stream is not null;

    /// <summary>
    /// The write of the framework's first checkpoint: its id counts as issued once that is durable, so the first
    /// SUBSCRIBE answers only after it (a restarted master must know every id it handed out). Completed otherwise.
    /// </summary>
    public Task Issued { get; set; } = Task.CompletedTask;

    /// <summary>Mesos' rule: <c>roles</c> (MULTI_ROLE frameworks) else the legacy <c>role</c>, else "*".</summary>
    public static ImmutableArray<string> RolesOf(MFrameworkInfo info) =>
        info.Roles is { Count: > 0 } roles ? [.. roles.Distinct(StringComparer.Ordinal)] : [info.Role is { Length: > 0 } r ? r : "*"];

    public PersistedFramework ToPersisted() => new()
    {
        Info = Info,
        RegisteredAt = RegisteredAt,
        DisconnectedAt = DisconnectedAt,
        Unacknowledged = Unacknowledged.Count == 0 ? null : [.. Unacknowledged],
    };
}

/// <summary>A framework as DRF sees it: its roles and what it holds (live tasks plus outstanding offers).</summary>
internal sealed record DrfClient(string FrameworkId, ImmutableArray<string> Roles, Resources Allocation);

/// <summary>
/// Weighted Dominant Resource Fairness, two levels as Mesos' hierarchical allocator: first the role with the
/// lowest weighted dominant share, then within it the framework with the lowest dominant share. A framework
/// in several roles counts its whole allocation in each (Drover does not track which role a task used).
/// Pure and deterministic: ties go to the lexically smaller id.
/// </summary>
internal static class Drf
{
    /// <summary>max over cpus, mem, disk and gpus of allocated / cluster total (kinds the cluster lacks are skipped).</summary>
    public static double DominantShare(Resources allocation, Resources total)
    {
        static double Part(long a, long t) => t <= 0 ? 0 : (double)a / t;
        return Math.Max(Math.Max(Part(allocation.MilliCpus, total.MilliCpus), Part(allocation.MemMiB, total.MemMiB)),
            Math.Max(Part(allocation.DiskMiB, total.DiskMiB), Part(allocation.Gpus, total.Gpus)));
    }

    /// <summary>The (framework, role) to offer to next, or null when there is no candidate.</summary>
    public static (string FrameworkId, string Role)? Next(IReadOnlyList<DrfClient> candidates, IReadOnlyList<DrfClient> all, Func<string, double> weight, Resources total)
    {
        if (candidates.Count == 0)
        {
            return null;
        }

        var roleAllocation = new Dictionary<string, Resources>(StringComparer.Ordinal);
        foreach (var c in all)
        {
            foreach (var r in c.Roles)
            {
                roleAllocation[r] = roleAllocation.GetValueOrDefault(r, Resources.Zero).Add(c.Allocation with { Ports = PortRanges.Empty });
            }
        }

        var role = candidates.SelectMany(c => c.Roles).Distinct(StringComparer.Ordinal)
            .OrderBy(r => DominantShare(roleAllocation.GetValueOrDefault(r, Resources.Zero), total) / Math.Max(weight(r), 1e-9))
            .ThenBy(r => r, StringComparer.Ordinal)
            .First();
        var framework = candidates.Where(c => c.Roles.Contains(role))
            .OrderBy(c => DominantShare(c.Allocation, total))
            .ThenBy(c => c.FrameworkId, StringComparer.Ordinal)
            .First();
        return (framework.FrameworkId, role);
    }
}
