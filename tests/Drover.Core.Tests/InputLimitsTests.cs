using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;

namespace Drover.Core.Tests;

/// <summary>The exec and environment limits as <c>/drover/v1/tasks</c> applies them (docs/limits.md).</summary>
public class InputLimitsTests
{
    private static string Json(string s) => JsonSerializer.Serialize(s);

    private static IReadOnlyList<FieldError> Errors(string json)
    {
        var (spec, errors) = TaskSubmissionValidator.Validate(JsonSerializer.Deserialize(json, DroverJsonContext.Default.TaskSubmission)!);
        Assert.Null(spec);
        return errors;
    }

    [Theory]
    [InlineData("")]
    [InlineData("A=B")]
    [InlineData("A\\u0000B")]
    public void Validate_BadEnvName_RefusedNamingTheVariable(string name) =>
        Assert.Contains(Errors("{\"cmd\": \"true\", \"env\": {\"" + name + "\": \"v\"}}"), e => e.Field.StartsWith("env.", StringComparison.Ordinal));

    [Fact]
    public void Validate_NulInEnvValue_Refused() =>
        Assert.Contains(Errors("""{"cmd": "true", "env": {"A": "x\u0000"}}"""), e => e.Field == "env.A" && e.Reason.Contains("NUL", StringComparison.Ordinal));

    [Fact]
    public void Validate_NulInCmd_Refused() =>
        Assert.Contains(Errors("""{"cmd": "tr\u0000ue"}"""), e => e.Field == "cmd");

    [Fact]
    public void Validate_NulInArg_RefusedNamingTheIndex() =>
        Assert.Contains(Errors("""{"args": ["echo", "a\u0000"]}"""), e => e.Field == "args[1]");

    [Fact]
    public void Validate_TwentyMegabyteCmd_Refused() =>
        Assert.Contains(Errors($$"""{"cmd": {{Json(new string('x', 20 * 1024 * 1024))}}}"""), e => e.Field == "cmd" && e.Reason.Contains("MAX_ARG_STRLEN", StringComparison.Ordinal));

    [Fact]
    public void Validate_EnvOver256KiB_Refused()
    {
        var env = string.Join(',', Enumerable.Range(0, 3).Select(i => $"\"V{i}\": {Json(new string('v', 100_000))}"));
        Assert.Contains(Errors("""{"cmd": "true", "env": {""" + env + "}}"), e => e.Field == "env");
    }

    [Fact]
    public void Validate_ExecutorEnvValueWithNul_Refused() =>
        Assert.Contains(Errors("""{"cmd": "true", "executor": {"executorId": "e", "frameworkId": "f", "cmd": "run", "env": {"A": "\u0000"}}}"""),
            e => e.Field == "executor.env.A");

    [Theory]
    [InlineData("x", null)]
    [InlineData("x\0", "NUL")]
    public void ArgumentError_ByContent(string value, string? expected)
    {
        var error = InputLimits.ArgumentError(value);
        if (expected is null)
        {
            Assert.Null(error);
        }
        else
        {
            Assert.Contains(expected, error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ArgumentError_CountsUtf8BytesAndTheNul()
    {
        Assert.Null(InputLimits.ArgumentError(new string('a', InputLimits.MaxArgStringBytes - 1)));
        Assert.NotNull(InputLimits.ArgumentError(new string('a', InputLimits.MaxArgStringBytes)));
        Assert.NotNull(InputLimits.ArgumentError(new string('é', InputLimits.MaxArgStringBytes / 2))); // 2 bytes each
    }
}
