using BenchmarkDotNet.Attributes;

namespace Drover.Placement.Bench;

/// <summary>
/// Placement throughput: one <see cref="PlacementEngine.Place"/> call placing a batch of
/// <see cref="Batch"/> requests on a seeded cluster, reported per placement (OperationsPerInvoke), so
/// "Mean" is the time of one placement including its share of the per-call set-up, and "Allocated" the
/// bytes allocated per placement. The set-up is verified before anything is timed: every request of the
/// batch must be placed and the plan must be the same on a second call (determinism).
/// </summary>
[MemoryDiagnoser]
public class PlacementBenchmarks
{
    public const int Batch = 1000;

    private PlacementEngine _engine = null!;
    private ClusterSnapshot _cluster = null!;
    private PlacementRequest[] _requests = [];

    [Params(100, 1_000, 10_000, 100_000)]
    public int Agents { get; set; }

    [Params(PlacementStrategy.BinPack, PlacementStrategy.Spread)]
    public PlacementStrategy Strategy { get; set; }

    /// <summary>True: apps cycle through hostname:UNIQUE, rack:MAX_PER:3, @zone:GROUP_BY (and none); false: no constraints.</summary>
    [Params(true, false)]
    public bool Constrained { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _engine = new PlacementEngine(new PlacementOptions { Strategy = Strategy });
        _cluster = Workload.Cluster(Agents);
        _requests = Workload.Requests(Batch, Constrained);
        Verify.PlacesAll(_engine, _cluster, _requests);
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public PlacementPlan Place() => _engine.Place(_cluster, _requests);
}
