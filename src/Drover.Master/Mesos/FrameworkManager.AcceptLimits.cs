using Drover.Core;
using Drover.Core.Mesos;

namespace Drover.Master.Mesos;

/// <summary>
/// The shape check of an ACCEPT, run before any offer is touched: a call whose operations hold what no process can be
/// given (a null task or variable, an empty environment name or one with '=' or NUL, NUL in a command, an argument or
/// a value, a command past the kernel's exec limits: <see cref="InputLimits"/>) is malformed as a whole and refused
/// with 400, as Mesos refuses a call it cannot parse, and the offers stay outstanding with the framework. The checks
/// that need the offer (resources, agent, ids) stay per task in <see cref="Accept"/> and answer TASK_ERROR, as Mesos.
/// </summary>
internal sealed partial class FrameworkManager
{
    /// <summary>Tasks one ACCEPT may launch (Mesos has no cap; each is a record, a sandbox and a cgroup).</summary>
    internal const int MaxTasksPerAccept = 1000;

    /// <summary>Why the call's operations are malformed, naming the field; null when the shape is valid.</summary>
    internal static string? AcceptShapeError(IReadOnlyList<MOperation?> operations)
    {
        var tasks = 0;
        for (var i = 0; i < operations.Count; i++)
        {
            var op = operations[i]!;
            var path = $"accept.operations[{i}]";
            if (op.Type == "LAUNCH")
            {
                var infos = op.Launch?.TaskInfos ?? [];
                tasks += infos.Count;
                for (var j = 0; j < infos.Count; j++)
                {
                    if (TaskShapeError(infos[j], $"{path}.launch.task_infos[{j}]") is { } error)
                    {
                        return error;
                    }
                }
            }
            else
            {
                var group = op.LaunchGroup;
                if (group?.Executor?.Command is { } command && CommandShapeError(command, $"{path}.launch_group.executor.command") is { } executorError)
                {
                    return executorError;
                }

                var infos = group?.TaskGroup?.Tasks ?? [];
                tasks += infos.Count;
                for (var j = 0; j < infos.Count; j++)
                {
                    if (TaskShapeError(infos[j], $"{path}.launch_group.task_group.tasks[{j}]") is { } error)
                    {
                        return error;
                    }
                }
            }
        }

        return tasks > MaxTasksPerAccept ? $"accept.operations: {tasks} tasks in one call; at most {MaxTasksPerAccept}" : null;
    }

    /// <summary>
    /// Caps on what a framework's info holds (it is kept in memory and in the store for as long as the framework
    /// lives): its strings, roles and capabilities, and its labels in total (<see cref="InputLimits"/>).
    /// </summary>
    internal static string? FrameworkInfoSizeError(MFrameworkInfo info)
    {
        foreach (var (field, value) in new[] { ("user", info.User), ("name", info.Name), ("hostname", info.Hostname), ("principal", info.Principal), ("webui_url", info.WebuiUrl), ("role", info.Role) })
        {
            if (value is { Length: > InputLimits.MaxShortText })
            {
                return $"{field}: {value.Length} characters; at most {InputLimits.MaxShortText}";
            }
        }

        if (info.Roles is { Count: > InputLimits.MaxListItems } roles)
        {
            return $"roles: {roles.Count} roles; at most {InputLimits.MaxListItems}";
        }

        if (info.Capabilities is { Count: > InputLimits.MaxListItems } caps)
        {
            return $"capabilities: {caps.Count} entries; at most {InputLimits.MaxListItems}";
        }

        var labels = (info.Labels?.Labels ?? []).Where(l => l is not null).Select(l => KeyValuePair.Create(l.Key ?? "", l.Value ?? ""));
        return InputLimits.LabelsTotalError(InputLimits.LabelBytes(labels)) is { } error ? "labels: " + error : null;
    }

    private static string? TaskShapeError(MTaskInfo? info, string path)
    {
        if (info is null)
        {
            return path + ": must be a TaskInfo object, not null";
        }

        if (info.TaskId?.Value is { Length: > InputLimits.MaxShortText } id)
        {
            return $"{path}.task_id: {id.Length} characters; at most {InputLimits.MaxShortText}";
        }

        if (info.Name is { Length: > InputLimits.MaxShortText } name)
        {
            return $"{path}.name: {name.Length} characters; at most {InputLimits.MaxShortText}";
        }

        var labels = (info.Labels?.Labels ?? []).Where(l => l is not null).Select(l => KeyValuePair.Create(l.Key ?? "", l.Value ?? ""));
        if (InputLimits.LabelsTotalError(InputLimits.LabelBytes(labels)) is { } labelsError)
        {
            return $"{path}.labels: {labelsError}";
        }

        if (info.Command is { } command && CommandShapeError(command, path + ".command") is { } error)
        {
            return error;
        }

        return info.Executor?.Command is { } executorCommand ? CommandShapeError(executorCommand, path + ".executor.command") : null;
    }

    private static string? CommandShapeError(MCommandInfo command, string path)
    {
        var argv = new List<string>();
        if (command.Value is { } value)
        {
            argv.Add(value);
            if (InputLimits.ArgumentError(value) is { } error)
            {
                return $"{path}.value: {error}";
            }
        }

        var arguments = command.Arguments ?? [];
        for (var k = 0; k < arguments.Count; k++)
        {
            if (arguments[k] is not { } arg)
            {
                return $"{path}.arguments[{k}]: must be a string, not null";
            }

            argv.Add(arg);
            if (InputLimits.ArgumentError(arg) is { } error)
            {
                return $"{path}.arguments[{k}]: {error}";
            }
        }

        var variables = command.Environment?.Variables ?? [];
        var env = new List<KeyValuePair<string, string>>(variables.Count);
        for (var k = 0; k < variables.Count; k++)
        {
            var at = $"{path}.environment.variables[{k}]";
            if (variables[k] is not { } v)
            {
                return at + ": must be a Variable object, not null";
            }

            if (InputLimits.EnvNameError(v.Name) is { } nameError)
            {
                return $"{at}.name: {nameError}";
            }

            if (v.Value is { } text)
            {
                if (InputLimits.EnvValueError(v.Name, text) is { } valueError)
                {
                    return $"{at}.value: {valueError}";
                }

                env.Add(KeyValuePair.Create(v.Name, text));
            }
        }

        var envBytes = InputLimits.EnvBytes(env);
        if (InputLimits.EnvTotalError(envBytes) is { } envError)
        {
            return $"{path}.environment: {envError}";
        }

        return InputLimits.CommandTotalError(argv, envBytes) is { } total ? $"{path}: {total}" : null;
    }
}
