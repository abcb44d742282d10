namespace Drover.Master.Services;

/// <summary>Where an app's instances stand, as the rolling-update planner sees them.</summary>
/// <param name="Instances">The app's instance count (the target for the new version).</param>
/// <param name="OldAlive">Instances of older versions not being killed.</param>
/// <param name="OldHealthy">Of those, how many are healthy.</param>
/// <param name="NewHealthy">Instances of the new version that are running, healthy and (with readiness checks) ready.</param>
internal readonly record struct RollingState(int Instances, int OldAlive, int OldHealthy, int NewHealthy);

/// <summary>How many old and new instances to keep (the controller launches or kills to reach it).</summary>
internal readonly record struct RollingTarget(int Old, int New)
{
    public bool Done(RollingState s) => s.OldAlive == 0 && s.NewHealthy >= s.Instances;
}

/// <summary>
/// Marathon's rolling update, as a pure function re-evaluated on every change: with
/// <c>minHealthy = ceil(n × minimumHealthCapacity)</c> and <c>maxTotal = floor(n × (1 + maximumOverCapacity))</c>,
/// keep just enough healthy old instances that old-healthy + new-healthy ≥ minHealthy, and start new
/// ones only while old + new ≤ maxTotal. Old instances are therefore only removed once new ones are
/// healthy, so an upgrade whose new version never becomes healthy never takes the app below its floor.
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

        var keepNew = Math.Min(s.Instances, maxTotal - keepOld);
        return new RollingTarget(keepOld, Math.Max(0, keepNew));
    }
}
