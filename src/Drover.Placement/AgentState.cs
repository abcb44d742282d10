namespace Drover.Placement;

/// <summary>
/// The mutable, per-<see cref="PlacementEngine.Place"/> copy of one agent's numbers. Kept as a struct
/// in one array indexed by agent position so the per-agent loop touches contiguous memory and allocates nothing.
/// </summary>
internal struct AgentState
{
    public bool Schedulable;
    public long TotalCpu;
    public long TotalMem;
    public long FreeCpu;
    public long FreeMem;
    public long FreeDisk;
    public int FreeGpus;
    public int FreePortCount;
}

/// <summary>What one request needs, unpacked once so filters compare plain numbers.</summary>
internal readonly struct Need
{
    public Need(PlacementRequest request)
    {
        Cpu = request.Resources.MilliCpus;
        Mem = request.Resources.MemMiB;
        Disk = request.Resources.DiskMiB;
        Gpus = request.Resources.Gpus;
        PortCount = Math.Max(0, request.PortCount);
    }

    public long Cpu { get; }

    public long Mem { get; }

    public long Disk { get; }

    public int Gpus { get; }

    public int PortCount { get; }
}
