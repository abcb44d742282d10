using Drover.Placement.Filters;
using Drover.Placement.Scorers;

namespace Drover.Placement.Index;

/// <summary>
/// A k-d tree over agents of one pass (all of them, or those with one value of a field), so a request looks at
/// a few hundred nodes and agents instead of all of them, and still picks exactly the agent a scan of every
/// agent would (highest score, ties to the lowest id, then the earlier position).
/// <para>
/// A node is split at the median of total cpus or total memory while its machines differ in size by more than
/// a quarter, then of the free share (free cpus / total + free memory / total), down to leaves of at most
/// <see cref="LeafSize"/> agents. Nodes are split lazily, the first time a search or an update reaches them, so
/// a pass builds only the part of the tree its requests need. Every node keeps, over its agents that are
/// schedulable and not masked, the largest free cpus, memory, disk, gpus and ports (a node where one of them is
/// below the request holds no agent that fits and is skipped whole), the smallest free cpus and memory, the range
/// of free shares, and the range of totals.
/// </para>
/// <para>
/// From those a node gets an upper bound of the score of any agent in it that fits the request (see
/// <see cref="Bound"/>). The search goes depth first, the child with the better bound first, and skips a node
/// whose bound is below the best score found so far (or equal to it when every agent in it has a larger id).
/// Constraints are checked only on an agent that would beat the best so far.
/// </para>
/// <para>
/// A placement changes one agent's free numbers: its leaf and the nodes above it are recomputed (O(leaf +
/// depth)). The tree's shape is not, so bounds loosen slowly; after searches have done as much work as
/// <see cref="RebuildFactor"/> full walks, it starts again from the root. An agent a constraint rejected is
/// masked (left out of the nodes' numbers) while consecutive requests have the same group, constraints and
/// constraint thresholds: then the rejection cannot be undone (counts only grow within a pass). The engine
/// clears the masks when that changes.
/// </para>
/// </summary>
internal sealed class AgentTree
{
    public const int LeafSize = 8;

    private const long NoMax = -1;
    private const long NoMin = long.MaxValue;

    /// <summary>Largest total when some agent of the node has a total ≤ 0 (Math.Max keeps it going up the tree).</summary>
    private const long AnyNonPositive = long.MaxValue;

    private readonly AgentState[] _work;
    private readonly string[] _ids;
    private readonly bool _spread;
    private readonly int[] _order;
    private readonly int[]? _localOf;

    // By local index (the agent's index among the agents the tree covers).
    private readonly int[] _leafOf;
    private readonly bool[] _masked;
    private readonly bool[] _expanded;
    private readonly List<int> _maskedAgents = [];
    private readonly List<int> _toMask = [];
    private readonly long[] _keys;

    // Per node. Ranges of _order; a node is a leaf when its range holds at most LeafSize agents.
    private readonly int[] _lo;
    private readonly int[] _hi;

    // Dynamic: over the node's schedulable, unmasked agents (NoMax / NoMin when it has none).
    private readonly long[] _maxCpu;
    private readonly long[] _maxMem;
    private readonly long[] _minCpu;
    private readonly long[] _minMem;
    private readonly long[] _maxDisk;
    private readonly int[] _maxGpus;
    private readonly int[] _maxPorts;
    private readonly double[] _minShare;
    private readonly double[] _maxShare;

    // Static between builds: over all of the node's agents.
    private readonly long[] _maxTotalCpu;
    private readonly long[] _minTotalCpu;
    private readonly long[] _maxTotalMem;
    private readonly long[] _minTotalMem;
    private readonly int[] _minIdAgent;

    private (int Node, double Bound)[] _stack = new (int, double)[64];
    private long _workSinceBuild;

    public AgentTree(PlacementState state, PlacementStrategy strategy)
        : this(state, strategy, null, null)
    {
    }

    /// <param name="agents">The agent positions this tree covers (all when null).</param>
    /// <param name="localOf">For each covered agent position, its index in <paramref name="agents"/> (identity when null).</param>
    public AgentTree(PlacementState state, PlacementStrategy strategy, int[]? agents, int[]? localOf)
    {
        _work = state.Work;
        _ids = state.Ids;
        _spread = strategy == PlacementStrategy.Spread;
        _localOf = localOf;
        var n = agents?.Length ?? _work.Length;
        _order = agents is null ? [.. Enumerable.Range(0, n)] : [.. agents];
        _leafOf = new int[n];
        _masked = new bool[n];
        _keys = new long[n];

        // Node i has children 2i+1 and 2i+2; halving down to LeafSize gives this many levels.
        var levels = 1;
        for (var size = n; size > LeafSize; size = (size + 1) / 2)
        {
            levels++;
        }

        var nodes = (1 << levels) - 1;
        _expanded = new bool[nodes];
        _lo = new int[nodes];
        _hi = new int[nodes];
        _maxCpu = new long[nodes];
        _maxMem = new long[nodes];
        _minCpu = new long[nodes];
        _minMem = new long[nodes];
        _maxDisk = new long[nodes];
        _maxGpus = new int[nodes];
        _maxPorts = new int[nodes];
        _minShare = new double[nodes];
        _maxShare = new double[nodes];
        _maxTotalCpu = new long[nodes];
        _minTotalCpu = new long[nodes];
        _maxTotalMem = new long[nodes];
        _minTotalMem = new long[nodes];
        _minIdAgent = new int[nodes];
        Build();
    }

    /// <summary>Searches done, nodes and agents visited: for tests and tuning.</summary>
    public long Visits { get; private set; }

    public int Rebuilds { get; private set; }

    /// <summary>Nodes split (lazily, when first needed).</summary>
    public int Expansions { get; private set; }

    /// <summary>Searches may do this many times the agents' count in work before the tree starts again.</summary>
    private const long RebuildFactor = 32;

    /// <summary>
    /// The position of the best agent that fits <paramref name="need"/> and satisfies
    /// <paramref name="constraints"/>, or -1. Agents a constraint rejects are masked afterwards when
    /// <paramref name="maskRejected"/> is set.
    /// </summary>
    public int FindBest(in Need need, ReadOnlySpan<CompiledConstraint> constraints, bool maskRejected)
    {
        if (_workSinceBuild > RebuildFactor * (_order.Length + 64))
        {
            Build();
        }

        var best = -1;
        var bestScore = double.NegativeInfinity;
        var visits = 0L;
        var top = 0;
        if (Fits(0, need))
        {
            _stack[top++] = (0, Bound(0, need));
        }

        while (top > 0)
        {
            var (node, bound) = _stack[--top];
            visits++;
            if (best >= 0 && (bound < bestScore || (bound == bestScore && IdCompare(MinId(node), best) > 0)))
            {
                continue;
            }

            if (_hi[node] - _lo[node] <= LeafSize)
            {
                for (var p = _lo[node]; p < _hi[node]; p++)
                {
                    var agent = _order[p];
                    visits++;
                    ref readonly var w = ref _work[agent];
                    if (_masked[Local(agent)] || !SchedulableFilter.Accepts(w) || !ResourcesFilter.Accepts(w, need) || !PortsFilter.Accepts(w, need))
                    {
                        continue;
                    }

                    var score = _spread ? SpreadScorer.Score(w, need) : BinPackScorer.Score(w, need);
                    if (best >= 0 && (score < bestScore || (score == bestScore && !IdLess(agent, best))))
                    {
                        continue;
                    }

                    if (ConstraintsFilter.FirstViolated(constraints, agent) >= 0)
                    {
                        if (maskRejected)
                        {
                            _toMask.Add(agent);
                        }

                        continue;
                    }

                    best = agent;
                    bestScore = score;
                }

                continue;
            }

            if (!_expanded[node])
            {
                Expand(node);
            }

            var left = (2 * node) + 1;
            var right = left + 1;
            var leftFits = Fits(left, need);
            var rightFits = Fits(right, need);
            if (top + 2 > _stack.Length)
            {
                Array.Resize(ref _stack, _stack.Length * 2);
            }

            if (leftFits && rightFits)
            {
                var leftBound = Bound(left, need);
                var rightBound = Bound(right, need);
                var leftFirst = leftBound > rightBound
                    || (leftBound == rightBound && IdCompare(MinId(left), MinId(right)) <= 0);

                // The better child goes on top, so it is searched first.
                if (leftFirst)
                {
                    _stack[top++] = (right, rightBound);
                    _stack[top++] = (left, leftBound);
                }
                else
                {
                    _stack[top++] = (left, leftBound);
                    _stack[top++] = (right, rightBound);
                }
            }
            else if (leftFits)
            {
                _stack[top++] = (left, Bound(left, need));
            }
            else if (rightFits)
            {
                _stack[top++] = (right, Bound(right, need));
            }
        }

        Visits += visits;
        _workSinceBuild += visits;
        if (_toMask.Count > 0)
        {
            foreach (var agent in _toMask)
            {
                if (!_masked[Local(agent)])
                {
                    _masked[Local(agent)] = true;
                    _maskedAgents.Add(agent);
                    Update(agent);
                }
            }

            _toMask.Clear();
        }

        return best;
    }

    public bool HasMasks => _maskedAgents.Count > 0;

    /// <summary>Unmasks every masked agent (the next request has another group or other constraints).</summary>
    public void ClearMasks()
    {
        foreach (var agent in _maskedAgents)
        {
            _masked[Local(agent)] = false;
            Update(agent);
        }

        _maskedAgents.Clear();
    }

    /// <summary>The agent's free numbers changed (a placement): refreshes its leaf and the nodes above it.</summary>
    public void Update(int agent)
    {
        var node = _leafOf[Local(agent)];

        // Nodes split now start from the agent's new numbers; the node they came from does not, so the walk
        // up must not stop early at them.
        var split = false;
        while (!IsLeaf(node))
        {
            Expand(node);
            node = _leafOf[Local(agent)];
            split = true;
        }

        ComputeFromAgents(node);
        _workSinceBuild += LeafSize;
        while (node > 0)
        {
            node = (node - 1) / 2;
            if (!Combine(node) && !split)
            {
                break;
            }
        }
    }

    private int Local(int agent) => _localOf is null ? agent : _localOf[agent];

    private bool Fits(int node, in Need need) =>
        _maxCpu[node] >= need.Cpu && _maxMem[node] >= need.Mem && _maxDisk[node] >= need.Disk
        && _maxGpus[node] >= need.Gpus && _maxPorts[node] >= need.PortCount;

    /// <summary>
    /// An upper bound of the score of any agent in the node that fits <paramref name="need"/>: the smaller of two.
    /// The corner bound is the scorer's own formula on a virtual agent that dominates the node in each dimension
    /// (the formula is monotone in each input, so it is exact in floating point). The share bound uses that, for
    /// an agent that fits, utilisation after placing is linear: 1 − free/total + need/total (clamping only moves
    /// it in the safe direction), so with the node's range of free shares (free/total summed over cpu and memory)
    /// it bounds the score as a real number; <see cref="Slack"/> covers the rounding of both computations.
    /// </summary>
    private double Bound(int node, in Need need)
    {
        if (_spread)
        {
            // Least utilisation after placing: most free, smallest (positive) total.
            var cpu = _minTotalCpu[node] == NoMin ? 1.0 : BinPackScorer.UtilisationAfter(_minTotalCpu[node], _maxCpu[node], need.Cpu);
            var mem = _minTotalMem[node] == NoMin ? 1.0 : BinPackScorer.UtilisationAfter(_minTotalMem[node], _maxMem[node], need.Mem);
            var corner = 100.0 - (50.0 * (cpu + mem));

            // Spread = 50 × (free share − need share); the need share is least at the largest total (0 for a total ≤ 0).
            var needShare = NeedShare(_maxTotalCpu[node], need.Cpu) + NeedShare(_maxTotalMem[node], need.Mem);
            return Math.Min(corner, (50.0 * (_maxShare[node] - needShare)) + Slack);
        }
        else
        {
            // Most utilisation after placing: least free that still fits, largest total (a total ≤ 0 counts as full).
            var cpu = _maxTotalCpu[node] == AnyNonPositive ? 1.0 : BinPackScorer.UtilisationAfter(_maxTotalCpu[node], Math.Max(_minCpu[node], need.Cpu), need.Cpu);
            var mem = _maxTotalMem[node] == AnyNonPositive ? 1.0 : BinPackScorer.UtilisationAfter(_maxTotalMem[node], Math.Max(_minMem[node], need.Mem), need.Mem);
            var corner = 50.0 * (cpu + mem);

            // Binpack = 50 × (2 − free share + need share); the need share is largest at the smallest positive total.
            var needShare = NeedShare(_minTotalCpu[node], need.Cpu) + NeedShare(_minTotalMem[node], need.Mem);
            return Math.Min(corner, (50.0 * (2.0 - _minShare[node] + needShare)) + Slack);
        }
    }

    /// <summary>Far above the rounding error of scores in 0–100 (~1e-13), far below any difference between them that matters here.</summary>
    private const double Slack = 1e-9;

    /// <summary>
    /// Free cpu share plus free memory share of an agent, 0 for a dimension whose total is ≤ 0 (it always counts
    /// as full). Per dimension, with u = clamp(1 − (free − need) / total, 0, 1) the utilisation after placing:
    /// binpack needs u ≤ 1 − (min(free, total) − need) / total, spread needs 1 − u ≤ (free − need) / total, so
    /// binpack caps free at the total and spread does not (a snapshot may say free &gt; total).
    /// </summary>
    private double FreeShare(in AgentState w) => _spread
        ? (w.TotalCpu <= 0 ? 0.0 : (double)w.FreeCpu / w.TotalCpu) + (w.TotalMem <= 0 ? 0.0 : (double)w.FreeMem / w.TotalMem)
        : (w.TotalCpu <= 0 ? 0.0 : (double)Math.Min(w.FreeCpu, w.TotalCpu) / w.TotalCpu) + (w.TotalMem <= 0 ? 0.0 : (double)Math.Min(w.FreeMem, w.TotalMem) / w.TotalMem);

    /// <summary>need / total for a total picked from the node (NoMin / AnyNonPositive sentinels: no positive total, or one ≤ 0, gives 0).</summary>
    private static double NeedShare(long total, long need) =>
        total <= 0 || total == long.MaxValue ? 0.0 : (double)need / total;

    private int IdCompare(int a, int b)
    {
        var c = string.CompareOrdinal(_ids[a], _ids[b]);
        return c != 0 ? c : a.CompareTo(b);
    }

    /// <summary>The order a scan of every agent breaks ties in: lower id, then earlier position.</summary>
    private bool IdLess(int a, int b) => IdCompare(a, b) < 0;

    /// <summary>(Re)starts the tree from the agents' current numbers: just the root; nodes are split when first needed.</summary>
    private void Build()
    {
        Rebuilds++;
        _workSinceBuild = 0;
        Array.Clear(_expanded);
        Array.Clear(_leafOf);
        _lo[0] = 0;
        _hi[0] = _order.Length;
        ComputeStatic(0);
        ComputeFromAgents(0);
    }

    private bool IsLeaf(int node) => _hi[node] - _lo[node] <= LeafSize;

    /// <summary>
    /// Splits a node that is not yet split at the median of its <see cref="SplitKey"/>, and computes its children's numbers.
    /// O(agents in the node). Only nodes a search reaches (or that hold a placed agent) are ever split, so
    /// most of a large cluster that no request could use stays one unsplit node.
    /// </summary>
    private void Expand(int node)
    {
        var lo = _lo[node];
        var hi = _hi[node];
        var mid = lo + ((hi - lo + 1) / 2);
        var dimension = SplitKey(lo, hi);
        if (dimension >= 0)
        {
            for (var p = lo; p < hi; p++)
            {
                _keys[p] = Key(dimension, _order[p]);
            }

            Select(lo, hi, mid);
        }

        var left = (2 * node) + 1;
        var right = left + 1;
        _lo[left] = lo;
        _hi[left] = mid;
        _lo[right] = mid;
        _hi[right] = hi;
        for (var p = lo; p < hi; p++)
        {
            _leafOf[Local(_order[p])] = p < mid ? left : right;
        }

        ComputeStatic(left);
        ComputeFromAgents(left);
        ComputeStatic(right);
        ComputeFromAgents(right);
        _expanded[left] = false;
        _expanded[right] = false;
        _expanded[node] = true;
        Expansions++;
    }

    /// <summary>
    /// The key to split on: 2 total cpus or 3 total memory while the node's machines differ in size by more than a
    /// quarter (a node mixing sizes has loose bounds), else 0 the free share (free cpu / total + free memory / total,
    /// what the scores are made of); -1 if nothing varies.
    /// </summary>
    private int SplitKey(int lo, int hi)
    {
        long minTc = NoMin, maxTc = long.MinValue, minTm = NoMin, maxTm = long.MinValue;
        double minShare = double.MaxValue, maxShare = double.MinValue;
        for (var p = lo; p < hi; p++)
        {
            ref readonly var w = ref _work[_order[p]];
            minTc = Math.Min(minTc, w.TotalCpu);
            maxTc = Math.Max(maxTc, w.TotalCpu);
            minTm = Math.Min(minTm, w.TotalMem);
            maxTm = Math.Max(maxTm, w.TotalMem);
            var share = FreeShare(w);
            minShare = Math.Min(minShare, share);
            maxShare = Math.Max(maxShare, share);
        }

        if (maxTc > minTc + (minTc / 4) || maxTm > minTm + (minTm / 4))
        {
            return (double)(maxTc - minTc) / Math.Max(1, maxTc) >= (double)(maxTm - minTm) / Math.Max(1, maxTm) ? 2 : 3;
        }

        return maxShare > minShare ? 0 : -1;
    }

    /// <summary>The free share scaled to an integer (the order is what matters), or a total.</summary>
    private long Key(int dimension, int agent) => dimension switch
    {
        2 => _work[agent].TotalCpu,
        3 => _work[agent].TotalMem,
        _ => (long)(Math.Min(FreeShare(_work[agent]), 1 << 20) * (1L << 40)),
    };

    /// <summary>Reorders _order[lo..hi) so position k holds the k-th smallest key, smaller keys before it and larger after (Hoare quickselect).</summary>
    private void Select(int lo, int hi, int k)
    {
        var right = hi - 1;
        while (right > lo)
        {
            var a = _keys[lo];
            var b = _keys[lo + ((right - lo) / 2)];
            var c = _keys[right];
            var pivot = Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
            var i = lo;
            var j = right;
            while (i <= j)
            {
                while (_keys[i] < pivot)
                {
                    i++;
                }

                while (_keys[j] > pivot)
                {
                    j--;
                }

                if (i <= j)
                {
                    (_keys[i], _keys[j]) = (_keys[j], _keys[i]);
                    (_order[i], _order[j]) = (_order[j], _order[i]);
                    i++;
                    j--;
                }
            }

            if (k <= j)
            {
                right = j;
            }
            else if (k >= i)
            {
                lo = i;
            }
            else
            {
                return;
            }
        }
    }

    /// <summary>The numbers of a node that do not change between builds (totals), from its agents; its lowest id is found on first use.</summary>
    private void ComputeStatic(int node)
    {
        long maxTc = 0, minTc = NoMin, maxTm = 0, minTm = NoMin;
        for (var p = _lo[node]; p < _hi[node]; p++)
        {
            var agent = _order[p];
            ref readonly var w = ref _work[agent];

            // A total ≤ 0 makes that dimension count as full (utilisation 1): the largest total becomes
            // AnyNonPositive, for which binpack's bound is 1. Spread's least utilisation comes from the
            // positive totals only (NoMin when there are none: every agent is then full in that dimension).
            maxTc = w.TotalCpu <= 0 ? AnyNonPositive : Math.Max(maxTc, w.TotalCpu);
            maxTm = w.TotalMem <= 0 ? AnyNonPositive : Math.Max(maxTm, w.TotalMem);
            if (w.TotalCpu > 0)
            {
                minTc = Math.Min(minTc, w.TotalCpu);
            }

            if (w.TotalMem > 0)
            {
                minTm = Math.Min(minTm, w.TotalMem);
            }

        }

        _maxTotalCpu[node] = maxTc;
        _minTotalCpu[node] = minTc;
        _maxTotalMem[node] = maxTm;
        _minTotalMem[node] = minTm;
        _minIdAgent[node] = -1;
    }

    /// <summary>The node's agent with the lowest id (then position), over all its agents.</summary>
    private int MinId(int node)
    {
        if (_minIdAgent[node] < 0)
        {
            var minId = _order[_lo[node]];
            for (var p = _lo[node] + 1; p < _hi[node]; p++)
            {
                if (IdLess(_order[p], minId))
                {
                    minId = _order[p];
                }
            }

            _minIdAgent[node] = minId;
        }

        return _minIdAgent[node];
    }

    /// <summary>The node's free numbers from its agents (a leaf, or a node not split yet).</summary>
    private void ComputeFromAgents(int node)
    {
        long maxCpu = NoMax, maxMem = NoMax, minCpu = NoMin, minMem = NoMin, maxDisk = NoMax;
        int maxGpus = -1, maxPorts = -1;
        double minShare = double.PositiveInfinity, maxShare = double.NegativeInfinity;
        for (var p = _lo[node]; p < _hi[node]; p++)
        {
            var agent = _order[p];
            ref readonly var w = ref _work[agent];
            if (!w.Schedulable || _masked[Local(agent)])
            {
                continue;
            }

            maxCpu = Math.Max(maxCpu, w.FreeCpu);
            maxMem = Math.Max(maxMem, w.FreeMem);
            minCpu = Math.Min(minCpu, w.FreeCpu);
            minMem = Math.Min(minMem, w.FreeMem);
            maxDisk = Math.Max(maxDisk, w.FreeDisk);
            maxGpus = Math.Max(maxGpus, w.FreeGpus);
            maxPorts = Math.Max(maxPorts, w.FreePortCount);
            var share = FreeShare(w);
            minShare = Math.Min(minShare, share);
            maxShare = Math.Max(maxShare, share);
        }

        _maxCpu[node] = maxCpu;
        _maxMem[node] = maxMem;
        _minCpu[node] = minCpu;
        _minMem[node] = minMem;
        _maxDisk[node] = maxDisk;
        _maxGpus[node] = maxGpus;
        _maxPorts[node] = maxPorts;
        _minShare[node] = minShare;
        _maxShare[node] = maxShare;
    }

    /// <summary>Recomputes a node's dynamic numbers from its children; false when nothing changed.</summary>
    private bool Combine(int node)
    {
        var l = (2 * node) + 1;
        var r = l + 1;
        var maxCpu = Math.Max(_maxCpu[l], _maxCpu[r]);
        var maxMem = Math.Max(_maxMem[l], _maxMem[r]);
        var minCpu = Math.Min(_minCpu[l], _minCpu[r]);
        var minMem = Math.Min(_minMem[l], _minMem[r]);
        var maxDisk = Math.Max(_maxDisk[l], _maxDisk[r]);
        var maxGpus = Math.Max(_maxGpus[l], _maxGpus[r]);
        var maxPorts = Math.Max(_maxPorts[l], _maxPorts[r]);
        var minShare = Math.Min(_minShare[l], _minShare[r]);
        var maxShare = Math.Max(_maxShare[l], _maxShare[r]);
        if (maxCpu == _maxCpu[node] && maxMem == _maxMem[node] && minCpu == _minCpu[node] && minMem == _minMem[node]
            && maxDisk == _maxDisk[node] && maxGpus == _maxGpus[node] && maxPorts == _maxPorts[node]
            && minShare == _minShare[node] && maxShare == _maxShare[node])
        {
            return false;
        }

        _maxCpu[node] = maxCpu;
        _maxMem[node] = maxMem;
        _minCpu[node] = minCpu;
        _minMem[node] = minMem;
        _maxDisk[node] = maxDisk;
        _maxGpus[node] = maxGpus;
        _maxPorts[node] = maxPorts;
        _minShare[node] = minShare;
        _maxShare[node] = maxShare;
        return true;
    }
}
