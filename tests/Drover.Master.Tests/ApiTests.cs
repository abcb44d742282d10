using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Testing;

namespace Drover.Master.Tests;

/// <summary>The HTTP API of a real master on loopback, with agents registered through the protocol (no processes).</summary>
public sealed class ApiTests : IAsyncLifetime
{
    private InProcessCluster _cluster = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _cluster = await InProcessCluster.StartAsync();
        _http = new HttpClient { BaseAddress = _cluster.Master.Url };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, ApiError Error)> PostRaw(string path, string body)
    {
        using var response = await _http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var error = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.ApiError);
        return (response.StatusCode, error!);
    }

    [Fact]
    public async Task PostTask_MalformedJson_400InvalidJson()
    {
        var (status, error) = await PostRaw("/drover/v1/tasks", "{bad");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(ErrorCodes.InvalidJson, error.Code);
        Assert.Contains("not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PostTask_EveryFieldWrong_400NamesEachField()
    {
        var (status, error) = await PostRaw("/drover/v1/tasks",
            """{"cpus": 0, "mem": -1, "disk": -2, "ports": 101, "gpus": 1.5, "constraints": ["rack:NEAR:x", 3]}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(ErrorCodes.ValidationFailed, error.Code);
        var fields = error.Details.Select(d => d.Field).ToHashSet();
        Assert.Superset(new HashSet<string> { "cmd", "cpus", "mem", "disk", "ports", "gpus", "constraints[0]", "constraints[1]" }, fields);
        Assert.Contains(error.Details, d => d.Field == "constraints[0]" && d.Reason.Contains("unknown operator 'NEAR'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PostTask_WrongType_400NamesField()
    {
        var (status, error) = await PostRaw("/drover/v1/tasks", """{"cmd": 5}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(new FieldError("cmd", "must be a string"), Assert.Single(error.Details));
    }

    [Theory]
    [InlineData("""{"args": "echo"}""", "args", "must be an array")]
    [InlineData("""{"args": ["echo", 1]}""", "args[1]", "must be a string")]
    [InlineData("""{"cmd": "x", "env": {"A": 1}}""", "env.A", "must be a string")]
    [InlineData("""{"cmd": "x", "name": true}""", "name", "must be a string")]
    public async Task PostTask_WrongTypes_SayWhatWasExpected(string body, string field, string reason)
    {
        var (status, error) = await PostRaw("/drover/v1/tasks", body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(new FieldError(field, reason), Assert.Single(error.Details));
    }

    [Fact]
    public async Task PostTask_ArrayBody_400MustBeObject()
    {
        var (status, error) = await PostRaw("/drover/v1/tasks", "[1, 2]");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("the request body must be a JSON object", error.Message);
    }

    [Fact]
    public async Task PostTask_StringNumber_400NamesFieldAndType()
    {
        var (status, error) = await PostRaw("/drover/v1/tasks", """{"cmd": "true", "cpus": "two"}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var detail = Assert.Single(error.Details);
        Assert.Equal("cpus", detail.Field);
        Assert.Contains("must be a number", detail.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetTask_UnknownId_404WithErrorShape()
    {
        var e = await Assert.ThrowsAsync<DroverApiException>(() => _cluster.Client.GetTaskAsync("no-such-task"));

        Assert.Equal(404, e.StatusCode);
        Assert.Equal(ErrorCodes.NotFound, e.Error.Code);
        Assert.Contains("no-such-task", e.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownRoute_404WithErrorShape()
    {
        using var response = await _http.GetAsync("/drover/v1/nothing-here");
        var error = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.ApiError);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(ErrorCodes.NotFound, error!.Code);
    }

    [Fact]
    public async Task PostTask_TooLargeForAnyAgent_AcceptedAndWaitsWithReason()
    {
        using var register = await _http.PostAsJsonAsync("/internal/v1/agents/register", Build.Agent(resources: "cpus:2;mem:1024"), DroverJsonContext.Default.AgentRegistration);
        register.EnsureSuccessStatusCode();

        var task = await _cluster.Client.SubmitTaskAsync(new TaskSubmission { Args = ["true"], Cpus = JsonSerializer.SerializeToElement(64) });

        Assert.Equal(TaskState.Pending, task.State);
        var waiting = await Wait.UntilAsync(() => _cluster.Client.GetTaskAsync(task.Id), t => t.WaitingReason?.StartsWith("no agent has", StringComparison.Ordinal) == true,
            TimeSpan.FromSeconds(10), "a waiting reason");
        Assert.Equal("no agent has 64 cpus free; the largest has 2", waiting.WaitingReason);
    }

    [Fact]
    public async Task Kill_PendingTask_Killed()
    {
        var task = await _cluster.Client.SubmitTaskAsync(new TaskSubmission { Cmd = "true", Mem = JsonSerializer.SerializeToElement(1_000_000) });

        var killed = await _cluster.Client.KillTaskAsync(task.Id);

        Assert.Equal(TaskState.Killed, killed.State);
    }

    [Fact]
    public async Task Metrics_AfterRequests_ExposesPrometheusSeries()
    {
        await _cluster.Client.ListTasksAsync();

        var text = await _cluster.Client.GetStringAsync("metrics");

        Assert.Contains("# TYPE drover_agents gauge", text, StringComparison.Ordinal);
        Assert.Contains("drover_tasks{state=\"TASK_RUNNING\"}", text, StringComparison.Ordinal);
        Assert.Contains("drover_cluster_cpus{kind=\"total\"}", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE drover_placement_pass_seconds histogram", text, StringComparison.Ordinal);
        Assert.Contains("drover_http_request_duration_seconds_bucket{method=\"GET\",route=\"/drover/v1/tasks\",status=\"200\",le=\"+Inf\"}", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MasterState_RegisteredAgent_MesosShape()
    {
        var reg = Build.Agent(hostname: "state-host", resources: "cpus:3;mem:2048;disk:100;ports:[31000-31005]", attributes: "rack:r7", domain: new FaultDomain("eu", "eu-1"));
        using var register = await _http.PostAsJsonAsync("/internal/v1/agents/register", reg, DroverJsonContext.Default.AgentRegistration);
        register.EnsureSuccessStatusCode();

        foreach (var path in new[] { "master/state", "state.json" })
        {
            using var doc = JsonDocument.Parse(await _cluster.Client.GetStringAsync(path));
            var slave = doc.RootElement.GetProperty("slaves").EnumerateArray().Single(s => s.GetProperty("hostname").GetString() == "state-host");
            Assert.Equal(3, slave.GetProperty("resources").GetProperty("cpus").GetDecimal());
            Assert.Equal(2048, slave.GetProperty("resources").GetProperty("mem").GetInt64());
            Assert.Equal("[31000-31005]", slave.GetProperty("resources").GetProperty("ports").GetString());
            Assert.Equal(0, slave.GetProperty("used_resources").GetProperty("cpus").GetDecimal());
            Assert.Equal("r7", slave.GetProperty("attributes").GetProperty("rack").GetString());
            Assert.Equal("eu-1", slave.GetProperty("domain").GetProperty("fault_domain").GetProperty("zone").GetProperty("name").GetString());
            var framework = doc.RootElement.GetProperty("frameworks")[0];
            Assert.Equal(JsonValueKind.Array, framework.GetProperty("tasks").ValueKind);
            Assert.Equal(JsonValueKind.Array, framework.GetProperty("completed_tasks").ValueKind);
        }
    }

    private async Task<string> RegisterAgent(string hostname)
    {
        using var register = await _http.PostAsJsonAsync("/internal/v1/agents/register", Build.Agent(hostname: hostname), DroverJsonContext.Default.AgentRegistration);
        register.EnsureSuccessStatusCode();
        return (await register.Content.ReadFromJsonAsync(DroverJsonContext.Default.AgentRegistered))!.AgentId;
    }

    [Fact]
    public async Task DrainUndrain_RegisteredAgent_StatusDeadlineAndIdempotent()
    {
        var id = await RegisterAgent("drain-host");
        var before = DateTimeOffset.UtcNow;

        var drained = await _cluster.Client.DrainAgentAsync(id, TimeSpan.FromMinutes(10));
        var again = await _cluster.Client.DrainAgentAsync(id, TimeSpan.FromMinutes(10));
        var listed = (await _cluster.Client.ListAgentsAsync()).Single(a => a.Id == id);

        Assert.Equal("drained", drained.Status); // draining, and nothing runs there
        Assert.Equal(drained.DrainDeadline, again.DrainDeadline);
        Assert.Equal(drained.DrainStartedAt + TimeSpan.FromMinutes(10), drained.DrainDeadline);
        Assert.InRange(drained.DrainStartedAt!.Value, before.AddSeconds(-1), DateTimeOffset.UtcNow);
        Assert.Equal(("drained", drained.DrainDeadline), (listed.Status, listed.DrainDeadline));

        var undrained = await _cluster.Client.UndrainAgentAsync(id);
        var undrainedAgain = await _cluster.Client.UndrainAgentAsync(id);

        Assert.Equal("active", undrained.Status);
        Assert.Null(undrained.DrainDeadline);
        Assert.Equal("active", undrainedAgain.Status);
    }

    [Fact]
    public async Task Drain_NoBody_DefaultDeadlineOneHour()
    {
        var id = await RegisterAgent("drain-default-host");

        // As `curl -X POST` sends it: no body, no Content-Type.
        using var response = await _http.PostAsync($"/drover/v1/agents/{id}/drain", null);
        var view = await response.Content.ReadFromJsonAsync(DroverJsonContext.Default.AgentView);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(TimeSpan.FromHours(1), view!.DrainDeadline - view.DrainStartedAt);
    }

    [Theory]
    [InlineData("""{"deadlineSeconds": -1}""", "must be between 0 and 31536000 (seconds)")]
    [InlineData("""{"deadlineSeconds": "soon"}""", "must be a number")]
    public async Task Drain_BadDeadline_400NamesField(string body, string reason)
    {
        var id = await RegisterAgent("drain-bad-host");

        var (status, error) = await PostRaw($"/drover/v1/agents/{id}/drain", body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(ErrorCodes.ValidationFailed, error.Code);
        Assert.Equal(new FieldError("deadlineSeconds", reason), Assert.Single(error.Details));
        Assert.Null((await _cluster.Client.GetAgentAsync(id)).DrainDeadline);
    }

    [Theory]
    [InlineData("drain")]
    [InlineData("undrain")]
    public async Task DrainUndrain_UnknownAgent_404WithErrorShape(string verb)
    {
        var (status, error) = await PostRaw($"/drover/v1/agents/no-such-agent/{verb}", "{}");

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal(ErrorCodes.NotFound, error.Code);
        Assert.Equal("no agent with id 'no-such-agent'", error.Message);
    }

    [Fact]
    public async Task Health_Ok() => Assert.Equal("ok\n", await _cluster.Client.GetStringAsync("health"));
}
