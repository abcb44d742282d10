using Drover.Core.Mesos;
using System.Collections.Immutable;
using Drover.Core;
using Drover.Master.State;

namespace Drover.Master.Mesos;

/// <summary>ACCEPT: offer validation and LAUNCH / LAUNCH_GROUP of command tasks and custom-executor tasks.</summary>
internal sealed partial class FrameworkManager
{
    private const int MaxMesosTaskIdLength = 100;

    /// <summary>
    /// Validates the call and the offers under the lock; the launch itself (<paramref name="after"/>) runs with
    /// the lock released. Operation types Drover does not support refuse the whole call with a 400 before
    /// anything is consumed. Invalid offers: every task gets TASK_LOST (TASK_DROPPED for PARTITION_AWARE
    /// frameworks), REASON_INVALID_OFFERS, as Mesos. An invalid task: TASK_ERROR, REASON_TASK_INVALID (for a
    /// group, every task of it, REASON_TASK_GROUP_INVALID); the other tasks still launch. With an authenticated
    /// <paramref name="caller"/>, a task whose effective user the principal may not run as is refused first (as
    /// Mesos authorizes before it validates): TASK_ERROR, REASON_TASK_UNAUTHORIZED (a group: every task of it,
    /// REASON_TASK_GROUP_UNAUTHORIZED), and the task runs as that effective user. A refused task takes nothing
    /// from the offer: what no task uses goes back to the ledger with the call's filters, as any unused part.
    /// </summary>
    private CallResult Accept(Framework fw, MAccept? accept, SchedulerCaller caller, out Func<CallResult>? after)
    {
        after = null;
        if (accept?.OfferIds is not { Count: > 0 } offerIds)
        {
            return CallResult.Bad("accept.offer_ids: at least one offer id is required");
        }

        var operations = accept.Operations ?? [];
        for (var i = 0; i < operations.Count; i++)
        {
            if (operations[i]?.Type is not ("LAUNCH" or "LAUNCH_GROUP"))
            {
                return CallResult.Bad($"accept.operations[{i}].type: '{operations[i]?.Type}' is not supported by Drover (supported: LAUNCH, LAUNCH_GROUP; Drover has no reservations or volumes). Nothing was done; the offers are still outstanding.");
            }
        }

        if (AcceptShapeError(operations) is { } malformed)
        {
            return CallResult.Bad(malformed + ". Nothing was done; the offers are still outstanding.");
        }

        // Every named offer is used up by the call, valid or not (as Mesos).
        var offers = new List<Offer>();
        string? invalid = null;
        foreach (var id in offerIds)
        {
            if (id?.Value is not { } oid || !fw.Offers.Remove(oid, out var offer))
            {
                invalid ??= offers.Any(o => o.Id == id?.Value) ? $"Offer {id?.Value} appears more than once" : $"Offer {id?.Value} is no longer valid";
                continue;
            }

            offers.Add(offer);
            if (offer.AgentId != offers[0].AgentId)
            {
                invalid ??= "Aggregated offers must belong to the same agent";
            }
        }

        try
        {
            return AcceptOffers(fw, accept, caller, operations, offers, invalid, out after);
        }
        catch (Exception)
        {
            // A bug, answered 500 by the host; but the removed offers' resources go back to the ledger first, so a failed
            // call never leaves an agent's resources held by offers nobody has. (Nothing that can throw follows
            // AcceptOffers' own hand-back of the unused part, so nothing is given back twice.)
            foreach (var o in offers)
            {
                _state.ReleaseOffer(o.AgentId, o.Resources);
            }

            throw;
        }
    }

    private CallResult AcceptOffers(Framework fw, MAccept accept, SchedulerCaller caller, IReadOnlyList<MOperation> operations, List<Offer> offers, string? invalid,
        out Func<CallResult>? after)
    {
        after = null;
        var offerIds = accept.OfferIds!;
        var failState = fw.PartitionAware ? TaskState.Dropped : TaskState.Lost;
        if (invalid is not null)
        {
            LogUnknownOffer(fw.Id, string.Join(',', offerIds.Select(o => o?.Value)), "ACCEPT");
            foreach (var o in offers)
            {
                _state.ReleaseOffer(o.AgentId, o.Resources);
            }

            foreach (var task in operations.SelectMany(TasksOf))
            {
                SendLocked(fw, MasterUpdate(task.TaskId?.Value ?? "", failState, TaskReasons.InvalidOffers, "Task launched with invalid offers: " + invalid, task.AgentId), acknowledge: true);
            }

            return CallResult.Accepted;
        }

        var agentId = offers[0].AgentId;
        var held = offers.Aggregate(Resources.Zero, (acc, o) => acc.Add(o.Resources));
        var remaining = held;
        var launches = new List<OfferLaunch>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var inline = new List<(string TaskId, List<(int Index, byte[] Value)> Values)>(); // Mesos VALUE secrets, kept before the launch

        // Custom executors whose resources this call has charged to the offer already: an executor that
        // several launches start takes its resources once (and one running on the agent, none).
        var charged = new HashSet<string>(StringComparer.Ordinal);
        foreach (var op in operations)
        {
            if (op.Type == "LAUNCH")
            {
                foreach (var info in op.Launch?.TaskInfos ?? [])
                {
                    if ((LaunchAuthorizationError(fw, info, info.Executor, caller) ?? SecretAuthorizationError(fw, info, caller)) is { } unauthorized)
                    {
                        LogTaskUnauthorized(fw.Id, info.TaskId?.Value ?? "", unauthorized);
                        SendLocked(fw, MasterUpdate(info.TaskId?.Value ?? "", TaskState.Error, TaskReasons.TaskUnauthorized, unauthorized, info.AgentId), acknowledge: true);
                        continue;
                    }

                    if (BuildTask(fw, info, agentId, info.Executor, inGroup: false, RunAs(fw, info, info.Executor, caller), ids, charged, ref remaining) is { } error)
                    {
                        SendLocked(fw, MasterUpdate(info.TaskId?.Value ?? "", TaskState.Error, TaskReasons.TaskInvalid, error, info.AgentId), acknowledge: true);
                    }
                    else
                    {
                        launches.Add(_lastBuilt!);
                        if (_lastInline is { } values)
                        {
                            inline.Add((_lastBuilt!.Spec.Id, values));
                        }
                    }
                }

                continue;
            }

            // LAUNCH_GROUP: all or nothing.
            var group = op.LaunchGroup;
            var tasks = group?.TaskGroup?.Tasks ?? [];
            var groupRemaining = remaining;
            var groupIds = new HashSet<string>(ids, StringComparer.Ordinal);
            var groupCharged = new HashSet<string>(charged, StringComparer.Ordinal);
            var built = new List<OfferLaunch>();
            var groupInline = new List<(string TaskId, List<(int Index, byte[] Value)> Values)>();

            // As Mesos: every task of the group is authorized before the group is validated; one refusal refuses the group.
            var groupExecutor = group?.Executor is { Type: not "DEFAULT" } ex ? ex : null;
            var unauthorizedTask = tasks.Select(t => LaunchAuthorizationError(fw, t, groupExecutor, caller) ?? SecretAuthorizationError(fw, t, caller)).FirstOrDefault(e => e is not null);
            if (unauthorizedTask is not null)
            {
                LogTaskUnauthorized(fw.Id, string.Join(',', tasks.Select(t => t.TaskId?.Value)), unauthorizedTask);
                foreach (var info in tasks)
                {
                    SendLocked(fw, MasterUpdate(info.TaskId?.Value ?? "", TaskState.Error, TaskReasons.TaskGroupUnauthorized, unauthorizedTask, info.AgentId), acknowledge: true);
                }

                continue;
            }

            string? groupError = GroupExecutorError(group?.Executor, fw.Id, agentId, groupCharged, ref groupRemaining);
            if (groupError is null && tasks.Count == 0)
            {
                groupError = "launch_group.task_group.tasks: at least one task is required";
            }

            foreach (var info in tasks)
            {
                if (groupError is not null)
                {
                    break;
                }

                var executor = group!.Executor!.Type == "DEFAULT" ? null : group.Executor;
                if (info.Executor is not null)
                {
                    groupError = $"task '{info.TaskId?.Value}': a task of a group must not set 'executor' (the group's executor runs it)";
                }
                else if (BuildTask(fw, info with { Executor = executor }, agentId, executor, inGroup: true, RunAs(fw, info, executor, caller), groupIds, groupCharged, ref groupRemaining) is { } error)
                {
                    groupError = $"task '{info.TaskId?.Value}': {error}";
                }
                else
                {
                    built.Add(_lastBuilt!);
                    if (_lastInline is { } values)
                    {
                        groupInline.Add((_lastBuilt!.Spec.Id, values));
                    }
                }
            }

            if (groupError is not null)
            {
                foreach (var info in tasks)
                {
                    SendLocked(fw, MasterUpdate(info.TaskId?.Value ?? "", TaskState.Error, TaskReasons.TaskGroupInvalid, "Task group is invalid: " + groupError, info.AgentId), acknowledge: true);
                }

                continue;
            }

            remaining = groupRemaining;
            inline.AddRange(groupInline);
            ids = groupIds;
            charged = groupCharged;
            var groupId = built[0].Spec.Id; // task ids are never reused, so neither is this
            launches.AddRange(built.Select(l => l with { Spec = l.Spec with { TaskGroupId = groupId } }));
        }

        // As Mesos: what the operations left unused is declined, with the call's filters.
        var used = launches.Aggregate(Resources.Zero, (acc, l) => acc.Add(l.Spec.Resources with { Ports = PortRanges.Of([.. l.Ports]) }));
        Refuse(fw, agentId, held.SubtractClamped(used), RefuseFor(accept.Filters));
        var launching = launches.Aggregate(Resources.Zero, (acc, l) => acc.Add(l.Spec.Resources));
        fw.Launching = fw.Launching.Add(launching);
        after = () =>
        {
            // Before the tasks are recorded: their launch commands wait for the records to be durable, and the store
            // completes a write only once every earlier one is, so the values are stored by the time a launch resolves them.
            foreach (var (taskId, values) in inline)
            {
                Secrets!.KeepTaskValues(taskId, values);
                values.ForEach(v => Array.Clear(v.Value));
            }

            _state.LaunchFromOffer(agentId, held, launches, failState);
            bool gone;
            lock (_lock)
            {
                fw.Launching = fw.Launching.SubtractClamped(launching); // now counted as tasks
                gone = !_frameworks.TryGetValue(fw.Id, out var current) || !ReferenceEquals(current, fw);
            }

            if (gone)
            {
                // Torn down (or timed out) while this ACCEPT was launching: its kill missed these tasks.
                foreach (var l in launches)
                {
                    _state.Kill(l.Spec.Id, "Framework removed while its tasks were launched", TaskReasons.FrameworkRemoved);
                }
            }

            return CallResult.Accepted;
        };
        return CallResult.Accepted;
    }

    /// <summary>
    /// The user a task runs as. With logins, the effective user its launch was authorized for (so a framework's
    /// <c>FrameworkInfo.user</c> is honoured, as by a Mesos agent with <c>--switch_user</c>); on a dev cluster
    /// without logins, its command's user only, as before (<c>FrameworkInfo.user</c> is not applied there).
    /// </summary>
    private static string? RunAs(Framework fw, MTaskInfo info, MExecutorInfo? executor, SchedulerCaller caller) =>
        caller.Principal is null ? info.Command?.User : EffectiveUser(info, executor, fw.Info);

    /// <summary>The task a successful <see cref="BuildTask"/> built (only read under the lock, right after).</summary>
    private OfferLaunch? _lastBuilt;

    private static IEnumerable<MTaskInfo> TasksOf(MOperation op) =>
        op.Type == "LAUNCH" ? op.Launch?.TaskInfos ?? [] : op.LaunchGroup?.TaskGroup?.Tasks ?? [];

    private MTaskStatus MasterUpdate(string taskId, TaskState state, string reason, string message, MId? agentId) => new()
    {
        TaskId = new MId(taskId),
        State = state.WireName(),
        Source = TaskSources.Master,
        Reason = reason,
        Message = message,
        AgentId = agentId,
        Timestamp = UnixNow(),
    };

    private string? GroupExecutorError(MExecutorInfo? executor, string frameworkId, string agentId, HashSet<string> charged, ref Resources remaining)
    {
        if (executor is null)
        {
            return "launch_group.executor: required";
        }

        if (executor.Type is not ("DEFAULT" or "CUSTOM" or null))
        {
            return $"launch_group.executor.type: '{executor.Type}' is not DEFAULT or CUSTOM";
        }

        if (executor.ExecutorId?.Value is not { Length: > 0 })
        {
            return "launch_group.executor.executor_id: required";
        }

        // A custom executor already running on the agent holds its resources (as in Mesos); so does one
        // an earlier operation of this call starts.
        var executorId = executor.ExecutorId.Value;
        if (executor.Type != "DEFAULT" && (_state.HasExecutor(agentId, frameworkId, executorId) || !charged.Add(executorId)))
        {
            return MesosResources.TryParse(executor.Resources, out _, out var error) ? null : "executor.resources: " + error;
        }

        return ExecutorResourcesError(executor, ref remaining);
    }

    private static string? ExecutorResourcesError(MExecutorInfo executor, ref Resources remaining)
    {
        if (!MesosResources.TryParse(executor.Resources, out var res, out var error))
        {
            return "executor.resources: " + error;
        }

        if (!remaining.Contains(res))
        {
            return $"Executor uses more resources {res} than available {MesosResources.Describe(remaining)}";
        }

        remaining = remaining.Subtract(res);
        return null;
    }

    /// <summary>
    /// Validates one TaskInfo against the framework, the offer's agent and what is left of the offer; on
    /// success subtracts its resources from <paramref name="remaining"/> and leaves the task in <see cref="_lastBuilt"/>.
    /// Returns the reason it is invalid, in Mesos' wording where Mesos has one.
    /// </summary>
    private string? BuildTask(Framework fw, MTaskInfo info, string agentId, MExecutorInfo? executor, bool inGroup, string? user, HashSet<string> ids, HashSet<string> charged, ref Resources remaining)
    {
        _lastBuilt = null;
        _lastInline = null;
        if (info.TaskId?.Value is not { Length: > 0 } taskId)
        {
            return "task_id: required";
        }

        if (!Ids.IsValidName(taskId) || taskId.Length > MaxMesosTaskIdLength)
        {
            return $"task_id '{taskId}': Drover accepts letters, digits, '_', '-' and '.' (1-{MaxMesosTaskIdLength} characters), as it names the task's sandbox and cgroup";
        }

        var droverId = DroverTaskId(fw.Id, taskId);
        if (!ids.Add(taskId) || _state.GetTask(droverId) is not null)
        {
            return $"Task has duplicate ID: {taskId}";
        }

        if (info.AgentId?.Value != agentId)
        {
            return $"Task uses invalid agent: {info.AgentId?.Value} (the offer is for agent {agentId})";
        }

        if (!inGroup && info.Command is null == (executor is null))
        {
            return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present";
        }

        if (inGroup && executor is null && info.Command is null)
        {
            return "command: required for a task of a group run by the DEFAULT executor";
        }

        if (info.Container is { } container && (container.Type is not ("MESOS" or null) || container.Docker is not null || container.Mesos is not null))
        {
            return "container: only a MESOS container without an image is supported (Drover runs tasks as processes in cgroups; its only volumes are secret volumes)";
        }

        if (info.HealthCheck is not null || info.Check is not null)
        {
            return "health_check/check: not supported by Drover's Mesos API yet";
        }

        if (!IsBase64(info.Data))
        {
            return "data: must be base64";
        }

        if (!MesosResources.TryParse(info.Resources, out var res, out var resError))
        {
            return "resources: " + resError;
        }

        if (res.MilliCpus == 0 && res.MemMiB == 0)
        {
            return "Task uses no resources: cpus or mem is required";
        }

        if (!remaining.Contains(res))
        {
            return $"Task uses more resources {res} than available {MesosResources.Describe(remaining)}";
        }

        string? shell = null;
        ImmutableArray<string> args = [];
        var env = ImmutableSortedDictionary<string, string>.Empty;
        if (info.Command is { } command)
        {
            if (CommandError(command, "command", out shell, out args, out env, allowSecrets: true) is { } error)
            {
                return error;
            }
        }

        if (SecretsError(fw, info, executor, out var secrets, out var inlineValues) is { } secretsError)
        {
            return secretsError;
        }

        ExecutorSpec? executorSpec = null;
        if (executor is not null)
        {
            if (executor.ExecutorId?.Value is not { Length: > 0 } executorId)
            {
                return "executor.executor_id: required";
            }

            if (executor.Type == "DEFAULT" && !inGroup)
            {
                return "executor.type: DEFAULT executors are only for LAUNCH_GROUP";
            }

            if (executor.Command is null)
            {
                return "executor.command: required for a custom executor";
            }

            if (CommandError(executor.Command, "executor.command", out var exShell, out var exArgs, out var exEnv) is { } error)
            {
                return error;
            }

            if (!IsBase64(executor.Data))
            {
                return "executor.data: must be base64";
            }

            if (!MesosResources.TryParse(executor.Resources, out var exRes, out var exResError))
            {
                return "executor.resources: " + exResError;
            }

            if (!inGroup && !_state.HasExecutor(agentId, fw.Id, executorId) && !charged.Contains(executorId))
            {
                // A LAUNCH_GROUP's executor was counted once for the group; a running executor holds its
                // resources already (as Mesos), and so does one an earlier launch of this call starts.
                if (!remaining.Subtract(res).Contains(exRes))
                {
                    return $"Executor uses more resources {exRes} than available {MesosResources.Describe(remaining.Subtract(res))}";
                }

                remaining = remaining.Subtract(exRes);
                charged.Add(executorId);
            }

            executorSpec = new ExecutorSpec
            {
                ExecutorId = executorId,
                FrameworkId = fw.Id,
                Name = executor.Name,
                Shell = exShell,
                Args = exArgs,
                Env = exEnv,
                Resources = exRes,
                Data = executor.Data,
            };
        }

        remaining = remaining.Subtract(res);
        var grace = info.KillPolicy?.GracePeriod?.Nanoseconds is { } ns && ns >= 0 ? TimeSpan.FromTicks(ns / 100) : TaskSpec.DefaultKillGracePeriod;
        _lastBuilt = new OfferLaunch(new TaskSpec
        {
            Id = droverId,
            Name = info.Name is { Length: > 0 } n ? n : taskId,
            Shell = shell,
            Args = args,
            Env = env,
            Resources = res with { Ports = PortRanges.Empty },
            PortCount = res.Ports.Count,
            KillGracePeriod = grace,
            User = user,
            FrameworkId = fw.Id,
            Executor = executorSpec,
            Data = info.Data,
            Secrets = secrets,
        }, MesosResources.PortList(res.Ports));
        _lastInline = inlineValues;
        return null;
    }

    /// <summary>
    /// Reads a CommandInfo. Its SECRET variables are left out of <paramref name="env"/> (<see cref="SecretsError"/> reads
    /// them) when <paramref name="allowSecrets"/>, and refused otherwise (an executor's own command).
    /// </summary>
    private static string? CommandError(MCommandInfo command, string field, out string? shell, out ImmutableArray<string> args, out ImmutableSortedDictionary<string, string> env,
        bool allowSecrets = false)
    {
        shell = null;
        args = [];
        env = ImmutableSortedDictionary<string, string>.Empty;
        if (command.Uris is { ValueKind: System.Text.Json.JsonValueKind.Array } uris && uris.GetArrayLength() > 0)
        {
            return $"{field}.uris: fetching URIs is not supported by Drover";
        }

        if (command.Value is not { Length: > 0 } value)
        {
            return $"{field}.value: required";
        }

        if (command.Shell ?? true)
        {
            shell = value;
        }
        else
        {
            // Mesos execs 'value' with 'arguments' as argv (argv[0] included).
            args = [value, .. (command.Arguments ?? []).Skip(1)];
        }

        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var v in command.Environment?.Variables ?? [])
        {
            if (v.Type == "SECRET" && allowSecrets)
            {
                continue;
            }

            if (v.Type is not (null or "VALUE"))
            {
                return $"{field}.environment: variable '{v.Name}' of type {v.Type} is not supported here (only VALUE{(allowSecrets ? " and SECRET" : "; SECRET only in a task's own command")})";
            }

            builder[v.Name] = v.Value ?? "";
        }

        env = builder.ToImmutable();
        return null;
    }
}
