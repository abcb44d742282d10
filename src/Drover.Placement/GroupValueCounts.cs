namespace Drover.Placement;

/// <summary>
/// Tasks of one placement group per value of one field: the snapshot's counts (every agent, schedulable or
/// not) plus what the current pass placed. Kept up to date as the pass places tasks of the group, together
/// with what constraints ask of it, so compiling a constraint costs O(1) instead of a walk over the values:
/// the values that hold a task (CLUSTER), and the least count among values schedulable agents have (GROUP_BY).
/// </summary>
internal sealed class GroupValueCounts
{
    private readonly FieldIndex _field;
    private readonly List<int> _nonZero = [];
    private int _min;
    private int _atMin;
    private bool _minKnown;

    /// <param name="counts">Per value id, the snapshot's tasks of the group plus those the pass placed so far.</param>
    public GroupValueCounts(FieldIndex field, int[] counts)
    {
        _field = field;
        Counts = counts;
        for (var id = 0; id < counts.Length; id++)
        {
            if (counts[id] > 0)
            {
                _nonZero.Add(id);
                NonZeroAgents += field.AgentCount(id);
            }
        }
    }

    /// <summary>Per value id: tasks of the group on agents with that value.</summary>
    public int[] Counts { get; }

    /// <summary>Value ids holding at least one task of the group.</summary>
    public List<int> NonZero => _nonZero;

    /// <summary>Agents (schedulable or not) whose value holds at least one task of the group.</summary>
    public int NonZeroAgents { get; private set; }

    /// <summary>The least count among values that a schedulable agent has; <see cref="int.MaxValue"/> when there are none.</summary>
    public int MinKnown
    {
        get
        {
            if (!_minKnown)
            {
                _min = int.MaxValue;
                _atMin = 0;
                for (var id = 0; id < Counts.Length; id++)
                {
                    if (!_field.IsKnown(id))
                    {
                        continue;
                    }

                    if (Counts[id] < _min)
                    {
                        _min = Counts[id];
                        _atMin = 1;
                    }
                    else if (Counts[id] == _min)
                    {
                        _atMin++;
                    }
                }

                _minKnown = true;
            }

            return _min;
        }
    }

    /// <summary>One more task of the group on an agent with value <paramref name="id"/>.</summary>
    public void Increment(int id)
    {
        if (Counts[id] == 0)
        {
            _nonZero.Add(id);
            NonZeroAgents += _field.AgentCount(id);
        }

        if (_minKnown && Counts[id] == _min && _field.IsKnown(id) && --_atMin == 0)
        {
            _minKnown = false;
        }

        Counts[id]++;
    }
}
