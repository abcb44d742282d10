using System.Text.Json;
using Drover.Core.Marathon;
using static Drover.Core.Tests.Marathon.MarathonTestSupport;

namespace Drover.Core.Tests.Marathon;

/// <summary>Drover's size caps on apps (docs/limits.md): each refusal is a 422 naming the field.</summary>
public class MarathonLimitsTests
{
    private static string Json(string s) => JsonSerializer.Serialize(s);

    private static string App(string fields) => $$"""{"id": "/web", "cmd": "sleep 1", {{fields}}}""";

    [Fact]
    public void Validate_OneMegabyteId_RefusedAtId()
    {
        var error = Invalid($$"""{"id": {{Json("/" + new string('a', 1024 * 1024))}}, "cmd": "sleep 1"}""");

        var detail = Assert.Single(error.Details);
        Assert.Equal("/id", detail.Path);
        Assert.Contains("at most 255", detail.Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_RelativeIdLongOnlyUnderItsGroup_RefusedAtId()
    {
        var group = "/" + string.Join('/', Enumerable.Repeat(new string('g', 60), 3));
        var error = Invalid($$"""{"id": {{Json(new string('a', 100))}}, "cmd": "sleep 1"}""", group);

        Assert.Contains(error.ErrorsAt("/id"), e => e.Contains("at most 255", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_IdOfMaximumLength_Valid() =>
        Valid($$"""{"id": {{Json("/" + new string('a', 254))}}, "cmd": "sleep 1"}""");

    [Fact]
    public void Validate_TwentyMegabyteCmd_RefusedAtCmd()
    {
        var error = Invalid($$"""{"id": "/web", "cmd": {{Json(new string('x', 20 * 1024 * 1024))}}}""");

        Assert.Contains(error.ErrorsAt("/cmd"), e => e.Contains("MAX_ARG_STRLEN", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_CmdJustUnderMaxArgStrlen_Valid() =>
        Valid($$"""{"id": "/web", "cmd": {{Json(new string('x', InputLimits.MaxArgStringBytes - 1))}}}""");

    [Fact]
    public void Validate_CmdAtMaxArgStrlen_Refused() =>
        Assert.NotEmpty(Invalid($$"""{"id": "/web", "cmd": {{Json(new string('x', InputLimits.MaxArgStringBytes))}}}""").ErrorsAt("/cmd"));

    [Fact]
    public void Validate_NulInCmdOrArgs_RefusedAtTheField()
    {
        Assert.Contains(Invalid("""{"id": "/web", "cmd": "sleep\u0000 1"}""").ErrorsAt("/cmd"), e => e.Contains("NUL", StringComparison.Ordinal));
        Assert.Contains(Invalid("""{"id": "/web", "args": ["sleep", "1\u0000"]}""").ErrorsAt("/args(1)"), e => e.Contains("NUL", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ArgsTogetherOverOneMebibyte_RefusedAtArgs()
    {
        var arg = Json(new string('a', 100_000));
        var error = Invalid($$"""{"id": "/web", "args": [{{string.Join(',', Enumerable.Repeat(arg, 11))}}]}""");

        Assert.Contains(error.ErrorsAt("/args"), e => e.Contains("1 MiB", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")]
    [InlineData("A=B")]
    [InlineData("A\\u0000B")]
    public void Validate_BadEnvName_RefusedAtThatVariable(string name)
    {
        var error = Invalid(App($$"""
            "env": {"{{name}}": "v"}
            """));

        Assert.Contains(error.Details, d => d.Path.StartsWith("/env/", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_NulInEnvValue_Refused() =>
        Assert.Contains(Invalid(App(""" "env": {"A": "x\u0000y"} """)).ErrorsAt("/env/A"), e => e.Contains("NUL", StringComparison.Ordinal));

    [Fact]
    public void Validate_EnvOver256KiB_RefusedAtEnv()
    {
        var env = string.Join(',', Enumerable.Range(0, 3).Select(i => $"\"V{i}\": {Json(new string('v', 100_000))}"));
        var error = Invalid(App($$""" "env": {{{env}}} """));

        Assert.Contains(error.ErrorsAt("/env"), e => e.Contains("256 KiB", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_LabelsOver256KiB_RefusedAtLabels()
    {
        var error = Invalid(App($$""" "labels": {"big": {{Json(new string('l', 300 * 1024))}}} """));

        Assert.Contains(error.ErrorsAt("/labels"), e => e.Contains("256 KiB", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_LabelsUnderTheCap_Valid() =>
        Valid(App($$""" "labels": {"big": {{Json(new string('l', 200 * 1024))}}} """));

    [Fact]
    public void Validate_HealthCheckCommandWithNul_RefusedAtItsValue()
    {
        var error = Invalid(App(""" "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true\u0000"}}] """));

        Assert.NotEmpty(error.ErrorsAt("/healthChecks(0)/command/value"));
    }

    [Fact]
    public void Validate_TooManyConstraints_RefusedAtConstraints()
    {
        var constraints = string.Join(',', Enumerable.Repeat("""["hostname", "UNIQUE"]""", 101));
        Assert.NotEmpty(Invalid(App($$""" "constraints": [{{constraints}}] """)).ErrorsAt("/constraints"));
    }
}
