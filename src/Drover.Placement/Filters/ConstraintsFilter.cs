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
                var placed = false;
                foreach (var n in counts)
                {
                    placed |= n > 0;
                }

                return CompiledConstraint.CountAtLeast(field, counts, placed ? 1 : 0);
            }

            case ConstraintOperator.GroupBy:
            {
                // Only values holding the fewest tasks of the group (among values schedulable agents have).
                var counts = state.GroupCounts(group, field);
                var min = int.MaxValue;
                for (var id = 0; id < counts.Length; id++)
                {
                    if (field.IsKnown(id) && counts[id] < min)
                    {
                        min = counts[id];
                    }
                }

                return CompiledConstraint.CountEquals(field, counts, min);
            }

            case ConstraintOperator.Cluster or ConstraintOperator.Is:
                return constraint.Value is null
                    ? CompiledConstraint.Never(field)
                    : CompiledConstraint.Allowed(field, state.Matches(field, constraint.Value, regex: null));

            case ConstraintOperator.Like or ConstraintOperator.Unlike:
            {
                var regex = constraint.Value is null ? null : regexes.Get(constraint.Value);
                if (regex is null)
                {
                    return CompiledConstraint.Never(field);
                }

                var matches = state.Matches(field, constraint.Value!, regex);
                return constraint.Operator == ConstraintOperator.Like
                    ? CompiledConstraint.Allowed(field, matches)
                    : CompiledConstraint.Disallowed(field, matches);
            }

            default:
                return CompiledConstraint.Never(field);
        }
    }
}
