namespace Drover.Placement.Scorers;

/// <summary>0–100: the reverse of <see cref="BinPackScorer"/>; the emptiest agent wins, spreading load and failure impact.</summary>
internal static class SpreadScorer
{
    public const string Name = "spread";

    public static double Score(in AgentState agent, in Need need) => 100.0 - BinPackScorer.Score(agent, need);
}
