namespace Drover.Agent.Execution.Stages;

/// <summary>
/// Who the task runs as: a task with <see cref="Drover.Core.TaskSpec.User"/> (Marathon's <c>user</c>) runs as that
/// Unix user, resolved through NSS, and owns its sandbox, as in Mesos. The runtime drops to the user with
/// <c>setpriv</c> (util-linux) right before it execs the command; everything before that (the shim, joining
/// cgroups, opening the logs) runs as the agent.
/// </summary>
internal sealed class UserStage(string? setpriv, string hostname) : ILaunchStage
{
    /// <summary>The path of <c>setpriv</c>, or null when it is not installed.</summary>
    public string? Setpriv { get; } = setpriv;

    public string Name => "user";

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Spec.User is not { } user)
        {
            return null;
        }

        if (Setpriv is null)
        {
            return $"Cannot run as user '{user}': setpriv (util-linux) is not installed on this agent";
        }

        if (!Native.TryGetUser(user, out var uid, out var gid))
        {
            return $"Cannot run as user '{user}': no such user on agent {hostname}";
        }

        run.RunAs = new RunAsUser(user, uid, gid);

        // The sandbox belongs to the task's user, as Mesos does it.
        Native.Chown(run.Sandbox!, uid, gid);
        Native.Chown(Path.Combine(run.Sandbox!, "stdout"), uid, gid);
        Native.Chown(Path.Combine(run.Sandbox!, "stderr"), uid, gid);
        return null;
    }

    public void AfterStart(TaskRun run)
    {
    }

    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <remarks>Nothing: an adopted task is not spawned again, and nothing else needs its user.</remarks>
    public void Recover(TaskRun run)
    {
    }
}
