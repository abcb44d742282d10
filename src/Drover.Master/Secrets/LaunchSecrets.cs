using System.Collections.Immutable;
using Drover.Core.Protocol;
using Drover.Master.State;

namespace Drover.Master.Secrets;

/// <summary>
/// Fills a launch command with the values of the secrets its tasks use, as the command goes down the stream of the
/// one agent that runs them (<c>Http/AgentProtocolEndpoints</c>). The queued command holds references only; the
/// values exist in the master's memory for the time it takes to write the line. A launch whose secrets cannot be
/// resolved is not sent: its tasks fail (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, with the reason).
/// </summary>
internal static class LaunchSecrets
{
    /// <summary>The command to send (with <see cref="AgentCommand.Secrets"/> when its tasks use secrets), or null when it must not be sent.</summary>
    public static AgentCommand? Resolve(AgentCommand command, SecretStore secrets, ClusterState cluster, string agentId)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(cluster);
        ImmutableArray<LaunchTask> launches = command switch
        {
            { Type: AgentCommandType.Launch, Launch: { } one } => [one],
            { Type: AgentCommandType.LaunchGroup, LaunchGroup: { } group } => group.Tasks,
            _ => [],
        };
        if (!launches.Any(l => !l.Task.Secrets.IsEmpty))
        {
            return command;
        }

        var values = ImmutableArray.CreateBuilder<SecretValue>();
        foreach (var launch in launches)
        {
            var (resolved, error) = secrets.Resolve(launch.Task);
            if (error is not null)
            {
                foreach (var v in values)
                {
                    Array.Clear(v.Data);
                }

                // A task group launches all or nothing.
                var ids = launches.Select(l => l.Task.Id).ToList();
                cluster.FailUnsentLaunch(agentId, ids, $"Secret of task {launch.Task.Id} could not be resolved: {error}");
                return null;
            }

            values.AddRange(resolved);
        }

        return command with { Secrets = values.ToImmutable() };
    }

    /// <summary>Clears the values once the line is written (best effort: the serializer's buffers are not ours to clear).</summary>
    public static void Clear(AgentCommand sent)
    {
        ArgumentNullException.ThrowIfNull(sent);
        foreach (var v in sent.Secrets ?? [])
        {
            Array.Clear(v.Data);
        }
    }
}
