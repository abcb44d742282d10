namespace Drover.Master.Services;

/// <summary>Where an app's instances stand, as the rolling-update planner sees them.</summary>
/// <param name="Instances">The app's instance count (the target for the new version).</param>
/// <param name="OldAlive">Instances of older versions not being killed.</param>
/// <param name="OldHealthy">Of those, how many are healthy.</param>
/// <param name="NewHealthy">Instances of the new version that are running, healthy and (with readiness checks) ready.</param>
/// <param name="NewAlive">Instances of the new version not being killed, in any state short of ended (placed or not, healthy or not).</param>
/// <param name="Dying">
/// Instances of any version being killed (TASK_KILLING or kill requested) that have not ended, on reachable agents.
/// Each still holds its place under the ceiling until it has ended, as in Marathon's TaskReplaceActor, where an old
/// instance counts against maxCapacity until it is terminal (or unreachable). A dying instance on an unreachable
/// agent is not counted: it cannot confirm its end, and the app's unreachableStrategy decides about it.
/// </param>
internal readonly record struct RollingState(int Instances, int OldAlive, int OldHealthy, int NewHealthy, int NewAlive, int Dying);

/// <summary>
/// How many old and new instances to keep (the controller kills down to them), and how many new instances
/// to launch now: <see cref="Launch"/> is at most <c>New − NewAlive</c>, less when dying instances still
/// take the room under the ceiling.
/// </summary>
internal readonly record struct RollingTarget(int Old, int New, int Launch)
{
    public bool Done(RollingState s) => s.OldAlive == 0 && s.NewHealthy >= s.Instances;
}

/// <summary>
/// Marathon's rolling update, as a pure function re-evaluated on every change: with
/// <c>minHealthy = ceil(n × minimumHealthCapacity)</c> and <c>maxTotal = floor(n × (1 + maximumOverCapacity))</c>,
/// keep just enough healthy old instances that old-healthy + new-healthy ≥ minHealthy, and start new
/// ones only while old + new + dying ≤ maxTotal, a killed instance counting until it has ended. Old
/// instances are therefore only removed once new ones are healthy, so an upgrade whose new version never
/// becomes healthy never takes the app below its floor; and an instance that takes its kill grace to
/// stop (a service draining on SIGTERM) is not replaced before it is gone when there is no room for both.
/// </summary>
internal static class RollingUpdate
{
    public static (int MinHealthy, int MaxTotal) Bounds(int instances, decimal minimumHealthCapacity, decimal maximumOverCapacity)
    {
        var minHealthy = (int)Math.Ceiling(instances * minimumHealthCapacity);
        var maxTotal = (int)Math.Floor(instances * (1 + maximumOverCapacity));

        // With minimumHealthCapacity 1 and maximumOverCapacity 0 no step could ever be taken; allow
        // one extra instance so the update can proceed without dropping below the floor.
        if (maxTotal <= minHealthy && instances > 0 && minHealthy >= instances)
        {
            maxTotal = instances + 1;
        }

        return (minHealthy, Math.Max(maxTotal, instances));
    }

    public static RollingTarget Next(RollingState s, decimal minimumHealthCapacity, decimal maximumOverCapacity)
    {
        var (minHealthy, maxTotal) = Bounds(s.Instances, minimumHealthCapacity, maximumOverCapacity);

        // Healthy old instances still needed for the floor; unhealthy old ones add nothing and go first.
        var oldNeeded = Math.Max(0, minHealthy - s.NewHealthy);
        var keepOld = Math.Min(s.OldAlive, oldNeeded);

        var keepNew = Math.Max(0, Math.Min(s.Instances, maxTotal - keepOld));

        // Kills do not free room until the instances have ended: every instance alive now (kept or about
        // to be killed) and every one still dying is counted. Dying instances never make the controller
        // kill healthy new ones (New is not lowered for them); they only hold launches back.
        var launch = Room(maxTotal, s.OldAlive + s.NewAlive, s.Dying, keepNew - s.NewAlive);
        return new RollingTarget(keepOld, keepNew, launch);
    }

    /// <summary>
    /// The app's ceiling outside a rolling update (scale changes, replacing instances that ended):
    /// <c>max(n, floor(n × (1 + maximumOverCapacity)))</c>, without the extra instance <see cref="Bounds"/>
    /// allows a rolling update whose floor is the whole app.
    /// </summary>
    public static int Ceiling(int instances, decimal maximumOverCapacity) =>
        Math.Max(instances, (int)Math.Floor(instances * (1 + maximumOverCapacity)));

    /// <summary>
    /// How many of <paramref name="wanted"/> new instances may start now under <paramref name="ceiling"/>,
    /// with <paramref name="alive"/> live instances and <paramref name="dying"/> killed ones that have not ended.
    /// </summary>
    public static int Room(int ceiling, int alive, int dying, int wanted) =>
        Math.Max(0, Math.Min(wanted, ceiling - alive - dying));
}
