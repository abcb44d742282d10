namespace Drover.Testing;

/// <summary>
/// A clock tests move by hand. Only <see cref="GetUtcNow"/> is controlled; timers still run on real
/// time, so use it for code that reads the clock (timeouts computed from timestamps), not for delays.
/// Thread-safe.
/// </summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public ManualTimeProvider()
        : this(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero))
    {
    }

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
