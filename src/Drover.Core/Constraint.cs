namespace Drover.Core;

/// <summary>Marathon placement constraint operators.</summary>
public enum ConstraintOperator
{
    Unique,
    Cluster,
    GroupBy,
    Like,
    Unlike,
    MaxPer,
    Is,
}

/// <summary>
/// A placement constraint <c>field:OPERATOR[:value]</c>. Field is <c>hostname</c>, <c>@hostname</c>,
/// <c>@region</c>, <c>@zone</c> or an agent attribute name. Semantics follow Marathon:
/// UNIQUE (at most one task of the group per field value), CLUSTER (all on one value, or the given one),
/// GROUP_BY (spread evenly across values, optionally across at least N values),
/// LIKE/UNLIKE (full-match regex), MAX_PER (at most N per value), IS (equals).
/// </summary>
public sealed record Constraint(string Field, ConstraintOperator Operator, string? Value)
{
    public const string HostnameField = "hostname";
    public const string RegionField = "@region";
    public const string ZoneField = "@zone";

    public static string OperatorName(ConstraintOperator op) => op switch
    {
        ConstraintOperator.Unique => "UNIQUE",
        ConstraintOperator.Cluster => "CLUSTER",
        ConstraintOperator.GroupBy => "GROUP_BY",
        ConstraintOperator.Like => "LIKE",
        ConstraintOperator.Unlike => "UNLIKE",
        ConstraintOperator.MaxPer => "MAX_PER",
        ConstraintOperator.Is => "IS",
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static bool TryParseOperator(string text, out ConstraintOperator op)
    {
        op = text.ToUpperInvariant() switch
        {
            "UNIQUE" => ConstraintOperator.Unique,
            "CLUSTER" => ConstraintOperator.Cluster,
            "GROUP_BY" => ConstraintOperator.GroupBy,
            "LIKE" => ConstraintOperator.Like,
            "UNLIKE" => ConstraintOperator.Unlike,
            "MAX_PER" => ConstraintOperator.MaxPer,
            "IS" => ConstraintOperator.Is,
            _ => (ConstraintOperator)(-1),
        };
        return (int)op >= 0;
    }

    /// <summary>Parses the CLI form <c>field:OP[:value]</c>; the value may itself contain ':'.</summary>
    public static bool TryParse(string text, out Constraint? constraint, out string? error)
    {
        constraint = null;
        var parts = text.Split(':', 3);
        if (parts.Length < 2)
        {
            error = $"'{text}' is not of the form field:OPERATOR[:value]";
            return false;
        }

        return TryCreate(parts[0], parts[1], parts.Length == 3 ? parts[2] : null, out constraint, out error);
    }

    /// <summary>Builds and validates a constraint from its three parts (Marathon's JSON array form).</summary>
    public static bool TryCreate(string field, string op, string? value, out Constraint? constraint, out string? error)
    {
        constraint = null;
        error = null;
        if (string.IsNullOrWhiteSpace(field))
        {
            error = "the field is empty";
            return false;
        }

        if (!TryParseOperator(op, out var parsed))
        {
            error = $"unknown operator '{op}' (known: UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS)";
            return false;
        }

        switch (parsed)
        {
            case ConstraintOperator.Like or ConstraintOperator.Unlike or ConstraintOperator.Is when string.IsNullOrEmpty(value):
                error = $"{OperatorName(parsed)} needs a value";
                return false;
            case ConstraintOperator.Like or ConstraintOperator.Unlike:
                try
                {
                    _ = new System.Text.RegularExpressions.Regex(value!);
                }
                catch (ArgumentException e)
                {
                    error = $"'{value}' is not a valid regular expression: {e.Message}";
                    return false;
                }

                break;
            case ConstraintOperator.MaxPer when !int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n < 1:
                error = "MAX_PER needs a whole number of at least 1";
                return false;
            case ConstraintOperator.GroupBy when !string.IsNullOrEmpty(value) && (!int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var g) || g < 1):
                error = "GROUP_BY takes an optional whole number of at least 1";
                return false;
            case ConstraintOperator.Unique when !string.IsNullOrEmpty(value):
                error = "UNIQUE takes no value";
                return false;
        }

        var normalisedField = field == "@hostname" ? HostnameField : field;
        constraint = new Constraint(normalisedField, parsed, string.IsNullOrEmpty(value) ? null : value);
        return true;
    }

    public override string ToString() => Value is null ? $"{Field}:{OperatorName(Operator)}" : $"{Field}:{OperatorName(Operator)}:{Value}";
}
