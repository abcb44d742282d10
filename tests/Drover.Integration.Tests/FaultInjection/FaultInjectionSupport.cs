using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;
using Drover.Testing.Clusters;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// Test classes that kill processes or cut hosts off. Each test starts a <see cref="MultiHostCluster"/>
/// of its own; the collection runs alone, after the parallel tests, so a starved CPU on a 2-core
/// machine never passes for a missed heartbeat.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultInjectionCollection
{
    public const string Name = "fault injection";
}

/// <summary>Helpers shared by the fault-injection tests.</summary>
internal static class FaultInjectionSupport
{
    public static readonly TimeSpan StateTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs a test body; on failure, adds the processes' last output to the message.</summary>
    public static async Task WithDiagnostics(MultiHostCluster cluster, Func<Task> body)
    {
        try
        {
            await body();
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name}: {e.Message}\n{e.StackTrace}\n\n{cluster.Diagnostics()}");
        }
    }

    public static Task<TaskView> SubmitAsync(this MultiHostCluster cluster, string name, string cmd, decimal cpus, long mem, params string[] constraints) =>
        cluster.Client.SubmitTaskAsync(new TaskSubmission
        {
            Name = name,
            Cmd = cmd,
            Cpus = JsonSerializer.SerializeToElement(cpus),
            Mem = JsonSerializer.SerializeToElement(mem),
            Constraints = [.. constraints.Select(c => JsonSerializer.SerializeToElement(c))],
            KillGracePeriodSeconds = JsonSerializer.SerializeToElement(1),
        });

    /// <summary>Waits until the task is in <paramref name="state"/>; fails at once if it ends in another state.</summary>
    public static async Task<TaskView> WaitForStateAsync(this MultiHostCluster cluster, string id, TaskState state, TimeSpan? timeout = null)
    {
        var task = await Wait.UntilAsync(
            () => cluster.Client.GetTaskAsync(id),
            t => t.State == state || (t.State.IsTerminal() && !state.IsTerminal()),
            timeout ?? StateTimeout,
            $"task {id} to reach {state.WireName()}",
            retryOn: e => e is HttpRequestException or TaskCanceledException,
            describe: Describe);
        Assert.True(task.State == state, $"task {id} is {task.State.WireName()}, expected {state.WireName()}: {Describe(task)}");
        return task;
    }

    /// <summary>The live processes of a running task: at least one, read from its cgroup.</summary>
    public static async Task<IReadOnlyList<ProcessIdentity>> ProcessesOfAsync(this MultiHostCluster cluster, string taskId) =>
        await Wait.UntilAsync(
            () => Task.FromResult(cluster.TaskProcesses(taskId)),
            p => p.Count > 0,
            TimeSpan.FromSeconds(10),
            $"the processes of task {taskId} in its cgroup");

    /// <summary>The app's tasks as <c>/drover/v1</c> shows them (live ones only).</summary>
    public static async Task<ImmutableArray<TaskView>> AppTasksAsync(this MultiHostCluster cluster, string appId) =>
        [.. (await cluster.Client.ListTasksAsync()).Where(t => t.AppId == appId && !t.State.IsTerminal())];

    /// <summary>A Marathon app of <paramref name="instances"/> × <c>sleep 600</c>.</summary>
    public static JsonObject SleepApp(string id, int instances, decimal cpus, int mem, JsonNode? unreachableStrategy = null, params string[][] constraints)
    {
        var app = new JsonObject
        {
            ["id"] = id,
            ["cmd"] = "exec sleep 600",
            ["cpus"] = cpus,
            ["mem"] = mem,
            ["instances"] = instances,
            ["constraints"] = new JsonArray([.. constraints.Select(c => (JsonNode)new JsonArray([.. c.Select(p => (JsonNode)JsonValue.Create(p))]))]),
        };
        if (unreachableStrategy is not null)
        {
            app["unreachableStrategy"] = unreachableStrategy;
        }

        return app;
    }

    public static string Describe(TaskView t) =>
        $"{t.Id} {t.State.WireName()} on {t.Hostname ?? "-"}; waiting: {t.WaitingReason ?? "-"}; message: {t.Message ?? "-"}; "
        + $"statuses: [{string.Join(", ", t.Statuses.Select(s => $"{s.State.WireName()} {s.Reason} {s.Message}"))}]";

    public static string Describe(ImmutableArray<TaskView> tasks) => string.Join("\n", tasks.Select(Describe));

    public static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
}
