namespace Drover.Placement.Filters;

/// <summary>The scalar resource an agent is short of, in the order the filter checks them.</summary>
internal enum Shortfall
{
    None,
    Cpus,
    Mem,
    Disk,
    Gpus,
}

/// <summary>Rejects agents without enough free cpus, memory, disk or gpus (after earlier placements of the batch).</summary>
internal static class ResourcesFilter
{
    public const string Name = "resources";

    public static bool Accepts(in AgentState agent, in Need need) => FirstShortfall(agent, need) == Shortfall.None;

    public static Shortfall FirstShortfall(in AgentState agent, in Need need) =>
        agent.FreeCpu < need.Cpu ? Shortfall.Cpus
        : agent.FreeMem < need.Mem ? Shortfall.Mem
        : agent.FreeDisk < need.Disk ? Shortfall.Disk
        : agent.FreeGpus < need.Gpus ? Shortfall.Gpus
        : Shortfall.None;
}
