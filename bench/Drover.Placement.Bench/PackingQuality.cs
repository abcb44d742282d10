using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;

namespace Drover.Placement.Bench;

/// <summary>
/// Packing quality: an empty seeded cluster of mixed machine types receives a seeded stream of mixed tasks
/// (mostly small, some up to 8 cpus, 1–8 GiB per cpu), placed in batches as the master does, until the
/// first task that fits nowhere. Reported: the fraction of the cluster's cpu and memory in use at that
/// moment, per strategy. Deterministic: the same seeds give the same figures.
/// </summary>
internal static class PackingQuality
{
    public const int BatchSize = 100;

    public static int Run(int agents, int[] seeds)
    {
        Console.WriteLine($"packing quality: {agents} empty agents, mixed tasks in batches of {BatchSize}, until the first rejection");
        Console.WriteLine("strategy | seed | tasks placed | cpu in use | memory in use | first rejected");
        var results = new Dictionary<PlacementStrategy, List<(double Cpu, double Mem)>>();
        foreach (var strategy in new[] { PlacementStrategy.BinPack, PlacementStrategy.Spread })
        {
            results[strategy] = [];
            foreach (var seed in seeds)
            {
                var r = RunOne(agents, strategy, seed);
                results[strategy].Add((r.Cpu, r.Mem));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{strategy} | {seed} | {r.Placed} | {r.Cpu:P1} | {r.Mem:P1} | {r.Rejected}"));
            }
        }

        foreach (var (strategy, list) in results)
        {
            var cpu = Median(list.Select(x => x.Cpu));
            var mem = Median(list.Select(x => x.Mem));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median {strategy}: cpu {cpu:P1}, memory {mem:P1}"));
        }

        return 0;
    }

    public static (int Placed, double Cpu, double Mem, string Rejected) RunOne(int agents, PlacementStrategy strategy, int seed)
    {
        var engine = new PlacementEngine(new PlacementOptions { Strategy = strategy });
        var cluster = Workload.Cluster(agents, seed, empty: true);
        var byId = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < cluster.Agents.Length; i++)
        {
            byId.Add(cluster.Agents[i].Id, i);
        }

        long totalCpu = cluster.Agents.Sum(a => a.Total.MilliCpus), totalMem = cluster.Agents.Sum(a => a.Total.MemMiB);
        long usedCpu = 0, usedMem = 0;
        var placedCount = 0;
        using var tasks = Workload.MixedTasks(seed).GetEnumerator();
        while (true)
        {
            var batch = new PlacementRequest[BatchSize];
            for (var i = 0; i < batch.Length; i++)
            {
                tasks.MoveNext();
                batch[i] = tasks.Current;
            }

            // Largest first, as the engine orders a pass (README): by share of the cluster's total cpus +
            // memory (the tasks ask no disk or gpus), ties in stream order.
            double cpuTotal = totalCpu, memTotal = totalMem;
            batch = [.. batch.Select((r, i) => (r, i)).OrderByDescending(x => (x.r.Resources.MilliCpus / cpuTotal) + (x.r.Resources.MemMiB / memTotal)).ThenBy(x => x.i).Select(x => x.r)];
            var plan = engine.Place(cluster, batch);
            // Capacity in use at the moment of the first rejection: what the pass placed before it. The batch
            // was put in the engine's own order above, so batch order is the order of placement.
            var requestIndex = batch.Select((r, i) => (r.TaskId, i)).ToDictionary(x => x.TaskId, x => x.i, StringComparer.Ordinal);
            var firstFailure = plan.Unplaced.IsEmpty ? null : plan.Unplaced.MinBy(f => requestIndex[f.TaskId]);
            var failedAt = firstFailure is null ? batch.Length : requestIndex[firstFailure.TaskId];
            if (plan.Placed.Select(d => d.TaskId).Concat(plan.Unplaced.Select(f => f.TaskId)).Order(StringComparer.Ordinal).SequenceEqual(batch.Select(r => r.TaskId).Order(StringComparer.Ordinal)) is false
                || plan.Placed.Select(d => requestIndex[d.TaskId]).Zip(plan.Placed.Skip(1).Select(d => requestIndex[d.TaskId])).Any(p => p.First > p.Second))
            {
                throw new InvalidOperationException("bench: the engine did not place the batch in the order given (largest first)");
            }
            var agentsNow = cluster.Agents.ToBuilder();
            foreach (var decision in plan.Placed)
            {
                var request = batch[requestIndex[decision.TaskId]];
                var position = byId[decision.AgentId];
                var agent = agentsNow[position];
                agentsNow[position] = agent with
                {
                    Free = agent.Free.Subtract(request.Resources with { Ports = PortRanges.Of([.. decision.Ports]) }),
                };
                if (requestIndex[decision.TaskId] < failedAt)
                {
                    usedCpu += request.Resources.MilliCpus;
                    usedMem += request.Resources.MemMiB;
                    placedCount++;
                }
            }

            if (firstFailure is not null)
            {
                return (placedCount, (double)usedCpu / totalCpu, (double)usedMem / totalMem,
                    $"{batch[failedAt].Resources.Cpus} cpus/{batch[failedAt].Resources.MemMiB} MiB: {firstFailure.Reason}");
            }

            cluster = new ClusterSnapshot { Agents = agentsNow.ToImmutable() };
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
