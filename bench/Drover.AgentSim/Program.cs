using System.Globalization;
using System.Runtime.InteropServices;
using Drover.Core;
using Drover.Testing.Simulation;

// Usage: Drover.AgentSim MASTER_URL AGENTS [RESOURCES] [ZONES]
// Runs AGENTS simulated agents against the master until SIGTERM/SIGINT. Prints "registered N" on
// stdout once every agent has registered, then a line of counters every 5 s on stderr.
if (args.Length < 2 || !Uri.TryCreate(args[0], UriKind.Absolute, out var master) || !int.TryParse(args[1], CultureInfo.InvariantCulture, out var count) || count < 1)
{
    Console.Error.WriteLine("usage: Drover.AgentSim MASTER_URL AGENTS [RESOURCES] [ZONES]");
    return 2;
}

var options = new AgentSimulatorOptions();
if (args.Length > 2)
{
    options = options with { Resources = Resources.Parse(args[2]) };
}

if (args.Length > 3)
{
    options = options with { Zones = int.Parse(args[3], CultureInfo.InvariantCulture) };
}

using var stop = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

await using var sim = AgentSimulator.Start(master, count, options);
var reporter = Task.Run(async () =>
{
    while (!stop.IsCancellationRequested)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(5), stop.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        using var self = System.Diagnostics.Process.GetCurrentProcess();
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{DateTime.UtcNow:HH:mm:ss} {sim.Describe()} rss_mb={self.WorkingSet64 >> 20} threads={self.Threads.Count} fds={Directory.GetFiles("/proc/self/fd").Length} gc_heap_mb={GC.GetTotalMemory(false) >> 20}"));
    }
});

try
{
    await sim.WaitRegisteredAsync(TimeSpan.FromMinutes(5), stop.Token);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"registered {sim.Registered}"));
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}

await reporter;
Console.Error.WriteLine($"final {sim.Describe()}");
return 0;
