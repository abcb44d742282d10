namespace Drover.Placement;

/// <summary>
/// Tasks of one placement group per value of one field: the snapshot's counts (every agent, schedulable or
/// not) plus what the current pass placed. Kept up to date as the pass places tasks of the group, together
/// with what constraints ask of it, so compiling a constraint costs O(1) instead of a walk over the values:
/// the values that hold a task (CLUSTER), and the least count among values schedulable agents have (GROUP_BY).
/// A field with many values (hostname) keeps only the values that hold tasks, so a pass over a large cluster
/// does not allocate an agent-sized array per group.
/// </summary>
internal sealed class GroupValueCounts
{
    /// <summary>Fields with up to this many values keep an array; larger ones a dictionary of the values with tasks.</summary>
    public const int DenseUpTo = 1024;

    private readonly FieldIndex _field;
    private readonly int[]? _dense;
    private readonly Dictionary<int, int>? _sparse;
    private readonly List<int> _nonZero = [];
    private int _min;
    private int _atMin;
    private bool _minKnown;

    public GroupValueCounts(FieldIndex field)
    {
        _field = field;
        if (field.Count <= DenseUpTo)
        {
            _dense = new int[field.Count];
        }
        else
        {
            _sparse = [];
        }
    }

    /// <summary>Value ids holding at least one task of the group.</summary>
    public List<int> NonZero => _nonZero;

    /// <summary>Agents (schedulable or not) whose value holds at least one task of the group.</summary>
    public int NonZeroAgents { get; private set; }

    /// <summary>Tasks of the group on agents with value <paramref name="id"/>.</summary>
    public int Of(int id) => _dense is not null ? _dense[id] : _sparse!.GetValueOrDefault(id);

    /// <summary>The least count among values that a schedulable agent has; <see cref="int.MaxValue"/> when there are none.</summary>
    public int MinKnown
    {
        get
        {
            if (!_minKnown)
            {
                ComputeMin();
                _minKnown = true;
            }

            return _min;
        }
    }

    /// <summary>While filling from the snapshot: <paramref name="tasks"/> more on value <paramref name="id"/> (any sign, as given).</summary>
    public void AddInitial(int id, int tasks)
    {
        if (_dense is not null)
        {
            _dense[id] += tasks;
        }
        else
        {
            _sparse![id] = _sparse.GetValueOrDefault(id) + tasks;
        }
    }

    /// <summary>Done filling: finds the values that hold tasks.</summary>
    public void Seal()
    {
        if (_dense is not null)
        {
            for (var id = 0; id < _dense.Length; id++)
            {
                if (_dense[id] > 0)
                {
                    _nonZero.Add(id);
                    NonZeroAgents += _field.AgentCount(id);
                }
            }
        }
        else
        {
            foreach (var (id, n) in _sparse!)
            {
                if (n > 0)
                {
                    _nonZero.Add(id);
                    NonZeroAgents += _field.AgentCount(id);
                }
            }

            _nonZero.Sort();
        }
    }

    /// <summary>One more task of the group on an agent with value <paramref name="id"/>.</summary>
    public void Increment(int id)
    {
        var before = Of(id);
        if (before == 0)
        {
            _nonZero.Add(id);
            NonZeroAgents += _field.AgentCount(id);
        }

        if (_minKnown && before == _min && _field.IsKnown(id) && --_atMin == 0)
        {
            _minKnown = false;
        }

        if (_dense is not null)
        {
            _dense[id] = before + 1;
        }
        else
        {
            _sparse![id] = before + 1;
        }
    }

    private void ComputeMin()
    {
        _min = int.MaxValue;
        _atMin = 0;
        if (_dense is not null)
        {
            for (var id = 0; id < _dense.Length; id++)
            {
                if (_field.IsKnown(id))
                {
                    Consider(_dense[id], 1);
                }
            }

            return;
        }

        // Known values without an entry hold 0 tasks.
        var knownWithEntry = 0;
        foreach (var (id, n) in _sparse!)
        {
            if (_field.IsKnown(id))
            {
                knownWithEntry++;
                Consider(n, 1);
            }
        }

        Consider(0, _field.KnownCount - knownWithEntry);
    }

    private void Consider(int count, int values)
    {
        if (values <= 0)
        {
            return;
        }

        if (count < _min)
        {
            _min = count;
            _atMin = values;
        }
        else if (count == _min)
        {
            _atMin += values;
        }
    }
}
