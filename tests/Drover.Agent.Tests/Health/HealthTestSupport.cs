using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;

namespace Drover.Agent.Tests.Health;

/// <summary>Helpers for health check tests: quick checks, free ports and waiting for health updates.</summary>
internal static class HealthTestSupport
{
    /// <summary>A check that starts at once and repeats every 0.1 s; callers set what they test.</summary>
    public static HealthCheck Quick(HealthCheckProtocol protocol) => new()
    {
        Protocol = protocol,
        Delay = TimeSpan.Zero,
        Interval = TimeSpan.FromSeconds(0.1),
        Timeout = TimeSpan.FromSeconds(2),
        GracePeriod = TimeSpan.Zero,
        MaxConsecutiveFailures = 0,
    };

    /// <summary>Serves the sandbox over HTTP on $PORT0 (loopback only).</summary>
    public const string HttpServer = "exec python3 -m http.server \"$PORT0\" --bind 127.0.0.1";

    public static TaskSpec Checked(string shell, params HealthCheck[] checks) => ExecutorHarness.Shell(shell) with { HealthChecks = [.. checks] };

    /// <summary>A readiness check on PORT0 that repeats every 0.1 s.</summary>
    public static TaskReadinessCheck QuickReadiness(string path = "/") => new()
    {
        Path = path,
        Interval = TimeSpan.FromSeconds(0.1),
        Timeout = TimeSpan.FromSeconds(2),
    };

    /// <summary>The readiness updates of a task (TASK_RUNNING with Ready set), in order.</summary>
    public static ImmutableArray<TaskStatus> ReadyUpdates(this ExecutorHarness h, string taskId) =>
        [.. h.UpdatesFor(taskId).Where(u => u.State == TaskState.Running && u.Ready is not null)];

    /// <summary>A port nothing listens on right now (the kernel's choice, so it is not in use).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The health-change updates of a task (TASK_RUNNING with Healthy set), in order.</summary>
    public static ImmutableArray<TaskStatus> HealthUpdates(this ExecutorHarness h, string taskId) =>
        [.. h.UpdatesFor(taskId).Where(u => u.State == TaskState.Running && u.Healthy is not null)];

    /// <summary>Waits for the <paramref name="nth"/> (1-based) health update and returns it.</summary>
    public static async Task<TaskStatus> WaitForHealthUpdateAsync(this ExecutorHarness h, string taskId, int nth = 1, TimeSpan? timeout = null)
    {
        await Eventually.TrueAsync(
            () => h.HealthUpdates(taskId).Length >= nth,
            $"{taskId} reports health update #{nth} (saw: {Describe(h, taskId)})",
            timeout);
        return h.HealthUpdates(taskId)[nth - 1];
    }

    /// <summary>Waits until the executor has performed at least <paramref name="count"/> more checks than <paramref name="since"/>.</summary>
    public static Task WaitForChecksAsync(this ExecutorHarness h, long since, int count) =>
        Eventually.TrueAsync(() => h.Executor.Health.ChecksPerformed >= since + count, $"{count} more health checks ran");

    /// <summary>Asserts <paramref name="condition"/> holds throughout <paramref name="duration"/> (for "nothing more happens").</summary>
    public static async Task HoldsForAsync(Func<bool> condition, TimeSpan duration, string what)
    {
        var until = DateTime.UtcNow + duration;
        while (DateTime.UtcNow < until)
        {
            Assert.True(condition(), what);
            await Task.Delay(20);
        }

        Assert.True(condition(), what);
    }

    public static string Describe(ExecutorHarness h, string taskId) => string.Join(", ", h.UpdatesFor(taskId).Select(u =>
        u.Healthy is { } healthy ? $"{u.State.WireName()}(healthy={healthy}: {u.Message})" : u.State.WireName()));
}
