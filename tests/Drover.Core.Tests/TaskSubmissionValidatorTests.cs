using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;

namespace Drover.Core.Tests;

public class TaskSubmissionValidatorTests
{
    private static TaskSubmission Sub(string json) =>
        JsonSerializer.Deserialize(json, DroverJsonContext.Default.TaskSubmission)!;

    private static TaskSpec Valid(string json)
    {
        var (spec, errors) = TaskSubmissionValidator.Validate(Sub(json));
        Assert.Empty(errors);
        Assert.NotNull(spec);
        return spec;
    }

    [Fact]
    public void Validate_User_CarriedToTheSpec()
    {
        Assert.Equal("nobody", Valid("""{"cmd":"id","user":"nobody"}""").User);
        Assert.Null(Valid("""{"cmd":"id"}""").User);
    }

    [Theory]
    [InlineData("\"\"")]
    [InlineData("\"root;id\"")]
    [InlineData("\"a-name-longer-than-thirty-two-chars\"")]
    public void Validate_BadUser_NamesTheField(string user)
    {
        var (spec, errors) = TaskSubmissionValidator.Validate(Sub($$"""{"cmd":"id","user":{{user}}}"""));

        Assert.Null(spec);
        Assert.Equal("user", Assert.Single(errors).Field);
    }

    [Fact]
    public void Validate_OnlyCmd_AppliesDefaults()
    {
        var spec = Valid("""{"cmd":"echo hi"}""");

        Assert.Equal("echo hi", spec.Shell);
        Assert.Empty(spec.Args);
        Assert.Equal(100, spec.Resources.MilliCpus);
        Assert.Equal(32, spec.Resources.MemMiB);
        Assert.Equal(0, spec.Resources.DiskMiB);
        Assert.Equal(0, spec.Resources.Gpus);
        Assert.True(spec.Resources.Ports.IsEmpty);
        Assert.Equal(0, spec.PortCount);
        Assert.Equal(TimeSpan.FromSeconds(3), spec.KillGracePeriod);
        Assert.Empty(spec.Constraints);
        Assert.Empty(spec.Env);
        Assert.Matches(@"^task\.[0-9a-f]{16}$", spec.Id);
        Assert.Equal(spec.Id, spec.Name);
        Assert.Equal(spec.Id, spec.Group);
    }

    [Fact]
    public void Validate_NullNumbers_UseDefaults()
    {
        var spec = Valid("""{"cmd":"x","cpus":null,"mem":null,"disk":null,"gpus":null,"ports":null,"killGracePeriodSeconds":null}""");

        Assert.Equal("cpus:0.1;mem:32;disk:0", spec.Resources.ToString());
        Assert.Equal(0, spec.PortCount);
        Assert.Equal(TimeSpan.FromSeconds(3), spec.KillGracePeriod);
    }

    [Fact]
    public void Validate_EveryFieldGiven_BuildsSpec()
    {
        var spec = Valid("""
            {
              "name": "web",
              "cmd": "python -m http.server $PORT0",
              "cpus": 1.5, "mem": 256, "disk": 100, "gpus": 1, "ports": 2,
              "killGracePeriodSeconds": 10.5,
              "env": {"B": "2", "A": "1"},
              "constraints": ["@hostname:UNIQUE", ["rack", "IS", "r1"], ["rack", "GROUP_BY"]]
            }
            """);

        Assert.Equal("web", spec.Name);
        Assert.Matches(@"^web\.[0-9a-f]{16}$", spec.Id);
        Assert.Equal("python -m http.server $PORT0", spec.Shell);
        Assert.Equal(Resources.Parse("cpus:1.5;mem:256;disk:100;gpus:1"), spec.Resources);
        Assert.Equal(2, spec.PortCount);
        Assert.Equal(TimeSpan.FromSeconds(10.5), spec.KillGracePeriod);
        Assert.Equal(["A", "B"], spec.Env.Keys.ToArray());
        Assert.Equal("1", spec.Env["A"]);
        Assert.Equal(
            new[]
            {
                new Constraint("hostname", ConstraintOperator.Unique, null),
                new Constraint("rack", ConstraintOperator.Is, "r1"),
                new Constraint("rack", ConstraintOperator.GroupBy, null),
            },
            spec.Constraints.ToArray());
    }

    [Fact]
    public void Validate_Args_UsesExecForm()
    {
        var spec = Valid("""{"args":["/bin/echo","hello world"]}""");

        Assert.Null(spec.Shell);
        Assert.Equal(["/bin/echo", "hello world"], spec.Args.ToArray());
    }

    [Fact]
    public void Validate_SubmissionBuiltInCode_ReadsJsonElements()
    {
        var submission = new TaskSubmission
        {
            Cmd = "sleep 1",
            Cpus = JsonSerializer.SerializeToElement(0.25m),
            Mem = JsonSerializer.SerializeToElement(64),
            Ports = JsonSerializer.SerializeToElement(3),
            KillGracePeriodSeconds = JsonSerializer.SerializeToElement(0),
            Constraints = [JsonSerializer.SerializeToElement(new[] { "rack", "MAX_PER", "2" })],
        };

        var (spec, errors) = TaskSubmissionValidator.Validate(submission);

        Assert.Empty(errors);
        Assert.NotNull(spec);
        Assert.Equal(250, spec.Resources.MilliCpus);
        Assert.Equal(64, spec.Resources.MemMiB);
        Assert.Equal(3, spec.PortCount);
        Assert.Equal(TimeSpan.Zero, spec.KillGracePeriod);
        Assert.Equal(new Constraint("rack", ConstraintOperator.MaxPer, "2"), Assert.Single(spec.Constraints));
    }

    [Theory]
    [InlineData("0.1", 100)]
    [InlineData("0.25", 250)]
    [InlineData("2", 2000)]
    [InlineData("0.0001", 1)]
    [InlineData("1e-1", 100)]
    public void Validate_Cpus_ConvertsToMilliCpus(string cpus, long expectedMilli)
    {
        var spec = Valid($$"""{"cmd":"x","cpus":{{cpus}}}""");

        Assert.Equal(expectedMilli, spec.Resources.MilliCpus);
    }

    [Theory]
    [InlineData("4", 4)]
    [InlineData("4.9", 4)]
    [InlineData("1024", 1024)]
    public void Validate_Mem_IsWholeMiB(string mem, long expected)
    {
        var spec = Valid($$"""{"cmd":"x","mem":{{mem}}}""");

        Assert.Equal(expected, spec.Resources.MemMiB);
    }

    [Theory]
    [InlineData("web", @"^web\.[0-9a-f]{16}$")]
    [InlineData("web.v2", @"^web_v2\.[0-9a-f]{16}$")]
    [InlineData("a-b_c", @"^a-b_c\.[0-9a-f]{16}$")]
    public void Validate_Name_GeneratedIdStartsWithSanitisedName(string name, string idPattern)
    {
        var spec = Valid($$"""{"name":"{{name}}","cmd":"x"}""");

        Assert.Equal(name, spec.Name);
        Assert.Matches(idPattern, spec.Id);
        Assert.Equal(spec.Id, spec.Group);
    }

    [Fact]
    public void Validate_SameSubmissionTwice_GeneratesDistinctIds()
    {
        Assert.NotEqual(Valid("""{"name":"web","cmd":"x"}""").Id, Valid("""{"name":"web","cmd":"x"}""").Id);
    }

    [Theory]
    [InlineData("""{}""", "cmd", "is required (or args)")]
    [InlineData("""{"cmd":"   "}""", "cmd", "is required (or args)")]
    [InlineData("""{"args":[]}""", "cmd", "is required (or args)")]
    [InlineData("""{"cmd":"x","args":["y"]}""", "cmd", "give either cmd or args, not both")]
    [InlineData("""{"args":["a",null]}""", "args", "must not contain null")]
    [InlineData("""{"cmd":"x","name":"my app"}""", "name", "may hold only letters")]
    [InlineData("""{"cmd":"x","name":""}""", "name", "may hold only letters")]
    [InlineData("""{"cmd":"x","name":"a/b"}""", "name", "may hold only letters")]
    [InlineData("""{"cmd":"x","cpus":0}""", "cpus", "must be greater than 0")]
    [InlineData("""{"cmd":"x","cpus":-1}""", "cpus", "must be greater than 0")]
    [InlineData("""{"cmd":"x","cpus":"1"}""", "cpus", "must be a number, got the string \"1\"")]
    [InlineData("""{"cmd":"x","cpus":true}""", "cpus", "must be a number, got a boolean")]
    [InlineData("""{"cmd":"x","cpus":{}}""", "cpus", "must be a number, got an object")]
    [InlineData("""{"cmd":"x","mem":3}""", "mem", "must be at least 4 MiB")]
    [InlineData("""{"cmd":"x","mem":3.99}""", "mem", "must be at least 4 MiB")]
    [InlineData("""{"cmd":"x","mem":"lots"}""", "mem", "must be a number")]
    [InlineData("""{"cmd":"x","disk":-1}""", "disk", "must not be negative")]
    [InlineData("""{"cmd":"x","disk":[1]}""", "disk", "must be a number, got an array")]
    [InlineData("""{"cmd":"x","gpus":0.5}""", "gpus", "must be a whole number, got 0.5")]
    [InlineData("""{"cmd":"x","gpus":-1}""", "gpus", "must not be negative")]
    [InlineData("""{"cmd":"x","ports":101}""", "ports", "must be between 0 and 100")]
    [InlineData("""{"cmd":"x","ports":-1}""", "ports", "must be between 0 and 100")]
    [InlineData("""{"cmd":"x","ports":"2"}""", "ports", "must be a whole number, got the string \"2\"")]
    [InlineData("""{"cmd":"x","killGracePeriodSeconds":3601}""", "killGracePeriodSeconds", "must be between 0 and 3600")]
    [InlineData("""{"cmd":"x","killGracePeriodSeconds":-0.5}""", "killGracePeriodSeconds", "must be between 0 and 3600")]
    [InlineData("""{"cmd":"x","env":{"A=B":"1"}}""", "env.A=B", "hold no '='")]
    [InlineData("""{"cmd":"x","env":{"":"1"}}""", "env.", "must be non-empty")]
    [InlineData("""{"cmd":"x","env":{"A":null}}""", "env.A", "must be a string")]
    [InlineData("""{"cmd":"x","constraints":["rack:EQUALS:r1"]}""", "constraints[0]", "unknown operator 'EQUALS'")]
    [InlineData("""{"cmd":"x","constraints":["rack"]}""", "constraints[0]", "is not of the form field:OPERATOR[:value]")]
    [InlineData("""{"cmd":"x","constraints":[["rack","LIKE"]]}""", "constraints[0]", "LIKE needs a value")]
    [InlineData("""{"cmd":"x","constraints":[["rack","LIKE","["]]}""", "constraints[0]", "not a valid regular expression")]
    [InlineData("""{"cmd":"x","constraints":["hostname:UNIQUE",["rack","MAX_PER","0"]]}""", "constraints[1]", "MAX_PER needs a whole number")]
    [InlineData("""{"cmd":"x","constraints":["rack:MAX_PER:x"]}""", "constraints[0]", "MAX_PER needs a whole number")]
    [InlineData("""{"cmd":"x","constraints":[["hostname","UNIQUE","x"]]}""", "constraints[0]", "UNIQUE takes no value")]
    [InlineData("""{"cmd":"x","constraints":[42]}""", "constraints[0]", "must be a string \"field:OPERATOR[:value]\" or an array")]
    [InlineData("""{"cmd":"x","constraints":[["rack"]]}""", "constraints[0]", "must be a string \"field:OPERATOR[:value]\" or an array")]
    [InlineData("""{"cmd":"x","constraints":[["rack","IS","r1","extra"]]}""", "constraints[0]", "or an array")]
    [InlineData("""{"cmd":"x","constraints":[["rack","MAX_PER",2]]}""", "constraints[0]", "or an array")]
    public void Validate_OneBadField_ReportsThatFieldOnly(string json, string field, string reason)
    {
        var (spec, errors) = TaskSubmissionValidator.Validate(Sub(json));

        Assert.Null(spec);
        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(reason, error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ManyBadFields_CollectsEveryErrorAtOnce()
    {
        var json = """
            {
              "name": "bad name",
              "cpus": "x", "mem": 1, "disk": -5, "gpus": 1.5, "ports": 500,
              "killGracePeriodSeconds": 9999,
              "env": {"A=B": "v", "OK": "fine"},
              "constraints": ["rack:NOPE", "hostname:UNIQUE", ["rack", "LIKE", "["]]
            }
            """;

        var (spec, errors) = TaskSubmissionValidator.Validate(Sub(json));

        Assert.Null(spec);
        Assert.Equal(
            ["name", "cmd", "cpus", "mem", "disk", "gpus", "ports", "killGracePeriodSeconds", "env.A=B", "constraints[0]", "constraints[2]"],
            errors.Select(e => e.Field).ToArray());
        Assert.All(errors, e => Assert.False(string.IsNullOrWhiteSpace(e.Reason)));
    }

    [Fact]
    public void Validate_CmdAndArgsPlusBadCpus_ReportsBoth()
    {
        var submission = new TaskSubmission
        {
            Cmd = "x",
            Args = ["y"],
            Cpus = JsonSerializer.SerializeToElement(0),
        };

        var (spec, errors) = TaskSubmissionValidator.Validate(submission);

        Assert.Null(spec);
        Assert.Equal(
            [new FieldError("cmd", "give either cmd or args, not both"), new FieldError("cpus", "must be greater than 0")],
            errors.ToArray());
    }

    [Fact]
    public void Validate_ValidConstraintArrayForm_ParsesLikeStringForm()
    {
        var fromArray = Valid("""{"cmd":"x","constraints":[["rack","IS","r1"],["@hostname","MAX_PER","2"]]}""");
        var fromString = Valid("""{"cmd":"x","constraints":["rack:IS:r1","@hostname:MAX_PER:2"]}""");

        Assert.Equal(fromString.Constraints.ToArray(), fromArray.Constraints.ToArray());
        Assert.Equal(new Constraint("hostname", ConstraintOperator.MaxPer, "2"), fromArray.Constraints[1]);
    }

    [Fact]
    public void Validate_GeneratedId_IsAValidName()
    {
        var spec = Valid("""{"name":"a.b","cmd":"x"}""");

        Assert.True(Ids.IsValidName(spec.Id));
        Assert.StartsWith("a_b.", spec.Id, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Env_IsSortedOrdinal()
    {
        var spec = Valid("""{"cmd":"x","env":{"b":"1","B":"2","a":"3"}}""");

        Assert.Equal(["B", "a", "b"], spec.Env.Keys.ToArray());
    }

    [Theory]
    [InlineData("""{"cmd":"x","cpus":1e16}""", "cpus")]
    [InlineData("""{"cmd":"x","mem":1e19}""", "mem")]
    [InlineData("""{"cmd":"x","disk":1e19}""", "disk")]
    public void Validate_HugeNumber_ReportsFieldErrorInsteadOfThrowing(string json, string field)
    {
        var (spec, errors) = TaskSubmissionValidator.Validate(Sub(json));

        Assert.Null(spec);
        Assert.Equal(field, Assert.Single(errors).Field);
    }
}

public class TaskSubmissionExecutorTests
{
    private static (TaskSpec? Spec, System.Collections.Immutable.ImmutableArray<FieldError> Errors) Validate(string json) =>
        TaskSubmissionValidator.Validate(JsonSerializer.Deserialize(json, DroverJsonContext.Default.TaskSubmission)!);

    [Fact]
    public void Validate_ExecutorWithoutTaskCommand_SpecCarriesExecutorFrameworkAndData()
    {
        var (spec, errors) = Validate("""
            {"name":"t","data":"aGk=","executor":{"executorId":"ex 1","frameworkId":"fw-1","args":["python3","x.py"],
             "env":{"A":"b"},"cpus":0.25,"mem":48,"data":"eA=="}}
            """);

        Assert.Empty(errors);
        Assert.NotNull(spec);
        Assert.Null(spec.Shell);
        Assert.Empty(spec.Args);
        Assert.Equal("fw-1", spec.FrameworkId);
        Assert.Equal("aGk=", spec.Data);
        var e = spec.Executor!;
        Assert.Equal(("ex 1", "fw-1"), (e.ExecutorId, e.FrameworkId));
        Assert.Equal(["python3", "x.py"], e.Args.ToArray());
        Assert.Null(e.Shell);
        Assert.Equal("b", e.Env["A"]);
        Assert.Equal(Resources.Of(cpus: 0.25m, memMiB: 48), e.Resources);
        Assert.Equal("eA==", e.Data);
    }

    [Fact]
    public void Validate_ExecutorEveryFieldWrong_NamesEachField()
    {
        var (spec, errors) = Validate("""
            {"data":"not base64!","executor":{"frameworkId":"","cmd":"a","args":["b"],"cpus":-1,"mem":-2,"data":"%%"}}
            """);

        Assert.Null(spec);
        Assert.Equal(
            ["data", "executor.cmd", "executor.cpus", "executor.data", "executor.executorId", "executor.frameworkId", "executor.mem"],
            errors.Select(e => e.Field).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Validate_DataWithoutExecutor_Refused()
    {
        var (_, errors) = Validate("""{"cmd":"true","data":"aGk="}""");

        Assert.Equal(new FieldError("data", "is only for tasks with an executor"), Assert.Single(errors));
    }
}
