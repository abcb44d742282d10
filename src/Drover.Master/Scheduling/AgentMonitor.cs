using Drover.Master.State;
using Microsoft.Extensions.Hosting;

namespace Drover.Master.Scheduling;

/// <summary>Periodically turns missing heartbeats into unreachable agents (and long-unreachable ones into removed ones).</summary>
internal sealed class AgentMonitor(ClusterState state, MasterOptions options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromMilliseconds(Math.Clamp(options.AgentUnreachableTimeout.TotalMilliseconds / 4, 50, 1000));
        using var timer = new PeriodicTimer(period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                state.CheckAgentTimeouts();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
