namespace Drover.Placement.Filters;

/// <summary>Rejects agents with fewer free ports than the request's <see cref="PlacementRequest.PortCount"/>.</summary>
internal static class PortsFilter
{
    public const string Name = "ports";

    public static bool Accepts(in AgentState agent, in Need need) => agent.FreePortCount >= need.PortCount;
}
