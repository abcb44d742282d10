using Drover.Core.Mesos;
using System.Collections.Immutable;
using System.Text.Json;
using Drover.Core;
using Drover.Master.Mesos;
using Drover.Master.Metrics;
using Drover.Master.Scheduling;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Mesos;

/// <summary>The allocator on the real ledger (ClusterState) with a manual clock; agents are registrations, not processes.</summary>
public sealed class AllocatorTests
{
    private readonly ManualTimeProvider _time = new();
    private readonly MasterOptions _options;
    private readonly ClusterState _state;
    private readonly SchedulingLoop _loop;
    private readonly FrameworkManager _frameworks;

    public AllocatorTests() : this(new MasterOptions { OfferTimeout = TimeSpan.FromSeconds(10), RoleWeights = ImmutableDictionary<string, double>.Empty.Add("web", 2) })
    {
    }

    private AllocatorTests(MasterOptions options)
    {
        _options = options;
        _state = new ClusterState(_options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _loop = new SchedulingLoop(_state, new MasterMetrics(_state), _options, _time, NullLogger<SchedulingLoop>.Instance);
        _frameworks = new FrameworkManager(_state, null, _options, _time, NullLogger<FrameworkManager>.Instance);
    }

    private (Framework Framework, SchedulerStream Stream) Subscribe(string name, string? role = null, double failover = 60)
    {
        var (fw, stream, error, _) = _frameworks.Subscribe(new MCall
        {
            Type = "SUBSCRIBE",
            Subscribe = new MSubscribe(new MFrameworkInfo { User = "root", Name = name, Role = role, FailoverTimeout = failover }, null),
        }, "localhost:5050");
        Assert.Null(error.Error);
        return (fw!, stream!);
    }

    private static List<MEvent> Events(SchedulerStream stream)
    {
        var list = new List<MEvent>();
        while (stream.Reader.TryRead(out var bytes))
        {
            list.Add(JsonSerializer.Deserialize(bytes, MesosV1JsonContext.Default.MEvent)!);
        }

        return list;
    }

    /// <summary>One agent "a1" with <paramref name="resources"/>, one framework, and the offer it gets first.</summary>
    private (string AgentId, Framework Framework, SchedulerStream Stream, MOffer Offer) FirstOffer(string resources, string framework)
    {
        var agentId = _state.Register(Build.Agent("a1", resources)).Registered.AgentId;
        var (fw, stream) = Subscribe(framework);
        _frameworks.AllocatePass();
        return (agentId, fw, stream, Offers(Events(stream)).Single());
    }

    private static List<MOffer> Offers(List<MEvent> events) => [.. events.Where(e => e.Type == "OFFERS").SelectMany(e => e.Offers!.Offers)];

    [Fact]
    public void AllocatePass_OfferHeld_BuiltInPlacementCannotDoubleBook()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (_, stream) = Subscribe("f");
        Assert.Equal(1, _frameworks.AllocatePass());
        Assert.Equal(2.0, Offers(Events(stream)).Single().Resources.Single(r => r.Name == "cpus").Scalar!.Value);

        // The offer holds the whole agent: placement cannot put a built-in task there meanwhile.
        var task = _state.Submit(Build.Task(cpus: 1)).View;
        _loop.RunPass();
        Assert.Equal(TaskState.Pending, _state.GetTask(task.Id)!.State);
        Assert.Contains("cpus", _state.GetTask(task.Id)!.WaitingReason, StringComparison.Ordinal);
    }

    [Fact]
    public void AllocatePass_OldPendingBuiltInTask_HoldsNothingBackFromFrameworks()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var stuck = _state.Submit(Build.Task(cpus: 1) with { Constraints = [new Constraint(Constraint.HostnameField, ConstraintOperator.Like, "elsewhere")] }).View;
        _loop.RunPass();
        _time.Advance(_options.BuiltInPriorityWindow + TimeSpan.FromSeconds(1));
        var (_, stream) = Subscribe("f");

        _frameworks.AllocatePass();

        Assert.Equal(TaskState.Pending, _state.GetTask(stuck.Id)!.State);
        Assert.Equal(2.0, Offers(Events(stream)).Single().Resources.Single(r => r.Name == "cpus").Scalar!.Value);
    }

    [Fact]
    public void AllocatePass_NewBuiltInTaskNeedsOfferedResources_OfferRescindedAndTaskPlaced()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (_, stream) = Subscribe("f");
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();

        var task = _state.Submit(Build.Task(cpus: 1.5m)).View;
        _frameworks.AllocatePass();
        var events = Events(stream);
        Assert.Contains(events, e => e.Type == "RESCIND" && e.Rescind!.OfferId.Value == offer.Id.Value);
        _loop.RunPass();
        Assert.Equal(TaskState.Staging, _state.GetTask(task.Id)!.State);

        // What the built-in task leaves is offered again (the 0.5 cpus beyond its need were offered in the same pass).
        var again = Offers(events).Concat(Offers(Events(stream))).Select(o => o.Resources.Single(r => r.Name == "cpus").Scalar!.Value).ToList();
        Assert.Equal([0.5], again);
    }

    [Fact]
    public void AllocatePass_OfferTimesOut_RescindedAndResourcesBack()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (_, stream) = Subscribe("f");
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        Assert.Equal(0m, _state.GetAgent(offer.AgentId.Value)!.Free.Cpus);

        _time.Advance(TimeSpan.FromSeconds(11));
        _frameworks.AllocatePass();

        var events = Events(stream);
        Assert.Equal("RESCIND", events[0].Type);
        Assert.Equal(offer.Id.Value, events[0].Rescind!.OfferId.Value);
        Assert.Single(Offers(events)); // offered again in the same pass, under a new id
        Assert.NotEqual(offer.Id.Value, Offers(events)[0].Id.Value);
    }

    [Fact]
    public void AllocatePass_AgentUnreachable_OfferRescinded()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (_, stream) = Subscribe("f");
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();

        _time.Advance(TimeSpan.FromSeconds(16));
        _state.CheckAgentTimeouts();
        _frameworks.AllocatePass();

        var events = Events(stream);
        Assert.Contains(events, e => e.Type == "RESCIND" && e.Rescind!.OfferId.Value == offer.Id.Value);
        Assert.Empty(Offers(events));
    }

    [Fact]
    public void Decline_RefuseSeconds_AgentNotOfferedAgainUntilThen()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("f");
        var offer = DeclineNextOffer(fw, stream, 30);
        Assert.Equal(2m, _state.GetAgent(offer.AgentId.Value)!.Free.Cpus); // back in the ledger

        AssertFilteredUntil(stream, TimeSpan.FromSeconds(31));
    }

    [Fact]
    public void AllocatePass_RoleWeightsTwoToOne_SharesTwoToOne()
    {
        for (var i = 0; i < 6; i++)
        {
            _state.Register(Build.Agent($"a{i}", "cpus:2;mem:1024"));
        }

        var (_, web) = Subscribe("web-framework", role: "web"); // weight 2
        var (_, batch) = Subscribe("batch-framework", role: "batch"); // weight 1 (default)
        _frameworks.AllocatePass();

        Assert.Equal(4, Offers(Events(web)).Count);
        Assert.Equal(2, Offers(Events(batch)).Count);
    }

    [Fact]
    public void Drf_EqualWeights_LowerDominantShareFirst()
    {
        var total = Resources.Of(10, 1000);
        var a = new DrfClient("a", ["*"], Resources.Of(1, 600)); // dominant: mem 0.6
        var b = new DrfClient("b", ["*"], Resources.Of(5, 100)); // dominant: cpus 0.5
        Assert.Equal(0.6, Drf.DominantShare(a.Allocation, total), 6);
        Assert.Equal(("b", "*"), Drf.Next([a, b], [a, b], _ => 1, total));
    }

    [Fact]
    public void Drf_RoleWeights_RoleShareDividedByWeight()
    {
        var total = Resources.Of(10, 1000);
        var web = new DrfClient("w", ["web"], Resources.Of(4, 0)); // 0.4 / 2 = 0.2
        var batch = new DrfClient("b", ["batch"], Resources.Of(3, 0)); // 0.3 / 1 = 0.3
        Assert.Equal(("w", "web"), Drf.Next([web, batch], [web, batch], r => r == "web" ? 2 : 1, total));
        Assert.Equal(("b", "batch"), Drf.Next([web, batch], [web, batch], _ => 1, total));
    }

    [Fact]
    public void Subscribe_NoFailoverTimeout_RemovedOnDisconnect_TasksKilled()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("f", failover: 0);
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        var accept = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [new MOperation
            {
                Type = "LAUNCH",
                Launch = new MLaunch([new MTaskInfo
                {
                    Name = "t",
                    TaskId = new MId("t"),
                    AgentId = offer.AgentId,
                    Resources = [new MResource { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(1) }],
                    Command = new MCommandInfo { Value = "sleep 100" },
                }]),
            }], null),
        }, stream.Id);
        Assert.Equal(202, accept.Status);
        var droverId = FrameworkManager.DroverTaskId(fw.Id, "t");
        Assert.Equal(TaskState.Staging, _state.GetTask(droverId)!.State);
        Assert.Equal(fw.Id, _state.GetTask(droverId)!.FrameworkId);

        _frameworks.StreamEnded(fw, stream);
        _frameworks.AllocatePass();

        Assert.Equal(TaskState.Killing, _state.GetTask(droverId)!.State);
        Assert.Equal(TaskReasons.FrameworkRemoved, _state.GetTask(droverId)!.Reason);
        Assert.Equal(403, _frameworks.Handle(new MCall { Type = "REVIVE", FrameworkId = new MId(fw.Id) }, stream.Id).Status);
    }

    private List<Drover.Core.Protocol.AgentCommand> AgentCommands(string agentId)
    {
        var list = new List<Drover.Core.Protocol.AgentCommand>();
        var agent = _state.FindAgent(agentId)!;
        while (agent.Commands.Reader.TryRead(out var c))
        {
            list.Add(c.Command);
        }

        return list;
    }

    [Fact]
    public void Accept_CustomExecutorAndLaunchGroup_SpecsCarryExecutorFrameworkAndData()
    {
        var (agentId, fw, stream, offer) = FirstOffer("cpus:4;mem:4096;ports:[31000-31010]", "executors");
        MResource Cpus(double v) => new() { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(v) };
        var executor = new MExecutorInfo
        {
            ExecutorId = new MId("exec-1"),
            Command = new MCommandInfo { Value = "./my-executor --flag", Environment = new MEnvironment([new MEnvVariable("MODE", "fast", null)]) },
            Resources = [Cpus(0.1)],
            Data = Convert.ToBase64String("executor-bytes"u8.ToArray()),
        };
        var result = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [
                new MOperation
                {
                    Type = "LAUNCH",
                    Launch = new MLaunch([new MTaskInfo
                    {
                        Name = "custom",
                        TaskId = new MId("custom"),
                        AgentId = offer.AgentId,
                        Resources = [Cpus(1), new MResource { Name = "ports", Type = "RANGES", Ranges = new MRanges([new MRange(31002, 31003)]) }],
                        Executor = executor,
                        Data = Convert.ToBase64String("task-bytes"u8.ToArray()),
                    }]),
                },
                new MOperation
                {
                    Type = "LAUNCH_GROUP",
                    LaunchGroup = new MLaunchGroup(new MExecutorInfo { Type = "DEFAULT", ExecutorId = new MId("default-1"), Resources = [Cpus(0.1)] },
                        new MTaskGroupInfo([
                            new MTaskInfo { Name = "g1", TaskId = new MId("g1"), AgentId = offer.AgentId, Resources = [Cpus(0.5)], Command = new MCommandInfo { Value = "sleep 1" } },
                            new MTaskInfo { Name = "g2", TaskId = new MId("g2"), AgentId = offer.AgentId, Resources = [Cpus(0.5)], Command = new MCommandInfo { Shell = false, Value = "/bin/sleep", Arguments = ["sleep", "2"] } },
                        ])),
                },
            ], null),
        }, stream.Id);
        Assert.Equal(202, result.Status);

        var commands = AgentCommands(agentId);
        var launches = commands.SelectMany(c => c.Launch is { } l ? [l] : c.LaunchGroup?.Tasks ?? []).ToDictionary(l => l.Task.Id);
        // The DEFAULT executor's group reaches the agent as one command, its tasks marked with one group id.
        var group = commands.Single(c => c.Type == Drover.Core.Protocol.AgentCommandType.LaunchGroup).LaunchGroup!.Tasks;
        Assert.Equal([FrameworkManager.DroverTaskId(fw.Id, "g1"), FrameworkManager.DroverTaskId(fw.Id, "g2")], group.Select(l => l.Task.Id).ToArray());
        Assert.All(group, l => Assert.Equal(FrameworkManager.DroverTaskId(fw.Id, "g1"), l.Task.TaskGroupId));
        Assert.Null(launches[FrameworkManager.DroverTaskId(fw.Id, "custom")].Task.TaskGroupId);
        var custom = launches[FrameworkManager.DroverTaskId(fw.Id, "custom")];
        Assert.Equal(fw.Id, custom.Task.FrameworkId);
        Assert.Equal("exec-1", custom.Task.Executor!.ExecutorId);
        Assert.Equal(fw.Id, custom.Task.Executor.FrameworkId);
        Assert.Equal("./my-executor --flag", custom.Task.Executor.Shell);
        Assert.Equal("fast", custom.Task.Executor.Env["MODE"]);
        Assert.Equal(100, custom.Task.Executor.Resources.MilliCpus);
        Assert.Equal("task-bytes"u8.ToArray(), Convert.FromBase64String(custom.Task.Data!));
        Assert.Equal([31002, 31003], custom.Ports.ToArray());
        Assert.Equal(2, custom.Task.PortCount);

        var g2 = launches[FrameworkManager.DroverTaskId(fw.Id, "g2")];
        Assert.Null(g2.Task.Executor); // DEFAULT executor: each task runs as a command task
        Assert.Equal(["/bin/sleep", "2"], g2.Task.Args.ToArray());
        Assert.Equal("sleep 1", launches[FrameworkManager.DroverTaskId(fw.Id, "g1")].Task.Shell);

        // The tasks hold 1 + 0.5 + 0.5 cpus and the custom executor its own 0.1 (held while it lives); the DEFAULT
        // executor's 0.1 was checked against the offer but is not held (its tasks run as command tasks): the rest is back.
        Assert.Equal(1.9m, _state.GetAgent(agentId)!.Free.Cpus);
        Assert.True(_state.HasExecutor(agentId, fw.Id, "exec-1"));
    }

    [Fact]
    public void Message_BothWays_ThroughTheAgentCommandStreamAndTheSchedulerStream()
    {
        var (fw, stream) = Subscribe("messages");
        // The executor runs on the agent (an agent forwards messages only from executors it runs).
        var agentId = _state.Register(Build.Agent("a1", "cpus:1;mem:1024") with
        {
            Executors = [new Drover.Core.Protocol.LiveExecutor { Executor = new ExecutorSpec { FrameworkId = fw.Id, ExecutorId = "exec-1", Shell = "true" }, ContainerId = "exec-1.c1" }],
        }).Registered.AgentId;
        var data = Convert.ToBase64String("ping"u8.ToArray());

        Assert.Equal(202, _frameworks.Handle(new MCall { Type = "MESSAGE", FrameworkId = new MId(fw.Id), Message = new MMessage(new MId(agentId), new MId("exec-1"), data) }, stream.Id).Status);
        Assert.Equal(202, _frameworks.Handle(new MCall { Type = "SHUTDOWN", FrameworkId = new MId(fw.Id), Shutdown = new MShutdown(new MId("exec-1"), new MId(agentId)) }, stream.Id).Status);
        var commands = AgentCommands(agentId);
        var message = commands.Single(c => c.Type == Drover.Core.Protocol.AgentCommandType.FrameworkMessage).Message!;
        Assert.Equal((fw.Id, "exec-1", data), (message.FrameworkId, message.ExecutorId, message.Data));
        Assert.Equal("exec-1", commands.Single(c => c.Type == Drover.Core.Protocol.AgentCommandType.ShutdownExecutor).Message!.ExecutorId);

        _state.ReceiveFrameworkMessage(agentId, new Drover.Core.Protocol.FrameworkMessage { FrameworkId = fw.Id, ExecutorId = "exec-1", Data = Convert.ToBase64String("pong"u8.ToArray()) });
        var received = Events(stream).Single(e => e.Type == "MESSAGE").Message!;
        Assert.Equal(agentId, received.AgentId!.Value);
        Assert.Equal("pong"u8.ToArray(), Convert.FromBase64String(received.Data!));

        Assert.Equal(400, _frameworks.Handle(new MCall { Type = "MESSAGE", FrameworkId = new MId(fw.Id), Message = new MMessage(new MId(agentId), new MId("exec-1"), "not base64!") }, stream.Id).Status);
    }

    private string LaunchOne(Framework fw, SchedulerStream stream, string taskId)
    {
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).First();
        var result = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [new MOperation
            {
                Type = "LAUNCH",
                Launch = new MLaunch([new MTaskInfo
                {
                    TaskId = new MId(taskId),
                    AgentId = offer.AgentId,
                    Resources = [new MResource { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(1) }],
                    Command = new MCommandInfo { Value = "sleep 100" },
                }]),
            }], new MFilters(0)),
        }, stream.Id);
        Assert.Equal(202, result.Status);
        return offer.AgentId.Value;
    }

    [Fact]
    public void AllocatePass_AgentDrained_InverseOfferToFrameworksWithTasksThere_RescindedOnUndrain()
    {
        var agentId = _state.Register(Build.Agent("a1", "cpus:2;mem:1024")).Registered.AgentId;
        var (fw, stream) = Subscribe("drained");
        LaunchOne(fw, stream, "t");
        var (_, bystander) = Subscribe("bystander"); // after the launch: which of two new frameworks is offered first depends on their (random) ids
        Events(bystander);

        _state.Drain(agentId, TimeSpan.FromMinutes(30));
        _frameworks.AllocatePass();
        var events = Events(stream);
        var io = events.Single(e => e.Type == "INVERSE_OFFERS").InverseOffers!.InverseOffers.Single();
        Assert.Equal(agentId, io.AgentId!.Value);
        Assert.Equal(TimeSpan.FromMinutes(30).Ticks * 100, io.Unavailability.Duration!.Nanoseconds);
        Assert.DoesNotContain(Events(bystander), e => e.Type == "INVERSE_OFFERS"); // no tasks there
        _frameworks.AllocatePass();
        Assert.DoesNotContain(Events(stream), e => e.Type == "INVERSE_OFFERS"); // once per drain

        _state.Undrain(agentId);
        _frameworks.AllocatePass();
        Assert.Contains(Events(stream), e => e.Type == "RESCIND_INVERSE_OFFER" && e.RescindInverseOffer!.InverseOfferId.Value == io.Id.Value);
    }

    [Fact]
    public void AllocatePass_AgentRemoved_FailureEventAndTaskLost()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("failure");
        var agentId = LaunchOne(fw, stream, "t");
        _frameworks.AllocatePass();

        _time.Advance(_options.AgentUnreachableTimeout + TimeSpan.FromSeconds(1));
        _state.CheckAgentTimeouts();
        _time.Advance(_options.AgentRemovalTimeout + TimeSpan.FromSeconds(1));
        _state.CheckAgentTimeouts();
        _frameworks.AllocatePass();

        var events = Events(stream);
        Assert.Contains(events, e => e.Type == "FAILURE" && e.Failure!.AgentId!.Value == agentId);
        // Not PARTITION_AWARE: TASK_UNREACHABLE and TASK_GONE both read TASK_LOST.
        Assert.Equal(["TASK_LOST", "TASK_LOST"], events.Where(e => e.Type == "UPDATE").Select(e => e.Update!.Status.State).ToArray());
    }

    private static MResource Cpus(double v) => new() { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(v) };

    private static MTaskInfo GroupTask(string id, MOffer offer, double cpus = 0.5) =>
        new() { Name = id, TaskId = new MId(id), AgentId = offer.AgentId, Resources = [Cpus(cpus)], Command = new MCommandInfo { Value = "sleep 100" } };

    private void AcceptGroup(Framework fw, SchedulerStream stream, MOffer offer, MExecutorInfo executor, params MTaskInfo[] tasks)
    {
        var result = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [new MOperation { Type = "LAUNCH_GROUP", LaunchGroup = new MLaunchGroup(executor, new MTaskGroupInfo([.. tasks])) }], new MFilters(0)),
        }, stream.Id);
        Assert.Equal(202, result.Status);
    }

    private static MExecutorInfo CustomExecutor => new()
    {
        Type = "CUSTOM",
        ExecutorId = new MId("group-exec"),
        Command = new MCommandInfo { Value = "./group-executor" },
        Resources = [Cpus(0.1)],
    };

    [Fact]
    public void Accept_LaunchGroupToCustomExecutor_OneGroupCommandAndResentWholeWhenTheAgentLacksIt()
    {
        var (agentId, fw, stream, offer) = FirstOffer("cpus:4;mem:4096", "groups");
        AcceptGroup(fw, stream, offer, CustomExecutor, GroupTask("a", offer), GroupTask("b", offer));

        var ids = new[] { FrameworkManager.DroverTaskId(fw.Id, "a"), FrameworkManager.DroverTaskId(fw.Id, "b") };
        var command = AgentCommands(agentId).Single(); // one line on the command stream for the whole group
        Assert.Equal(Drover.Core.Protocol.AgentCommandType.LaunchGroup, command.Type);
        Assert.Equal(ids, command.LaunchGroup!.Tasks.Select(l => l.Task.Id).ToArray());
        Assert.All(command.LaunchGroup.Tasks, l => Assert.Equal("group-exec", l.Task.Executor!.ExecutorId));
        Assert.All(ids, id => Assert.Equal(TaskState.Staging, _state.GetTask(id)!.State));

        // The agent's heartbeat shows it never got them (a dropped stream): the group is re-sent as one command.
        _time.Advance(_options.CommandResendAfter + TimeSpan.FromSeconds(1));
        Assert.True(_state.Heartbeat(agentId, new Drover.Core.Protocol.AgentHeartbeat()));
        var resent = AgentCommands(agentId).Single();
        Assert.Equal(Drover.Core.Protocol.AgentCommandType.LaunchGroup, resent.Type);
        Assert.Equal(ids.Order().ToArray(), resent.LaunchGroup!.Tasks.Select(l => l.Task.Id).Order().ToArray());
        Assert.Equal(ids[0], resent.LaunchGroup.Tasks[0].Task.Id);

        // Should the agent know only one of them, only the one it lacks is re-sent, still as a group command.
        _time.Advance(_options.CommandResendAfter + TimeSpan.FromSeconds(1));
        Assert.True(_state.Heartbeat(agentId, new Drover.Core.Protocol.AgentHeartbeat { ActiveTaskIds = [ids[0]] }));
        Assert.Equal([ids[1]], AgentCommands(agentId).Single().LaunchGroup!.Tasks.Select(l => l.Task.Id).ToArray());
    }

    [Fact]
    public void Accept_SeveralLaunchesStartOneNewExecutor_ExecutorChargedToTheOfferOnce()
    {
        // 1 cpu: the executor's 0.5 once plus two tasks of 0.25 fit exactly; charging the executor per
        // launch (0.5 + 0.25 + 0.5 + 0.25) would refuse the second task.
        var (agentId, fw, stream, offer) = FirstOffer("cpus:1;mem:4096", "charge-once");
        var executor = CustomExecutor with { Resources = [Cpus(0.5)] };
        MOperation Launch(string id) => new() { Type = "LAUNCH", Launch = new MLaunch([GroupTask(id, offer, 0.25) with { Executor = executor, Command = null }]) };
        var result = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [Launch("t1"), Launch("t2")], new MFilters(0)),
        }, stream.Id);
        Assert.Equal(202, result.Status);

        Assert.DoesNotContain(Events(stream), e => e.Type == "UPDATE" && e.Update!.Status.State == "TASK_ERROR");
        Assert.Equal(2, AgentCommands(agentId).Count(c => c.Launch is not null));
        Assert.Equal(0m, _state.GetAgent(agentId)!.Free.Cpus);

        // A group for the now running executor is not charged for it either: 0 cpus are left, and a group
        // of no-cpu tasks still fits.
        Finish(agentId, FrameworkManager.DroverTaskId(fw.Id, "t2"), TaskState.Killed);
        _frameworks.AllocatePass();
        var next = Offers(Events(stream)).Single();
        Assert.Equal(0.25, next.Resources.Single(r => r.Name == "cpus").Scalar!.Value);
        AcceptGroup(fw, stream, next, executor, GroupTask("g1", next, 0.25));
        Assert.Equal(TaskState.Staging, _state.GetTask(FrameworkManager.DroverTaskId(fw.Id, "g1"))!.State);
    }

    [Fact]
    public void Accept_LaunchGroupNoLongerFitsTheAgent_EveryTaskOfTheGroupFails()
    {
        var agentId = _state.Register(Build.Agent("a1", "cpus:2;mem:1024")).Registered.AgentId;
        var spec = (string id) => new TaskSpec { Id = id, Name = id, Shell = "sleep 100", Resources = Resources.Of(1, 64), FrameworkId = "fw", TaskGroupId = "fw.g1" };

        // The group needs 3 cpus and the agent has 2 (as when placement raced the offer): none of it launches.
        _ = _state.LaunchFromOffer(agentId, Resources.Zero, [new OfferLaunch(spec("fw.g1"), []), new OfferLaunch(spec("fw.g2"), []), new OfferLaunch(spec("fw.g3"), [])], TaskState.Lost);

        Assert.All(new[] { "fw.g1", "fw.g2", "fw.g3" }, id => Assert.Equal(TaskState.Lost, _state.GetTask(id)!.State));
        Assert.Empty(AgentCommands(agentId));
        Assert.Equal(2m, _state.GetAgent(agentId)!.Free.Cpus);
    }

    [Fact]
    public void Kill_TaskOfAGroup_DefaultExecutorKillsTheGroupCustomExecutorOnlyTheTask()
    {
        _state.Register(Build.Agent("a1", "cpus:4;mem:4096"));
        var (fw, stream) = Subscribe("kills");
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        AcceptGroup(fw, stream, offer, new MExecutorInfo { Type = "DEFAULT", ExecutorId = new MId("default") }, GroupTask("d1", offer), GroupTask("d2", offer));
        _frameworks.AllocatePass();
        var offer2 = Offers(Events(stream)).Single();
        AcceptGroup(fw, stream, offer2, CustomExecutor, GroupTask("c1", offer2), GroupTask("c2", offer2));

        TaskState StateOf(string id) => _state.GetTask(FrameworkManager.DroverTaskId(fw.Id, id))!.State;
        void Kill(string id) => Assert.Equal(202, _frameworks.Handle(new MCall { Type = "KILL", FrameworkId = new MId(fw.Id), Kill = new MKill(new MId(id), null, null) }, stream.Id).Status);

        Kill("d1");
        Assert.Equal(TaskState.Killing, StateOf("d1"));
        Assert.Equal(TaskState.Killing, StateOf("d2")); // the default executor's group dies together

        Kill("c1");
        Assert.Equal(TaskState.Killing, StateOf("c1"));
        Assert.Equal(TaskState.Staging, StateOf("c2")); // a custom executor decides for itself
    }

    private MOffer DeclineNextOffer(Framework fw, SchedulerStream stream, double refuseSeconds)
    {
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        Assert.Equal(202, _frameworks.Handle(new MCall { Type = "DECLINE", FrameworkId = new MId(fw.Id), Decline = new MDecline([offer.Id], new MFilters(refuseSeconds)) }, stream.Id).Status);
        return offer;
    }

    /// <summary>No offer now; one after <paramref name="later"/> (the decline filter expired).</summary>
    private void AssertFilteredUntil(SchedulerStream stream, TimeSpan later)
    {
        _frameworks.AllocatePass();
        Assert.Empty(Offers(Events(stream)));
        _time.Advance(later);
        _frameworks.AllocatePass();
        Assert.Single(Offers(Events(stream)));
    }

    private void Finish(string agentId, string droverTaskId, TaskState state = TaskState.Finished)
    {
        var batch = new Drover.Core.Protocol.StatusUpdateBatch { Updates = [new TaskStatus { TaskId = droverTaskId, State = state, Uuid = Guid.NewGuid().ToString() }] };
        _state.ApplyUpdates(agentId, batch);
        Assert.Equal(state, _state.GetTask(droverTaskId)!.State);
    }

    [Fact]
    public void TaskOfAGroupFails_DefaultExecutorKillsTheRestCustomExecutorDecides()
    {
        var (agentId, fw, stream, offer) = FirstOffer("cpus:4;mem:4096", "failures");
        AcceptGroup(fw, stream, offer, new MExecutorInfo { Type = "DEFAULT", ExecutorId = new MId("default") }, GroupTask("d1", offer), GroupTask("d2", offer));
        _frameworks.AllocatePass();
        var offer2 = Offers(Events(stream)).Single();
        AcceptGroup(fw, stream, offer2, CustomExecutor, GroupTask("c1", offer2), GroupTask("c2", offer2));
        string Id(string taskId) => FrameworkManager.DroverTaskId(fw.Id, taskId);

        Finish(agentId, Id("d1"), TaskState.Failed);
        Finish(agentId, Id("c1"), TaskState.Failed);

        Assert.Equal(TaskState.Killing, _state.GetTask(Id("d2"))!.State);
        Assert.Contains("'d1' of its task group failed", _state.GetTask(Id("d2"))!.Message, StringComparison.Ordinal);
        Assert.Equal(TaskState.Staging, _state.GetTask(Id("c2"))!.State);
    }

    [Fact]
    public void Decline_MoreResourcesFreeOnTheAgent_OfferedBeforeTheFilterExpires()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("filters");
        var agentId = LaunchOne(fw, stream, "t"); // 1 of 2 cpus; the rest is offered next
        var declined = DeclineNextOffer(fw, stream, 60);
        Assert.Equal(1.0, declined.Resources.Single(r => r.Name == "cpus").Scalar!.Value);

        // Unchanged: what the agent has free is what was declined, so it is filtered.
        _frameworks.AllocatePass();
        Assert.Empty(Offers(Events(stream)));
        _time.Advance(TimeSpan.FromSeconds(20));
        _frameworks.AllocatePass();
        Assert.Empty(Offers(Events(stream)));

        // The task ends: 2 cpus are free, more than the filter covers, so the agent is offered long before 60 s.
        Finish(agentId, FrameworkManager.DroverTaskId(fw.Id, "t"));
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        Assert.Equal(2.0, offer.Resources.Single(r => r.Name == "cpus").Scalar!.Value);
    }

    [Fact]
    public void Decline_LessFreeOnTheAgentThanDeclined_StillFiltered()
    {
        var agentId = _state.Register(Build.Agent("a1", "cpus:2;mem:1024")).Registered.AgentId;
        var (fw, stream) = Subscribe("filters");
        DeclineNextOffer(fw, stream, 60);

        // A built-in task takes some: what is left is contained in what was declined.
        var builtIn = _state.Submit(Build.Task(cpus: 1)).View;
        _loop.RunPass();
        Assert.Equal(agentId, _state.GetTask(builtIn.Id)!.AgentId);
        AssertFilteredUntil(stream, TimeSpan.FromSeconds(61));
    }

    [Fact]
    public void Accept_UnusedResourcesWithRefuseSeconds_FilteredUntilMoreIsFree()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("filters");
        _frameworks.AllocatePass();
        var offer = Offers(Events(stream)).Single();
        Assert.Equal(202, _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [new MOperation { Type = "LAUNCH", Launch = new MLaunch([GroupTask("t", offer, cpus: 1)]) }], new MFilters(60)),
        }, stream.Id).Status);

        _frameworks.AllocatePass();
        Assert.Empty(Offers(Events(stream))); // the unused cpu is filtered

        Finish(offer.AgentId.Value, FrameworkManager.DroverTaskId(fw.Id, "t"));
        _frameworks.AllocatePass();
        Assert.Equal(2.0, Offers(Events(stream)).Single().Resources.Single(r => r.Name == "cpus").Scalar!.Value);
    }

    [Fact]
    public void Revive_AfterDecline_FiltersClearedAndOfferedAtOnce()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("filters");
        DeclineNextOffer(fw, stream, 3600);
        _frameworks.AllocatePass();
        Assert.Empty(Offers(Events(stream)));

        Assert.Equal(202, _frameworks.Handle(new MCall { Type = "REVIVE", FrameworkId = new MId(fw.Id) }, stream.Id).Status);
        _frameworks.AllocatePass();
        Assert.Single(Offers(Events(stream)));
    }

    [Fact]
    public void Decline_FilterIsPerFramework_OtherFrameworkStillOffered()
    {
        _state.Register(Build.Agent("a1", "cpus:2;mem:1024"));
        var (fw, stream) = Subscribe("decliner");
        DeclineNextOffer(fw, stream, 60);
        var (_, other) = Subscribe("other");

        _frameworks.AllocatePass();

        Assert.Empty(Offers(Events(stream)));
        Assert.Single(Offers(Events(other)));
    }
}
