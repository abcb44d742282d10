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

        Assert.Equal(HealthCheckProtocol.Tcp, spec.HealthCheck!.Protocol);
        AssertDefaults(spec.HealthCheck);
    }

    [Fact]
    public void Deserialize_TaskSpecWithoutHealthCheck_HasNone()
    {
        var spec = JsonSerializer.Deserialize("""{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5"}""", Ctx.TaskSpec)!;

        Assert.Null(spec.HealthCheck);
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
}
