namespace Drover.Core.Mesos;

/// <summary>
/// How a Mesos framework's task ids map to Drover task ids. Task ids are unique only per framework in Mesos, so
/// the master records a framework's task <c>t</c> as the Drover task <c>{frameworkId}.t</c>; everything that talks
/// to the framework or its executors (scheduler UPDATEs, the executor's TaskInfo and its updates) uses <c>t</c>.
/// The form is unambiguous because the master issues every framework id and never one with a <c>.</c> (a SUBSCRIBE
/// naming another id is refused), so no framework <c>F.x</c> can exist beside <c>F</c> to give <c>F.x.y</c> two readings.
/// (Ids kept from before that rule stay as they were: task ids are persisted and must stay stable.)
/// </summary>
public static class MesosTaskIds
{
    /// <summary>The Drover task id of <paramref name="frameworkId"/>'s task <paramref name="taskId"/>.</summary>
    public static string ToDroverId(string frameworkId, string taskId) => $"{frameworkId}.{taskId}";

    /// <summary>The framework's own id of a task (its <c>TaskInfo.task_id</c>); the Drover id when the task belongs to no framework.</summary>
    public static string FromDroverId(string? frameworkId, string droverId) =>
        frameworkId is { Length: > 0 } fw && droverId.Length > fw.Length + 1 && droverId.StartsWith(fw, StringComparison.Ordinal) && droverId[fw.Length] == '.'
            ? droverId[(fw.Length + 1)..]
            : droverId;

    /// <summary>The framework's own id of this task (see <see cref="FromDroverId"/>).</summary>
    public static string MesosTaskId(this TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return FromDroverId(spec.FrameworkId, spec.Id);
    }
}
