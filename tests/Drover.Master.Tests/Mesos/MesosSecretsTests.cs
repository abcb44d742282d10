using System.Text;
using System.Text.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Mesos;
using Drover.Core.Protocol;
using Drover.Core.Security;
using Drover.Master.Mesos;
using Drover.Master.Secrets;
using Drover.Master.State;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// Mesos <c>Secret</c>s in ACCEPT LAUNCH on the real ledger and a real (SQLite) secret store, with framework principal
/// <c>p1</c> (authenticated, as the scheduler endpoint hands it over) allowed to read <c>team-a/*</c> only: what is launched carries references, what is refused gets TASK_ERROR
/// with the reason, and the value travels only in the resolved command for the task's agent.
/// </summary>
public sealed class MesosSecretsTests : IAsyncLifetime
{
    private static readonly byte[] DbPassword = Encoding.UTF8.GetBytes("db-pw-77c1e0");
    private static readonly byte[] InlineToken = Encoding.UTF8.GetBytes("inline-token-5a9d");
    private readonly ManualTimeProvider _time = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-mesos-secrets-").FullName;
    private readonly MasterOptions _options = new();
    private IStateStore _store = null!;
    private SecretStore _secrets = null!;
    private ClusterState _state = null!;
    private FrameworkManager _frameworks = null!;

    public async Task InitializeAsync()
    {
        _store = SqliteStateStore.Open(Path.Combine(_dir, "state.db"));
        _secrets = new SecretStore(_store, SecretKeyRing.Random(), _time, NullLogger<SecretStore>.Instance);
        await _secrets.PutAsync("team-a/db", DbPassword, "admin", null, SecretWriteMode.Upsert, CancellationToken.None);
        await _secrets.PutAsync("team-b/db", "team-b-pw"u8.ToArray(), "admin", null, SecretWriteMode.Upsert, CancellationToken.None);
        _state = new ClusterState(_options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _frameworks = new FrameworkManager(_state, null, _options, _time, NullLogger<FrameworkManager>.Instance) { Secrets = _secrets };
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    [Fact]
    public void Launch_ReferenceTheFrameworkMayRead_SpecHoldsTheReferenceAndTheAgentsCommandTheValue()
    {
        var (agentId, fw, stream, offer) = Offer();

        Accept(fw, stream, offer, Task("t", offer, env: [SecretEnv("DB_PASSWORD", Reference("/team-a/db"))], volumes: [SecretVolume("secrets/db", Reference("team-a/db"))]));

        var task = _state.GetTask(FrameworkManager.DroverTaskId(fw.Id, "t"))!;
        Assert.Equal(TaskState.Staging, task.State);
        var command = NextCommand(agentId);
        var spec = command.Launch!.Task;
        Assert.Equal([new TaskSecret { Target = SecretTarget.Env, Name = "DB_PASSWORD", Path = "team-a/db" }, new TaskSecret { Target = SecretTarget.File, Name = "secrets/db", Path = "team-a/db" }], spec.Secrets.ToArray());
        Assert.DoesNotContain("DB_PASSWORD", spec.Env.Keys);
        Assert.False(Holds(JsonSerializer.SerializeToUtf8Bytes(command, DroverJsonContext.Default.AgentCommand), DbPassword), "the queued command holds references only");

        var resolved = LaunchSecrets.Resolve(command, _secrets, _state, agentId)!;
        Assert.Equal([DbPassword, DbPassword], resolved.Secrets!.Value.Select(v => v.Data));
        Assert.All(resolved.Secrets.Value, v => Assert.Equal(spec.Id, v.TaskId));
    }

    [Fact]
    public void Launch_ReferenceThePrincipalMayNotRead_TaskErrorUnauthorizedNamingThePermissionAndNothingLaunched()
    {
        var (_, fw, stream, offer) = Offer();

        Accept(fw, stream, offer, Task("t", offer, env: [SecretEnv("STOLEN", Reference("team-b/db"))]));

        var update = Updates(stream).Single();
        Assert.Equal("TASK_ERROR", update.State);
        Assert.Equal(TaskReasons.TaskUnauthorized, update.Reason);
        Assert.Contains("with secret 'team-b/db': 'p1' lacks permission 'dcos:secrets:default:/team-b/db' with action 'read'", update.Message, StringComparison.Ordinal);
        Assert.Null(_state.GetTask(FrameworkManager.DroverTaskId(fw.Id, "t")));
    }

    [Fact]
    public void Launch_ReferenceToAMissingSecret_TaskError()
    {
        var (_, fw, stream, offer) = Offer();

        Accept(fw, stream, offer, Task("t", offer, volumes: [SecretVolume("cert.pem", Reference("team-a/no-such"))]));

        var update = Updates(stream).Single();
        Assert.Equal("TASK_ERROR", update.State);
        Assert.Contains("secret 'team-a/no-such' does not exist", update.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_ValueSecret_StoredEncryptedUnderTheTaskResolvedForItsAgentOnly()
    {
        var (agentId, fw, stream, offer) = Offer();

        Accept(fw, stream, offer, Task("t", offer, env: [SecretEnv("TOKEN", new MSecret("VALUE", Value: new MSecretValue(Convert.ToBase64String(InlineToken))))]));

        var command = NextCommand(agentId);
        Assert.Equal([new TaskSecret { Target = SecretTarget.Env, Name = "TOKEN" }], command.Launch!.Task.Secrets.ToArray());
        var stored = await Wait.UntilAsync(() => _store.ListAsync(SecretStore.TaskPrefix), l => l.Length == 1, TimeSpan.FromSeconds(10), "the VALUE secret stored");
        Assert.False(Holds(stored[0].Value, InlineToken), "stored encrypted");
        Assert.Equal(InlineToken, LaunchSecrets.Resolve(command, _secrets, _state, agentId)!.Secrets!.Value.Single().Data);
    }

    [Fact]
    public void Launch_SecretForACustomExecutorsTask_TaskError()
    {
        var (_, fw, stream, offer) = Offer();
        var info = Task("t", offer, env: [SecretEnv("DB", Reference("team-a/db"))]) with
        {
            Command = null,
            Executor = new MExecutorInfo { ExecutorId = new MId("e"), Command = new MCommandInfo { Value = "sleep 100", Environment = new MEnvironment([SecretEnv("DB", Reference("team-a/db"))]) } },
        };

        Accept(fw, stream, offer, info);

        var update = Updates(stream).Single();
        Assert.Equal("TASK_ERROR", update.State);
        Assert.Contains("SECRET only in a task's own command", update.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/etc/passwd", "is absolute")]
    [InlineData("../escape", "without '.' or '..'")]
    [InlineData(".secrets/x", "is the agent's")]
    public void Launch_SecretVolumeOutsideTheSandbox_TaskError(string containerPath, string reason)
    {
        var (_, fw, stream, offer) = Offer();

        Accept(fw, stream, offer, Task("t", offer, volumes: [SecretVolume(containerPath, Reference("team-a/db"))]));

        var update = Updates(stream).Single();
        Assert.Equal("TASK_ERROR", update.State);
        Assert.Contains(reason, update.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resolve_SecretDeletedBeforeTheLaunchWentOut_TaskFailedWithTheReasonAndNothingSent()
    {
        var (agentId, fw, stream, offer) = Offer();
        Accept(fw, stream, offer, Task("t", offer, env: [SecretEnv("DB", Reference("team-a/db"))]));
        var command = NextCommand(agentId);
        Assert.Equal(SecretOutcome.Deleted, await _secrets.DeleteAsync("team-a/db", "admin", CancellationToken.None));

        Assert.Null(LaunchSecrets.Resolve(command, _secrets, _state, agentId));

        var task = _state.GetTask(command.Launch!.Task.Id)!;
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Contains("secret 'team-a/db' does not exist", task.Message, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Principal p1: may register in any role and run tasks as nobody, and read team-a's secrets only.</summary>
    private static readonly SchedulerCaller P1 = new("p1", (rid, action) =>
        rid.StartsWith("dcos:mesos:master:", StringComparison.Ordinal) || (action == PermissionAction.Read && Rids.Covers(Rids.Secret("team-a"), rid)));

    private (string AgentId, Framework Framework, SchedulerStream Stream, MOffer Offer) Offer()
    {
        var agentId = _state.Register(Build.Agent("a1", "cpus:2;mem:1024")).Registered.AgentId;
        var (fw, stream, error, _) = _frameworks.Subscribe(new MCall
        {
            Type = "SUBSCRIBE",
            Subscribe = new MSubscribe(new MFrameworkInfo { User = "nobody", Name = "f", Principal = "p1", FailoverTimeout = 60 }, null),
        }, "localhost:5050", P1);
        Assert.Null(error.Error);
        _frameworks.AllocatePass();
        var offer = Events(stream!).Where(e => e.Type == "OFFERS").SelectMany(e => e.Offers!.Offers).Single();
        return (agentId, fw!, stream!, offer);
    }

    private static MTaskInfo Task(string id, MOffer offer, MEnvVariable[]? env = null, MVolume[]? volumes = null) => new()
    {
        Name = id,
        TaskId = new MId(id),
        AgentId = offer.AgentId,
        Resources = [new MResource { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(0.1) }, new MResource { Name = "mem", Type = "SCALAR", Scalar = new MScalar(32) }],
        Command = new MCommandInfo { Value = "sleep 100", Environment = env is null ? null : new MEnvironment([new MEnvVariable("PLAIN", "x", "VALUE"), .. env]) },
        Container = volumes is null ? null : new MContainerInfo("MESOS", null, null, volumes),
    };

    private static MEnvVariable SecretEnv(string name, MSecret secret) => new(name, null, "SECRET", secret);

    private static MVolume SecretVolume(string path, MSecret secret) => new() { Mode = "RO", ContainerPath = path, Source = new MVolumeSource { Type = "SECRET", Secret = secret } };

    private static MSecret Reference(string name) => new("REFERENCE", new MSecretReference(name));

    private void Accept(Framework fw, SchedulerStream stream, MOffer offer, MTaskInfo task)
    {
        var result = _frameworks.Handle(new MCall
        {
            Type = "ACCEPT",
            FrameworkId = new MId(fw.Id),
            Accept = new MAccept([offer.Id], [new MOperation { Type = "LAUNCH", Launch = new MLaunch([task]) }], null),
        }, stream.Id, P1);
        Assert.Equal(202, result.Status);
    }

    private AgentCommand NextCommand(string agentId)
    {
        var reader = _state.FindAgent(agentId)!.Commands.Reader;
        while (reader.TryRead(out var pending))
        {
            if (pending.Command.Type == AgentCommandType.Launch)
            {
                return pending.Command;
            }
        }

        throw new InvalidOperationException("no launch command was queued");
    }

    private static List<MTaskStatus> Updates(SchedulerStream stream) => [.. Events(stream).Where(e => e.Type == "UPDATE").Select(e => e.Update!.Status)];

    private static List<MEvent> Events(SchedulerStream stream)
    {
        var list = new List<MEvent>();
        while (stream.Reader.TryRead(out var bytes))
        {
            list.Add(JsonSerializer.Deserialize(bytes, MesosV1JsonContext.Default.MEvent)!);
        }

        return list;
    }

    private static bool Holds(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
