namespace Drover.Placement.Filters;

internal enum ConstraintCheck
{
    /// <summary>Malformed constraint (bad regex, MAX_PER without a number): no agent satisfies it.</summary>
    Never,
    Allowed,
    Disallowed,
    CountBelow,
    CountEquals,
    CountAtLeast,
}

/// <summary>One constraint of one request, ready to test agents by position. An agent lacking the field always fails.</summary>
internal readonly struct CompiledConstraint
{
    private readonly ConstraintCheck _check;
    private readonly int[] _valueIds;
    private readonly bool[]? _flags;
    private readonly int[]? _counts;
    private readonly int _threshold;

    private CompiledConstraint(ConstraintCheck check, FieldIndex field, bool[]? flags, int[]? counts, int threshold)
    {
        _check = check;
        _valueIds = field.ValueIds;
        _flags = flags;
        _counts = counts;
        _threshold = threshold;
    }

    public static CompiledConstraint Never(FieldIndex field) => new(ConstraintCheck.Never, field, null, null, 0);

    /// <summary>Accepts values whose flag is set.</summary>
    public static CompiledConstraint Allowed(FieldIndex field, bool[] flags) => new(ConstraintCheck.Allowed, field, flags, null, 0);

    /// <summary>Accepts values whose flag is clear.</summary>
    public static CompiledConstraint Disallowed(FieldIndex field, bool[] flags) => new(ConstraintCheck.Disallowed, field, flags, null, 0);

    public static CompiledConstraint CountBelow(FieldIndex field, int[] counts, int limit) => new(ConstraintCheck.CountBelow, field, null, counts, limit);

    public static CompiledConstraint CountEquals(FieldIndex field, int[] counts, int value) => new(ConstraintCheck.CountEquals, field, null, counts, value);

    public static CompiledConstraint CountAtLeast(FieldIndex field, int[] counts, int minimum) => new(ConstraintCheck.CountAtLeast, field, null, counts, minimum);

    public bool Accepts(int agent)
    {
        var id = _valueIds[agent];
        if (id < 0)
        {
            return false;
        }

        return _check switch
        {
            ConstraintCheck.Allowed => _flags![id],
            ConstraintCheck.Disallowed => !_flags![id],
            ConstraintCheck.CountBelow => _counts![id] < _threshold,
            ConstraintCheck.CountEquals => _counts![id] == _threshold,
            ConstraintCheck.CountAtLeast => _counts![id] >= _threshold,
            _ => false,
        };
    }
}
