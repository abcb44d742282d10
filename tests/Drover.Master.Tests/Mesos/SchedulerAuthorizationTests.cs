using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Protocol;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Master.Mesos;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// Mesos framework authentication and authorization on a master with security on (Mesos 1.11 with
/// <c>--authenticate_http_frameworks</c> and an authorizer, DC/OS permission strings): schedulers written against
/// the raw HTTP API try to get in without credentials, with wrong ones, as another principal, into roles and as
/// users they were not granted. Principals are IAM users created through the master's <see cref="IamStore"/>.
/// Agents are registrations in the master's ledger (a real agent joins a secured master with a certificate,
/// which these tests do not need: a refused task never reaches an agent).
/// </summary>
public sealed class SchedulerAuthorizationTests
{
    private const string Secret = "s3cret-for-tests";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static JsonObject Info(string name, string user = "nobody", string? principal = null, string? role = null)
    {
        var info = new JsonObject { ["user"] = user, ["name"] = name, ["failover_timeout"] = 120 };
        if (principal is not null)
        {
            info["principal"] = principal;
        }

        if (role is not null)
        {
            info["role"] = role;
        }

        return info;
    }

    /// <summary>A master with security on; agents registered here stay reachable and offers outstanding for the whole test.</summary>
    private static Task<InProcessCluster> SecureClusterAsync() => InProcessCluster.StartAsync(new MasterOptions
    {
        AgentUnreachableTimeout = TimeSpan.FromMinutes(10),
        OfferTimeout = TimeSpan.FromMinutes(5),
    }, secure: true);

    /// <summary>A service account <paramref name="uid"/> with <see cref="Secret"/> as its password, holding <paramref name="grants"/>.</summary>
    private static async Task AddPrincipalAsync(InProcessCluster cluster, string uid, params (string Rid, PermissionAction Action)[] grants)
    {
        var iam = cluster.Master.Services.GetRequiredService<IamStore>();
        var created = await iam.CreateUserAsync(new IamUser { Uid = uid, Kind = AccountKind.Service, PasswordHash = PasswordHasher.Hash(Secret, iterations: 10_000) }, CancellationToken.None);
        Assert.True(created.Succeeded, created.Message);
        foreach (var (rid, action) in grants)
        {
            var granted = await iam.GrantAsync(rid, uid, isGroup: false, action, CancellationToken.None);
            Assert.True(granted.Succeeded, granted.Message);
        }
    }

    /// <summary>What a principal needs to run a framework in role '*' whose tasks run as 'nobody'.</summary>
    private static (string, PermissionAction)[] FrameworkGrants(string role = "*", string user = "nobody") =>
        [(Rids.FrameworkRole(role), PermissionAction.Create), (Rids.TaskUser(user), PermissionAction.Create)];

    private static AuthenticationHeaderValue As(string principal, string secret = Secret) => RawScheduler.Basic(principal, secret);

    private static AuthenticationHeaderValue Admin(InProcessCluster cluster) =>
        RawScheduler.Basic(IamStore.AdminUid, File.ReadAllText(Path.Combine(cluster.Root, "master", "bootstrap-admin-password")).TrimEnd('\n'));

    private static HttpClient NewHttp() => new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout };

    private static StringContent Json(JsonNode node) => new(node.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>
    /// A SUBSCRIBE that the master is expected to refuse: the HTTP status and body, and for a 200 the events of the
    /// stream, read until the master ends it (Mesos' refusal after the stream started: ERROR, then close).
    /// </summary>
    private static async Task<(HttpStatusCode Status, string Body, List<JsonObject> Events, HttpResponseMessage Response)> RefusedSubscribeAsync(
        Uri master, AuthenticationHeaderValue? auth, JsonObject info, string? frameworkId = null)
    {
        var call = new JsonObject { ["type"] = "SUBSCRIBE", ["subscribe"] = new JsonObject { ["framework_info"] = info.DeepClone() } };
        if (frameworkId is not null)
        {
            call["framework_id"] = new JsonObject { ["value"] = frameworkId };
            call["subscribe"]!["framework_info"]!["id"] = new JsonObject { ["value"] = frameworkId };
        }

        using var http = NewHttp();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "/api/v1/scheduler")) { Content = Json(call) };
        request.Headers.Authorization = auth;
        var response = await http.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync(); // ends only when the master ends the stream
        var events = new List<JsonObject>();
        if (response.StatusCode == HttpStatusCode.OK)
        {
            for (var at = 0; at < bytes.Length;)
            {
                var newline = Array.IndexOf(bytes, (byte)'\n', at);
                var length = int.Parse(Encoding.ASCII.GetString(bytes, at, newline - at), CultureInfo.InvariantCulture);
                events.Add(JsonNode.Parse(bytes.AsSpan(newline + 1, length))!.AsObject());
                at = newline + 1 + length;
            }
        }

        return (response.StatusCode, Encoding.UTF8.GetString(bytes), events, response);
    }

    /// <summary>
    /// A SUBSCRIBE naming <paramref name="frameworkId"/>, as a scheduler that picked the id itself would send it: the
    /// stream's first event (SUBSCRIBED if the master let it in, ERROR if not) and its stream id. The stream stays
    /// open until the result is disposed.
    /// </summary>
    private static async Task<OpenSubscription> SubscribeNamingAsync(Uri master, AuthenticationHeaderValue auth, JsonObject info, string frameworkId)
    {
        var call = new JsonObject { ["type"] = "SUBSCRIBE", ["framework_id"] = new JsonObject { ["value"] = frameworkId }, ["subscribe"] = new JsonObject { ["framework_info"] = info.DeepClone() } };
        call["subscribe"]!["framework_info"]!["id"] = new JsonObject { ["value"] = frameworkId };
        var http = NewHttp();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "/api/v1/scheduler")) { Content = Json(call) };
        request.Headers.Authorization = auth;
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var subscription = new OpenSubscription(http, response);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            Assert.Fail($"SUBSCRIBE naming {frameworkId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}"); // the body of a 200 never ends
        }

        var body = await response.Content.ReadAsStreamAsync();
        var header = new List<byte>();
        var one = new byte[1];
        while (await body.ReadAsync(one) == 1 && one[0] != (byte)'\n')
        {
            header.Add(one[0]);
        }

        var record = new byte[int.Parse(Encoding.ASCII.GetString([.. header]), CultureInfo.InvariantCulture)];
        await body.ReadExactlyAsync(record);
        subscription.First = JsonNode.Parse(record)!.AsObject();
        subscription.StreamId = response.Headers.TryGetValues("Mesos-Stream-Id", out var ids) ? ids.Single() : "";
        return subscription;
    }

    private sealed class OpenSubscription(HttpClient http, HttpResponseMessage response) : IDisposable
    {
        public JsonObject First { get; set; } = [];

        public string StreamId { get; set; } = "";

        public string Type => (string?)First["type"] ?? "";

        public void Dispose()
        {
            response.Dispose();
            http.Dispose();
        }
    }

    /// <summary>A scheduler call for <paramref name="frameworkId"/> on <paramref name="streamId"/>, sent with <paramref name="auth"/>.</summary>
    private static async Task<(HttpStatusCode Status, string Body)> CallAsync(Uri master, AuthenticationHeaderValue auth, string frameworkId, string streamId, string type, JsonObject? body = null)
    {
        var call = new JsonObject { ["type"] = type, ["framework_id"] = new JsonObject { ["value"] = frameworkId } };
        if (body is not null)
        {
            call[type.ToLowerInvariant()] = body;
        }

        using var http = NewHttp();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "/api/v1/scheduler")) { Content = Json(call) };
        request.Headers.Add("Mesos-Stream-Id", streamId);
        request.Headers.Authorization = auth;
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The live frameworks (not the built-in one) as the operator API's GET_FRAMEWORKS shows them to <paramref name="auth"/>.</summary>
    private static async Task<List<JsonObject>> FrameworksAsync(Uri master, AuthenticationHeaderValue auth)
    {
        using var http = NewHttp();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "/api/v1")) { Content = Json(new JsonObject { ["type"] = "GET_FRAMEWORKS" }) };
        request.Headers.Authorization = auth;
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return [.. JsonNode.Parse(body)!["get_frameworks"]!["frameworks"]!.AsArray().Select(f => f!.AsObject())
            .Where(f => (string?)f["framework_info"]!["id"]!["value"] != "drover-builtin-0000")];
    }

    /// <summary>The reason of a refused call (Drover's error shape: <c>{"code","message","details"}</c>).</summary>
    private static string? MessageOf(string body) => (string?)JsonNode.Parse(body)!["message"];

    private static double Scalar(JsonObject offer, string name) => RawScheduler.ScalarOf(offer, name);

    private static JsonObject FirstOffer(JsonObject offersEvent) => offersEvent["offers"]!["offers"]![0]!.AsObject();

    [Fact]
    public async Task SchedulerApi_MissingOrWrongCredentials_401WithMesosSchedulerRealm()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        var master = cluster.Master.Url;

        foreach (var (auth, what) in new (AuthenticationHeaderValue?, string)[]
        {
            (null, "no credentials"),
            (As("p1", "wrong-secret"), "a wrong secret"),
            (As("nobody-such", Secret), "an unknown principal"),
            (new AuthenticationHeaderValue("Basic", "not base64!"), "malformed Basic credentials"),
        })
        {
            var (status, body, _, response) = await RefusedSubscribeAsync(master, auth, Info("intruder"));
            using (response)
            {
                Assert.True(status == HttpStatusCode.Unauthorized, $"{what}: {(int)status} {body}");
                Assert.Contains("Basic realm=\"mesos-master-scheduler\"", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
            }
        }

        // The operator API and the read-only endpoints name their own realms, as Mesos does.
        using var http = NewHttp();
        using var operatorCall = await http.PostAsync(new Uri(master, "/api/v1"), Json(new JsonObject { ["type"] = "GET_FRAMEWORKS" }));
        Assert.Equal(HttpStatusCode.Unauthorized, operatorCall.StatusCode);
        Assert.Contains("Basic realm=\"mesos-master-readwrite\"", operatorCall.Headers.WwwAuthenticate.Select(h => h.ToString()));
        using var state = await http.GetAsync(new Uri(master, "/master/state"));
        Assert.Equal(HttpStatusCode.Unauthorized, state.StatusCode);
        Assert.Contains("Basic realm=\"mesos-master-readonly\"", state.Headers.WwwAuthenticate.Select(h => h.ToString()));

        Assert.Empty(await FrameworksAsync(master, Admin(cluster)));
    }

    [Fact]
    public async Task Subscribe_PrincipalInFrameworkInfoIsAnother_400WithMesosReason_UnsetPrincipalFilledIn()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        await AddPrincipalAsync(cluster, "p2", FrameworkGrants());
        var master = cluster.Master.Url;

        var (status, body, _, response) = await RefusedSubscribeAsync(master, As("p1"), Info("impostor", principal: "p2"));
        response.Dispose();

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("Failed to validate scheduler::Call: Authenticated principal 'p1' does not match principal 'p2' set in `FrameworkInfo`", MessageOf(body));
        Assert.Empty(await FrameworksAsync(master, Admin(cluster)));

        // Without a principal in FrameworkInfo, the authenticated one is recorded.
        await using var fw = await RawScheduler.SubscribeAsync(master, Info("honest"), authorization: As("p1"));
        var registered = Assert.Single(await FrameworksAsync(master, Admin(cluster)));
        Assert.Equal("p1", (string?)registered["framework_info"]!["principal"]);
        Assert.Equal(fw.FrameworkId, (string?)registered["framework_info"]!["id"]!["value"]);
    }

    [Fact]
    public async Task Subscribe_RoleOrUserNotGranted_ErrorEventAndNothingRegistered()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants()); // role '*' and user 'nobody' only
        var master = cluster.Master.Url;

        var (status, body, events, response) = await RefusedSubscribeAsync(master, As("p1"), Info("greedy", role: "prod"));
        response.Dispose();
        Assert.Equal(HttpStatusCode.OK, status); // Mesos authorizes after the stream started: ERROR, then close
        var error = Assert.Single(events);
        Assert.Equal("ERROR", (string?)error["type"]);
        Assert.StartsWith("Not authorized to register framework with roles { prod }", (string?)error["error"]!["message"], StringComparison.Ordinal);
        Assert.Contains(Rids.FrameworkRole("prod"), body, StringComparison.Ordinal);

        (status, _, events, response) = await RefusedSubscribeAsync(master, As("p1"), Info("rooted", user: "root"));
        response.Dispose();
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ERROR", (string?)Assert.Single(events)["type"]);
        Assert.Contains(Rids.TaskUser("root"), (string?)events[0]["error"]!["message"], StringComparison.Ordinal);

        Assert.Empty(await FrameworksAsync(master, Admin(cluster)));

        // A grant on the role makes the same subscription work.
        var iam = cluster.Master.Services.GetRequiredService<IamStore>();
        Assert.True((await iam.GrantAsync(Rids.FrameworkRole("prod"), "p1", isGroup: false, PermissionAction.Create, CancellationToken.None)).Succeeded);
        await using var fw = await RawScheduler.SubscribeAsync(master, Info("greedy", role: "prod"), authorization: As("p1"));
        Assert.Single(await FrameworksAsync(master, Admin(cluster)));
    }

    [Fact]
    public async Task AnotherPrincipal_CannotResubscribeAsTheFrameworkNorCallOnItsStream()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        await AddPrincipalAsync(cluster, "p2", FrameworkGrants());
        var state = cluster.Master.Services.GetRequiredService<ClusterState>();
        var agentId = state.Register(Build.Agent("a1", "cpus:2;mem:1024;disk:1000")).Registered.AgentId;
        var master = cluster.Master.Url;
        await using var victim = await RawScheduler.SubscribeAsync(master, Info("victim"), authorization: As("p1"));
        var offer = FirstOffer(await victim.NextAsync("OFFERS", Timeout));

        // Taking the framework over: with p2's own principal, named or filled in.
        foreach (var info in new[] { Info("takeover", principal: "p2"), Info("takeover") })
        {
            var (status, _, events, response) = await RefusedSubscribeAsync(master, As("p2"), info, victim.FrameworkId);
            response.Dispose();
            Assert.Equal(HttpStatusCode.OK, status);
            var error = Assert.Single(events);
            Assert.Equal("ERROR", (string?)error["type"]);
            Assert.Equal("Changing framework's principal is not allowed.", (string?)error["error"]!["message"]);
        }

        // Calls on the victim's stream, with its framework id and stream id, as p2: Mesos' 400, and nothing happens.
        var calls = new (string Type, JsonObject? Body)[]
        {
            ("TEARDOWN", null),
            ("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("hijack", agentId, "cat /etc/shadow"))),
            ("DECLINE", new JsonObject { ["offer_ids"] = new JsonArray(offer["id"]!.DeepClone()) }),
            ("KILL", new JsonObject { ["task_id"] = new JsonObject { ["value"] = "anything" } }),
            ("ACKNOWLEDGE", new JsonObject { ["agent_id"] = new JsonObject { ["value"] = agentId }, ["task_id"] = new JsonObject { ["value"] = "anything" }, ["uuid"] = Convert.ToBase64String(new byte[16]) }),
            ("RECONCILE", new JsonObject()),
        };
        foreach (var (type, body) in calls)
        {
            var (status, answer) = await CallAsync(master, As("p2"), victim.FrameworkId, victim.StreamId, type, body);
            Assert.True(status == HttpStatusCode.BadRequest, $"{type}: {(int)status} {answer}");
            // Mesos' sentence, without telling p2 whose framework it is.
            Assert.Equal("Authenticated principal 'p2' does not match the principal set in `FrameworkInfo`", MessageOf(answer));
            Assert.DoesNotContain("p1", answer, StringComparison.Ordinal);
        }

        // The victim kept its framework, its stream and its offer: it can still launch on that offer.
        Assert.Null(state.GetTask(FrameworkManager.DroverTaskId(victim.FrameworkId, "hijack")));
        var registered = Assert.Single(await FrameworksAsync(master, Admin(cluster)));
        Assert.Equal("p1", (string?)registered["framework_info"]!["principal"]);
        Assert.Equal(true, (bool?)registered["connected"]);
        await victim.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("mine", agentId, "true")));
        await Wait.UntilAsync(() => Task.FromResult(state.GetTask(FrameworkManager.DroverTaskId(victim.FrameworkId, "mine"))), t => t is not null, Timeout, "the victim's own task");
    }

    [Fact]
    public async Task Resubscribe_AfterMasterRestart_OnlyTheRegisteredPrincipal()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        await AddPrincipalAsync(cluster, "p2", FrameworkGrants());
        await using var fw = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("durable"), authorization: As("p1"));
        fw.Drop();

        await cluster.RestartMasterAsync();

        // The principal was checkpointed with the framework record: the restarted master still knows it.
        var (status, _, events, response) = await RefusedSubscribeAsync(cluster.Master.Url, As("p2"), Info("durable"), fw.FrameworkId);
        response.Dispose();
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Changing framework's principal is not allowed.", (string?)Assert.Single(events)["error"]!["message"]);

        await fw.SubscribeAsync(Info("durable"));
        Assert.Equal(fw.FrameworkId, (string?)fw.Subscribed["subscribed"]!["framework_id"]!["value"]);
    }

    [Fact]
    public async Task Accept_TaskAsRootWithoutPermission_TaskErrorAndItsResourcesOfferedAgain()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        var state = cluster.Master.Services.GetRequiredService<ClusterState>();
        var agentId = state.Register(Build.Agent("a1", "cpus:2;mem:1024;disk:1000")).Registered.AgentId;
        await using var fw = await RawScheduler.SubscribeAsync(cluster.Master.Url, Info("mixed"), authorization: As("p1"));
        var offer = FirstOffer(await fw.NextAsync("OFFERS", Timeout));
        Assert.Equal(2.0, Scalar(offer, "cpus"));

        // One task asks for root (not granted), one runs as the framework's user 'nobody' (granted).
        var asRoot = RawScheduler.CommandTask("as-root", agentId, "cat /etc/shadow", cpus: 1, mem: 256);
        asRoot["command"]!["user"] = "root";
        var asNobody = RawScheduler.CommandTask("as-nobody", agentId, "sleep 600", cpus: 0.5, mem: 64);
        await fw.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, asRoot, asNobody));

        var refused = (await fw.UpdateAsync("as-root", "TASK_ERROR", Timeout))["update"]!["status"]!;
        Assert.Equal("REASON_TASK_UNAUTHORIZED", (string?)refused["reason"]);
        Assert.Equal("SOURCE_MASTER", (string?)refused["source"]);
        Assert.Contains(Rids.TaskUser("root"), (string?)refused["message"], StringComparison.Ordinal);
        Assert.Null(state.GetTask(FrameworkManager.DroverTaskId(fw.FrameworkId, "as-root")));

        // The granted task goes to the agent to run as the framework's user; the refused one's resources are offered again.
        var launch = await Wait.UntilAsync(() => Task.FromResult(state.FindAgent(agentId)!.Commands.Reader.TryRead(out var c) ? c.Command : null),
            c => c?.Type == AgentCommandType.Launch, Timeout, "the launch command for as-nobody");
        Assert.Equal(FrameworkManager.DroverTaskId(fw.FrameworkId, "as-nobody"), launch!.Launch!.Task.Id);
        Assert.Equal("nobody", launch.Launch.Task.User);
        var next = FirstOffer(await fw.NextAsync("OFFERS", Timeout));
        Assert.Equal(1.5, Scalar(next, "cpus"));
        Assert.Equal(1024 - 64, Scalar(next, "mem"));

        // A task group with one task asking for root is refused whole, and takes nothing either.
        var group = new JsonObject
        {
            ["offer_ids"] = new JsonArray(next["id"]!.DeepClone()),
            ["operations"] = new JsonArray(new JsonObject
            {
                ["type"] = "LAUNCH_GROUP",
                ["launch_group"] = new JsonObject
                {
                    ["executor"] = new JsonObject { ["type"] = "DEFAULT", ["executor_id"] = new JsonObject { ["value"] = "group-exec" } },
                    ["task_group"] = new JsonObject { ["tasks"] = new JsonArray(RawScheduler.CommandTask("g-ok", agentId, "true", cpus: 0.1), WithUser(RawScheduler.CommandTask("g-root", agentId, "id", cpus: 0.1), "root")) },
                },
            }),
            ["filters"] = new JsonObject { ["refuse_seconds"] = 0 },
        };
        await fw.CallOkAsync("ACCEPT", group);
        foreach (var task in new[] { "g-ok", "g-root" })
        {
            var status = (await fw.UpdateAsync(task, "TASK_ERROR", Timeout))["update"]!["status"]!;
            Assert.Equal("REASON_TASK_GROUP_UNAUTHORIZED", (string?)status["reason"]);
            Assert.Null(state.GetTask(FrameworkManager.DroverTaskId(fw.FrameworkId, task)));
        }

        var after = FirstOffer(await fw.NextAsync("OFFERS", Timeout));
        Assert.Equal(1.5, Scalar(after, "cpus"));
    }

    [Fact]
    public async Task Subscribe_FrameworkIdTheClusterNeverIssued_RefusedAndTheNextFrameworkGetsItsOwn()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        await AddPrincipalAsync(cluster, "p2", FrameworkGrants());
        var master = cluster.Master.Url;
        await using var alice = await RawScheduler.SubscribeAsync(master, Info("alice"), authorization: As("p1"));
        var masterId = (string)alice.Subscribed["subscribed"]!["master_info"]!["id"]!;

        // What p1 can name: the ids the master would give next in Mesos' "<master id>-<NNNN>" form (SUBSCRIBED tells
        // every framework the master id), an id of its choosing, and one that makes its tasks' Drover ids read as
        // tasks of p1's own framework ("<fw>.x" + "y" = "<fw>" + "x.y").
        string[] squats = [$"{masterId}-0002", $"{masterId}-0003", "chosen-by-p1", alice.FrameworkId + ".x"];
        foreach (var squat in squats)
        {
            using var attempt = await SubscribeNamingAsync(master, As("p1"), Info("squatter"), squat);
            Assert.True(attempt.Type == "ERROR", $"{squat}: {attempt.First.ToJsonString()}");
            Assert.StartsWith($"Framework '{squat}' is not known to this cluster", (string?)attempt.First["error"]!["message"], StringComparison.Ordinal);
        }

        // p2's new framework gets an id nobody named before, and is p2's alone; p1's is untouched.
        await using var bob = await RawScheduler.SubscribeAsync(master, Info("bob"), authorization: As("p2"));
        Assert.DoesNotContain(bob.FrameworkId, squats);
        Assert.NotEqual(alice.FrameworkId, bob.FrameworkId);
        var frameworks = (await FrameworksAsync(master, Admin(cluster)))
            .Select(f => $"{(string?)f["framework_info"]!["id"]!["value"]} {(string?)f["framework_info"]!["principal"]} {(string?)f["framework_info"]!["name"]}")
            .Order(StringComparer.Ordinal);
        Assert.Equal(new[] { $"{alice.FrameworkId} p1 alice", $"{bob.FrameworkId} p2 bob" }.Order(StringComparer.Ordinal), frameworks);
        await bob.CallOkAsync("REVIVE");
    }

    [Fact]
    public async Task Teardown_OfAnIdSquattedAhead_CannotLockTheNextFrameworkOutOfFailover()
    {
        await using var cluster = await SecureClusterAsync();
        await AddPrincipalAsync(cluster, "p1", FrameworkGrants());
        await AddPrincipalAsync(cluster, "p2", FrameworkGrants());
        var master = cluster.Master.Url;
        await using var alice = await RawScheduler.SubscribeAsync(master, Info("alice"), authorization: As("p1"));
        var next = $"{(string)alice.Subscribed["subscribed"]!["master_info"]!["id"]!}-0002";

        // p1 takes the id the master would give next and tears it down, so that it reads "removed".
        string squatted;
        using (var squat = await SubscribeNamingAsync(master, As("p1"), Info("squatter"), next))
        {
            squatted = squat.First.ToJsonString();
            if (squat.Type == "SUBSCRIBED")
            {
                var (status, body) = await CallAsync(master, As("p1"), next, squat.StreamId, "TEARDOWN");
                Assert.True(status == HttpStatusCode.Accepted, body);
            }
        }

        // p2's framework, whatever id it was given, fails over with it.
        await using var bob = await RawScheduler.SubscribeAsync(master, Info("bob"), authorization: As("p2"));
        var id = bob.FrameworkId;
        bob.Drop();
        await bob.SubscribeAsync(Info("bob"));
        Assert.Equal(id, (string?)bob.Subscribed["subscribed"]!["framework_id"]!["value"]);
        await bob.CallOkAsync("REVIVE");
        Assert.Contains("\"ERROR\"", squatted, StringComparison.Ordinal);
    }

    private static JsonObject WithUser(JsonObject task, string user)
    {
        task["command"]!["user"] = user;
        return task;
    }
}
