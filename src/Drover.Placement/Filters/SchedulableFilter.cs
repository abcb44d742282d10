namespace Drover.Placement.Filters;

/// <summary>Rejects agents that are unreachable or draining (<see cref="AgentSnapshot.Schedulable"/> false).</summary>
internal static class SchedulableFilter
{
    public const string Name = "schedulable";

    public static bool Accepts(in AgentState agent) => agent.Schedulable;
}
