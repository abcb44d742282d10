using System.Collections.Immutable;
using System.Text;
using System.Text.RegularExpressions;

namespace Drover.Core.Marathon;

/// <summary>
/// A Marathon path id such as <c>/prod/web</c>: segments separated by <c>/</c>, absolute when it starts
/// with <c>/</c>. Relative ids (<c>web</c>, <c>../db</c>) are resolved against a base with
/// <see cref="Canonical"/>; <c>.</c> and <c>..</c> segments only survive until then. Value equality.
/// </summary>
/// <remarks>
/// Parsing follows Marathon's <c>PathId(String)</c>: leading and trailing slashes are trimmed and empty
/// segments dropped, so <c>//a//b/</c> is <c>/a/b</c>. <see cref="Validate"/> applies Marathon's id rules.
/// </remarks>
public readonly partial struct AppId : IEquatable<AppId>
{
    /// <summary>The root group, <c>/</c>.</summary>
    public static readonly AppId Root = new([], absolute: true);

    /// <summary>
    /// Marathon's RAML pattern for a whole path id (<c>strings.PathId</c>); failing it is reported as
    /// <c>error.pattern</c>.
    /// </summary>
    public const string PathPattern = @"^(\/?((\.{2})|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|\/))+$";

    /// <summary>
    /// Marathon's rule for each segment, matched against the whole segment as Java's <c>matches()</c> does (<c>PathIdValidation.ID_PATH_SEGMENT_PATTERN</c>): dot-separated
    /// labels of lowercase letters, digits and inner hyphens, or <c>.</c> / <c>..</c>.
    /// </summary>
    public const string SegmentPattern = @"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$";

    /// <summary>Last segments Marathon reserves for its own REST paths.</summary>
    public static readonly ImmutableArray<string> ReservedNames = ["restart", "tasks", "versions"];

    private readonly ImmutableArray<string> _segments;

    private AppId(ImmutableArray<string> segments, bool absolute)
    {
        _segments = segments;
        IsAbsolute = absolute;
    }

    public ImmutableArray<string> Segments => _segments.IsDefault ? [] : _segments;

    public bool IsAbsolute { get; }

    /// <summary>True for an id without segments (<c>/</c>, or an empty relative id).</summary>
    public bool IsRoot => Segments.IsEmpty;

    /// <summary>The last segment (the app's own name), or empty for the root.</summary>
    public string Name => Segments.IsEmpty ? "" : Segments[^1];

    /// <summary>The enclosing group; the root is its own parent.</summary>
    public AppId Parent => Segments.IsEmpty ? this : new AppId(Segments.RemoveAt(Segments.Length - 1), IsAbsolute);

    /// <summary>Splits <paramref name="text"/> without validating it (Marathon's <c>PathId(String)</c>).</summary>
    public static AppId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var segments = text.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return new AppId([.. segments], text.StartsWith('/'));
    }

    /// <summary>
    /// Marathon's id rules, in its words: the RAML pattern (<c>error.pattern</c>), then each segment's
    /// pattern and the reserved last names. Null when the id is valid. Root and emptiness are the caller's
    /// concern (an app id needs at least one segment; a group id may be <c>/</c>).
    /// </summary>
    public static string? Validate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return MarathonErrorText.MinLength;
        }

        // Before the patterns: an id names URLs (a longer one could never be deleted: 414) and store keys.
        if (text.Length > InputLimits.MaxAppIdLength)
        {
            return MarathonErrorText.IdTooLong(text.Length);
        }

        if (!PathRegex().IsMatch(text))
        {
            return MarathonErrorText.Pattern;
        }

        var id = Parse(text);
        foreach (var segment in id.Segments)
        {
            if (!SegmentRegex().IsMatch(segment))
            {
                return $"must fully match regular expression '{SegmentPattern}'";
            }
        }

        if (!id.Segments.IsEmpty && ReservedNames.Contains(id.Name))
        {
            return $"must not end with any of the following reserved keywords: {string.Join(", ", ReservedNames)}";
        }

        return null;
    }

    /// <summary>Parses and validates; <paramref name="error"/> is Marathon's message when invalid.</summary>
    public static bool TryParse(string text, out AppId id, out string? error)
    {
        error = Validate(text);
        id = error is null ? Parse(text) : default;
        return error is null;
    }

    /// <summary>
    /// The absolute, dot-free form: a relative id is appended to <paramref name="baseId"/> (the root when
    /// omitted); <c>.</c> is dropped and <c>..</c> removes the segment before it (never above the root).
    /// </summary>
    public AppId Canonical(AppId? baseId = null)
    {
        var start = baseId ?? Root;
        if (!start.IsAbsolute)
        {
            throw new ArgumentException("the base id must be absolute", nameof(baseId));
        }

        var all = IsAbsolute ? Segments : start.Segments.AddRange(Segments);
        var result = ImmutableArray.CreateBuilder<string>(all.Length);
        foreach (var segment in all)
        {
            switch (segment)
            {
                case ".":
                    break;
                case "..":
                    if (result.Count > 0)
                    {
                        result.RemoveAt(result.Count - 1);
                    }

                    break;
                default:
                    result.Add(segment);
                    break;
            }
        }

        return new AppId(result.ToImmutable(), absolute: true);
    }

    /// <summary>True when this (canonical) id sits directly in <paramref name="group"/>.</summary>
    public bool IsChildOf(AppId group) => !Segments.IsEmpty && Parent.Equals(group);

    public AppId Append(string segment) => new(Segments.Add(segment), IsAbsolute);

    /// <summary><c>/a/b</c> for absolute ids, <c>a/b</c> for relative ones, <c>/</c> for the root.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        if (IsAbsolute)
        {
            sb.Append('/');
        }

        return sb.AppendJoin('/', Segments).ToString();
    }

    public bool Equals(AppId other) =>
        IsAbsolute == other.IsAbsolute && Segments.AsSpan().SequenceEqual(other.Segments.AsSpan());

    public override bool Equals(object? obj) => obj is AppId other && Equals(other);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(IsAbsolute);
        foreach (var s in Segments)
        {
            hash.Add(s, StringComparer.Ordinal);
        }

        return hash.ToHashCode();
    }

    public static bool operator ==(AppId left, AppId right) => left.Equals(right);

    public static bool operator !=(AppId left, AppId right) => !left.Equals(right);

    [GeneratedRegex(@"\A(?:" + PathPattern + @")\z", RegexOptions.CultureInvariant)]
    private static partial Regex PathRegex();

    [GeneratedRegex(@"\A(?:" + SegmentPattern + @")\z", RegexOptions.CultureInvariant)]
    private static partial Regex SegmentRegex();
}
