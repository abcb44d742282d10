using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Drover.Core;

namespace Drover.Placement;

/// <summary>
/// Everything one <see cref="PlacementEngine.Place"/> call mutates: free resources per agent, ports taken,
/// and tasks placed per group. Caches that depend only on the snapshot (field values, regex and equality
/// results per value) live here too, so each is computed at most once per batch.
/// </summary>
internal sealed class PlacementState
{
    private readonly Dictionary<string, FieldIndex> _fields = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GroupState> _groups = new(StringComparer.Ordinal);
    private readonly Dictionary<(FieldIndex Field, bool Regex, string Value), bool[]> _matches = [];
    private PortRanges?[]? _freePorts;

    public PlacementState(ImmutableArray<AgentSnapshot> agents)
    {
        Agents = agents;
        Work = new AgentState[agents.Length];
        for (var i = 0; i < agents.Length; i++)
        {
            var agent = agents[i];
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

    public FieldIndex Field(string field)
    {
        if (!_fields.TryGetValue(field, out var index))
        {
            index = new FieldIndex(Agents, field);
            _fields.Add(field, index);
        }

        return index;
    }

    /// <summary>
    /// Tasks of <paramref name="group"/> per value of the field: the snapshot's GroupCounts of every agent
    /// (schedulable or not) plus what this batch placed. Kept up to date as the batch places more.
    /// </summary>
    public int[] GroupCounts(string group, FieldIndex field)
    {
        var state = Group(group);
        if (state.Counts.TryGetValue(field, out var counts))
        {
            return counts;
        }

        counts = new int[field.Count];
        var ids = field.ValueIds;
        for (var i = 0; i < Agents.Length; i++)
        {
            var groupCounts = Agents[i].GroupCounts;
            if (ids[i] >= 0 && !groupCounts.IsEmpty && groupCounts.TryGetValue(group, out var n))
            {
                counts[ids[i]] += n;
            }
        }

        foreach (var agent in state.Placed)
        {
            if (ids[agent] >= 0)
            {
                counts[ids[agent]]++;
            }
        }

        state.Counts.Add(field, counts);
        return counts;
    }

    /// <summary>Per value id: whether the value equals <paramref name="value"/>, or full-matches <paramref name="regex"/> when given.</summary>
    public bool[] Matches(FieldIndex field, string value, System.Text.RegularExpressions.Regex? regex)
    {
        var key = (field, regex is not null, value);
        if (_matches.TryGetValue(key, out var result))
        {
            return result;
        }

        result = new bool[field.Count];
        for (var id = 0; id < result.Length; id++)
        {
            result[id] = regex is null ? string.Equals(field.Value(id), value, StringComparison.Ordinal) : regex.IsMatch(field.Value(id));
        }

        _matches.Add(key, result);
        return result;
    }

    /// <summary>Consumes <paramref name="need"/> on the agent, takes its lowest free ports and records the task in its group.</summary>
    public PlacementDecision Place(int agent, PlacementRequest request, in Need need)
    {
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
                counts[id]++;
            }
        }

        return new PlacementDecision
        {
            TaskId = request.TaskId,
            AgentId = Agents[agent].Id,
            Ports = ImmutableCollectionsMarshal.AsImmutableArray(ports),
        };
    }

    private int[] TakePorts(int agent, int count)
    {
        _freePorts ??= new PortRanges?[Agents.Length];
        var free = _freePorts[agent] ?? Agents[agent].Free.Ports;
        var taken = free.TakeLowest(count)
            ?? throw new InvalidOperationException($"agent {Agents[agent].Id} has fewer than {count} free ports");
        _freePorts[agent] = free.Subtract(PortRanges.Of(taken));
        return taken;
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

        public Dictionary<FieldIndex, int[]> Counts { get; } = [];
    }
}
