using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Drover.Core;
using Drover.Placement.Filters;
using Drover.Placement.Index;
using Drover.Placement.Scorers;

namespace Drover.Placement;

/// <summary>
/// Decides which agent each task goes to. For every request: feasibility filters (schedulable → resources →
/// ports → constraints, cheapest first), then a 0–100 score for every feasible agent (bin-pack or spread),
/// then the highest score wins, ties to the lowest agent Id (ordinal). Requests are placed in order and each
/// placement consumes the agent's resources and ports for the rest of the batch.
/// Pure: no I/O, clock or randomness; the same snapshot and requests always give the same plan.
/// <para>
/// The choice is made without looking at every agent (see <see cref="AgentIndex"/> and the README), but it is
/// the same agent a scan of every agent would choose; the engine scans every agent instead for small
/// clusters, and that scan is the reference the tests compare against.
/// </para>
/// </summary>
public sealed class PlacementEngine
{
    /// <summary>Below this many agents a scan is cheaper than building the index.</summary>
    internal const int DefaultIndexFromAgents = 128;

    private readonly PlacementOptions _options;
    private readonly int _indexFromAgents;
    private readonly RegexCache _regexes = new();

    public PlacementEngine(PlacementOptions options)
        : this(options, DefaultIndexFromAgents)
    {
    }

    /// <param name="indexFromAgents">
    /// Use the index for snapshots of at least this many agents; <see cref="int.MaxValue"/> scans every agent for
    /// every request (the reference the index is tested against), 0 always uses the index.
    /// </param>
    internal PlacementEngine(PlacementOptions options, int indexFromAgents)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _indexFromAgents = indexFromAgents;
    }

    public PlacementPlan Place(ClusterSnapshot snapshot, IReadOnlyList<PlacementRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(requests);

        var placed = ImmutableArray.CreateBuilder<PlacementDecision>(requests.Count);
        var unplaced = ImmutableArray.CreateBuilder<PlacementFailure>();
        if (snapshot.Agents.IsDefaultOrEmpty)
        {
            foreach (var request in requests)
            {
                unplaced.Add(new PlacementFailure { TaskId = request.TaskId, Reason = FailureReasons.NoAgents });
            }

            return new PlacementPlan { Placed = placed.ToImmutable(), Unplaced = unplaced.ToImmutable() };
        }

        // What the constraints will ask about, so one walk over the agents' records reads it all.
        var fields = new HashSet<string>(StringComparer.Ordinal);
        var countedGroups = new HashSet<string>(StringComparer.Ordinal);
        foreach (var request in requests)
        {
            foreach (var constraint in request.Constraints)
            {
                fields.Add(constraint.Field);
                if (constraint.Operator is ConstraintOperator.Unique or ConstraintOperator.MaxPer or ConstraintOperator.GroupBy
                    || (constraint.Operator == ConstraintOperator.Cluster && constraint.Value is null))
                {
                    countedGroups.Add(request.Group);
                }
            }
        }

        var ordered = LargestFirst(snapshot, requests);
        var state = new PlacementState(snapshot.Agents, fields, countedGroups);
        var index = snapshot.Agents.Length >= _indexFromAgents ? new AgentIndex(state, _options.Strategy) : null;
        var compiled = new List<CompiledConstraint>();
        var signature = new RequestSignature();
        foreach (var request in ordered)
        {
            var need = new Need(request);
            compiled.Clear();
            foreach (var constraint in request.Constraints)
            {
                compiled.Add(ConstraintsFilter.Compile(constraint, request.Group, state, _regexes));
            }

            var constraints = CollectionsMarshal.AsSpan(compiled);

            // Masks of agents rejected by constraints hold only while group and constraints stay the same.
            var same = signature.Matches(request, constraints);
            if (!same)
            {
                index?.ClearMasks();
                signature.Set(request, constraints);
            }

            var best = index is null ? FindBestLinear(state, need, constraints) : index.FindBest(need, constraints);
            if (best >= 0)
            {
                placed.Add(state.Place(best, request, need));
                index?.Update(best);
            }
            else if (signature.LastFailure(need, state.Version) is { } again)
            {
                // Nothing changed since the same request failed: the same explanation (it is a full scan).
                unplaced.Add(again with { TaskId = request.TaskId });
            }
            else
            {
                var failure = FailureReasons.Explain(state, request, need, constraints);
                signature.SetFailure(need, state.Version, failure);
                unplaced.Add(failure);
            }
        }

        return new PlacementPlan { Placed = placed.ToImmutable(), Unplaced = unplaced.ToImmutable() };
    }

    /// <summary>
    /// The order requests are placed in: largest first (first-fit decreasing), so a large task is not left
    /// without room by the small ones of the same pass, which fill the gaps after it instead. Size is the
    /// request's share of the cluster's total cpus + memory + disk + gpus (dimensions the cluster has none of
    /// are ignored); equal sizes keep their order, so an app's instances stay together. Deterministic: the
    /// same input gives the same doubles and the same order.
    /// </summary>
    internal static IReadOnlyList<PlacementRequest> LargestFirst(ClusterSnapshot snapshot, IReadOnlyList<PlacementRequest> requests)
    {
        if (requests.Count < 2)
        {
            return requests;
        }

        double cpu = 0, mem = 0, disk = 0, gpus = 0;
        foreach (var agent in snapshot.Agents)
        {
            cpu += Math.Max(0, agent.Total.MilliCpus);
            mem += Math.Max(0, agent.Total.MemMiB);
            disk += Math.Max(0, agent.Total.DiskMiB);
            gpus += Math.Max(0, agent.Total.Gpus);
        }

        static double Share(long need, double total) => total > 0 ? Math.Max(0, need) / total : 0;
        var keys = new double[requests.Count];
        var order = new int[requests.Count];
        var sorted = true;
        for (var i = 0; i < requests.Count; i++)
        {
            var r = requests[i].Resources;
            keys[i] = Share(r.MilliCpus, cpu) + Share(r.MemMiB, mem) + Share(r.DiskMiB, disk) + Share(r.Gpus, gpus);
            order[i] = i;
            sorted &= i == 0 || keys[i] <= keys[i - 1];
        }

        if (sorted)
        {
            return requests; // the common case: one app's instances, all the same size
        }

        Array.Sort(order, (a, b) => keys[a] != keys[b] ? keys[b].CompareTo(keys[a]) : a.CompareTo(b));
        var result = new PlacementRequest[order.Length];
        for (var i = 0; i < order.Length; i++)
        {
            result[i] = requests[order[i]];
        }

        return result;
    }

    /// <summary>The reference: scores every feasible agent. The position of the best, or -1 when none is feasible.</summary>
    private int FindBestLinear(PlacementState state, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var work = state.Work;
        var ids = state.Ids;
        var spread = _options.Strategy == PlacementStrategy.Spread;
        var best = -1;
        var bestScore = double.NegativeInfinity;
        for (var i = 0; i < work.Length; i++)
        {
            ref readonly var agent = ref work[i];
            if (!SchedulableFilter.Accepts(agent)
                || !ResourcesFilter.Accepts(agent, need)
                || !PortsFilter.Accepts(agent, need)
                || ConstraintsFilter.FirstViolated(constraints, i) >= 0)
            {
                continue;
            }

            var score = spread ? SpreadScorer.Score(agent, need) : BinPackScorer.Score(agent, need);
            if (score > bestScore || (score == bestScore && string.CompareOrdinal(ids[i], ids[best]) < 0))
            {
                best = i;
                bestScore = score;
            }
        }

        return best;
    }

    /// <summary>
    /// Group, constraints and their compiled thresholds (GROUP_BY's least count, whether CLUSTER follows
    /// tasks yet) of the previous request: while they stay the same, an agent a constraint rejected stays
    /// rejected (counts only grow within a pass), so the tree may leave it out.
    /// </summary>
    private sealed class RequestSignature
    {
        private readonly List<int> _thresholds = [];
        private string? _group;
        private ImmutableArray<Constraint> _constraints;
        private Need _need;
        private PlacementFailure? _failure;
        private int _failureVersion;

        public bool Matches(PlacementRequest request, ReadOnlySpan<CompiledConstraint> compiled)
        {
            if (_group is null || _thresholds.Count != compiled.Length)
            {
                return false;
            }

            if (compiled.Length == 0)
            {
                return true;
            }

            if (!string.Equals(_group, request.Group, StringComparison.Ordinal))
            {
                return false;
            }

            if (_constraints != request.Constraints && !_constraints.AsSpan().SequenceEqual(request.Constraints.AsSpan()))
            {
                return false;
            }

            for (var i = 0; i < compiled.Length; i++)
            {
                if (_thresholds[i] != compiled[i].Threshold)
                {
                    return false;
                }
            }

            return true;
        }

        public void Set(PlacementRequest request, ReadOnlySpan<CompiledConstraint> compiled)
        {
            _group = request.Group;
            _constraints = request.Constraints;
            _thresholds.Clear();
            foreach (var c in compiled)
            {
                _thresholds.Add(c.Threshold);
            }

            _failure = null;
        }

        /// <summary>The failure of a request with this signature and <paramref name="need"/> when nothing was placed since.</summary>
        public PlacementFailure? LastFailure(in Need need, int version) =>
            _failure is not null && _failureVersion == version
            && need.Cpu == _need.Cpu && need.Mem == _need.Mem && need.Disk == _need.Disk && need.Gpus == _need.Gpus && need.PortCount == _need.PortCount
                ? _failure
                : null;

        public void SetFailure(in Need need, int version, PlacementFailure failure)
        {
            _need = need;
            _failureVersion = version;
            _failure = failure;
        }
    }
}
