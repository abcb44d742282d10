using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Drover.Placement.Filters;
using Drover.Placement.Scorers;

namespace Drover.Placement;

/// <summary>
/// Decides which agent each task goes to. For every request: feasibility filters (schedulable → resources →
/// ports → constraints, cheapest first), then a 0–100 score for every feasible agent (bin-pack or spread),
/// then the highest score wins, ties to the lowest agent Id (ordinal). Requests are placed in order and each
/// placement consumes the agent's resources and ports for the rest of the batch.
/// Pure: no I/O, clock or randomness; the same snapshot and requests always give the same plan.
/// </summary>
public sealed class PlacementEngine
{
    private readonly PlacementOptions _options;
    private readonly RegexCache _regexes = new();

    public PlacementEngine(PlacementOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
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

        var state = new PlacementState(snapshot.Agents);
        var compiled = new List<CompiledConstraint>();
        foreach (var request in requests)
        {
            var need = new Need(request);
            compiled.Clear();
            foreach (var constraint in request.Constraints)
            {
                compiled.Add(ConstraintsFilter.Compile(constraint, request.Group, state, _regexes));
            }

            var constraints = CollectionsMarshal.AsSpan(compiled);
            var best = FindBest(state, need, constraints);
            if (best >= 0)
            {
                placed.Add(state.Place(best, request, need));
            }
            else
            {
                unplaced.Add(FailureReasons.Explain(state, request, need, constraints));
            }
        }

        return new PlacementPlan { Placed = placed.ToImmutable(), Unplaced = unplaced.ToImmutable() };
    }

    /// <summary>The position of the best feasible agent, or -1 when none is feasible.</summary>
    private int FindBest(PlacementState state, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var work = state.Work;
        var agents = state.Agents;
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
            if (score > bestScore || (score == bestScore && string.CompareOrdinal(agents[i].Id, agents[best].Id) < 0))
            {
                best = i;
                bestScore = score;
            }
        }

        return best;
    }
}
