using System.Collections.Immutable;
using Drover.Core;

namespace Drover.Placement;

/// <summary>
/// The values one constraint field takes across the agents of a snapshot, interned to small integers
/// so constraint checks compare ints instead of strings. Built once per field per placement pass.
/// </summary>
internal sealed class FieldIndex
{
    private readonly Dictionary<string, int> _idOf;
    private readonly List<string> _values;
    private readonly List<bool> _known;
    private readonly List<int> _agentCount;
    private int[]? _agentsStart;
    private int[]? _agentsByValue;
    private int[]? _localIndex;

    /// <summary>An index to fill with <see cref="Set"/> for every agent position (so several fields share one walk over the agents).</summary>
    public FieldIndex(string field, int agents)
    {
        Field = field;
        ValueIds = new int[agents];

        // Hostnames are (nearly) one per agent: size for that rather than grow ~17 times on a large cluster.
        var capacity = field is Constraint.HostnameField or "@hostname" ? agents : 0;
        _idOf = new(capacity, StringComparer.Ordinal);
        _values = new(capacity);
        _known = new(capacity);
        _agentCount = new(capacity);
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
        if (_agentsByValue is null || _agentsStart is null)
        {
            var start = new int[_values.Count + 1];
            for (var v = 0; v < _values.Count; v++)
            {
                start[v + 1] = start[v] + _agentCount[v];
            }

            var byValue = new int[start[^1]];
            var local = new int[ValueIds.Length];
            var next = start[..^1];
            for (var agent = 0; agent < ValueIds.Length; agent++)
            {
                if (ValueIds[agent] is var v and >= 0)
                {
                    local[agent] = next[v] - start[v];
                    byValue[next[v]++] = agent;
                }
            }

            _agentsStart = start;
            _agentsByValue = byValue;
            _localIndex = local;
        }

        return id < _values.Count ? _agentsByValue.AsSpan(_agentsStart[id], _agentCount[id]) : default;
    }

    /// <summary>Per agent position: its index among <see cref="AgentsWith"/> of its value.</summary>
    public int[] LocalIndex
    {
        get
        {
            _ = AgentsWith(0);
            return _localIndex!;
        }
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
