using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>
/// Oversized and malformed input against a real <c>drover master</c> process (issue 14): bodies over the cap are a 413
/// in the API's error shape whatever their framing, without the master buffering them (its RSS is read from /proc), and
/// the field caps answer 422/400 naming the field.
/// </summary>
public sealed class RequestLimitsTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-limits-").FullName;
    private DroverProcess? _master;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        var port = DevClusterFixture.FreePort();
        _master = DroverProcess.Start("master", ["master", "--data-dir", Path.Combine(_root, "master"), "--listen", $"127.0.0.1:{port}", "--insecure", "--log-level", "warning"],
            logFile: Path.Combine(_root, "master.log"));
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = Timeout };
        await Wait.UntilAsync(async () => (await _http.GetAsync("/ping")).IsSuccessStatusCode, x => x, Timeout, "the master to answer /ping",
            retryOn: e => e is HttpRequestException);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        if (_master is not null)
        {
            await _master.DisposeAsync();
        }

        Directory.Delete(_root, recursive: true);
    }

    /// <summary>A body of <paramref name="bytes"/> produced as it is sent (the test holds none of it), with or without a length.</summary>
    private sealed class GeneratedContent(long bytes, bool withLength, byte[] prefix) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(prefix);
            var block = new byte[64 * 1024];
            Array.Fill(block, (byte)'x');
            for (var sent = (long)prefix.Length; sent < bytes; sent += block.Length)
            {
                await stream.WriteAsync(block.AsMemory(0, (int)Math.Min(block.Length, bytes - sent)));
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes;
            return withLength;
        }
    }

    private long MasterRssKiB()
    {
        var line = File.ReadLines($"/proc/{_master!.Pid}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(string path, HttpContent content)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.ExpectContinue = true; // a refusal before the body is read is answered before it is sent
        using var response = await _http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/v2/apps", true)]
    [InlineData("/v2/apps", false)]
    [InlineData("/api/v1/scheduler", true)]
    [InlineData("/drover/v1/tasks", false)]
    public async Task Post_HundredMegabyteBody_413InTheApiShapeAndTheMasterStaysUp(string path, bool withLength)
    {
        var rss = MasterRssKiB();

        (HttpStatusCode Status, string Body) answer;
        try
        {
            answer = await PostAsync(path, new GeneratedContent(100L * 1024 * 1024, withLength, "{\"id\":\"/big\",\"cmd\":\""u8.ToArray()));
        }
        catch (HttpRequestException) when (!withLength)
        {
            // A chunked body is cut off once past the cap: the master answers 413 and closes the connection, which the
            // client may see before it reads the answer. Either way the master must still be up (below).
            answer = (HttpStatusCode.RequestEntityTooLarge, "");
        }

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.Status);
        if (answer.Body.Length > 0)
        {
            if (path.StartsWith("/v2/", StringComparison.Ordinal))
            {
                Assert.Contains("\"message\"", answer.Body, StringComparison.Ordinal); // Marathon's shape
            }
            else if (path.StartsWith("/drover/", StringComparison.Ordinal))
            {
                Assert.Contains("payload_too_large", answer.Body, StringComparison.Ordinal);
            }
        }

        Assert.True((await _http.GetAsync("/ping")).IsSuccessStatusCode);
        Assert.True(MasterRssKiB() - rss < 50 * 1024, $"the master's RSS grew from {rss} KiB to {MasterRssKiB()} KiB");
    }

    [Fact]
    public async Task Post_TwentyFiveMegabyteLabel_RefusedAndTheMasterRssStaysWithin50MB()
    {
        var before = MasterRssKiB();
        var prefix = Encoding.UTF8.GetBytes("{\"id\":\"/labelled\",\"cmd\":\"sleep 1\",\"labels\":{\"big\":\"");
        var (status, _) = await PostAsync("/v2/apps", new GeneratedContent(25L * 1024 * 1024, withLength: true, prefix));

        Assert.True(status is HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.UnprocessableEntity, $"{(int)status}");
        var after = MasterRssKiB();
        Assert.True(after - before < 50 * 1024, $"the master's RSS grew from {before} KiB to {after} KiB");
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/v2/apps/labelled")).StatusCode);
    }

    [Fact]
    public async Task PostApp_OneMegabyteId_422AtIdAndNothingCreated()
    {
        var app = JsonSerializer.Serialize(new { id = "/" + new string('a', 1024 * 1024), cmd = "sleep 1" });
        var (status, body) = await PostAsync("/v2/apps", new StringContent(app));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("\"/id\"", body, StringComparison.Ordinal);
        Assert.Contains("\"apps\":[]", await _http.GetStringAsync("/v2/apps"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PostApp_CmdOverMaxArgStrlen_422AtCmd()
    {
        var app = JsonSerializer.Serialize(new { id = "/long-cmd", cmd = new string('x', 200 * 1024) });
        var (status, body) = await PostAsync("/v2/apps", new StringContent(app));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("\"/cmd\"", body, StringComparison.Ordinal);
        Assert.Contains("MAX_ARG_STRLEN", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("A=B")]
    [InlineData("A\u0000B")]
    public async Task PostApp_BadEnvName_422NamingTheVariable(string name)
    {
        var app = JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = "/env-app", ["cmd"] = "sleep 1", ["env"] = new Dictionary<string, string> { [name] = "v" } });
        var (status, body) = await PostAsync("/v2/apps", new StringContent(app));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("/env/", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "v")]
    [InlineData("A=B", "v")]
    [InlineData("A\u0000B", "v")]
    [InlineData("A", "x\u0000y")]
    public async Task PostTask_BadEnv_400NamingTheVariable(string name, string value)
    {
        var task = JsonSerializer.Serialize(new Dictionary<string, object> { ["cmd"] = "true", ["env"] = new Dictionary<string, string> { [name] = value } });
        var (status, body) = await PostAsync("/drover/v1/tasks", new StringContent(task));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("env.", body, StringComparison.Ordinal);
    }
}
