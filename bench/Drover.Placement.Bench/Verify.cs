namespace Drover.Placement.Bench;

/// <summary>Checks a benchmark's set-up before it is timed, so a broken run fails instead of reporting a fast one.</summary>
internal static class Verify
{
    public static PlacementPlan PlacesAll(PlacementEngine engine, ClusterSnapshot cluster, IReadOnlyList<PlacementRequest> requests)
    {
        var plan = engine.Place(cluster, requests);
        if (plan.Placed.Length != requests.Count)
        {
            var first = plan.Unplaced.FirstOrDefault();
            throw new InvalidOperationException(
                $"set-up: expected all {requests.Count} requests placed on {cluster.Agents.Length} agents, placed {plan.Placed.Length}; first failure: {first?.TaskId} {first?.Reason}");
        }

        var again = engine.Place(cluster, requests);
        for (var i = 0; i < plan.Placed.Length; i++)
        {
            if (plan.Placed[i].AgentId != again.Placed[i].AgentId || plan.Placed[i].TaskId != again.Placed[i].TaskId)
            {
                throw new InvalidOperationException($"set-up: two calls on the same input differ at {plan.Placed[i].TaskId}");
            }
        }

        return plan;
    }
}
