using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Drover.Agent.Executors;
using Drover.Core;
using Drover.Core.Protocol;
using Drover.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Master.Tests.Executors;

/// <summary>
/// Executor authentication end to end (issue 13, item 6): every call to <c>/api/v1/executor</c> needs the calling
/// executor's own token (<c>MESOS_EXECUTOR_AUTHENTICATION_TOKEN</c>), and a token is good only for its own executor's
/// ids. The tests act as an attacker would: a process with some token, or none, trying to get in.
/// </summary>
public sealed partial class CustomExecutorTests
{
    private const string Unchallenged = "Bearer realm=\"drover-agent-executor\"";
    private const string Challenged = "Bearer realm=\"drover-agent-executor\", error=\"invalid_token\", error_description=";

    [Fact]
    public async Task ExecutorCalls_WithoutAValidToken_UnauthorizedWithChallengeAndNothingChanged()
    {
        if (!await StartAsync())
        {
            return;
        }

        var id = Submit("run", Echo("manual") with { Args = RawExecutor.SilentArgs });
        await Wait.UntilAsync(() => Task.FromResult(Executors.ContainerOf(FrameworkId, "manual")), c => c is not null, Timeout, "the executor to start");
        using var raw = await RawAsync(id);
        var genuine = raw.Token!;
        var agentKey = await File.ReadAllBytesAsync(Path.Combine(_cluster!.Root, "exec-host", "meta", ExecutorTokens.KeyFileName));
        var claims = new Dictionary<string, object> { ["fid"] = FrameworkId, ["eid"] = "manual", ["cid"] = Executors.ContainerOf(FrameworkId, "manual")! };
        var calls = new Dictionary<string, string>
        {
            ["SUBSCRIBE"] = RawExecutor.SubscribeCall(FrameworkId, "manual"),
            ["UPDATE"] = RawExecutor.Call(FrameworkId, "manual", "UPDATE", raw.Update(id, "TASK_FINISHED", RawExecutor.NewUuid())),
            ["MESSAGE"] = RawExecutor.Call(FrameworkId, "manual", "MESSAGE", $$"""{"data":"{{Text("hello")}}"}"""),
            ["HEARTBEAT"] = RawExecutor.Call(FrameworkId, "manual", "HEARTBEAT", null),
        };
        var forgeries = new Dictionary<string, string>
        {
            // The genuine token's header and signature around claims of the attacker's choosing.
            ["forged"] = "Bearer " + SwapPayload(genuine, claims.ToDictionary(kv => kv.Key, kv => kv.Key == "eid" ? (object)"another" : kv.Value)),
            ["alg none"] = "Bearer " + Unsigned(claims),
            ["another key"] = "Bearer " + Sign(RandomNumberGenerator.GetBytes(64), SecurityAlgorithms.HmacSha256, claims),
            ["HS512 with the agent's key"] = "Bearer " + Sign(agentKey, SecurityAlgorithms.HmacSha512, claims),
            ["no cid claim"] = "Bearer " + Sign(agentKey, SecurityAlgorithms.HmacSha256, claims.Where(kv => kv.Key != "cid").ToDictionary()),
            ["basic"] = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(FrameworkId + ":secret")),
            ["token=, as DC/OS users send"] = "token=" + genuine,
        };

        foreach (var (type, body) in calls)
        {
            var (status, text, challenge) = await raw.SendAsync(body, authorization: null);
            Assert.True(status == 401 && challenge == Unchallenged, $"{type} without a token: {status} {challenge} {text}");
            foreach (var (name, authorization) in forgeries)
            {
                (status, text, challenge) = await raw.SendAsync(body, authorization);
                Assert.True(status == 401 && challenge?.StartsWith(Challenged, StringComparison.Ordinal) == true, $"{type} with {name}: {status} {challenge} {text}");
            }
        }

        // Nothing changed: the task never left the agent's queue, and the genuine token gets its LAUNCH now.
        var task = await _cluster.Client.GetTaskAsync(id);
        Assert.Equal(TaskState.Staging, task.State);
        Assert.DoesNotContain(task.Statuses, s => s.Source == TaskSources.Executor);
        await using var stream = await raw.SubscribeAsync("{}");
        Assert.Equal("SUBSCRIBED", (await stream.NextAsync()).Type);
        Assert.Equal(id, (await stream.NextAsync()).Json.GetProperty("launch").GetProperty("task").GetProperty("task_id").GetProperty("value").GetString());
    }

    [Fact]
    public async Task ExecutorCalls_AnotherExecutorsIdsOrTask_ForbiddenAndTheOtherExecutorUntouched()
    {
        if (!await StartAsync())
        {
            return;
        }

        var messages = new ConcurrentQueue<FrameworkMessage>();
        State.FrameworkMessageReceived += (_, message) => messages.Enqueue(message);
        // The victim: a real executor with a running task.
        var victimTask = Submit("run", Echo("victim"));
        await WaitForState(victimTask, TaskState.Running);
        await WaitForEvents(victimTask, e => e.Any(l => l.StartsWith($"ACKNOWLEDGED {victimTask} ", StringComparison.Ordinal)), "the victim's RUNNING to be acknowledged");
        var victimStatuses = (await _cluster!.Client.GetTaskAsync(victimTask)).Statuses;
        // The attacker: another executor of the same framework on the same agent, with its own genuine token.
        var attackerTask = Submit("mine", Echo("manual") with { Args = RawExecutor.SilentArgs });
        using var attacker = await RawAsync(attackerTask);
        await using var own = await attacker.SubscribeAsync("{}");
        Assert.Equal("SUBSCRIBED", (await own.NextAsync()).Type);
        Assert.Equal("LAUNCH", (await own.NextAsync()).Type);

        // As the victim: every call type with the victim's ids.
        const string notVictim = "Authenticated principal does not contain an 'eid' claim with the executor ID victim, which is set in the call";
        Assert.Equal((403, notVictim), await attacker.PostAsync(RawExecutor.SubscribeCall(FrameworkId, "victim")));
        Assert.Equal((403, notVictim), await attacker.PostAsync(RawExecutor.Call(FrameworkId, "victim", "UPDATE", attacker.Update(victimTask, "TASK_FAILED", RawExecutor.NewUuid()))));
        Assert.Equal((403, notVictim), await attacker.PostAsync(RawExecutor.Call(FrameworkId, "victim", "MESSAGE", $$"""{"data":"{{Text("forged")}}"}""")));
        Assert.Equal((403, notVictim), await attacker.PostAsync(RawExecutor.Call(FrameworkId, "victim", "HEARTBEAT", null)));
        // As itself, about the victim's task (in an UPDATE, or an update re-sent on SUBSCRIBE).
        var notMine = $"Task {victimTask} is not a task of executor 'manual'";
        Assert.Equal((403, notMine), await attacker.CallAsync("UPDATE", attacker.Update(victimTask, "TASK_FINISHED", RawExecutor.NewUuid())));
        Assert.Equal((403, notMine), await attacker.PostAsync(RawExecutor.SubscribeCall(FrameworkId, "manual",
            "{\"unacknowledged_updates\":[" + attacker.Update(victimTask, "TASK_KILLED", RawExecutor.NewUuid()) + "]}")));

        // The victim's task is as it was, and the victim is still the one subscribed: a scheduler message reaches it
        // and comes back (the forged MESSAGE, had it passed, would have reached the master first), and a kill is its.
        var task = await _cluster.Client.GetTaskAsync(victimTask);
        Assert.Equal(TaskState.Running, task.State);
        Assert.Equal(victimStatuses.Select(s => s.Uuid), task.Statuses.Select(s => s.Uuid));
        Assert.True(State.SendToExecutor(AgentId, new FrameworkMessage { FrameworkId = FrameworkId, ExecutorId = "victim", Data = Text("ping") }));
        await Wait.UntilAsync(() => Task.FromResult(messages.ToArray()), m => m.Any(x => x.Data == Text("ping")), Timeout, "the victim to echo the ping");
        Assert.DoesNotContain(messages, m => m.Data == Text("forged"));
        await _cluster.Client.KillTaskAsync(victimTask);
        Assert.Equal("killed by the executor", (await WaitForState(victimTask, TaskState.Killed)).Message);
        Assert.Single(ReadEvents(victimTask), l => l.StartsWith("SUBSCRIBED", StringComparison.Ordinal));
    }

    private static string Sign(byte[] key, string algorithm, IDictionary<string, object> claims) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), algorithm),
        });

    private static string SwapPayload(string token, IDictionary<string, object> claims)
    {
        var parts = token.Split('.');
        return $"{parts[0]}.{Payload(claims)}.{parts[2]}";
    }

    /// <summary>RFC 7519's unsecured JWT: <c>{"alg":"none"}</c> and an empty signature.</summary>
    private static string Unsigned(IDictionary<string, object> claims) =>
        $"{Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""")}.{Payload(claims)}.";

    private static string Payload(IDictionary<string, object> claims) =>
        Base64UrlEncoder.Encode("{" + string.Join(",", claims.Select(kv => $"\"{kv.Key}\":\"{kv.Value}\"")) + "}");
}
