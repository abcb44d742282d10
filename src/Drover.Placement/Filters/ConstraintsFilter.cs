using System.Globalization;
using System.Text.RegularExpressions;
using Drover.Core;

namespace Drover.Placement.Filters;

/// <summary>
/// Rejects agents that violate one of the request's Marathon constraints. Each constraint is compiled once
/// per request into a <see cref="CompiledConstraint"/> over interned field values, so the per-agent check is
/// an array lookup and an integer comparison.
/// </summary>
internal static class ConstraintsFilter
{
    public const string Name = "constraints";

    /// <summary>Index of the first constraint the agent violates, or -1 when it satisfies all.</summary>
    public static int FirstViolated(ReadOnlySpan<CompiledConstraint> constraints, int agent)
    {
        for (var i = 0; i < constraints.Length; i++)
        {
            if (!constraints[i].Accepts(agent))
            {
                return i;
            }
        }

        return -1;
    }

    public static CompiledConstraint Compile(Constraint constraint, string group, PlacementState state, RegexCache regexes)
    {
        var field = state.Field(constraint.Field);
        switch (constraint.Operator)
        {
            case ConstraintOperator.Unique:
                return CompiledConstraint.CountBelow(field, state.GroupCounts(group, field), 1);

            case ConstraintOperator.MaxPer:
                return int.TryParse(constraint.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var max)
                    ? CompiledConstraint.CountBelow(field, state.GroupCounts(group, field), max)
                    : CompiledConstraint.Never(field);

            case ConstraintOperator.Cluster when constraint.Value is null:
            {
                // Follow the group where it already is; with no tasks yet, any value will do.
                var counts = state.GroupCounts(group, field);
                return CompiledConstraint.CountAtLeast(field, counts, counts.NonZero.Count > 0 ? 1 : 0);
            }

            case ConstraintOperator.GroupBy:
            {
                // Only values holding the fewest tasks of the group (among values schedulable agents have).
                var counts = state.GroupCounts(group, field);
                return CompiledConstraint.CountEquals(field, counts, counts.MinKnown);
            }

            case ConstraintOperator.Cluster or ConstraintOperator.Is:
                return constraint.Value is null
                    ? CompiledConstraint.Never(field)
                    : CompiledConstraint.Allowed(field, state.Matches(field, constraint.Value, regex: null, negate: false));

            case ConstraintOperator.Like or ConstraintOperator.Unlike:
            {
                var regex = constraint.Value is null ? null : regexes.Get(constraint.Value);
                return regex is null
                    ? CompiledConstraint.Never(field)
                    : CompiledConstraint.Allowed(field, state.Matches(field, constraint.Value!, regex, negate: constraint.Operator == ConstraintOperator.Unlike));
            }

            default:
                return CompiledConstraint.Never(field);
        }
    }
}
