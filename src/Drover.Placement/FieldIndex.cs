using System.Collections.Immutable;
using Drover.Core;

namespace Drover.Placement;

/// <summary>
/// The values one constraint field takes across the agents of a snapshot, interned to small integers
/// so constraint checks compare ints instead of strings. Built once per field per placement pass.
/// </summary>
internal sealed class FieldIndex
{
    private readonly Dictionary<string, int> _idOf = new(StringComparer.Ordinal);
    private readonly List<string> _values = [];
    private readonly List<bool> _known = [];
    private readonly List<int> _agentCount = [];
    private int[]? _agentsStart;
    private int[]? _agentsByValue;

    /// <summary>An index to fill with <see cref="Set"/> for every agent position (so several fields share one walk over the agents).</summary>
    public FieldIndex(string field, int agents)
    {
        Field = field;
        ValueIds = new int[agents];
    }

    public static FieldIndex Build(ImmutableArray<AgentSnapshot> agents, string field)
    {
        var index = new FieldIndex(field, agents.Length);
        for (var i = 0; i < agents.Length; i++)
        {
            index.Set(i, agents[i]);
        }

        return index;
    }

    /// <summary>Records the field's value on the agent at <paramref name="position"/>.</summary>
    public void Set(int position, AgentSnapshot agent)
    {
        var value = ValueOf(agent, Field);
        if (value is null)
        {
            ValueIds[position] = -1;
            return;
        }

        if (!_idOf.TryGetValue(value, out var id))
        {
            id = _values.Count;
            _idOf.Add(value, id);
            _values.Add(value);
            _known.Add(false);
            _agentCount.Add(0);
        }

        ValueIds[position] = id;
        _agentCount[id]++;
        if (agent.Schedulable && !_known[id])
        {
            _known[id] = true;
            KnownCount++;
        }
    }

    public string Field { get; }

    /// <summary>Per agent position: the id of the agent's value, or -1 when the agent lacks the field.</summary>
    public int[] ValueIds { get; }

    /// <summary>Number of distinct values.</summary>
    public int Count => _values.Count;

    public string Value(int id) => _values[id];

    /// <summary>Number of values a schedulable agent has.</summary>
    public int KnownCount { get; private set; }

    /// <summary>True when a schedulable agent has this value (GROUP_BY spreads over these).</summary>
    public bool IsKnown(int id) => _known[id];

    /// <summary>Number of agents (schedulable or not) with this value.</summary>
    public int AgentCount(int id) => _agentCount[id];

    public int IdOf(string value) => _idOf.TryGetValue(value, out var id) ? id : -1;

    /// <summary>The positions of the agents with this value (built on first use, then shared by the pass).</summary>
    public ReadOnlySpan<int> AgentsWith(int id)
    {
        if (_agentsByValue is null)
        {
            var start = new int[_values.Count + 1];
            for (var v = 0; v < _values.Count; v++)
            {
                start[v + 1] = start[v] + _agentCount[v];
            }

            var byValue = new int[start[^1]];
            var next = start[..^1];
            for (var agent = 0; agent < ValueIds.Length; agent++)
            {
                if (ValueIds[agent] is var v and >= 0)
                {
                    byValue[next[v]++] = agent;
                }
            }

            _agentsStart = start;
            _agentsByValue = byValue;
        }

        return _agentsByValue.AsSpan(_agentsStart![id], _agentCount[id]);
    }

    /// <summary>
    /// The value of a constraint field on an agent: hostname, fault-domain region or zone, or an attribute
    /// as text. Null when the agent lacks it.
    /// </summary>
    public static string? ValueOf(AgentSnapshot agent, string field) => field switch
    {
        Constraint.HostnameField or "@hostname" => agent.Hostname,
        Constraint.RegionField => agent.Domain?.Region,
        Constraint.ZoneField => agent.Domain?.Zone,
        _ => agent.Attributes.TryGet(field, out var value) ? value.ToString() : null,
    };
}
