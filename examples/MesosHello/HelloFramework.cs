using System.Globalization;
using Drover.Client;
using Drover.Client.Mesos;
using Drover.Core.Mesos;

namespace MesosHello;

/// <summary>
/// A complete (small) Mesos framework: subscribes, launches <c>count</c> command tasks on whatever it is offered,
/// acknowledges every status update, and tears itself down once all of them have ended. Written only against
/// Drover's client library, so it runs against a Drover master (or a Mesos one). With a <paramref name="credential"/>
/// it authenticates as that principal (HTTP Basic), as a secured master requires; without one it sends none.
/// </summary>
public sealed class HelloFramework(Uri master, int count, TextWriter output, MesosCredential? credential = null, MasterTrust? trust = null)
{
    private const double TaskCpus = 0.1;
    private const double TaskMem = 32;

    /// <summary>Runs to the end: 0 when every task finished, 1 when one failed, 2 when the master refused the framework or a call.</summary>
    public async Task<int> RunAsync(CancellationToken ct)
    {
        try
        {
            return await RunFrameworkAsync(ct);
        }
        catch (MesosCallException e)
        {
            // 401 (no or wrong credentials), 400 (principal mismatch), 403…: the master's reason is in the message.
            output.WriteLine($"the master refused the framework: {e.Message}");
            return 2;
        }
    }

    private async Task<int> RunFrameworkAsync(CancellationToken ct)
    {
        using var client = new MesosSchedulerClient(master, credential, trust);
        var info = new MFrameworkInfo { User = Environment.UserName, Name = "mesos-hello", FailoverTimeout = 60 };
        var launched = 0;
        var ended = new Dictionary<string, string>();
        await foreach (var e in client.SubscribeAsync(info, ct))
        {
            switch (e.Type)
            {
                case "SUBSCRIBED":
                    output.WriteLine($"subscribed as framework {e.Subscribed!.FrameworkId.Value}");
                    break;
                case "OFFERS":
                    foreach (var offer in e.Offers!.Offers)
                    {
                        var tasks = new List<MTaskInfo>();
                        var cpus = Scalar(offer, "cpus");
                        var mem = Scalar(offer, "mem");
                        while (launched < count && cpus >= TaskCpus && mem >= TaskMem)
                        {
                            launched++;
                            cpus -= TaskCpus;
                            mem -= TaskMem;
                            tasks.Add(Task(launched, offer.AgentId));
                        }

                        if (tasks.Count == 0)
                        {
                            await client.DeclineAsync([offer.Id], refuseSeconds: 30, ct);
                            continue;
                        }

                        output.WriteLine($"launching {tasks.Count} task(s) on {offer.Hostname}");
                        await client.LaunchAsync(offer, tasks, refuseSeconds: 0, ct);
                    }

                    break;
                case "UPDATE":
                    var status = e.Update!.Status;
                    output.WriteLine($"{status.TaskId.Value}: {status.State}{(status.Message is { } m ? " (" + m + ")" : "")}");
                    await client.AcknowledgeAsync(status, ct);
                    if (status.State is "TASK_FINISHED" or "TASK_FAILED" or "TASK_KILLED" or "TASK_LOST" or "TASK_ERROR" or "TASK_DROPPED" or "TASK_GONE")
                    {
                        ended[status.TaskId.Value] = status.State;
                    }

                    if (ended.Count == count)
                    {
                        await client.TeardownAsync(ct);
                        var failed = ended.Count(kv => kv.Value != "TASK_FINISHED");
                        output.WriteLine(failed == 0 ? $"all {count} tasks finished; framework torn down" : $"{failed} of {count} tasks did not finish");
                        return failed == 0 ? 0 : 1;
                    }

                    break;
                case "ERROR":
                    output.WriteLine($"the master refused the framework: {e.Error!.Message}");
                    return 2;
                default:
                    break; // HEARTBEAT, RESCIND (nothing held), INVERSE_OFFERS…
            }
        }

        output.WriteLine("the master closed the stream");
        return 2;
    }

    private static MTaskInfo Task(int n, MId agentId) => new()
    {
        Name = $"hello-{n}",
        TaskId = new MId($"hello-{n}"),
        AgentId = agentId,
        Resources =
        [
            new MResource { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(TaskCpus) },
            new MResource { Name = "mem", Type = "SCALAR", Scalar = new MScalar(TaskMem) },
        ],
        Command = new MCommandInfo { Value = string.Create(CultureInfo.InvariantCulture, $"echo hello from task {n} on $(hostname)") },
    };

    private static double Scalar(MOffer offer, string name) => offer.Resources.Where(r => r.Name == name).Sum(r => r.Scalar?.Value ?? 0);
}
