using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;

namespace Drover.Bench;

/// <summary>
/// Submits N one-off process tasks at once to a running cluster and measures, from the master's and
/// agent's own timestamps, how long each took from submission to TASK_RUNNING, and how long until
/// all were running. Kills them afterwards. Fails (exit 1) if any task ends instead of running, so a
/// broken setup is never reported as a fast one.
/// </summary>
internal static class LaunchBenchmark
{
    public static async Task<int> RunAsync(Uri master, int count, string[] command, decimal cpus, int memMiB, TimeSpan timeout)
    {
        using var http = BenchHttp.Create(master);
        using var client = new DroverClient(master, http);
        var agents = await client.ListAgentsAsync();
        if (agents.Length == 0)
        {
            Console.Error.WriteLine("bench: no agents registered");
            return 1;
        }

        // Warm-up: one task end to end, so JIT and connection set-up are not measured.
        var warm = await client.SubmitTaskAsync(Submission(command, cpus, memMiB, "warmup"));
        await client.WaitForTaskAsync(warm.Id, t => t.State is TaskState.Running || t.State.IsTerminal());
        await client.KillTaskAsync(warm.Id);
        await client.WaitForTaskAsync(warm.Id);

        var ids = new ConcurrentBag<string>();
        var wall = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var t = await client.SubmitTaskAsync(Submission(command, cpus, memMiB, $"bench-{i}"), ct);
            ids.Add(t.Id);
        });
        var submitSeconds = wall.Elapsed.TotalSeconds;

        var deadline = DateTime.UtcNow + timeout;
        IReadOnlyList<TaskView> tasks;
        while (true)
        {
            var all = await client.ListTasksAsync();
            var mine = ids.ToHashSet();
            tasks = [.. all.Where(t => mine.Contains(t.Id))];
            var notYet = tasks.Count(t => !t.Statuses.Any(s => s.State == TaskState.Running) && !t.State.IsTerminal());
            if (notYet == 0 || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(100);
        }

        var allRunningSeconds = wall.Elapsed.TotalSeconds;
        var failed = tasks.Where(t => !t.Statuses.Any(s => s.State == TaskState.Running)).ToList();
        var latencies = tasks
            .Select(t => (t.SubmittedAt, Running: t.Statuses.FirstOrDefault(s => s.State == TaskState.Running)))
            .Where(x => x.Running is not null)
            .Select(x => x.Running!.Timestamp - x.SubmittedAt.ToUnixTimeMilliseconds() / 1000.0)
            .Order()
            .ToArray();
        var firstSubmit = tasks.Min(t => t.SubmittedAt).ToUnixTimeMilliseconds() / 1000.0;
        var lastRunning = tasks.SelectMany(t => t.Statuses).Where(s => s.State == TaskState.Running).Select(s => s.Timestamp).DefaultIfEmpty(firstSubmit).Max();
        var span = lastRunning - firstSubmit;

        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (id, ct) => await client.KillTaskAsync(id, ct));

        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}"));
        Console.WriteLine(string.Create(inv, $"tasks: {count} x [{string.Join(' ', command)}] cpus={cpus} mem={memMiB}MiB on {agents.Length} agent(s)"));
        Console.WriteLine(string.Create(inv, $"submit: all {count} accepted in {submitSeconds:F2} s ({count / submitSeconds:F0}/s, 32 concurrent clients)"));
        if (latencies.Length > 0)
        {
            Console.WriteLine(string.Create(inv, $"submit->TASK_RUNNING: p50 {Percentile(latencies, 0.50) * 1000:F0} ms, p90 {Percentile(latencies, 0.90) * 1000:F0} ms, p99 {Percentile(latencies, 0.99) * 1000:F0} ms, max {latencies[^1] * 1000:F0} ms"));
        }

        Console.WriteLine(string.Create(inv, $"first submit -> last TASK_RUNNING: {span:F2} s ({latencies.Length / Math.Max(span, 1e-9):F0} tasks/s); observed by client after {allRunningSeconds:F2} s"));
        if (failed.Count > 0)
        {
            Console.Error.WriteLine($"bench: {failed.Count} tasks never reached TASK_RUNNING, e.g. {failed[0].Id} {failed[0].State.WireName()} {failed[0].Message} {failed[0].WaitingReason}");
            return 1;
        }

        return 0;
    }

    private static TaskSubmission Submission(string[] command, decimal cpus, int memMiB, string name) => new()
    {
        Name = name,
        Args = [.. command],
        Cpus = JsonSerializer.SerializeToElement(cpus),
        Mem = JsonSerializer.SerializeToElement(memMiB),
    };

    private static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
