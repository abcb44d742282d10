using System.Net;
using System.Text.Json.Nodes;
using Drover.Cli.Hosting;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Master.Tests.Services;

/// <summary>
/// Issue 18 through the master: instances whose shim, command or both are killed from outside (in every
/// order, two at once, each soon after it started) always end TASK_FAILED and are
/// replaced, round after round. Real in-process cluster; needs root.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class ExternalKillReplacementTests() : ServiceClusterTest(Host, "cpus:4;mem:2048;disk:1024", 10)
{
    private const string Host = "extkill-host";
    private const string AppId = "/extkill";
    private const int Instances = 4;
    private const int Rounds = 10;
    private const int VictimsPerRound = 2;

    /// <summary>How long a condition may take on a loaded 2-core machine; never expected to be reached.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private enum KillOrder
    {
        ShimThenCommand,
        CommandThenShim,
        ShimOnly,
        CommandOnly,
        WholeGroup,
    }

    [Fact]
    public async Task ExternalKill_InstancesKilledInEveryOrderRoundAfterRound_EachFailedOnceAndReplaced()
    {
        if (Cluster is null)
        {
            return;
        }

        var statuses = new StatusLog(AppId);
        await using var stream = await SseEventStream.OpenAsync(Http, "/v2/events?event_type=status_update_event", statuses.OnEventAsync);
        // backoffSeconds 0: the launch backoff of an app that keeps failing would otherwise delay each round more.
        var (created, _) = await Send(HttpMethod.Post, "/v2/apps",
            $$"""{"id": "{{AppId}}", "cmd": "sleep 1000", "cpus": 0.05, "mem": 16, "instances": {{Instances}}, "backoffSeconds": 0}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var cgroups = Path.Combine("/sys/fs/cgroup/memory", DroverHosts.CgroupNameFor(Path.Combine(Cluster.Root, Host)));

        // No extra CPU load here (the agent tests' ExternalKillStressTests have it): other test classes of
        // this assembly run beside this one, and replacements racing the kills are load enough for the master.
        var victims = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            var running = await Wait.UntilAsync(() => Task.FromResult(statuses.Running()), r => r.Count == Instances, Timeout,
                $"{Instances} running instances before round {round}", describe: _ => statuses.Describe());

            // The newest instances, the last round's replacements: killed soon after they started.
            var chosen = running.TakeLast(VictimsPerRound).ToList();
            await Task.WhenAll(chosen.Select((id, i) =>
                KillAsync(Path.Combine(cgroups, id, "cgroup.procs"), (KillOrder)(((round * VictimsPerRound) + i) % Enum.GetValues<KillOrder>().Length))));
            victims.AddRange(chosen);

            await Wait.UntilAsync(() => Task.FromResult(statuses.Running()),
                r => r.Count == Instances && !r.Intersect(chosen).Any() && chosen.All(statuses.HasEnded), Timeout,
                $"round {round}: {string.Join(", ", chosen)} failed and replaced", describe: _ => statuses.Describe());
        }

        Assert.Equal(Rounds * VictimsPerRound, victims.Distinct().Count());
        foreach (var victim in victims)
        {
            // Exactly one terminal update, TASK_FAILED, and nothing after it.
            Assert.Equal("TASK_FAILED", statuses.Of(victim)[^1]);
            Assert.Single(statuses.Of(victim), s => s is "TASK_FAILED" or "TASK_KILLED" or "TASK_FINISHED" or "TASK_LOST");
        }

        var app = await App(AppId);
        Assert.Equal(Instances, app["tasksRunning"]!.GetValue<int>());
        Assert.Equal("TASK_FAILED", app["lastTaskFailure"]!["state"]!.GetValue<string>());
        Assert.Contains(app["lastTaskFailure"]!["taskId"]!.GetValue<string>(), victims);
    }

    /// <summary>Waits until the instance's shim and command are in its cgroup (not yet at TASK_RUNNING), then SIGKILLs them in <paramref name="order"/>.</summary>
    private static async Task KillAsync(string procs, KillOrder order)
    {
        var task = await TaskProcesses.WaitForAsync(procs, "sleep", Timeout);
        switch (order)
        {
            case KillOrder.ShimThenCommand:
                Assert.True(LinuxProcesses.Kill(task.Shim), $"kill shim {task.Shim}");
                LinuxProcesses.Kill(task.Command);
                break;
            case KillOrder.CommandThenShim:
                Assert.True(LinuxProcesses.Kill(task.Command), $"kill command {task.Command}");
                LinuxProcesses.Kill(task.Shim); // it may have recorded the status and exited already
                break;
            case KillOrder.ShimOnly:
                Assert.True(LinuxProcesses.Kill(task.Shim), $"kill shim {task.Shim}");
                break;
            case KillOrder.CommandOnly:
                Assert.True(LinuxProcesses.Kill(task.Command), $"kill command {task.Command}");
                break;
            case KillOrder.WholeGroup:
                Assert.True(LinuxProcesses.KillGroup(task.Shim), $"kill group {task.Shim}");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(order), order, null);
        }
    }

    /// <summary>The app's task statuses as the event stream delivered them, in order.</summary>
    private sealed class StatusLog(string appId)
    {
        private readonly List<(string TaskId, string Status)> _statuses = [];

        public Task OnEventAsync(string? type, JsonObject e, CancellationToken ct)
        {
            if (e["appId"]?.GetValue<string>() == appId && e["taskId"]?.GetValue<string>() is { } id && e["taskStatus"]?.GetValue<string>() is { } status)
            {
                lock (_statuses)
                {
                    _statuses.Add((id, status));
                }
            }

            return Task.CompletedTask;
        }

        /// <summary>Tasks whose latest status is TASK_RUNNING, in the order they started running.</summary>
        public List<string> Running()
        {
            lock (_statuses)
            {
                var latest = new Dictionary<string, string>();
                var order = new List<string>();
                foreach (var (id, status) in _statuses)
                {
                    if (status == "TASK_RUNNING" && !order.Contains(id))
                    {
                        order.Add(id);
                    }

                    latest[id] = status;
                }

                return [.. order.Where(id => latest[id] == "TASK_RUNNING")];
            }
        }

        public List<string> Of(string taskId)
        {
            lock (_statuses)
            {
                return [.. _statuses.Where(s => s.TaskId == taskId).Select(s => s.Status)];
            }
        }

        public bool HasEnded(string taskId) => Of(taskId) is [.., "TASK_FAILED" or "TASK_KILLED" or "TASK_FINISHED" or "TASK_LOST"];

        public string Describe()
        {
            lock (_statuses)
            {
                return string.Join(", ", _statuses.Select(s => $"{s.TaskId}:{s.Status}"));
            }
        }
    }
}
