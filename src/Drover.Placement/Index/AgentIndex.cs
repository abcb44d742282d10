using Drover.Placement.Filters;
using Drover.Placement.Scorers;

namespace Drover.Placement.Index;

/// <summary>
/// Finds the agent a request goes to without looking at every agent, and always the one a scan of every agent
/// would pick. Three ways, chosen per request from its constraints:
/// <list type="number">
/// <item>a constraint that allows only a few agents (IS, CLUSTER, LIKE, UNLIKE matching a small part of the
/// cluster, CLUSTER following the group's tasks): those agents are scanned;</item>
/// <item>a constraint on a field with few values (zone, rack, a machine type) that rules out part of the
/// cluster (GROUP_BY, IS, MAX_PER, UNIQUE, …): the best of the trees of the values it allows, one
/// <see cref="AgentTree"/> per value, built on first use;</item>
/// <item>otherwise the tree over all agents.</item>
/// </list>
/// Each placement updates every tree holding the agent. Masks (agents a constraint rejected) are cleared in every
/// tree when the engine says the group or constraints changed.
/// </summary>
internal sealed class AgentIndex
{
    /// <summary>A field with at most this many values gets a tree per value when a constraint narrows on it.</summary>
    public const int MaxValuesPerField = 64;

    /// <summary>A request whose constraint allows at most this share (1/n) of the agents scans just those.</summary>
    private const int CandidateShare = 16;

    /// <summary>Up to this many candidates are always scanned (cheaper than any search).</summary>
    private const int LinearCandidates = 64;

    private readonly PlacementState _state;
    private readonly PlacementStrategy _strategy;
    private readonly AgentTree _all;
    private readonly Dictionary<FieldIndex, AgentTree?[]> _byValue = [];
    private readonly List<AgentTree> _withMasks = [];
    private long _scanned;

    public AgentIndex(PlacementState state, PlacementStrategy strategy)
    {
        _state = state;
        _strategy = strategy;
        _all = new AgentTree(state, strategy);
    }

    /// <summary>Nodes and agents the trees visited, agents scanned as candidates: for tests and tuning.</summary>
    public long Visits => _all.Visits + _byValue.Values.Sum(trees => trees.Sum(t => t?.Visits ?? 0)) + _scanned;

    /// <summary>Agents masked so far (over all trees): for tests and tuning.</summary>
    public long Masked { get; private set; }

    /// <summary>The position of the best agent for the request, or -1 when none fits.</summary>
    public int FindBest(in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var agents = _state.Work.Length;
        var narrowest = -1;
        var partition = -1;
        var partitionAgents = agents;
        for (var i = 0; i < constraints.Length; i++)
        {
            ref readonly var c = ref constraints[i];
            if (c.CandidateAgents >= 0 && (narrowest < 0 || c.CandidateAgents < constraints[narrowest].CandidateAgents))
            {
                narrowest = i;
            }

            if (c.Field.Count <= MaxValuesPerField)
            {
                var allowed = 0;
                for (var v = 0; v < c.Field.Count; v++)
                {
                    allowed += c.AcceptsValue(v) ? c.Field.AgentCount(v) : 0;
                }

                if (allowed < partitionAgents)
                {
                    partition = i;
                    partitionAgents = allowed;
                }
            }
        }

        if (narrowest >= 0 && constraints[narrowest].CandidateAgents <= Math.Max(LinearCandidates, agents / CandidateShare))
        {
            return FindBestAmong(constraints[narrowest], need, constraints);
        }

        // Worth it when the constraint leaves out at least a quarter of the cluster.
        if (partition >= 0 && partitionAgents <= agents - (agents / 4))
        {
            return FindBestInValues(constraints[partition], need, constraints);
        }

        return Search(_all, need, constraints);
    }

    /// <summary>The agent's numbers changed (a placement): every tree holding it is updated.</summary>
    public void Update(int agent)
    {
        _all.Update(agent);
        foreach (var (field, trees) in _byValue)
        {
            var id = field.ValueIds[agent];
            if (id >= 0 && trees[id] is { } tree)
            {
                tree.Update(agent);
            }
        }
    }

    /// <summary>The next request has another group or other constraints: rejections recorded so far no longer hold.</summary>
    public void ClearMasks()
    {
        foreach (var tree in _withMasks)
        {
            tree.ClearMasks();
        }

        _withMasks.Clear();
    }

    private int Search(AgentTree tree, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var best = tree.FindBest(need, constraints, maskRejected: constraints.Length > 0);
        if (tree.HasMasks && !_withMasks.Contains(tree))
        {
            _withMasks.Add(tree);
        }

        return best;
    }

    private int FindBestInValues(in CompiledConstraint partition, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var field = partition.Field;
        if (!_byValue.TryGetValue(field, out var trees))
        {
            trees = new AgentTree?[field.Count];
            _byValue.Add(field, trees);
        }

        var best = -1;
        var bestScore = double.NegativeInfinity;
        for (var v = 0; v < field.Count; v++)
        {
            if (!partition.AcceptsValue(v))
            {
                continue;
            }

            var tree = trees[v] ??= new AgentTree(_state, _strategy, field.AgentsWith(v).ToArray(), field.LocalIndex);
            var candidate = Search(tree, need, constraints);
            if (candidate >= 0)
            {
                var score = Score(candidate, need);
                if (best < 0 || score > bestScore || (score == bestScore && IdLess(candidate, best)))
                {
                    best = candidate;
                    bestScore = score;
                }
            }
        }

        return best;
    }

    private int FindBestAmong(in CompiledConstraint narrowest, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var work = _state.Work;
        var best = -1;
        var bestScore = double.NegativeInfinity;
        foreach (var value in narrowest.CandidateValues)
        {
            foreach (var i in narrowest.Field.AgentsWith(value))
            {
                _scanned++;
                ref readonly var agent = ref work[i];
                if (!SchedulableFilter.Accepts(agent) || !ResourcesFilter.Accepts(agent, need) || !PortsFilter.Accepts(agent, need))
                {
                    continue;
                }

                var score = Score(i, need);
                if (best >= 0 && (score < bestScore || (score == bestScore && !IdLess(i, best))))
                {
                    continue;
                }

                if (ConstraintsFilter.FirstViolated(constraints, i) >= 0)
                {
                    continue;
                }

                best = i;
                bestScore = score;
            }
        }

        return best;
    }

    private double Score(int agent, in Need need) => _strategy == PlacementStrategy.Spread
        ? SpreadScorer.Score(_state.Work[agent], need)
        : BinPackScorer.Score(_state.Work[agent], need);

    /// <summary>Ties: the lower id (ordinal), then the earlier position, as a scan in position order keeps.</summary>
    private bool IdLess(int a, int b)
    {
        var c = string.CompareOrdinal(_state.Ids[a], _state.Ids[b]);
        return c < 0 || (c == 0 && a < b);
    }
}
