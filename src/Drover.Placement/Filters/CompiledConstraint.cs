using System.Runtime.InteropServices;

namespace Drover.Placement.Filters;

internal enum ConstraintCheck
{
    /// <summary>Malformed constraint (bad regex, MAX_PER without a number): no agent satisfies it.</summary>
    Never,
    Allowed,
    CountBelow,
    CountEquals,
    CountAtLeast,
}

/// <summary>
/// One constraint of one request, ready to test agents by position. An agent lacking the field always fails.
/// When the constraint allows only the agents of a known list of values (IS, CLUSTER, LIKE, UNLIKE, and
/// CLUSTER following the group's tasks), it also says which and how many agents those are, so the engine
/// can look at just them.
/// </summary>
internal readonly struct CompiledConstraint
{
    private readonly int[] _valueIds;
    private readonly bool[]? _flags;
    private readonly GroupValueCounts? _counts;
    private readonly int[]? _candidateArray;
    private readonly List<int>? _candidateList;

    private CompiledConstraint(ConstraintCheck check, FieldIndex field, bool[]? flags, GroupValueCounts? counts, int threshold, int candidateAgents, int[]? candidateArray, List<int>? candidateList)
    {
        Check = check;
        Field = field;
        _valueIds = field.ValueIds;
        _flags = flags;
        _counts = counts;
        Threshold = threshold;
        CandidateAgents = candidateAgents;
        _candidateArray = candidateArray;
        _candidateList = candidateList;
    }

    public ConstraintCheck Check { get; }

    public FieldIndex Field { get; }

    /// <summary>The count limit, value or minimum the check compares with (0 for flag checks).</summary>
    public int Threshold { get; }

    /// <summary>How many agents have a value the constraint allows, when that is known from a list of values; otherwise -1.</summary>
    public int CandidateAgents { get; }

    /// <summary>The value ids whose agents are the only candidates (meaningful when <see cref="CandidateAgents"/> ≥ 0).</summary>
    public ReadOnlySpan<int> CandidateValues => _candidateArray ?? (_candidateList is null ? default : CollectionsMarshal.AsSpan(_candidateList));

    public static CompiledConstraint Never(FieldIndex field) => new(ConstraintCheck.Never, field, null, null, 0, 0, [], null);

    /// <summary>Accepts agents whose value is in <paramref name="values"/>.</summary>
    public static CompiledConstraint Allowed(FieldIndex field, ValueSet values) =>
        new(ConstraintCheck.Allowed, field, values.Flags, null, 0, values.Agents, values.Values, null);

    public static CompiledConstraint CountBelow(FieldIndex field, GroupValueCounts counts, int limit) =>
        new(ConstraintCheck.CountBelow, field, null, counts, limit, -1, null, null);

    public static CompiledConstraint CountEquals(FieldIndex field, GroupValueCounts counts, int value) =>
        new(ConstraintCheck.CountEquals, field, null, counts, value, -1, null, null);

    /// <summary>Accepts values holding at least <paramref name="minimum"/> tasks (0 or 1).</summary>
    public static CompiledConstraint CountAtLeast(FieldIndex field, GroupValueCounts counts, int minimum) => minimum >= 1
        ? new(ConstraintCheck.CountAtLeast, field, null, counts, minimum, counts.NonZeroAgents, null, counts.NonZero)
        : new(ConstraintCheck.CountAtLeast, field, null, counts, minimum, -1, null, null);

    public bool Accepts(int agent)
    {
        var id = _valueIds[agent];
        return id >= 0 && AcceptsValue(id);
    }

    /// <summary>Whether agents with value <paramref name="id"/> of the field satisfy the constraint.</summary>
    public bool AcceptsValue(int id) =>
        Check switch
        {
            ConstraintCheck.Allowed => _flags![id],
            ConstraintCheck.CountBelow => _counts!.Of(id) < Threshold,
            ConstraintCheck.CountEquals => _counts!.Of(id) == Threshold,
            ConstraintCheck.CountAtLeast => _counts!.Of(id) >= Threshold,
            _ => false,
        };
}
