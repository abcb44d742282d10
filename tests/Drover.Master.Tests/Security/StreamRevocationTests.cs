using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Master.Security;
using Drover.Master.Tests.Mesos;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Security;

/// <summary>
/// Long-lived answers on a secure master — the Marathon event stream, a followed log, a Mesos scheduler and an operator
/// subscription — opened by a user whose login then ends: the account is deleted, its password changes, or its token
/// expires. Each stream must end (a revoked login keeps nothing open), and a deleted user must receive nothing more.
/// Every test would hang on a stream that outlives its login, until the wait for its end fails.
/// </summary>
public sealed class StreamRevocationTests
{
    private const string Password = "erin-password-1";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static Task<InProcessCluster> SecureClusterAsync(TimeSpan? tokenLifetime = null) => InProcessCluster.StartAsync(new MasterOptions
    {
        SchedulerHeartbeatInterval = TimeSpan.FromMilliseconds(300),
        Security = new SecurityOptions { TokenLifetime = tokenLifetime ?? TimeSpan.FromHours(1) },
    }, secure: true);

    /// <summary>User <paramref name="uid"/> (password <see cref="Password"/>) holding <paramref name="grants"/>.</summary>
    private static async Task AddUserAsync(InProcessCluster cluster, string uid, params (string Rid, PermissionAction Action)[] grants)
    {
        var iam = Iam(cluster);
        var created = await iam.CreateUserAsync(new IamUser { Uid = uid, Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash(Password, iterations: 1000) }, CancellationToken.None);
        Assert.True(created.Succeeded, created.Message);
        foreach (var (rid, action) in grants)
        {
            var granted = await iam.GrantAsync(rid, uid, isGroup: false, action, CancellationToken.None);
            Assert.True(granted.Succeeded, granted.Message);
        }
    }

    private static IamStore Iam(InProcessCluster cluster) => cluster.Master.Services.GetRequiredService<IamStore>();

    /// <summary>A client with <paramref name="uid"/>'s login (<see cref="Password"/> unless the bootstrap admin's).</summary>
    private static Task<HttpClient> LoginAsync(InProcessCluster cluster, string uid, string? password = null) =>
        cluster.LoginAsync(uid, password ?? (uid == IamStore.AdminUid ? null : Password));

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string App(string id) => new JsonObject { ["id"] = id, ["cmd"] = "sleep 600", ["cpus"] = 0.01, ["mem"] = 16 }.ToJsonString();

    /// <summary>What <c>/v2/events</c> may show a member of team A.</summary>
    private static readonly (string, PermissionAction)[] TeamAEvents =
        [(Rids.MarathonService, PermissionAction.Read), (Rids.MarathonEvents, PermissionAction.Read), (Rids.MarathonPath("/team-a"), PermissionAction.Full)];

    /// <summary>Opens <paramref name="path"/> and reads its body until the server ends it (the returned task then completes).</summary>
    private static async Task<(HttpResponseMessage Response, Task Ended)> OpenAsync(HttpClient client, HttpRequestMessage request)
    {
        using var headers = new CancellationTokenSource(Timeout); // a stream that never answers fails the test rather than hanging it
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headers.Token);
        if (!response.IsSuccessStatusCode)
        {
            Assert.Fail($"{request.RequestUri}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        var body = await response.Content.ReadAsStreamAsync();
        var ended = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            try
            {
                while (await body.ReadAsync(buffer) > 0)
                {
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                // Cut rather than ended: ended all the same.
            }
        });
        return (response, ended);
    }

    private static Task WaitEndedAsync(Task ended, string what) =>
        Wait.UntilAsync(() => Task.FromResult(ended.IsCompleted), Timeout, what);

    [Fact]
    public async Task EventStream_UserDeleted_EndsAndShowsNothingAfter()
    {
        await using var cluster = await SecureClusterAsync();
        await AddUserAsync(cluster, "erin", TeamAEvents);
        using var admin = await LoginAsync(cluster, IamStore.AdminUid);
        using var erin = await LoginAsync(cluster, "erin");
        var seen = new ConcurrentQueue<string>();
        await using var stream = await SseEventStream.OpenAsync(erin, "/v2/events", (type, data, _) =>
        {
            seen.Enqueue(type + " " + data.ToJsonString());
            return Task.CompletedTask;
        });
        using (var before = await admin.PostAsync("/v2/apps", Json(App("/team-a/before"))))
        {
            Assert.Equal(HttpStatusCode.Created, before.StatusCode);
        }

        await Wait.UntilAsync(() => Task.FromResult(seen.Any(e => e.Contains("/team-a/before", StringComparison.Ordinal))), Timeout, "erin's stream to show the first app");

        Assert.True((await Iam(cluster).DeleteUserAsync("erin", CancellationToken.None)).Succeeded);
        using (var after = await admin.PostAsync("/v2/apps", Json(App("/team-a/after"))))
        {
            Assert.Equal(HttpStatusCode.Created, after.StatusCode);
        }

        await WaitEndedAsync(stream.Completion, "the deleted user's event stream to end");
        Assert.DoesNotContain(seen, e => e.Contains("/team-a/after", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EventStream_PasswordChanged_Ends()
    {
        await using var cluster = await SecureClusterAsync();
        await AddUserAsync(cluster, "erin", TeamAEvents);
        using var admin = await LoginAsync(cluster, IamStore.AdminUid);
        using var erin = await LoginAsync(cluster, "erin");
        await using var stream = await SseEventStream.OpenAsync(erin, "/v2/events", (_, _, _) => Task.CompletedTask);

        Assert.True((await Iam(cluster).UpdateUserAsync("erin", null, "another-password-2", null, CancellationToken.None)).Succeeded);
        using (var poke = await admin.PostAsync("/v2/apps", Json(App("/team-a/poke"))))
        {
            Assert.Equal(HttpStatusCode.Created, poke.StatusCode); // an event to write (or not) to the stream
        }

        await WaitEndedAsync(stream.Completion, "the event stream of a login whose password changed to end");
    }

    [Fact]
    public async Task Streams_TokenExpires_EndWithoutAnyEventAndTheTokenIsRefused()
    {
        // Tokens live 4 s: the streams are opened within that, and must end by themselves (nothing happens meanwhile).
        await using var cluster = await SecureClusterAsync(tokenLifetime: TimeSpan.FromSeconds(4));
        await AddUserAsync(cluster, "erin", [.. TeamAEvents, (Rids.Tasks, PermissionAction.Full)]);
        using var erin = await LoginAsync(cluster, "erin");
        using var submitted = await erin.PostAsync("/drover/v1/tasks", Json("""{"cmd": "sleep 600"}"""));
        Assert.Equal(HttpStatusCode.Created, submitted.StatusCode);
        var taskId = (await submitted.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();

        await using var events = await SseEventStream.OpenAsync(erin, "/v2/events", (_, _, _) => Task.CompletedTask);
        var (logs, logsEnded) = await OpenAsync(erin, new HttpRequestMessage(HttpMethod.Get, $"/drover/v1/tasks/{taskId}/logs?follow=true"));
        using (logs)
        {
            await WaitEndedAsync(events.Completion, "the event stream to end when its token expires");
            await WaitEndedAsync(logsEnded, "the followed log (of a task that never ends) to end when its token expires");
        }

        // A new stream on the expired token is refused, though the gate's clock skew (30 s) still lets the request in.
        await Wait.UntilAsync(async () =>
        {
            using var again = await erin.GetAsync("/v2/events", HttpCompletionOption.ResponseHeadersRead);
            return again.StatusCode == HttpStatusCode.Unauthorized;
        }, TimeSpan.FromSeconds(10), "a new event stream on the expired token to be refused");
    }

    [Fact]
    public async Task FollowedLogs_UserDeleted_Ends()
    {
        await using var cluster = await SecureClusterAsync();
        await AddUserAsync(cluster, "erin", (Rids.Tasks, PermissionAction.Full));
        using var erin = await LoginAsync(cluster, "erin");
        using var submitted = await erin.PostAsync("/drover/v1/tasks", Json("""{"cmd": "sleep 600"}"""));
        Assert.Equal(HttpStatusCode.Created, submitted.StatusCode);
        var taskId = (await submitted.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();

        // Pending (no agents): followed until it ends, which it never does.
        var (logs, ended) = await OpenAsync(erin, new HttpRequestMessage(HttpMethod.Get, $"/drover/v1/tasks/{taskId}/logs?follow=true"));
        using (logs)
        {
            Assert.True((await Iam(cluster).DeleteUserAsync("erin", CancellationToken.None)).Succeeded);

            await WaitEndedAsync(ended, "the deleted user's followed log to end");
        }
    }

    [Fact]
    public async Task SchedulerStream_PrincipalsSecretChanged_Ends()
    {
        await using var cluster = await SecureClusterAsync();
        await AddUserAsync(cluster, "p1", (Rids.FrameworkRole("*"), PermissionAction.Create), (Rids.TaskUser("nobody"), PermissionAction.Create));
        var info = new JsonObject { ["user"] = "nobody", ["name"] = "revoked", ["failover_timeout"] = 120 };
        await using var framework = await RawScheduler.SubscribeAsync(cluster.Master.Url, info, authorization: RawScheduler.Basic("p1", Password));
        await framework.NextAsync("HEARTBEAT", Timeout); // the stream is live

        Assert.True((await Iam(cluster).UpdateUserAsync("p1", null, "a-new-secret-3", null, CancellationToken.None)).Succeeded);

        await WaitEndedAsync(framework.Ended, "the scheduler stream of a principal whose secret changed to end");
    }

    [Fact]
    public async Task OperatorStream_UserDeleted_Ends()
    {
        await using var cluster = await SecureClusterAsync();
        await AddUserAsync(cluster, "ops", (Rids.MesosOps, PermissionAction.Read));
        using var ops = await LoginAsync(cluster, "ops");
        var (subscription, ended) = await OpenAsync(ops, new HttpRequestMessage(HttpMethod.Post, "/api/v1") { Content = Json("""{"type": "SUBSCRIBE"}""") });
        using (subscription)
        {
            Assert.True((await Iam(cluster).DeleteUserAsync("ops", CancellationToken.None)).Succeeded);

            await WaitEndedAsync(ended, "the deleted user's operator subscription to end");
        }
    }
}
