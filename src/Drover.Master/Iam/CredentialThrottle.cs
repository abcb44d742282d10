using System.Collections.Concurrent;

namespace Drover.Master.Iam;

/// <summary>
/// Keeps password checking — PBKDF2, slow by design (~0.2 s of CPU each) — from being a lever to exhaust the
/// master: at most one check per core runs at once (a check that cannot start within <see cref="SlotWait"/>
/// is answered 429), and a client address with <see cref="MaxFailures"/> failed checks within
/// <see cref="Window"/> is answered 429 until the window ends, without hashing anything. Successful checks
/// are cached by the callers, so a well-behaved framework sending Basic credentials on every call pays once.
/// </summary>
public sealed class CredentialThrottle(TimeProvider time)
{
    public const int MaxFailures = 20;
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan SlotWait = TimeSpan.FromSeconds(2);
    private const int MaxTrackedClients = 100_000;

    private readonly SemaphoreSlim _slots = new(Math.Max(1, Environment.ProcessorCount));
    private readonly ConcurrentDictionary<string, (DateTimeOffset Start, int Failures)> _failures = new(StringComparer.Ordinal);

    /// <summary>Null when <paramref name="client"/> may try; else how long until it may.</summary>
    public TimeSpan? Blocked(string client)
    {
        if (!_failures.TryGetValue(client, out var w))
        {
            return null;
        }

        var left = w.Start + Window - time.GetUtcNow();
        return left <= TimeSpan.Zero || w.Failures < MaxFailures ? null : left;
    }

    public void Failed(string client)
    {
        if (_failures.Count >= MaxTrackedClients)
        {
            _failures.Clear(); // a flood of addresses: forget rather than grow without bound
        }

        var now = time.GetUtcNow();
        _failures.AddOrUpdate(client, _ => (now, 1), (_, w) => now - w.Start >= Window ? (now, 1) : (w.Start, w.Failures + 1));
    }

    /// <summary>Runs <paramref name="check"/> in one of the limited slots; false when none was free in time.</summary>
    public async Task<(bool Ran, T Result)> RunAsync<T>(Func<T> check, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (!await _slots.WaitAsync(SlotWait, ct).ConfigureAwait(false))
        {
            return (false, default!);
        }

        try
        {
            return (true, check());
        }
        finally
        {
            _slots.Release();
        }
    }
}
