using System.Collections.Immutable;
using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;

namespace Drover.Core.Tests;

public class JsonTests
{
    private static readonly DroverJsonContext Ctx = DroverJsonContext.Default;

    private static JsonElement Root(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    private static TaskSpec SampleSpec() => new()
    {
        Id = "web.0123456789abcdef",
        Name = "web",
        Args = ["/bin/echo", "hi"],
        Env = ImmutableSortedDictionary.CreateRange<string, string>(StringComparer.Ordinal, [new("A", "1"), new("B", "two")]),
        Resources = Resources.Parse("cpus:0.25;mem:64;disk:10;gpus:1;ports:[31000-31001]"),
        PortCount = 2,
        Constraints =
        [
            new Constraint("hostname", ConstraintOperator.Unique, null),
            new Constraint("rack", ConstraintOperator.Is, "r1"),
            new Constraint("rack", ConstraintOperator.MaxPer, "2"),
        ],
        KillGracePeriod = TimeSpan.FromSeconds(2.5),
        Group = "web-group",
        PidsLimit = 100,
    };

    [Fact]
    public void TaskSpec_Serialize_UsesMesosTextAndSeconds()
    {
        var json = JsonSerializer.Serialize(SampleSpec(), Ctx.TaskSpec);
        var root = Root(json);

        Assert.Equal("cpus:0.25;mem:64;disk:10;gpus:1;ports:[31000-31001]", root.GetProperty("resources").GetString());
        Assert.Equal(JsonValueKind.Number, root.GetProperty("killGracePeriod").ValueKind);
        Assert.Equal(2.5, root.GetProperty("killGracePeriod").GetDouble());
        Assert.Equal("web.0123456789abcdef", root.GetProperty("id").GetString());
        Assert.Equal(3, root.GetProperty("constraints").GetArrayLength());
        Assert.False(root.TryGetProperty("shell", out _)); // null omitted
    }

    [Fact]
    public void TaskSpec_RoundTrip_PreservesEveryField()
    {
        var spec = SampleSpec();

        var back = JsonSerializer.Deserialize(JsonSerializer.Serialize(spec, Ctx.TaskSpec), Ctx.TaskSpec);

        Assert.NotNull(back);
        Assert.Equal(spec.Id, back.Id);
        Assert.Equal(spec.Name, back.Name);
        Assert.Null(back.Shell);
        Assert.Equal(spec.Args.ToArray(), back.Args.ToArray());
        Assert.Equal(spec.Env.ToArray(), back.Env.ToArray());
        Assert.Equal(spec.Resources, back.Resources);
        Assert.Equal(PortRanges.Range(31000, 31001), back.Resources.Ports);
        Assert.Equal(2, back.PortCount);
        Assert.Equal(spec.Constraints.ToArray(), back.Constraints.ToArray());
        Assert.Equal(TimeSpan.FromSeconds(2.5), back.KillGracePeriod);
        Assert.Equal("web-group", back.Group);
        Assert.Equal(100, back.PidsLimit);
    }

    [Fact]
    public void TaskSpec_DeserializeMinimal_ReadsGivenFields()
    {
        var spec = JsonSerializer.Deserialize("""{"id":"t.1","name":"t","shell":"true","resources":"cpus(*):0.5;mem:32"}""", Ctx.TaskSpec);

        Assert.NotNull(spec);
        Assert.Equal("t.1", spec.Id);
        Assert.Equal("true", spec.Shell);
        Assert.Equal(500, spec.Resources.MilliCpus);
        Assert.Equal(32, spec.Resources.MemMiB);
        Assert.Null(spec.Group);
    }

    [Fact]
    public void TaskSpec_DeserializeMinimal_AppliesPropertyDefaults()
    {
        var spec = JsonSerializer.Deserialize("""{"id":"t.1","name":"t","shell":"true","resources":"cpus:0.5;mem:32"}""", Ctx.TaskSpec);

        Assert.NotNull(spec);
        Assert.Equal(TimeSpan.FromSeconds(3), spec.KillGracePeriod);
        Assert.Equal(TaskSpec.DefaultPidsLimit, spec.PidsLimit);
        Assert.False(spec.Args.IsDefault);
        Assert.False(spec.Constraints.IsDefault);
        Assert.NotNull(spec.Env);
    }

    [Theory]
    [InlineData("""{"id":"t","name":"t","resources":"cpus:abc"}""")]
    [InlineData("""{"id":"t","name":"t","resources":"foo:1"}""")]
    [InlineData("""{"id":"t","name":"t","resources":4}""")]
    [InlineData("""{"id":"t","name":"t","resources":"cpus:1","killGracePeriod":"3s"}""")]
    public void TaskSpec_DeserializeBadResourcesOrSeconds_ThrowsJsonException(string json)
    {
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(json, Ctx.TaskSpec));
    }

    [Fact]
    public void TaskSpec_DeserializeBadResources_NamesTheResource()
    {
        var e = Assert.ThrowsAny<JsonException>(
            () => JsonSerializer.Deserialize("""{"id":"t","name":"t","resources":"cpus:1;foo:2"}""", Ctx.TaskSpec));

        Assert.Contains("unknown resource 'foo'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TaskStatus_Serialize_UsesMesosStateNamesAndOmitsNulls()
    {
        var status = new TaskStatus
        {
            TaskId = "web.1",
            State = TaskState.Running,
            AgentId = "agent-1",
            Timestamp = 1700000000.25,
        };

        var root = Root(JsonSerializer.Serialize(status, Ctx.TaskStatus));

        Assert.Equal("TASK_RUNNING", root.GetProperty("state").GetString());
        Assert.Equal("SOURCE_AGENT", root.GetProperty("source").GetString());
        Assert.Equal(1700000000.25, root.GetProperty("timestamp").GetDouble());
        Assert.False(root.TryGetProperty("message", out _));
        Assert.False(root.TryGetProperty("exitCode", out _));
    }

    [Theory]
    [InlineData(TaskState.Running, "TASK_RUNNING")]
    [InlineData(TaskState.GoneByOperator, "TASK_GONE_BY_OPERATOR")]
    [InlineData(TaskState.Killed, "TASK_KILLED")]
    [InlineData(TaskState.Pending, "TASK_PENDING")]
    public void TaskStatus_RoundTrip_PreservesStateAsWireName(TaskState state, string wire)
    {
        var status = new TaskStatus
        {
            TaskId = "t",
            State = state,
            Message = "m",
            Reason = TaskReasons.CommandExecutorFailed,
            Source = TaskSources.Master,
            ExitCode = 137,
            Uuid = "u",
            Timestamp = 12.5,
        };

        var json = JsonSerializer.Serialize(status, Ctx.TaskStatus);
        var back = JsonSerializer.Deserialize(json, Ctx.TaskStatus);

        Assert.Contains($"\"state\":\"{wire}\"", json, StringComparison.Ordinal);
        Assert.Equal(status, back);
    }

    [Fact]
    public void TaskStatus_DeserializeMesosJson_ParsesState()
    {
        var status = JsonSerializer.Deserialize("""{"taskId":"t","state":"TASK_KILLED","source":"SOURCE_EXECUTOR","exitCode":137,"timestamp":1.5}""", Ctx.TaskStatus);

        Assert.NotNull(status);
        Assert.Equal(TaskState.Killed, status.State);
        Assert.Equal(137, status.ExitCode);
        Assert.Equal(1.5, status.Timestamp);
        Assert.Equal(TaskSources.Executor, status.Source);
    }

    [Fact]
    public void TaskStatus_DeserializeWithoutSource_DefaultsToAgent()
    {
        var status = JsonSerializer.Deserialize("""{"taskId":"t","state":"TASK_RUNNING"}""", Ctx.TaskStatus);

        Assert.NotNull(status);
        Assert.Equal(TaskSources.Agent, status.Source);
    }

    [Fact]
    public void TaskStatus_DeserializeUnknownState_Throws()
    {
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize("""{"taskId":"t","state":"TASK_SLEEPING"}""", Ctx.TaskStatus));
    }

    [Fact]
    public void AgentRegistration_RoundTrip_KeepsAttributesAndFaultDomain()
    {
        Assert.True(Attributes.TryParse("rack:r1;cores:8;gpu_model:a100", out var attrs, out _));
        var reg = new AgentRegistration
        {
            AgentId = "agent-1",
            Hostname = "node1",
            Address = "http://10.0.0.2:5051",
            Resources = Resources.Parse("cpus:8;mem:16384;disk:1000;ports:[31000-32000]"),
            Attributes = attrs,
            Domain = new FaultDomain("us-east", "us-east-1a"),
            Tasks = [new TaskStatus { TaskId = "t1", State = TaskState.Running }],
        };

        var json = JsonSerializer.Serialize(reg, Ctx.AgentRegistration);
        var root = Root(json);
        var back = JsonSerializer.Deserialize(json, Ctx.AgentRegistration);

        Assert.Equal("cores:8;gpu_model:a100;rack:r1", root.GetProperty("attributes").GetString());
        Assert.Equal("cpus:8;mem:16384;disk:1000;ports:[31000-32000]", root.GetProperty("resources").GetString());
        Assert.Equal("us-east", root.GetProperty("domain").GetProperty("region").GetString());
        Assert.Equal("us-east-1a", root.GetProperty("domain").GetProperty("zone").GetString());

        Assert.NotNull(back);
        Assert.Equal("agent-1", back.AgentId);
        Assert.Equal("node1", back.Hostname);
        Assert.Equal("http://10.0.0.2:5051", back.Address);
        Assert.Equal(reg.Resources, back.Resources);
        Assert.Equal(attrs, back.Attributes);
        Assert.True(back.Attributes.TryGet("cores", out var cores));
        Assert.Equal(8.0, cores.Scalar);
        Assert.Equal(new FaultDomain("us-east", "us-east-1a"), back.Domain);
        Assert.Equal(reg.Tasks.ToArray(), back.Tasks.ToArray());
    }

    [Fact]
    public void AgentRegistration_DeserializeMinimal_ReadsGivenFields()
    {
        var reg = JsonSerializer.Deserialize("""{"hostname":"h","address":"http://h:5051","resources":"cpus:1;mem:128","attributes":""}""", Ctx.AgentRegistration);

        Assert.NotNull(reg);
        Assert.Equal("h", reg.Hostname);
        Assert.Equal(Resources.Parse("cpus:1;mem:128"), reg.Resources);
        Assert.Equal(Attributes.Empty, reg.Attributes);
        Assert.Null(reg.Domain);
        Assert.Null(reg.AgentId);
    }

    [Fact]
    public void AgentRegistration_DeserializeWithoutAttributesOrTasks_DefaultsToEmpty()
    {
        var reg = JsonSerializer.Deserialize("""{"hostname":"h","address":"http://h:5051","resources":"cpus:1;mem:128"}""", Ctx.AgentRegistration);

        Assert.NotNull(reg);
        Assert.Same(Attributes.Empty, reg.Attributes);
        Assert.False(reg.Tasks.IsDefault);
    }

    [Fact]
    public void AgentRegistration_DeserializeBadAttributes_ThrowsJsonException()
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(
            """{"hostname":"h","address":"a","resources":"cpus:1","attributes":"rack:a;rack:b"}""", Ctx.AgentRegistration));

        Assert.Contains("'rack' is given twice", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TaskSubmission_Deserialize_KeepsRawJsonElements()
    {
        var s = JsonSerializer.Deserialize("""{"name":"w","cmd":"x","cpus":"1","constraints":["a:UNIQUE",["b","IS","c"]]}""", Ctx.TaskSubmission);

        Assert.NotNull(s);
        Assert.Equal(JsonValueKind.String, s.Cpus!.Value.ValueKind);
        Assert.Null(s.Mem);
        Assert.Equal(2, s.Constraints!.Value.Length);
        Assert.Equal(JsonValueKind.Array, s.Constraints.Value[1].ValueKind);
    }

    [Fact]
    public void ApiError_Serialize_UsesCamelCaseFieldErrors()
    {
        var error = new ApiError
        {
            Code = ErrorCodes.ValidationFailed,
            Message = "bad",
            Details = [new FieldError("cpus", "must be greater than 0")],
        };

        var root = Root(JsonSerializer.Serialize(error, Ctx.ApiError));

        Assert.Equal("validation_failed", root.GetProperty("code").GetString());
        var detail = Assert.Single(root.GetProperty("details").EnumerateArray());
        Assert.Equal("cpus", detail.GetProperty("field").GetString());
        Assert.Equal("must be greater than 0", detail.GetProperty("reason").GetString());
    }
}
