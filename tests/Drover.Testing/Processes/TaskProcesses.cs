using System.Globalization;

namespace Drover.Testing.Processes;

/// <summary>A Drover task's supervisor (the agent's shim) and its command, as found in the task's cgroup.</summary>
public sealed record TaskProcesses(ProcessIdentity Shim, ProcessIdentity Command)
{
    /// <summary>
    /// Waits until the task's <c>cgroup.procs</c> file (in one hierarchy) lists the shim and, as its child, the
    /// command exec'd as <paramref name="commandName"/> (e.g. <c>sleep</c>), and returns both. A test that kills
    /// a task's processes from outside must wait for this: the agent reports TASK_RUNNING once the shim is
    /// spawned, and the shim moves itself into the task's cgroups a moment later, before it starts the command
    /// (src/Drover.Agent/Execution/README.md); until then the cgroup can be empty (issue 18).
    /// </summary>
    public static async Task<TaskProcesses> WaitForAsync(string procsFile, string commandName, TimeSpan timeout) =>
        (await Wait.UntilAsync(() => Task.FromResult(Find(procsFile, commandName)), found => found is not null, timeout,
            $"the shim and its command '{commandName}' in {procsFile}", interval: TimeSpan.FromMilliseconds(20),
            retryOn: e => e is IOException).ConfigureAwait(false))!;

    private static TaskProcesses? Find(string procsFile, string commandName)
    {
        var pids = File.ReadAllLines(procsFile).Select(l => int.Parse(l, NumberStyles.None, CultureInfo.InvariantCulture)).ToHashSet();
        foreach (var pid in pids)
        {
            if (LinuxProcesses.NameOf(pid) == commandName && LinuxProcesses.ParentOf(pid) is { } parent && pids.Contains(parent)
                && ProcessIdentity.Of(parent) is { } shim && ProcessIdentity.Of(pid) is { } command)
            {
                return new TaskProcesses(shim, command);
            }
        }

        return null;
    }
}
