using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Drover.Placement.Filters;

/// <summary>Compiled full-match regexes by pattern, shared by all passes of one engine (thread-safe).</summary>
internal sealed class RegexCache
{
    private readonly ConcurrentDictionary<string, Regex?> _regexes = new(StringComparer.Ordinal);

    /// <summary>The pattern anchored to match the whole value (Marathon uses Java's String.matches), or null if invalid.</summary>
    public Regex? Get(string pattern) => _regexes.GetOrAdd(pattern, static p =>
    {
        try
        {
            return new Regex($@"\A(?:{p})\z", RegexOptions.CultureInvariant);
        }
        catch (ArgumentException)
        {
            return null;
        }
    });
}
