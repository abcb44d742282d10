using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Master.Http;
using Drover.Master.Overload;
using Drover.Testing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using System.Threading.RateLimiting;

namespace Drover.Master.Tests.Overload;

/// <summary>Bounded memory under load (issue 14 §4): streamed lists, paged tasks, per-client limits, the event stream's cap.</summary>
public sealed class OverloadTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static async Task<string> WriteAsync<T>(StreamedJson<T> answer)
    {
        var pipe = new Pipe();
        var reading = Task.Run(async () =>
        {
            var bytes = new List<byte>();
            while (true)
            {
                var read = await pipe.Reader.ReadAsync();
                foreach (var segment in read.Buffer)
                {
                    bytes.AddRange(segment.ToArray());
                }

                pipe.Reader.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    return Encoding.UTF8.GetString([.. bytes]);
                }
            }
        });
        await answer.WriteAsync(pipe.Writer, CancellationToken.None);
        await pipe.Writer.CompleteAsync();
        return await reading.WaitAsync(Timeout);
    }

    /// <summary>Apps like /v2/apps lists, with what the encoder escapes (non-ASCII, quotes, &lt;, +), nulls and nesting.</summary>
    private static JsonObject App(int i) => new()
    {
        ["id"] = $"/team-{i % 7}/app-{i}",
        ["cmd"] = $"echo \"héllo <{i}>\" + 'x' && sleep {i}",
        ["cpus"] = 0.1 + (i % 3),
        ["mem"] = 32,
        ["instances"] = i % 4,
        ["labels"] = new JsonObject { ["owner"] = "ünïcode ☃", ["n"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        ["container"] = null,
        ["ports"] = new JsonArray(10_000 + i, 10_001 + i),
        ["deployments"] = new JsonArray(),
    };

    [Fact]
    public async Task StreamedNodes_ManyApps_SameBytesAsTheWholeAnswerBuiltAtOnce()
    {
        // Enough apps for several flushes (StreamedJson.FlushBytes each).
        const int Count = 2000;
        var before = new JsonObject { ["apps"] = new JsonArray([.. Enumerable.Range(0, Count).Select(i => (JsonNode)App(i))]) }.ToJsonString();

        var streamed = await WriteAsync(StreamedJson.Nodes("apps", Enumerable.Range(0, Count).Select(App)));

        Assert.True(before.Length > 4 * StreamedJson.FlushBytes);
        Assert.Equal(before, streamed);
    }

    [Fact]
    public async Task StreamedNodes_NoItems_EmptyList()
    {
        Assert.Equal("""{"tasks":[]}""", await WriteAsync(StreamedJson.Nodes("tasks", [])));
    }

    [Fact]
    public async Task StreamedRecords_TaskViews_SameBytesAsTaskList()
    {
        var views = Enumerable.Range(0, 500).Select(i => new TaskView
        {
            Id = $"task-{i}-ü",
            Name = "n<" + i + ">",
            State = TaskState.Running,
            Cpus = 0.5m,
            Mem = 64,
            Disk = 0,
            SubmittedAt = new DateTimeOffset(2026, 3, 1, 0, 0, i % 60, TimeSpan.Zero),
        }).ToList();
        var before = JsonSerializer.Serialize(new TaskList { Tasks = [.. views] }, DroverJsonContext.Default.TaskList);

        var streamed = await WriteAsync(StreamedJson.Of("tasks", views, DroverJsonContext.Default.TaskView));

        Assert.Equal(before, streamed);
    }

    [Fact]
    public async Task GetDroverTasks_Paged_EveryTaskExactlyOnceAcrossPages()
    {
        await using var cluster = await InProcessCluster.StartAsync(); // no agents: the tasks stay pending, and listed
        for (var i = 0; i < 23; i++)
        {
            await cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "true", Name = "t" + i });
        }

        using var http = cluster.CreateHttpClient();
        http.BaseAddress = cluster.Master.Url;
        var whole = (await http.GetFromJsonAsync("/drover/v1/tasks", DroverJsonContext.Default.TaskList))!;
        Assert.Null(whole.Next); // no limit: the whole list, as before paging
        Assert.Equal(23, whole.Tasks.Length);

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = (await http.GetFromJsonAsync("/drover/v1/tasks?limit=5" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after)), DroverJsonContext.Default.TaskList))!;
            Assert.InRange(page.Tasks.Length, 1, 5);
            seen.AddRange(page.Tasks.Select(t => t.Id));
            after = page.Next;
            pages++;
        }
        while (after is not null && pages < 100);

        Assert.Equal(5, pages);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(whole.Tasks.Select(t => t.Id).Order(StringComparer.Ordinal), seen);
    }

    [Theory]
    [InlineData("limit=0")]
    [InlineData("limit=5001")]
    public async Task GetDroverTasks_LimitOutOfRange_400NamingLimit(string query)
    {
        await using var cluster = await InProcessCluster.StartAsync();
        using var http = cluster.CreateHttpClient();
        using var response = await http.GetAsync(new Uri(cluster.Master.Url, "/drover/v1/tasks?" + query));
        var error = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.ApiError);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("limit", Assert.Single(error!.Details).Field);
    }

    [Fact]
    public async Task GetEvents_PastMaxSubscribers_503WithRetryAfterInMarathonShape()
    {
        await using var cluster = await InProcessCluster.StartAsync(new MasterOptions { Overload = new OverloadOptions { MaxEventSubscribers = 1 } });
        using var http = cluster.CreateHttpClient();
        http.BaseAddress = cluster.Master.Url;
        await using var first = await SseEventStream.OpenAsync(http, "/v2/events", (_, _, _) => Task.CompletedTask);

        using var refused = await http.GetAsync("/v2/events", HttpCompletionOption.ResponseHeadersRead);
        var body = await refused.Content.ReadFromJsonAsync<JsonObject>();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("too many event stream subscribers", body!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    /// <summary>An HttpClient whose connections come from <paramref name="source"/> (any 127.x address reaches the master on loopback).</summary>
    private static HttpClient ClientFrom(IPAddress source, Uri master) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(source, 0));
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { BaseAddress = master, Timeout = System.Threading.Timeout.InfiniteTimeSpan };

    /// <summary>A body that sends its first bytes and then waits until released: its request holds its slot meanwhile.</summary>
    private sealed class HeldBody : HttpContent
    {
        private readonly TaskCompletionSource _release;

        public HeldBody(TaskCompletionSource release)
        {
            _release = release;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync("""{"id": "/held", "cmd": "sleep 1"""u8.ToArray());
            await stream.FlushAsync();
            await _release.Task;
            await stream.WriteAsync("\", \"instances\": 0}"u8.ToArray()); // closes the cmd string
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task Requests_ClientOverItsLimit_429WithRetryAfterWhileAnotherClientIsServed()
    {
        await using var cluster = await InProcessCluster.StartAsync(new MasterOptions { Overload = new OverloadOptions { ClientConcurrency = 1, ClientQueue = 0 } });
        using var flooder = ClientFrom(IPAddress.Parse("127.0.0.1"), cluster.Master.Url);
        using var other = ClientFrom(IPAddress.Parse("127.0.0.2"), cluster.Master.Url);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var held = new HeldBody(release);
        var holding = flooder.PostAsync("/v2/apps", held);

        // Once the held request has the flooder's one slot (the master's limiter says so), its next request is refused at once.
        var limiter = cluster.Master.Services.GetRequiredService<PartitionedRateLimiter<HttpContext>>();
        var flooderKey = new DefaultHttpContext();
        flooderKey.Connection.RemoteIpAddress = IPAddress.Parse("127.0.0.1");
        await Wait.UntilAsync(() => Task.FromResult(limiter.GetStatistics(flooderKey)?.CurrentAvailablePermits), permits => permits == 0, Timeout, "the held request to take its client's slot");
        using var refused = await flooder.GetAsync("/v2/apps");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(ClientLimits.RetryAfterSeconds), refused.Headers.RetryAfter?.Delta);
        Assert.Contains("too many requests", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // Another client has its own slots; probes are never limited.
        using var served = await other.GetAsync("/v2/apps");
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        using var ping = await flooder.GetAsync("/ping");
        Assert.Equal(HttpStatusCode.OK, ping.StatusCode);

        release.SetResult();
        using var done = await holding.WaitAsync(Timeout);
        Assert.True(done.StatusCode == HttpStatusCode.Created, await done.Content.ReadAsStringAsync());
        using var after = await flooder.GetAsync("/v2/apps"); // its slot is back
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }
}
