using System.Collections;
using System.Collections.Immutable;
using System.Globalization;

namespace Drover.Core;

/// <summary>An agent attribute value: Mesos' TEXT or SCALAR.</summary>
public readonly record struct AttributeValue
{
    public string? Text { get; init; }

    public double? Scalar { get; init; }

    public static AttributeValue OfText(string text) => new() { Text = text };

    public static AttributeValue OfScalar(double value) => new() { Scalar = value };

    /// <summary>The value as constraints compare it: text as is, scalars in invariant culture.</summary>
    public override string ToString() => Text ?? Scalar!.Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Immutable, name-sorted agent attributes, e.g. <c>rack:r1;gpu_model:a100;cores:8</c>.
/// A value that parses as a number is a SCALAR, anything else TEXT, as in Mesos.
/// </summary>
public sealed class Attributes : IEquatable<Attributes>, IEnumerable<KeyValuePair<string, AttributeValue>>
{
    public static readonly Attributes Empty = new(ImmutableSortedDictionary<string, AttributeValue>.Empty);

    private readonly ImmutableSortedDictionary<string, AttributeValue> _values;

    private Attributes(ImmutableSortedDictionary<string, AttributeValue> values) => _values = values;

    public int Count => _values.Count;

    public static Attributes From(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var b = ImmutableSortedDictionary.CreateBuilder<string, AttributeValue>(StringComparer.Ordinal);
        foreach (var (k, v) in pairs)
        {
            b[k] = Classify(v);
        }

        return new Attributes(b.ToImmutable());
    }

    private static AttributeValue Classify(string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
            ? AttributeValue.OfScalar(d)
            : AttributeValue.OfText(value);

    public bool TryGet(string name, out AttributeValue value) => _values.TryGetValue(name, out value);

    public static bool TryParse(string text, out Attributes attributes, out string? error)
    {
        attributes = Empty;
        error = null;
        var pairs = new List<KeyValuePair<string, string>>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || colon == item.Length - 1)
            {
                error = $"'{item}' is not of the form name:value";
                return false;
            }

            var name = item[..colon].Trim();
            if (!Ids.IsValidName(name))
            {
                error = $"attribute name '{name}' may hold only letters, digits, '_', '-' and '.'";
                return false;
            }

            if (!names.Add(name))
            {
                error = $"attribute '{name}' is given twice";
                return false;
            }

            pairs.Add(new(name, item[(colon + 1)..].Trim()));
        }

        attributes = From(pairs);
        return true;
    }

    public override string ToString() => string.Join(';', _values.Select(kv => $"{kv.Key}:{kv.Value}"));

    public IEnumerator<KeyValuePair<string, AttributeValue>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool Equals(Attributes? other) => other is not null && _values.SequenceEqual(other._values);

    public override bool Equals(object? obj) => Equals(obj as Attributes);

    public override int GetHashCode() => _values.Aggregate(0, (h, kv) => HashCode.Combine(h, kv.Key, kv.Value));
}

/// <summary>Mesos fault domain: the region and zone an agent lives in.</summary>
public sealed record FaultDomain(string Region, string Zone)
{
    public override string ToString() => $"{Region}/{Zone}";
}
