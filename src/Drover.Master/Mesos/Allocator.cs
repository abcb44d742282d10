using Drover.Core.Mesos;
using Drover.Master.Hosting;
using Drover.Master.State;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Mesos;

/// <summary>
/// Runs the Mesos allocator (<see cref="FrameworkManager.AllocatePass"/>) as a pass loop: at least every
/// <see cref="MasterOptions.AllocationInterval"/> (offer expiry, failover timeouts, agent changes), and at once
/// when a framework subscribes, declines, revives or accepts, or when resources are freed while a framework is
/// connected. No per-offer timers: timeouts are checked by the passes.
/// </summary>
internal sealed partial class Allocator : PassLoop
{
    private readonly FrameworkManager _frameworks;
    private readonly MasterOptions _options;
    private readonly ILogger<Allocator> _logger;

    public Allocator(FrameworkManager frameworks, ClusterState state, MasterOptions options, TimeProvider time, ILogger<Allocator> logger)
        : base(time)
    {
        _frameworks = frameworks;
        _options = options;
        _logger = logger;
        frameworks.AllocationNeeded += Wake;
        state.SchedulingNeeded += () =>
        {
            // Built-in submissions and placements fire this constantly; with no scheduler connected the periodic
            // pass is enough, so built-in throughput pays nothing for the Mesos API.
            if (frameworks.ConnectedCount > 0)
            {
                Wake();
            }
        };
    }

    protected override TimeSpan Period => _options.AllocationInterval;

    protected override void Pass()
    {
        var made = _frameworks.AllocatePass();
        if (made > 0)
        {
            LogOffers(made);
        }
    }

    protected override void OnPassFailed(Exception e) => LogPassFailed(e);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Allocator pass made {Count} offers")]
    private partial void LogOffers(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Allocator pass failed")]
    private partial void LogPassFailed(Exception e);
}
