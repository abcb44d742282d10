using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Drover.Testing;

namespace Drover.Master.Tests.Mesos;

/// <summary>The Mesos v1 operator API (<c>POST /api/v1</c>) on a real cluster, read with plain HTTP and JSON.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class OperatorApiTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static async Task<JsonObject> CallAsync(HttpClient http, Uri master, string type)
    {
        using var response = await http.PostAsync(new Uri(master, "/api/v1"), new StringContent($"{{\"type\":\"{type}\"}}", Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{type}: {(int)response.StatusCode} {body}");
        var json = JsonNode.Parse(body)!.AsObject();
        Assert.Equal(type, (string?)json["type"]);
        return json;
    }

    /// <summary>Reads RecordIO records from <paramref name="body"/> into <paramref name="into"/> until the stream ends.</summary>
    private static async Task ReadRecordsAsync(Stream body, ChannelWriter<JsonObject> into)
    {
        try
        {
            var one = new byte[1];
            var header = new StringBuilder();
            while (true)
            {
                header.Clear();
                while (true)
                {
                    if (await body.ReadAsync(one) == 0)
                    {
                        return;
                    }

                    if (one[0] == '\n')
                    {
                        break;
                    }

                    header.Append((char)one[0]);
                }

                var record = new byte[int.Parse(header.ToString(), CultureInfo.InvariantCulture)];
                await body.ReadExactlyAsync(record);
                await into.WriteAsync(JsonNode.Parse(record)!.AsObject());
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or HttpRequestException or OperationCanceledException)
        {
        }
        finally
        {
            into.TryComplete();
        }
    }

    private static async Task<JsonObject> NextAsync(ChannelReader<JsonObject> events, Func<JsonObject, bool> match, string what)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var seen = new List<string>();
        try
        {
            while (true)
            {
                var e = await events.ReadAsync(cts.Token);
                if (match(e))
                {
                    return e;
                }

                seen.Add((string?)e["type"] ?? "");
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no {what} within {Timeout.TotalSeconds} s; seen {string.Join(", ", seen)}");
        }
    }

    [Fact]
    public async Task OperatorApi_GetCallsAndSubscribe_ShowAgentsFrameworksTasksAndTheirChanges()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("op-host-0", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var streamHttp = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        var master = cluster.Master.Url;

        Assert.True((bool)(await CallAsync(http, master, "GET_HEALTH"))["get_health"]!["healthy"]!);
        Assert.False(string.IsNullOrEmpty((string?)(await CallAsync(http, master, "GET_VERSION"))["get_version"]!["version_info"]!["version"]));

        // SUBSCRIBE: the state first, then changes as they happen.
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(master, "/api/v1")) { Content = new StringContent("{\"type\":\"SUBSCRIBE\"}", Encoding.UTF8, "application/json") };
        using var response = await streamHttp.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var channel = Channel.CreateUnbounded<JsonObject>();
        var reader = ReadRecordsAsync(await response.Content.ReadAsStreamAsync(), channel.Writer);
        var subscribed = await NextAsync(channel.Reader, e => (string?)e["type"] == "SUBSCRIBED", "SUBSCRIBED");
        Assert.Single(subscribed["subscribed"]!["get_state"]!["get_agents"]!["agents"]!.AsArray());

        await cluster.AddAgentAsync("op-host-1", TestPorts.Resources("cpus:2;mem:1024;disk:1024", 20));
        var agentAdded = await NextAsync(channel.Reader, e => (string?)e["type"] == "AGENT_ADDED", "AGENT_ADDED");
        Assert.Equal("op-host-1", (string?)agentAdded["agent_added"]!["agent"]!["agent_info"]!["hostname"]);

        await using var s = await RawScheduler.SubscribeAsync(master, new JsonObject { ["user"] = "root", ["name"] = "observed", ["role"] = "analytics" });
        s.AutoAcknowledge = true;
        var fwAdded = await NextAsync(channel.Reader, e => (string?)e["type"] == "FRAMEWORK_ADDED", "FRAMEWORK_ADDED");
        Assert.Equal(s.FrameworkId, (string?)fwAdded["framework_added"]!["framework"]!["framework_info"]!["id"]!["value"]);

        var offer = (await s.NextAsync("OFFERS", Timeout))["offers"]!["offers"]![0]!.AsObject();
        await s.CallOkAsync("ACCEPT", RawScheduler.Launch(offer, 0, RawScheduler.CommandTask("watched", (string)offer["agent_id"]!["value"]!, "sleep 600")));
        var taskAdded = await NextAsync(channel.Reader, e => (string?)e["type"] == "TASK_ADDED", "TASK_ADDED");
        Assert.Equal("watched", (string?)taskAdded["task_added"]!["task"]!["task_id"]!["value"]);
        Assert.Equal(s.FrameworkId, (string?)taskAdded["task_added"]!["task"]!["framework_id"]!["value"]);
        await NextAsync(channel.Reader, e => (string?)e["type"] == "TASK_UPDATED" && (string?)e["task_updated"]!["state"] == "TASK_RUNNING", "TASK_UPDATED to TASK_RUNNING");

        // The GET calls agree.
        var agents = (await CallAsync(http, master, "GET_AGENTS"))["get_agents"]!["agents"]!.AsArray();
        Assert.Equal(2, agents.Count);
        var frameworks = (await CallAsync(http, master, "GET_FRAMEWORKS"))["get_frameworks"]!["frameworks"]!.AsArray();
        var framework = frameworks.Single(f => (string?)f!["framework_info"]!["id"]!["value"] == s.FrameworkId)!;
        Assert.True((bool)framework["connected"]!);
        Assert.Equal(0.5, framework["allocated_resources"]!.AsArray().Where(r => (string?)r!["name"] == "cpus").Sum(r => (double)r!["scalar"]!["value"]!));
        var tasks = (await CallAsync(http, master, "GET_TASKS"))["get_tasks"]!["tasks"]!.AsArray();
        var task = tasks.Single(t => (string?)t!["task_id"]!["value"] == "watched")!;
        Assert.Equal("TASK_RUNNING", (string?)task["state"]);
        var roles = (await CallAsync(http, master, "GET_ROLES"))["get_roles"]!["roles"]!.AsArray();
        var analytics = roles.Single(r => (string?)r!["name"] == "analytics")!;
        Assert.Equal(s.FrameworkId, (string?)analytics["frameworks"]![0]!["value"]);
        var state = (await CallAsync(http, master, "GET_STATE"))["get_state"]!;
        Assert.Equal(2, state["get_agents"]!["agents"]!.AsArray().Count);

        // The Mesos-shaped /master/state lists the framework with its task too.
        var legacy = JsonNode.Parse(await cluster.Client.GetStringAsync("master/state"))!;
        var legacyFramework = legacy["frameworks"]!.AsArray().Single(f => (string?)f!["id"] == s.FrameworkId)!;
        Assert.Equal("watched", (string?)legacyFramework["tasks"]![0]!["id"]);
        Assert.Equal("analytics", (string?)legacyFramework["role"]);

        // Teardown: FRAMEWORK_REMOVED, the task killed.
        await s.CallOkAsync("TEARDOWN");
        await NextAsync(channel.Reader, e => (string?)e["type"] == "FRAMEWORK_REMOVED", "FRAMEWORK_REMOVED");
        await NextAsync(channel.Reader, e => (string?)e["type"] == "TASK_UPDATED" && (string?)e["task_updated"]!["state"] == "TASK_KILLED", "TASK_UPDATED to TASK_KILLED");
        response.Dispose();
        await reader.WaitAsync(Timeout);
    }

    [Fact]
    public async Task OperatorApi_ProtobufOrUnknownCall_Refused()
    {
        await using var cluster = await InProcessCluster.StartAsync();
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var protobuf = new ByteArrayContent([8, 1]);
        protobuf.Headers.ContentType = new("application/x-protobuf");
        using var refused = await http.PostAsync(new Uri(cluster.Master.Url, "/api/v1"), protobuf);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);

        using var unknown = await http.PostAsync(new Uri(cluster.Master.Url, "/api/v1"), new StringContent("{\"type\":\"GET_QUOTA\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("GET_QUOTA", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
