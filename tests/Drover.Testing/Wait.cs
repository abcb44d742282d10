using System.Collections;
using System.Diagnostics;
using System.Globalization;

namespace Drover.Testing;

/// <summary>Polling with a deadline, for tests that wait on real processes and HTTP endpoints.</summary>
public static class Wait
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(100);

    private const int MaxDescriptionLength = 4000;

    /// <summary>
    /// Calls <paramref name="probe"/> until <paramref name="done"/> holds for its result and returns that
    /// result. A probe that hangs is abandoned at the deadline. Exceptions from the probe end the wait at
    /// once, except those <paramref name="retryOn"/> accepts, which count as "not yet" (the last one is
    /// reported). The probe runs at least once.
    /// </summary>
    /// <exception cref="TimeoutException">
    /// <paramref name="done"/> never held within <paramref name="timeout"/>; the message names
    /// <paramref name="what"/> and shows the last value seen (via <paramref name="describe"/> when given).
    /// </exception>
    public static async Task<T> UntilAsync<T>(
        Func<Task<T>> probe,
        Func<T, bool> done,
        TimeSpan timeout,
        string what,
        TimeSpan? interval = null,
        Func<Exception, bool>? retryOn = null,
        Func<T, string>? describe = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        ArgumentNullException.ThrowIfNull(what);
        var poll = interval ?? DefaultInterval;
        var clock = Stopwatch.StartNew();
        var attempts = 0;
        var seen = false;
        var hung = false;
        T last = default!;
        Exception? lastError = null;
        while (true)
        {
            attempts++;
            var remaining = timeout - clock.Elapsed;
            var attempt = probe();
            if (await Task.WhenAny(attempt, Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero)).ConfigureAwait(false) != attempt)
            {
                hung = true;
                _ = attempt.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                break;
            }

            try
            {
                var value = await attempt.ConfigureAwait(false);
                if (done(value))
                {
                    return value;
                }

                last = value;
                seen = true;
                lastError = null;
            }
            catch (Exception e) when (retryOn?.Invoke(e) == true)
            {
                lastError = e;
            }

            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                break;
            }

            await Task.Delay(poll < left ? poll : left).ConfigureAwait(false);
        }

        var message = string.Create(CultureInfo.InvariantCulture,
            $"Timed out after {clock.Elapsed.TotalSeconds:0.0} s (limit {timeout.TotalSeconds:0.#} s, {attempts} attempts) waiting for {what}.");
        if (hung)
        {
            message += " The last probe had not returned by the deadline.";
        }

        message += seen ? $" Last value: {Truncate(describe is null ? Describe(last) : describe(last))}" : " No value was seen.";
        if (lastError is not null)
        {
            message += $" Last error: {lastError.GetType().Name}: {lastError.Message}";
        }

        throw new TimeoutException(message, lastError);
    }

    /// <summary>Polls <paramref name="condition"/> until it returns true.</summary>
    /// <exception cref="TimeoutException">It did not within <paramref name="timeout"/>.</exception>
    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        UntilAsync(condition, static ok => ok, timeout, what);

    /// <summary>Renders a value for a message: sequences element by element, strings quoted.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Take(50).Select(Describe)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Truncate(string text) => text.Length <= MaxDescriptionLength ? text : text[..MaxDescriptionLength] + "…";
}
