using Drover.Core;

namespace Drover.Master.State;

/// <summary>Launches whose secrets the master could not resolve when it sent them (<c>Secrets/LaunchSecrets</c>).</summary>
internal sealed partial class ClusterState
{
    /// <summary>
    /// Fails tasks whose launch could not go out because a secret they use could not be resolved (deleted since the
    /// deploy, a key the master lacks): TASK_FAILED, <see cref="TaskReasons.ContainerLaunchFailed"/>, source master,
    /// with <paramref name="message"/>. Only tasks still staged on <paramref name="agentId"/> (the agent never got
    /// them) change; the rest are left alone.
    /// </summary>
    public void FailUnsentLaunch(string agentId, IReadOnlyCollection<string> taskIds, string message)
    {
        ArgumentNullException.ThrowIfNull(taskIds);
        var changes = new List<Drover.Core.Api.TaskView>();
        lock (_lock)
        {
            foreach (var id in taskIds)
            {
                if (_active.TryGetValue(id, out var r) && r.AgentId == agentId && r.State == TaskState.Staging)
                {
                    changes.Add(TransitionLocked(r, MasterStatus(id, TaskState.Failed, message, TaskReasons.ContainerLaunchFailed)));
                }
            }
        }

        Publish(changes);
        if (changes.Count > 0)
        {
            SchedulingNeeded?.Invoke();
        }
    }
}
