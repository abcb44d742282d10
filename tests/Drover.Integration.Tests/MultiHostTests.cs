using System.Globalization;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;
using Drover.Testing;

namespace Drover.Integration.Tests;

/// <summary>
/// Placement across real agent processes on separate network namespaces (see <see cref="MultiHostFixture"/>).
/// Every test kills its tasks before it ends, so the agents are empty again for the next one.
/// </summary>
public sealed class MultiHostTests : IClassFixture<MultiHostFixture>
{
    private static readonly TimeSpan StateTimeout = TimeSpan.FromSeconds(20);

    private readonly MultiHostFixture _cluster;

    public MultiHostTests(MultiHostFixture cluster)
    {
        _cluster = cluster;
    }

    [MultiHostFact]
    public Task ListAgents_ThreeAgentsInNamespaces_ReportTheirAddressesAndAttributes() => WithDiagnostics(async () =>
    {
        var agents = await _cluster.Client.ListAgentsAsync();

        Assert.Equal(MultiHostFixture.AgentCount, agents.Length);
        foreach (var host in _cluster.Network.Hosts)
        {
            var agent = Assert.Single(agents, a => a.Hostname == MultiHostFixture.HostnameOf(host.Index));
            Assert.Equal("active", agent.Status);
            Assert.Equal($"https://{host.Address}:5051", agent.Address.TrimEnd('/')); // agents serve HTTPS with their own certificate
            Assert.Equal(MultiHostFixture.Racks[host.Index - 1], agent.Attributes.GetValueOrDefault("rack"));
            Assert.Equal(MultiHostFixture.Region, agent.Region);
            Assert.Equal($"z{host.Index}", agent.Zone);
            Assert.Equal(2m, agent.Total.Cpus);
            Assert.Equal(1024, agent.Total.Mem);
        }
    });

    [MultiHostFact]
    public Task SubmitTasks_SpreadStrategy_TwoRunOnEachAgentInItsOwnNamespace() => WithDiagnostics(async () =>
    {
        var ids = new List<string>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                // Prints the addresses of the network namespace the task runs in, then stays running.
                var task = await SubmitAsync($"spread-{i}", "echo \"addr $(hostname -I)\"; exec sleep 600", cpus: 0.5m, mem: 64);
                ids.Add(task.Id);
            }

            var running = new List<TaskView>();
            foreach (var id in ids)
            {
                running.Add(await WaitForStateAsync(id, TaskState.Running));
            }

            var perHost = running.GroupBy(t => t.Hostname!).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(
                Enumerable.Range(1, MultiHostFixture.AgentCount).ToDictionary(MultiHostFixture.HostnameOf, _ => 2),
                perHost);

            // The master reads each sandbox through its agent's endpoint over the bridge, and what the
            // task printed is its own host's address: it runs in that host's network namespace.
            foreach (var task in running)
            {
                var stdout = await ReadStdoutAsync(task.Id, s => s.Contains('\n', StringComparison.Ordinal));
                var addresses = stdout.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
                Assert.Equal([_cluster.AddressOf(task.Hostname!).ToString()], addresses);
            }

            await KillAllAsync(ids);
        }
        finally
        {
            await KillQuietlyAsync(ids);
        }
    });

    [MultiHostTheory]
    [InlineData("hostname:IS:host2", "host2")]
    [InlineData("hostname:LIKE:host2", "host2")]
    [InlineData("hostname:LIKE:host[3-9]", "host3")]
    public Task SubmitTask_HostnameConstraint_RunsOnThatHost(string constraint, string expectedHost) =>
        AssertPlacedOn(constraint, expectedHost);

    [MultiHostTheory]
    [InlineData("rack:IS:r2", "host3")]
    [InlineData("rack:UNLIKE:r1", "host3")]
    [InlineData("@zone:IS:z1", "host1")]
    public Task SubmitTask_AttributeConstraint_RunsOnMatchingAgent(string constraint, string expectedHost) =>
        AssertPlacedOn(constraint, expectedHost);

    [MultiHostFact]
    public Task SubmitTask_UnsatisfiableConstraint_StaysPendingWithReason() => WithDiagnostics(async () =>
    {
        var ids = new List<string>();
        try
        {
            var task = await SubmitAsync("nowhere", "exec sleep 600", cpus: 0.1m, mem: 32, "rack:IS:r9");
            ids.Add(task.Id);

            var waiting = await Wait.UntilAsync(
                () => _cluster.Client.GetTaskAsync(task.Id),
                t => t.State != TaskState.Pending || t.WaitingReason?.Contains("rack:IS:r9", StringComparison.Ordinal) == true,
                StateTimeout,
                $"task {task.Id} to explain why it waits",
                describe: Describe);

            Assert.Equal(TaskState.Pending, waiting.State);
            Assert.Null(waiting.AgentId);
            Assert.Contains("rack:IS:r9", waiting.WaitingReason, StringComparison.Ordinal);

            await KillAllAsync(ids);
        }
        finally
        {
            await KillQuietlyAsync(ids);
        }
    });

    private Task AssertPlacedOn(string constraint, string expectedHost) => WithDiagnostics(async () =>
    {
        var ids = new List<string>();
        try
        {
            var task = await SubmitAsync("placed", "echo \"host $HOST\"; exec sleep 600", cpus: 0.1m, mem: 32, constraint);
            ids.Add(task.Id);

            var running = await WaitForStateAsync(task.Id, TaskState.Running);

            Assert.Equal(expectedHost, running.Hostname);
            var agent = await _cluster.Client.GetAgentAsync(running.AgentId!);
            Assert.Equal(expectedHost, agent.Hostname);
            Assert.Equal<string>([constraint], running.Constraints);

            await KillAllAsync(ids);
        }
        finally
        {
            await KillQuietlyAsync(ids);
        }
    });

    private Task<TaskView> SubmitAsync(string name, string cmd, decimal cpus, long mem, params string[] constraints) =>
        _cluster.Client.SubmitTaskAsync(new TaskSubmission
        {
            Name = name,
            Cmd = cmd,
            Cpus = JsonNumber(cpus.ToString(CultureInfo.InvariantCulture)),
            Mem = JsonNumber(mem.ToString(CultureInfo.InvariantCulture)),
            Constraints = [.. constraints.Select(JsonString)],
            KillGracePeriodSeconds = JsonNumber("2"),
        });

    /// <summary>Waits until the task is in <paramref name="state"/>; fails at once if it ends in another state.</summary>
    private async Task<TaskView> WaitForStateAsync(string id, TaskState state)
    {
        var task = await Wait.UntilAsync(
            () => _cluster.Client.GetTaskAsync(id),
            t => t.State == state || t.State.IsTerminal(),
            StateTimeout,
            $"task {id} to reach {state.WireName()}",
            describe: Describe);
        Assert.True(task.State == state, $"task {id} is {task.State.WireName()}, expected {state.WireName()}: {Describe(task)}");
        return task;
    }

    /// <summary>Polls the task's stdout (through the master) until <paramref name="complete"/> holds.</summary>
    private async Task<string> ReadStdoutAsync(string id, Func<string, bool> complete) =>
        (await Wait.UntilAsync(
            () => _cluster.Client.ReadFileAsync(id, "stdout", 0),
            chunk => complete(chunk.Data),
            StateTimeout,
            $"stdout of task {id}",
            describe: chunk => $"\"{chunk.Data}\" (size {chunk.Size})")).Data;

    /// <summary>Kills the tasks and asserts each ends as TASK_KILLED.</summary>
    private async Task KillAllAsync(IEnumerable<string> ids)
    {
        var list = ids.ToList();
        foreach (var id in list)
        {
            await _cluster.Client.KillTaskAsync(id);
        }

        foreach (var id in list)
        {
            var ended = await Wait.UntilAsync(
                () => _cluster.Client.GetTaskAsync(id),
                t => t.State.IsTerminal(),
                StateTimeout,
                $"task {id} to end after a kill",
                describe: Describe);
            Assert.True(ended.State == TaskState.Killed, $"task {id} ended as {ended.State.WireName()}, expected TASK_KILLED: {Describe(ended)}");
        }
    }

    /// <summary>Best-effort cleanup after a failed test, so later tests start with empty agents.</summary>
    private async Task KillQuietlyAsync(IEnumerable<string> ids)
    {
        foreach (var id in ids)
        {
            try
            {
                if (!(await _cluster.Client.GetTaskAsync(id)).State.IsTerminal())
                {
                    await _cluster.Client.KillTaskAsync(id);
                    using var timeout = new CancellationTokenSource(StateTimeout);
                    await _cluster.Client.WaitForTaskAsync(id, ct: timeout.Token);
                }
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or DroverApiException)
            {
                // The test already failed or the cluster is gone; the fixture's teardown kills what is left.
            }
        }
    }

    /// <summary>Runs a test body; on failure, adds the master's and agents' last output to the message.</summary>
    private async Task WithDiagnostics(Func<Task> body)
    {
        try
        {
            await body();
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name}: {e.Message}\n{e.StackTrace}\n\n{_cluster.Diagnostics()}");
        }
    }

    private static string Describe(TaskView t) =>
        $"{t.Id} {t.State.WireName()} on {t.Hostname ?? "-"}; waiting: {t.WaitingReason ?? "-"}; message: {t.Message ?? "-"}; "
        + $"statuses: [{string.Join(", ", t.Statuses.Select(s => $"{s.State.WireName()} {s.Message}"))}]";

    private static JsonElement JsonNumber(string number)
    {
        using var doc = JsonDocument.Parse(number);
        return doc.RootElement.Clone();
    }

    private static JsonElement JsonString(string text)
    {
        using var doc = JsonDocument.Parse($"\"{JsonEncodedText.Encode(text)}\"");
        return doc.RootElement.Clone();
    }
}
