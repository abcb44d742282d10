using System.Text.Json;
using Drover.Core.Json;
using Drover.Core.State;
using Drover.Store;

namespace Drover.Master.State;

/// <summary>
/// Writes the master's records to the state store. <see cref="ClusterState"/> calls it while holding
/// its lock, so writes reach the store in the order the changes happened; each returned task
/// completes when that write (and, the store being FIFO, every earlier one) is durable.
/// Without a store (unit tests) writes complete at once.
/// </summary>
internal sealed class MasterJournal(IStateStore? store)
{
    public const string TaskPrefix = "/drover/tasks/";
    public const string AgentPrefix = "/drover/agents/";

    public static MasterJournal None { get; } = new(null);

    public Task SaveTask(TaskRecord r) => Write(TaskPrefix + r.Spec.Id, JsonSerializer.SerializeToUtf8Bytes(new PersistedTask
    {
        Spec = r.Spec,
        State = r.State,
        SubmittedAt = r.SubmittedAt,
        AgentId = r.AgentId,
        Ports = r.Ports,
        ExitCode = r.ExitCode,
        Message = r.Message,
        Reason = r.Reason,
        KillRequested = r.KillRequested,
        Healthy = r.Healthy,
        HealthResults = r.HealthResults.IsEmpty ? null : r.HealthResults,
        Ready = r.Ready,
        StartedAt = r.StartedAt,
        Statuses = [.. r.Statuses],
    }, DroverJsonContext.Default.PersistedTask));

    public Task DeleteTask(string id) => Write(TaskPrefix + id, null);

    public Task SaveAgent(AgentRecord a) => Write(AgentPrefix + a.Id, JsonSerializer.SerializeToUtf8Bytes(new PersistedAgent
    {
        Info = a.Info,
        Status = a.Status.ToString().ToLowerInvariant(),
        RegisteredAt = a.RegisteredAt,
        UnreachableSince = a.UnreachableSince,
        DrainStartedAt = a.DrainStartedAt,
        DrainDeadline = a.DrainDeadline,
    }, DroverJsonContext.Default.PersistedAgent));

    /// <summary>Everything stored, for recovery at start-up.</summary>
    public async Task<(List<PersistedTask> Tasks, List<PersistedAgent> Agents)> LoadAsync(CancellationToken ct)
    {
        if (store is null)
        {
            return ([], []);
        }

        var tasks = (await store.ListAsync(TaskPrefix, ct).ConfigureAwait(false))
            .Select(e => JsonSerializer.Deserialize(e.Value, DroverJsonContext.Default.PersistedTask)!).ToList();
        var agents = (await store.ListAsync(AgentPrefix, ct).ConfigureAwait(false))
            .Select(e => JsonSerializer.Deserialize(e.Value, DroverJsonContext.Default.PersistedAgent)!).ToList();
        return (tasks, agents);
    }

    private Task Write(string key, byte[]? value) => store is null
        ? Task.CompletedTask
        : store.CommitAsync(new Transaction { Writes = [new WriteOp(key, value)] });
}
