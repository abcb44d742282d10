using System.Diagnostics;
using Drover.Master.Metrics;
using Drover.Master.State;
using Drover.Placement;
using Drover.Master.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Scheduling;

/// <summary>
/// Places pending tasks. Wakes when something changes (a submission, freed resources, a new agent)
/// and at least once a second so waiting reasons stay current. Each pass: snapshot → pure placement
/// (outside the lock) → apply with re-checks. Passes never overlap; signals during a pass coalesce
/// into one more pass.
/// </summary>
internal sealed partial class SchedulingLoop : PassLoop
{
    private readonly ClusterState _state;
    private readonly MasterMetrics _metrics;
    private readonly MasterOptions _options;
    private readonly ILogger<SchedulingLoop> _logger;
    private readonly PlacementEngine _engine;

    public SchedulingLoop(ClusterState state, MasterMetrics metrics, MasterOptions options, TimeProvider time, ILogger<SchedulingLoop> logger)
        : base(time)
    {
        _state = state;
        _metrics = metrics;
        _options = options;
        _logger = logger;
        _engine = new PlacementEngine(new PlacementOptions { Strategy = options.Strategy });
        state.SchedulingNeeded += Wake;
    }


    protected override TimeSpan Period => TimeSpan.FromSeconds(1);

    protected override void Pass() => RunPass();

    protected override void OnPassFailed(Exception e) => LogPassFailed(e);


    /// <summary>One placement pass; returns how many tasks were placed. Internal for tests.</summary>
    internal int RunPass()
    {
        if (_state.PendingCount == 0)
        {
            return 0;
        }

        var started = Stopwatch.GetTimestamp();
        var (snapshot, pending) = _state.TakeSnapshot(_options.MaxPlacementBatch);
        var plan = _engine.Place(snapshot, pending);
        var placed = _state.Apply(plan);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _metrics.RecordPlacementPass(seconds, placed);
        if (placed > 0)
        {
            LogPass(placed, plan.Unplaced.Length, seconds * 1000);
        }

        if (placed < plan.Placed.Length)
        {
            Wake(); // some decisions went stale while we computed: try again at once
        }

        return placed;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Placement pass placed {Placed}, left {Unplaced} waiting, in {Millis:F1} ms")]
    private partial void LogPass(int placed, int unplaced, double millis);

    [LoggerMessage(Level = LogLevel.Error, Message = "Placement pass failed")]
    private partial void LogPassFailed(Exception e);
}
