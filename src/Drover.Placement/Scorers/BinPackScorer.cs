namespace Drover.Placement.Scorers;

/// <summary>
/// 0–100: how full the agent would be after the placement (mean of cpu and memory utilisation).
/// Higher wins, so tasks pack onto busy agents and whole agents stay free for large tasks.
/// </summary>
internal static class BinPackScorer
{
    public const string Name = "binpack";

    public static double Score(in AgentState agent, in Need need) =>
        50.0 * (UtilisationAfter(agent.TotalCpu, agent.FreeCpu, need.Cpu) + UtilisationAfter(agent.TotalMem, agent.FreeMem, need.Mem));

    /// <summary>Fraction in use after placing; a dimension the agent has none of counts as full.</summary>
    internal static double UtilisationAfter(long total, long free, long request) =>
        total <= 0 ? 1.0 : Math.Clamp((double)(total - free + request) / total, 0.0, 1.0);
}
