using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Drover.Core;

namespace Drover.Placement;

/// <summary>
/// Everything one <see cref="PlacementEngine.Place"/> call mutates: free resources per agent, ports taken,
/// and tasks placed per group. Caches that depend only on the snapshot (field values, regex and equality
/// results per value, where each group's tasks are) live here too, so each is computed at most once per batch.
/// </summary>
internal sealed class PlacementState
{
    private readonly Dictionary<string, FieldIndex> _fields = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GroupState> _groups = new(StringComparer.Ordinal);
    private readonly Dictionary<(FieldIndex Field, bool Regex, bool Negate, string Value), ValueSet> _matches = [];
    private Dictionary<string, List<(int Agent, int Tasks)>>? _snapshotGroups;
    private IReadOnlySet<string>? _countedGroups;
    private int[]? _portsTaken;

    /// <param name="fields">Constraint fields the requests use: indexed in the same walk over the agents (others on first use).</param>
    /// <param name="countedGroups">
    /// Groups whose requests have count constraints (UNIQUE, MAX_PER, GROUP_BY, CLUSTER): where their tasks are is
    /// read in the same walk; null reads every group's on first use.
    /// </param>
    public PlacementState(ImmutableArray<AgentSnapshot> agents, IReadOnlyCollection<string>? fields = null, IReadOnlySet<string>? countedGroups = null)
    {
        Agents = agents;
        Work = new AgentState[agents.Length];
        Ids = new string[agents.Length];
        var indexes = fields is null ? [] : fields.Select(f => new FieldIndex(f, agents.Length)).ToArray();
        foreach (var index in indexes)
        {
            _fields.Add(index.Field, index);
        }

        if (countedGroups is not null)
        {
            // One entry per counted group up front: each agent's groups then cost one lookup.
            _snapshotGroups = new(countedGroups.Count, StringComparer.Ordinal);
            foreach (var group in countedGroups)
            {
                _snapshotGroups.Add(group, []);
            }

            _countedGroups = countedGroups;
        }

        for (var i = 0; i < agents.Length; i++)
        {
            var agent = agents[i];
            foreach (var index in indexes)
            {
                index.Set(i, agent);
            }

            if (countedGroups is { Count: > 0 } && !agent.GroupCounts.IsEmpty)
            {
                foreach (var (group, tasks) in agent.GroupCounts)
                {
                    if (_snapshotGroups!.TryGetValue(group, out var list))
                    {
                        list.Add((i, tasks));
                    }
                }
            }

            Ids[i] = agent.Id;
            Work[i] = new AgentState
            {
                Schedulable = agent.Schedulable,
                TotalCpu = agent.Total.MilliCpus,
                TotalMem = agent.Total.MemMiB,
                FreeCpu = agent.Free.MilliCpus,
                FreeMem = agent.Free.MemMiB,
                FreeDisk = agent.Free.DiskMiB,
                FreeGpus = agent.Free.Gpus,
                FreePortCount = agent.Free.Ports.Count,
            };
        }
    }

    public ImmutableArray<AgentSnapshot> Agents { get; }

    public AgentState[] Work { get; }

    /// <summary>Agent ids by position (ties between equal scores go to the lowest, ordinal).</summary>
    public string[] Ids { get; }

    /// <summary>Placements made so far in this pass: anything cached from the agents' state is valid while it is unchanged.</summary>
    public int Version { get; private set; }

    public FieldIndex Field(string field)
    {
        if (!_fields.TryGetValue(field, out var index))
        {
            index = FieldIndex.Build(Agents, field);
            _fields.Add(field, index);
        }

        return index;
    }

    /// <summary>
    /// Tasks of <paramref name="group"/> per value of the field: the snapshot's GroupCounts of every agent
    /// (schedulable or not) plus what this batch placed. Kept up to date as the batch places more.
    /// </summary>
    public GroupValueCounts GroupCounts(string group, FieldIndex field)
    {
        var state = Group(group);
        if (state.Counts.TryGetValue(field, out var counts))
        {
            return counts;
        }

        counts = new GroupValueCounts(field);
        var ids = field.ValueIds;
        if (_countedGroups is not null && !_countedGroups.Contains(group))
        {
            // Not announced at construction: read it from every agent.
            for (var i = 0; i < Agents.Length; i++)
            {
                if (ids[i] >= 0 && Agents[i].GroupCounts.TryGetValue(group, out var tasks))
                {
                    counts.AddInitial(ids[i], tasks);
                }
            }
        }
        else if (SnapshotGroups().TryGetValue(group, out var onAgents))
        {
            foreach (var (agent, tasks) in onAgents)
            {
                if (ids[agent] >= 0)
                {
                    counts.AddInitial(ids[agent], tasks);
                }
            }
        }

        foreach (var agent in state.Placed)
        {
            if (ids[agent] >= 0)
            {
                counts.AddInitial(ids[agent], 1);
            }
        }

        counts.Seal();
        state.Counts.Add(field, counts);
        return counts;
    }

    /// <summary>
    /// The values of the field equal to <paramref name="value"/>, or full-matching <paramref name="regex"/> when
    /// given; with <paramref name="negate"/> the other values.
    /// </summary>
    public ValueSet Matches(FieldIndex field, string value, Regex? regex, bool negate)
    {
        var key = (field, regex is not null, negate, value);
        if (_matches.TryGetValue(key, out var result))
        {
            return result;
        }

        if (negate)
        {
            result = Matches(field, value, regex, negate: false).Complement(field);
        }
        else
        {
            var flags = new bool[field.Count];
            for (var id = 0; id < flags.Length; id++)
            {
                flags[id] = regex is null ? string.Equals(field.Value(id), value, StringComparison.Ordinal) : regex.IsMatch(field.Value(id));
            }

            result = new ValueSet(field, flags);
        }

        _matches.Add(key, result);
        return result;
    }

    /// <summary>Consumes <paramref name="need"/> on the agent, takes its lowest free ports and records the task in its group.</summary>
    public PlacementDecision Place(int agent, PlacementRequest request, in Need need)
    {
        Version++;
        ref var work = ref Work[agent];
        work.FreeCpu -= need.Cpu;
        work.FreeMem -= need.Mem;
        work.FreeDisk -= need.Disk;
        work.FreeGpus -= need.Gpus;

        var ports = need.PortCount == 0 ? [] : TakePorts(agent, need.PortCount);
        work.FreePortCount -= ports.Length;

        var group = Group(request.Group);
        group.Placed.Add(agent);
        foreach (var (field, counts) in group.Counts)
        {
            var id = field.ValueIds[agent];
            if (id >= 0)
            {
                counts.Increment(id);
            }
        }

        return new PlacementDecision
        {
            TaskId = request.TaskId,
            AgentId = Ids[agent],
            Ports = ImmutableCollectionsMarshal.AsImmutableArray(ports),
        };
    }

    /// <summary>
    /// The lowest <paramref name="count"/> free ports of the agent. Ports are always taken lowest first, so what the
    /// pass took from an agent is the lowest ports of its snapshot's free set: only how many is kept, and the next
    /// ones are found by walking the snapshot's ranges (no set arithmetic, nothing allocated but the result).
    /// </summary>
    private int[] TakePorts(int agent, int count)
    {
        _portsTaken ??= new int[Agents.Length];
        var skip = _portsTaken[agent];
        var ports = new int[count];
        var n = 0;
        foreach (var range in Agents[agent].Free.Ports.Ranges)
        {
            if (skip >= range.Count)
            {
                skip -= range.Count;
                continue;
            }

            for (var port = range.Begin + skip; port <= range.End && n < count; port++)
            {
                ports[n++] = port;
            }

            skip = 0;
            if (n == count)
            {
                break;
            }
        }

        if (n < count)
        {
            throw new InvalidOperationException($"agent {Agents[agent].Id} has fewer than {count} free ports");
        }

        _portsTaken[agent] += count;
        return ports;
    }

    /// <summary>Group → (agent position, tasks) from every agent's snapshot GroupCounts, inverted once per pass.</summary>
    private Dictionary<string, List<(int Agent, int Tasks)>> SnapshotGroups()
    {
        if (_snapshotGroups is null)
        {
            _snapshotGroups = new(StringComparer.Ordinal);
            for (var i = 0; i < Agents.Length; i++)
            {
                foreach (var (group, tasks) in Agents[i].GroupCounts)
                {
                    ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_snapshotGroups, group, out _);
                    (list ??= []).Add((i, tasks));
                }
            }
        }

        return _snapshotGroups;
    }

    private GroupState Group(string group)
    {
        if (!_groups.TryGetValue(group, out var state))
        {
            state = new GroupState();
            _groups.Add(group, state);
        }

        return state;
    }

    private sealed class GroupState
    {
        /// <summary>Agent positions this batch placed tasks of the group on (one entry per task).</summary>
        public List<int> Placed { get; } = [];

        public Dictionary<FieldIndex, GroupValueCounts> Counts { get; } = [];
    }
}
