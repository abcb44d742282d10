using System.Text.Json;
using Drover.Core;
using Drover.Core.Health;
using Drover.Core.Json;

namespace Drover.Agent.Tests.Health;

/// <summary>The wire form of <see cref="HealthCheck"/> and <see cref="TaskStatus.Healthy"/>, and check validation.</summary>
public sealed class HealthCheckJsonTests
{
    private static readonly DroverJsonContext Ctx = DroverJsonContext.Default;

    private static void AssertDefaults(HealthCheck check)
    {
        Assert.Equal(TimeSpan.FromSeconds(300), check.GracePeriod);
        Assert.Equal(TimeSpan.FromSeconds(60), check.Interval);
        Assert.Equal(TimeSpan.FromSeconds(20), check.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(15), check.Delay);
        Assert.Equal(3, check.MaxConsecutiveFailures);
        Assert.Equal("/", check.Path);
        Assert.False(check.IgnoreHttp1xx);
        Assert.Null(check.Port);
        Assert.Null(check.PortIndex);
        Assert.Null(check.Command);
    }

    [Fact]
    public void Deserialize_EmptyObject_GetsDocumentedDefaults()
    {
        var check = JsonSerializer.Deserialize("{}", Ctx.HealthCheck)!;

        Assert.Equal(HealthCheckProtocol.Http, check.Protocol);
        AssertDefaults(check);
        Assert.Equal(new HealthCheck(), check);
    }

    [Fact]
    public void Deserialize_InsideTaskSpecWithOnlyProtocol_GetsDocumentedDefaults()
    {
        var spec = JsonSerializer.Deserialize(
            """{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5;mem:32","healthCheck":{"protocol":"TCP"}}""", Ctx.TaskSpec)!;

        var check = Assert.Single(spec.HealthChecks);
        Assert.Equal(HealthCheckProtocol.Tcp, check.Protocol);
        AssertDefaults(check);
    }

    [Fact]
    public void Deserialize_TaskSpecWithoutHealthCheck_HasNone()
    {
        var spec = JsonSerializer.Deserialize("""{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5"}""", Ctx.TaskSpec)!;

        Assert.Empty(spec.HealthChecks);
        Assert.Empty(spec.ReadinessChecks);
        Assert.DoesNotContain("Checks", JsonSerializer.Serialize(spec, Ctx.TaskSpec), StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_AllFields_SecondsAsNumbersAndRoundTrips()
    {
        var check = new HealthCheck
        {
            Protocol = HealthCheckProtocol.Command,
            Command = "curl -f http://$HOST:$PORT0/health",
            GracePeriod = TimeSpan.FromSeconds(1.5),
            Interval = TimeSpan.FromSeconds(0.2),
            Timeout = TimeSpan.FromSeconds(4),
            Delay = TimeSpan.Zero,
            MaxConsecutiveFailures = 0,
            IgnoreHttp1xx = true,
            PortIndex = 1,
        };

        var json = JsonSerializer.Serialize(check, Ctx.HealthCheck);
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;

        Assert.Equal("COMMAND", root.GetProperty("protocol").GetString());
        Assert.Equal(1.5, root.GetProperty("gracePeriodSeconds").GetDouble());
        Assert.Equal(0.2, root.GetProperty("intervalSeconds").GetDouble());
        Assert.Equal(4, root.GetProperty("timeoutSeconds").GetDouble());
        Assert.Equal(0, root.GetProperty("delaySeconds").GetDouble());
        Assert.Equal(0, root.GetProperty("maxConsecutiveFailures").GetInt32());
        Assert.True(root.GetProperty("ignoreHttp1xx").GetBoolean());
        Assert.False(root.TryGetProperty("port", out _));
        Assert.Equal(check, JsonSerializer.Deserialize(json, Ctx.HealthCheck));
    }

    [Fact]
    public void Deserialize_ZeroMaxConsecutiveFailuresAndZeroGrace_KeepsZeros()
    {
        var check = JsonSerializer.Deserialize("""{"maxConsecutiveFailures":0,"gracePeriodSeconds":0,"delaySeconds":0}""", Ctx.HealthCheck)!;

        Assert.Equal(0, check.MaxConsecutiveFailures);
        Assert.Equal(TimeSpan.Zero, check.GracePeriod);
        Assert.Equal(TimeSpan.Zero, check.Delay);
    }

    [Fact]
    public void Deserialize_OutOfRangeNumbers_NormalisedToDefaultsOrClamped()
    {
        var check = JsonSerializer.Deserialize(
            """{"intervalSeconds":0,"timeoutSeconds":-1,"gracePeriodSeconds":-5,"maxConsecutiveFailures":-2,"delaySeconds":1e300,"path":"health"}""",
            Ctx.HealthCheck)!;

        Assert.Equal(HealthCheck.DefaultInterval, check.Interval);
        Assert.Equal(HealthCheck.DefaultTimeout, check.Timeout);
        Assert.Equal(HealthCheck.DefaultGracePeriod, check.GracePeriod);
        Assert.Equal(HealthCheck.DefaultMaxConsecutiveFailures, check.MaxConsecutiveFailures);
        Assert.Equal(HealthCheck.MaxDuration, check.Delay);
        Assert.Equal("/health", check.Path);
    }

    [Theory]
    [InlineData("HTTP", HealthCheckProtocol.Http)]
    [InlineData("MESOS_HTTP", HealthCheckProtocol.Http)]
    [InlineData("mesos_https", HealthCheckProtocol.Https)]
    [InlineData("MESOS_TCP", HealthCheckProtocol.Tcp)]
    [InlineData("tcp", HealthCheckProtocol.Tcp)]
    [InlineData("COMMAND", HealthCheckProtocol.Command)]
    public void Deserialize_MarathonProtocolNames_Accepted(string name, HealthCheckProtocol expected)
    {
        Assert.Equal(expected, JsonSerializer.Deserialize($$"""{"protocol":"{{name}}"}""", Ctx.HealthCheck)!.Protocol);
    }

    [Theory]
    [InlineData("""{"protocol":"UDP"}""")]
    [InlineData("""{"protocol":"MESOS_COMMAND"}""")]
    [InlineData("""{"protocol":1}""")]
    [InlineData("""{"intervalSeconds":"10s"}""")]
    public void Deserialize_BadProtocolOrSeconds_ThrowsJsonException(string json)
    {
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(json, Ctx.HealthCheck));
    }

    [Fact]
    public void TaskStatus_Healthy_RoundTripsAndIsAbsentWhenUnknown()
    {
        var healthy = new TaskStatus { TaskId = "t", State = TaskState.Running, Healthy = false, Reason = TaskReasons.TaskHealthCheckStatusUpdated };
        var unknown = new TaskStatus { TaskId = "t", State = TaskState.Running };

        var json = JsonSerializer.Serialize(healthy, Ctx.TaskStatus);

        Assert.Contains("\"healthy\":false", json, StringComparison.Ordinal);
        Assert.Contains("\"reason\":\"REASON_TASK_HEALTH_CHECK_STATUS_UPDATED\"", json, StringComparison.Ordinal);
        Assert.False(JsonSerializer.Deserialize(json, Ctx.TaskStatus)!.Healthy);
        Assert.DoesNotContain("healthy", JsonSerializer.Serialize(unknown, Ctx.TaskStatus), StringComparison.Ordinal);
        Assert.Null(JsonSerializer.Deserialize("""{"taskId":"t","state":"TASK_RUNNING"}""", Ctx.TaskStatus)!.Healthy);
    }

    [Theory]
    [InlineData(HealthCheckProtocol.Http, null, null, null, 1, null)]
    [InlineData(HealthCheckProtocol.Http, null, null, null, 0, "portIndex 0 is out of range: the task has 0 ports")]
    [InlineData(HealthCheckProtocol.Tcp, 2, null, null, 2, "portIndex 2 is out of range: the task has 2 ports")]
    [InlineData(HealthCheckProtocol.Tcp, -1, null, null, 2, "portIndex -1 is out of range: the task has 2 ports")]
    [InlineData(HealthCheckProtocol.Tcp, null, 8080, null, 0, null)]
    [InlineData(HealthCheckProtocol.Https, null, 70000, null, 0, "port 70000 is not between 1 and 65535")]
    [InlineData(HealthCheckProtocol.Command, null, null, "true", 0, null)]
    [InlineData(HealthCheckProtocol.Command, null, null, " ", 0, "a COMMAND health check needs a command")]
    [InlineData(HealthCheckProtocol.Command, null, null, null, 0, "a COMMAND health check needs a command")]
    public void Validate_PortsAndCommand_ReportsWhatIsWrong(HealthCheckProtocol protocol, int? portIndex, int? port, string? command, int portCount, string? expected)
    {
        var check = new HealthCheck { Protocol = protocol, PortIndex = portIndex, Port = port, Command = command };

        Assert.Equal(expected, check.Validate(portCount));
    }

    [Fact]
    public void ResolvePort_FixedPortOrIndex_PicksThePortToProbe()
    {
        int[] ports = [31000, 31001];

        Assert.Equal(31000, new HealthCheck().ResolvePort(ports));
        Assert.Equal(31001, new HealthCheck { PortIndex = 1 }.ResolvePort(ports));
        Assert.Equal(8080, new HealthCheck { PortIndex = 1, Port = 8080 }.ResolvePort(ports));
        Assert.Null(new HealthCheck { PortIndex = 2 }.ResolvePort(ports));
    }

    [Fact]
    public void TaskSpec_HealthAndReadinessChecks_RoundTripAsLists()
    {
        var spec = new TaskSpec
        {
            Id = "t.1",
            Name = "t",
            Shell = "true",
            Resources = Resources.Of(cpus: 0.5m, memMiB: 32),
            PortCount = 2,
            HealthChecks = [new HealthCheck { Protocol = HealthCheckProtocol.Tcp }, new HealthCheck { Protocol = HealthCheckProtocol.Command, Command = "true" }],
            ReadinessChecks = [new TaskReadinessCheck { Path = "ready", PortIndex = 1, Interval = TimeSpan.FromSeconds(2), HttpStatusCodesForReady = [200, 204] }],
        };

        var json = JsonSerializer.Serialize(spec, Ctx.TaskSpec);
        var back = JsonSerializer.Deserialize(json, Ctx.TaskSpec)!;

        Assert.Contains("\"healthChecks\":[", json, StringComparison.Ordinal);
        Assert.DoesNotContain("\"healthCheck\":", json, StringComparison.Ordinal);
        Assert.Equal(spec.HealthChecks.ToArray(), back.HealthChecks.ToArray());
        var ready = Assert.Single(back.ReadinessChecks);
        Assert.Equal("/ready", ready.Path);
        Assert.Equal(1, ready.PortIndex);
        Assert.Equal(TimeSpan.FromSeconds(2), ready.Interval);
        Assert.Equal(TaskReadinessCheck.DefaultTimeout, ready.Timeout);
        Assert.Equal([200, 204], ready.HttpStatusCodesForReady.ToArray());
    }

    [Fact]
    public void TaskSpec_LegacySingleHealthCheck_ReadAsListAndListWins()
    {
        var legacy = JsonSerializer.Deserialize(
            """{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5","healthCheck":{"protocol":"TCP"}}""", Ctx.TaskSpec)!;
        var both = JsonSerializer.Deserialize(
            """{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5","healthCheck":{"protocol":"TCP"},"healthChecks":[{"protocol":"COMMAND","command":"true"},{}]}""", Ctx.TaskSpec)!;
        var bothReversed = JsonSerializer.Deserialize(
            """{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5","healthChecks":[{"protocol":"COMMAND","command":"true"},{}],"healthCheck":{"protocol":"TCP"}}""", Ctx.TaskSpec)!;

        Assert.Equal(HealthCheckProtocol.Tcp, Assert.Single(legacy.HealthChecks).Protocol);
        Assert.Equal([HealthCheckProtocol.Command, HealthCheckProtocol.Http], both.HealthChecks.Select(c => c.Protocol));
        Assert.Equal([HealthCheckProtocol.Command, HealthCheckProtocol.Http], bothReversed.HealthChecks.Select(c => c.Protocol));
    }

    [Fact]
    public void TaskReadinessCheck_EmptyObject_GetsMarathonDefaults()
    {
        var spec = JsonSerializer.Deserialize(
            """{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5","readinessChecks":[{}]}""", Ctx.TaskSpec)!;

        var check = Assert.Single(spec.ReadinessChecks);
        Assert.Equal(TaskReadinessCheck.DefaultName, check.Name);
        Assert.Equal(HealthCheckProtocol.Http, check.Protocol);
        Assert.Equal("/", check.Path);
        Assert.Equal(0, check.PortIndex);
        Assert.Equal(TimeSpan.FromSeconds(30), check.Interval);
        Assert.Equal(TimeSpan.FromSeconds(10), check.Timeout);
        Assert.Equal([200], check.HttpStatusCodesForReady.ToArray());
        Assert.Null(check.Validate(1));
        Assert.Equal("protocol must be HTTP or HTTPS", (check with { Protocol = HealthCheckProtocol.Tcp }).Validate(1));
    }

    [Fact]
    public void TaskStatus_ReadyAndHealthResults_RoundTripAndAbsentWhenUnset()
    {
        var status = new TaskStatus
        {
            TaskId = "t",
            State = TaskState.Running,
            Ready = true,
            HealthResults = [new HealthCheckResult { Alive = false, ConsecutiveFailures = 2, LastFailureCause = "HTTP 500" }],
        };

        var json = JsonSerializer.Serialize(status, Ctx.TaskStatus);
        var back = JsonSerializer.Deserialize(json, Ctx.TaskStatus)!;
        var plain = JsonSerializer.Serialize(new TaskStatus { TaskId = "t", State = TaskState.Running }, Ctx.TaskStatus);

        Assert.True(back.Ready);
        var result = Assert.Single(back.HealthResults!.Value);
        Assert.Equal(status.HealthResults.Value[0], result);
        Assert.DoesNotContain("ready", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("healthResults", plain, StringComparison.Ordinal);
        Assert.Null(JsonSerializer.Deserialize(plain, Ctx.TaskStatus)!.HealthResults);
    }
}
