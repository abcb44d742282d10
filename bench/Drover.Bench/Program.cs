using System.Globalization;
using Drover.Bench;

// Usage:
//   Drover.Bench launch   MASTER_URL COUNT [CPUS] [MEM_MIB] [-- CMD...]
//   Drover.Bench services MASTER_URL INSTANCES [ROUNDS=2]   (round 1 cold, later rounds warm)
//   Drover.Bench auth     MASTER_URL [REQUESTS=5000]          (login latency; authenticated read latency)
//   Drover.Bench restart  DROVER_DLL TASKS [RUNNING] [RESTARTS]
//   Drover.Bench agent-loss DROVER_DLL INSTANCES [UNREACHABLE_SECONDS] [ROUNDS]
//   Drover.Bench store    sqlite DIR | etcd etcd://HOST:PORT,… [OPS]
//   Drover.Bench failover DROVER_DLL etcd://HOST:PORT,… [RUNS]
//   Drover.Bench api-write DROVER_DLL embedded|etcd://HOST:PORT,… [OPS]
//   Drover.Bench scale    DROVER_DLL AGENTSIM_DLL AGENTS INSTANCES
//   Drover.Bench load     DROVER_DLL [APPS=2000] [SUBSCRIBERS=200] [READERS=8]   (BENCH_LABEL names the build in the output)
if (args.Length >= 2 && args[0] == "load")
{
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
    return await LoadBenchmark.RunAsync(Path.GetFullPath(args[1]), Environment.GetEnvironmentVariable("BENCH_LABEL") ?? "drover", Arg(2, 2000), Arg(3, 200), Arg(4, 8),
        TimeSpan.FromMinutes(10));
}

if (args.Length >= 3 && args[0] == "failover")
{
    return await HaBenchmark.FailoverAsync(Path.GetFullPath(args[1]), args[2], args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 10);
}

if (args.Length >= 3 && args[0] == "api-write")
{
    return await HaBenchmark.ApiWriteAsync(Path.GetFullPath(args[1]), args[2], args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1000);
}

if (args.Length >= 3 && args[0] == "store")
{
    return await StoreBenchmark.RunAsync(args[1], args[2], args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2000);
}

if (args.Length >= 5 && args[0] == "scale")
{
    return await ScaleBenchmark.RunAsync(Path.GetFullPath(args[1]), Path.GetFullPath(args[2]), int.Parse(args[3], CultureInfo.InvariantCulture),
        int.Parse(args[4], CultureInfo.InvariantCulture), TimeSpan.FromMinutes(30));
}

if (args.Length >= 2 && args[0] == "auth")
{
    return await AuthBenchmark.RunAsync(new Uri(args[1]), args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5000);
}

if (args.Length >= 3 && args[0] == "services")
{
    var rounds = args.Length >= 4 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2;
    return await ServicesBenchmark.RunAsync(new Uri(args[1]), int.Parse(args[2], CultureInfo.InvariantCulture), rounds, TimeSpan.FromMinutes(3));
}

if (args.Length >= 3 && args[0] == "restart")
{
    var tasks = int.Parse(args[2], CultureInfo.InvariantCulture);
    var running = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : Math.Min(1000, tasks);
    var restarts = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 5;
    return await RestartBenchmark.RunAsync(Path.GetFullPath(args[1]), tasks, running, restarts, TimeSpan.FromMinutes(2));
}

if (args.Length >= 3 && args[0] == "agent-loss")
{
    return await AgentLossBenchmark.RunAsync(Path.GetFullPath(args[1]), int.Parse(args[2], CultureInfo.InvariantCulture),
        args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 15, args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 5,
        TimeSpan.FromMinutes(2));
}

if (args.Length < 3 || args[0] != "launch")
{
    Console.Error.WriteLine("usage: Drover.Bench launch MASTER_URL COUNT [CPUS] [MEM_MIB] [-- CMD...] | services MASTER_URL INSTANCES [ROUNDS] | restart DROVER_DLL TASKS [RUNNING] [RESTARTS] | agent-loss DROVER_DLL INSTANCES [UNREACHABLE_SECONDS] [ROUNDS] | store sqlite DIR|etcd etcd://HOST:PORT,… [OPS] | failover DROVER_DLL etcd://… [RUNS] | api-write DROVER_DLL embedded|etcd://… [OPS]");
    return 2;
}

var dash = Array.IndexOf(args, "--");
var positional = dash < 0 ? args : args[..dash];
var command = dash < 0 ? ["sleep", "60"] : args[(dash + 1)..];
var cpus = positional.Length > 3 ? decimal.Parse(positional[3], CultureInfo.InvariantCulture) : 0.01m;
var mem = positional.Length > 4 ? int.Parse(positional[4], CultureInfo.InvariantCulture) : 8;
return await LaunchBenchmark.RunAsync(new Uri(args[1]), int.Parse(args[2], CultureInfo.InvariantCulture), command, cpus, mem, TimeSpan.FromMinutes(2));
