using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Drover.Placement.Bench;

// Usage:
//   Drover.Placement.Bench [BenchmarkDotNet args, e.g. --filter '*']    throughput (BenchmarkDotNet, in-process)
//   Drover.Placement.Bench quick [RUNS] [SIZES,...]                     the same scenarios with a Stopwatch, medians
//   Drover.Placement.Bench packing [AGENTS] [SEEDS,...]                 capacity in use at the first rejection
if (args.Length > 0 && args[0] == "quick")
{
    var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 7;
    int[] sizes = args.Length > 2 ? [.. args[2].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] : [100, 1_000, 10_000, 100_000];
    return QuickRun.Run(sizes, runs);
}

if (args.Length > 0 && args[0] == "packing")
{
    var agents = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000;
    int[] seeds = args.Length > 2 ? [.. args[2].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] : [1, 2, 3, 4, 5];
    return PackingQuality.Run(agents, seeds);
}

// In-process: no generated project to build (it would inherit the repository's warnings-as-errors), and
// the machine's two shared cores are not split between a host and a child process.
var job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(15);
var config = DefaultConfig.Instance.AddJob(job.AsDefault()).WithOptions(ConfigOptions.DisableOptimizationsValidator);
var summary = BenchmarkSwitcher.FromAssembly(typeof(PlacementBenchmarks).Assembly).Run(args, config);
return summary.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
