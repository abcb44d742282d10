using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Core.Marathon;
using static Drover.Core.Tests.Marathon.MarathonTestSupport;

namespace Drover.Core.Tests.Marathon;

public class MarathonJsonTests
{
    [Fact]
    public void TryParseApp_OnlyIdAndCmd_FieldsStayAbsent()
    {
        var app = Parse("""{"id":"web","cmd":"sleep 100"}""");

        Assert.Equal("web", app.Id);
        Assert.Equal("sleep 100", app.Cmd);
        Assert.Null(app.Instances);
        Assert.Null(app.Cpus);
        Assert.Null(app.Mem);
        Assert.Null(app.PortDefinitions);
        Assert.Null(app.HealthChecks);
        Assert.Null(app.UpgradeStrategy);
    }

    [Fact]
    public void WithDefaults_AbsentFields_GetMarathonDefaults()
    {
        var app = Parse("""{"id":"web","cmd":"sleep 100"}""").WithDefaults();

        Assert.Equal("/web", app.Id);
        Assert.Equal(1, app.Instances);
        Assert.Equal(1m, app.Cpus);
        Assert.Equal(128m, app.Mem);
        Assert.Equal(0m, app.Disk);
        Assert.Equal(0, app.Gpus);
        Assert.Equal("", app.Executor);
        Assert.False(app.RequirePorts);
        Assert.Equal(1, app.BackoffSeconds);
        Assert.Equal(1.15m, app.BackoffFactor);
        Assert.Equal(3600, app.MaxLaunchDelaySeconds);
        Assert.Equal(1m, app.UpgradeStrategy!.MinimumHealthCapacity);
        Assert.Equal(1m, app.UpgradeStrategy.MaximumOverCapacity);
        Assert.Equal("YOUNGEST_FIRST", app.KillSelection);
        Assert.Equal(0, app.UnreachableStrategy!.InactiveAfterSeconds);
        Assert.Equal(0, app.UnreachableStrategy.ExpungeAfterSeconds);
        Assert.Equal("*", app.Role);
        Assert.Equal("host", Assert.Single(app.Networks!.Value).Mode);
        var port = Assert.Single(app.PortDefinitions!.Value);
        Assert.Equal(0, port.Port);
        Assert.Equal("tcp", port.Protocol);
        Assert.Equal("default", port.Name);
        Assert.Empty(app.Env!);
        Assert.Empty(app.Labels!);
        Assert.Empty(app.Constraints!.Value);
        Assert.Empty(app.HealthChecks!.Value);
        Assert.Empty(app.ReadinessChecks!.Value);
        Assert.Empty(app.Dependencies!.Value);
        Assert.Empty(app.Fetch!.Value);
        Assert.Null(app.Args);
        Assert.Null(app.TaskKillGracePeriodSeconds);
    }

    [Fact]
    public void Serialize_WithDefaults_WritesEveryDefault()
    {
        var root = JsonNode.Parse(MarathonJson.Serialize(Parse("""{"id":"web","cmd":"x"}""").WithDefaults()))!;

        Assert.Equal(1, (int)root["instances"]!);
        Assert.Equal(1m, (decimal)root["cpus"]!);
        Assert.Equal(128m, (decimal)root["mem"]!);
        Assert.Equal(1.15m, (decimal)root["backoffFactor"]!);
        Assert.Equal(3600, (int)root["maxLaunchDelaySeconds"]!);
        Assert.Equal("YOUNGEST_FIRST", (string)root["killSelection"]!);
        Assert.Equal(0, (int)root["unreachableStrategy"]!["inactiveAfterSeconds"]!);
        Assert.Equal("default", (string)root["portDefinitions"]![0]!["name"]!);
        Assert.Null(root["args"]);
        Assert.Null(root["ports"]);
        Assert.Null(root["container"]);
    }

    [Fact]
    public void WithDefaults_HealthCheck_GetsMarathonDefaults()
    {
        var app = Parse("""{"id":"web","cmd":"x","healthChecks":[{}]}""").WithDefaults();

        var h = Assert.Single(app.HealthChecks!.Value);
        Assert.Equal("HTTP", h.Protocol);
        Assert.Equal(300, h.GracePeriodSeconds);
        Assert.Equal(60, h.IntervalSeconds);
        Assert.Equal(20, h.TimeoutSeconds);
        Assert.Equal(3, h.MaxConsecutiveFailures);
        Assert.Equal(15, h.DelaySeconds);
        Assert.False(h.IgnoreHttp1xx);
        Assert.Null(h.PortIndex); // Marathon adds portIndex 0 only when the app listed its ports itself
    }

    [Fact]
    public void WithDefaults_HealthCheckWithExplicitPorts_GetsPortIndexZero()
    {
        var app = Parse("""{"id":"web","cmd":"x","portDefinitions":[{"port":0}],"healthChecks":[{"protocol":"TCP"},{"protocol":"TCP","port":8080}]}""").WithDefaults();

        Assert.Equal(0, app.HealthChecks!.Value[0].PortIndex);
        Assert.Null(app.HealthChecks.Value[1].PortIndex);
    }

    [Fact]
    public void WithDefaults_HealthCheckWithCommand_IsCommandCheck()
    {
        var app = Parse("""{"id":"web","cmd":"x","healthChecks":[{"command":{"value":"true"}}]}""").WithDefaults();

        var h = Assert.Single(app.HealthChecks!.Value);
        Assert.Equal("COMMAND", h.Protocol);
        Assert.Equal("true", h.Command!.Value);
        Assert.Null(h.PortIndex);
    }

    [Fact]
    public void WithDefaults_ReadinessCheck_GetsMarathonDefaults()
    {
        var app = Parse("""{"id":"web","cmd":"x","readinessChecks":[{}]}""").WithDefaults();

        var r = Assert.Single(app.ReadinessChecks!.Value);
        Assert.Equal("readinessCheck", r.Name);
        Assert.Equal("HTTP", r.Protocol);
        Assert.Equal("/", r.Path);
        Assert.Equal("http-api", r.PortName);
        Assert.Equal(30, r.IntervalSeconds);
        Assert.Equal(10, r.TimeoutSeconds);
        Assert.Equal([200], r.HttpStatusCodesForReady!.Value.ToArray());
        Assert.False(r.PreserveLastResponse);
    }

    [Fact]
    public void WithDefaults_PartialStrategies_FillMissingFields()
    {
        var app = Parse("""
            {"id":"web","cmd":"x","upgradeStrategy":{"minimumHealthCapacity":0.5},
             "unreachableStrategy":{"inactiveAfterSeconds":60}}
            """).WithDefaults();

        Assert.Equal(0.5m, app.UpgradeStrategy!.MinimumHealthCapacity);
        Assert.Equal(1m, app.UpgradeStrategy.MaximumOverCapacity);
        Assert.Equal(60, app.UnreachableStrategy!.InactiveAfterSeconds);
        Assert.Equal(600, app.UnreachableStrategy.ExpungeAfterSeconds);
    }

    [Fact]
    public void TryParseApp_UnreachableDisabled_RoundTripsAsString()
    {
        var app = Parse("""{"id":"web","cmd":"x","unreachableStrategy":"disabled"}""").WithDefaults();

        Assert.True(app.UnreachableStrategy!.IsDisabled);
        Assert.Equal("disabled", (string)JsonNode.Parse(MarathonJson.Serialize(app))!["unreachableStrategy"]!);
    }

    [Fact]
    public void WithDefaults_DeprecatedPorts_MigratedToPortDefinitions()
    {
        var app = Parse("""{"id":"web","cmd":"x","ports":[0,8080]}""").WithDefaults();

        Assert.Null(app.Ports);
        Assert.Equal([0, 8080], app.PortDefinitions!.Value.Select(p => p.Port ?? -1).ToArray());
        Assert.All(app.PortDefinitions.Value, p => Assert.Equal("tcp", p.Protocol));
        Assert.All(app.PortDefinitions.Value, p => Assert.Null(p.Name));
    }

    [Fact]
    public void WithDefaults_EmptyPortDefinitions_NoPorts()
    {
        var app = Parse("""{"id":"web","cmd":"x","portDefinitions":[]}""");

        Assert.Equal(0, app.PortCount);
        Assert.Empty(app.WithDefaults().PortDefinitions!.Value);
    }

    [Fact]
    public void WithDefaults_EnumSpellings_MadeCanonical()
    {
        var app = Parse("""
            {"id":"web","cmd":"x","killSelection":"oldest_first","portDefinitions":[{"port":0,"protocol":"UDP"}],
             "healthChecks":[{"protocol":"mesos_http"}],"networks":[{"mode":"HOST"}]}
            """).WithDefaults();

        Assert.Equal("OLDEST_FIRST", app.KillSelection);
        Assert.Equal("udp", app.PortDefinitions!.Value[0].Protocol);
        Assert.Equal("MESOS_HTTP", app.HealthChecks!.Value[0].Protocol);
        Assert.Equal("host", app.Networks!.Value[0].Mode);
    }

    [Theory]
    [InlineData("web", null, "/web")]
    [InlineData("web", "/prod", "/prod/web")]
    [InlineData("../web", "/prod/api", "/prod/web")]
    [InlineData("/abs/web", "/prod", "/abs/web")]
    public void WithDefaults_Id_MadeAbsolute(string id, string? parent, string expected) =>
        Assert.Equal(expected, Parse($$"""{"id":"{{id}}","cmd":"x"}""").WithDefaults(parent).Id);

    [Fact]
    public void WithDefaults_RelativeDependencies_ResolvedAgainstAppId()
    {
        var app = Parse("""{"id":"/prod/web","cmd":"x","dependencies":["../db","/infra/cache","sidecar"]}""").WithDefaults();

        Assert.Equal(["/prod/db", "/infra/cache", "/prod/web/sidecar"], app.Dependencies!.Value.ToArray());
    }

    [Fact]
    public void WithDefaults_Twice_SameJson()
    {
        var once = Parse(FullDefinition).WithDefaults();

        Assert.Equal(MarathonJson.Serialize(once), MarathonJson.Serialize(once.WithDefaults()));
    }

    [Fact]
    public void WithDefaults_OutputOnlyFields_Dropped()
    {
        var app = Parse("""{"id":"web","cmd":"x","tasksRunning":3,"deployments":[]}""");

        Assert.Null(MarathonValidator.Validate(app));
        var root = JsonNode.Parse(MarathonJson.Serialize(app.WithDefaults()))!;
        Assert.Null(root["tasksRunning"]);
        Assert.Null(root["deployments"]);
    }

    /// <summary>Every canonical field given, exactly as <see cref="AppDefinition.WithDefaults"/> writes it.</summary>
    private const string FullDefinition = """
        {
          "id": "/prod/web",
          "cmd": "python3 -m http.server $PORT0",
          "env": {"A": "1", "B": "two"},
          "instances": 3,
          "cpus": 0.25,
          "mem": 64,
          "disk": 10,
          "gpus": 0,
          "executor": "//cmd",
          "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"]],
          "fetch": [],
          "storeUrls": [],
          "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http-api", "labels": {"VIP_0": "/web:80"}}],
          "requirePorts": false,
          "backoffSeconds": 2,
          "backoffFactor": 1.5,
          "maxLaunchDelaySeconds": 300,
          "healthChecks": [{
            "protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 10,
            "timeoutSeconds": 5, "maxConsecutiveFailures": 2, "delaySeconds": 1, "ignoreHttp1xx": true
          }],
          "readinessChecks": [{
            "name": "ready", "protocol": "HTTP", "path": "/ready", "portName": "http-api", "intervalSeconds": 5,
            "timeoutSeconds": 2, "httpStatusCodesForReady": [200, 204], "preserveLastResponse": true
          }],
          "dependencies": ["/prod/db"],
          "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25},
          "labels": {"owner": "zeus"},
          "acceptedResourceRoles": ["*"],
          "role": "*",
          "networks": [{"mode": "host"}],
          "taskKillGracePeriodSeconds": 10,
          "killSelection": "OLDEST_FIRST",
          "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120},
          "version": "2024-01-02T03:04:05.678Z",
          "versionInfo": {"lastScalingAt": "2024-01-02T03:04:05.678Z", "lastConfigChangeAt": "2024-01-01T00:00:00.000Z"}
        }
        """;

    [Fact]
    public void RoundTrip_FullCanonicalDefinition_SameJsonSemantics()
    {
        var app = Valid(FullDefinition);

        var written = MarathonJson.Serialize(app.WithDefaults());

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(FullDefinition), JsonNode.Parse(written)), written);
    }

    [Fact]
    public void RoundTrip_ParseOfWritten_SameDefinition()
    {
        var first = MarathonJson.Serialize(Parse(FullDefinition).WithDefaults());

        var second = MarathonJson.Serialize(Parse(first).WithDefaults());

        Assert.Equal(first, second);
    }

    [Fact]
    public void RoundTrip_SecretEnvAndContainer_KeptAsSent()
    {
        const string json = """{"id":"/web","cmd":"x","env":{"PW":{"secret":"db-pw"}},"container":{"type":"MESOS","volumes":[]}}""";
        var app = Parse(json);

        Assert.Equal("db-pw", app.Env!["PW"].Secret);
        var root = JsonNode.Parse(MarathonJson.Serialize(app))!;
        Assert.Equal("db-pw", (string)root["env"]!["PW"]!["secret"]!);
        Assert.Equal("MESOS", (string)root["container"]!["type"]!);
    }

    [Fact]
    public void RequestedResources_ExactMilliCpusAndRoundedUpMiB()
    {
        var app = Parse("""{"id":"web","cmd":"x","cpus":0.1,"mem":10.5,"disk":0,"gpus":1}""");

        var r = app.RequestedResources;

        Assert.Equal(100, r.MilliCpus);
        Assert.Equal(11, r.MemMiB);
        Assert.Equal(0, r.DiskMiB);
        Assert.Equal(1, r.Gpus);
        Assert.True(r.Ports.IsEmpty);
    }

    [Fact]
    public void RequestedResources_Defaults_OneCpu128MiB() =>
        Assert.Equal("cpus:1;mem:128;disk:0", Parse("""{"id":"web","cmd":"x"}""").RequestedResources.ToString());

    [Theory]
    [InlineData("""{"id":"w","cmd":"x"}""", 1)]
    [InlineData("""{"id":"w","cmd":"x","ports":[0,0,0]}""", 3)]
    [InlineData("""{"id":"w","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}""", 2)]
    [InlineData("""{"id":"w","cmd":"x","portDefinitions":[]}""", 0)]
    public void PortCount_FromDefinitionsPortsOrDefault(string json, int expected) =>
        Assert.Equal(expected, Parse(json).PortCount);

    [Fact]
    public void RequiredHostPorts_OnlyWithRequirePorts()
    {
        Assert.Equal([8080], Parse("""{"id":"w","cmd":"x","ports":[8080,0],"requirePorts":true}""").RequiredHostPorts.ToArray());
        Assert.Empty(Parse("""{"id":"w","cmd":"x","ports":[8080,0]}""").RequiredHostPorts);
    }

    [Fact]
    public void TryParseApp_IntegralFloatForIntField_Accepted()
    {
        var app = Parse("""{"id":"w","cmd":"x","instances":2.0,"backoffSeconds":1e1,"cpus":1,"mem":64.0}""");

        Assert.Equal(2, app.Instances);
        Assert.Equal(10, app.BackoffSeconds);
        Assert.Equal(1m, app.Cpus);
        Assert.Equal(64m, app.Mem);
    }

    [Fact]
    public void TryParseApp_NullFields_TreatedAsAbsent()
    {
        var app = Parse("""{"id":"w","cmd":"x","instances":null,"container":null,"ipAddress":null,"user":null,"args":null}""");

        Assert.Null(app.Instances);
        Assert.Null(app.Container);
        Assert.Null(app.IpAddress);
        Assert.Null(MarathonValidator.Validate(app));
    }

    [Theory]
    [InlineData("""{"id":"w","instances":1.5}""", "/instances", "error.expected.int")]
    [InlineData("""{"id":"w","instances":"3"}""", "/instances", "error.expected.jsnumber")]
    [InlineData("""{"id":"w","cpus":"1"}""", "/cpus", "error.expected.jsnumber")]
    [InlineData("""{"id":123}""", "/id", "error.expected.jsstring")]
    [InlineData("""{"id":"w","requirePorts":"yes"}""", "/requirePorts", "error.expected.jsboolean")]
    [InlineData("""{"id":"w","args":"echo"}""", "/args", "error.expected.jsarray")]
    [InlineData("""{"id":"w","upgradeStrategy":5}""", "/upgradeStrategy", "error.expected.jsobject")]
    [InlineData("""{"id":"w","healthChecks":[{"portIndex":"0"}]}""", "/healthChecks(0)/portIndex", "error.expected.jsnumber")]
    [InlineData("""{"id":"w","constraints":[["hostname",5]]}""", "/constraints(0)(1)", "error.expected.jsstring")]
    [InlineData("""{"id":"w","env":{"A":5}}""", "/env/A", "error.expected.jsstring")]
    [InlineData("""{"id":"w","labels":{"a.b":true}}""", "/labels/a.b", "error.expected.jsstring")]
    [InlineData("""{"id":"w","unreachableStrategy":"sometimes"}""", "/unreachableStrategy", "error.unknown.enum.literal")]
    [InlineData("""{"id":"w","env":["A=1"]}""", "/env", "error.expected.jsobject")]
    [InlineData("""{"id":"w","healthChecks":[5]}""", "/healthChecks(0)", "error.expected.jsobject")]
    [InlineData("""{"id":"w","constraints":["hostname:UNIQUE"]}""", "/constraints(0)", "error.expected.jsarray")]
    [InlineData("""{"id":"w","ports":[0.5]}""", "/ports(0)", "error.expected.int")]
    [InlineData("""{"id":"w","unreachableStrategy":{"inactiveAfterSeconds":"1"}}""", "/unreachableStrategy", "error.expected.jsnumber")]
    [InlineData("""[]""", "/", "error.expected.jsobject")]
    public void TryParseApp_WrongJsonType_InvalidJson422WithPath(string json, string path, string expected)
    {
        Assert.False(MarathonJson.TryParseApp(json, out _, out var error));

        Assert.Equal("Invalid JSON", error.Message);
        Assert.Equal(422, error.StatusCode);
        var detail = Assert.Single(error.Details);
        Assert.Equal(path, detail.Path);
        Assert.Equal([expected], detail.Errors.ToArray());
    }

    [Theory]
    [InlineData("""{"id":"w",""")]
    [InlineData("""not json""")]
    [InlineData("")]
    public void TryParseApp_MalformedJson_400(string json)
    {
        Assert.False(MarathonJson.TryParseApp(json, out _, out var error));

        Assert.Equal("Invalid JSON", error.Message);
        Assert.Equal(400, error.StatusCode);
    }

    [Fact]
    public void TryParseApp_Null_InvalidJson() =>
        Assert.False(MarathonJson.TryParseApp("null", out _, out _));

    [Theory]
    [InlineData("$", "/")]
    [InlineData("$.cpus", "/cpus")]
    [InlineData("$.healthChecks[0].portIndex", "/healthChecks(0)/portIndex")]
    [InlineData("$.constraints[2][1]", "/constraints(2)(1)")]
    [InlineData("$.env['A.B']", "/env/A.B")]
    [InlineData("$.portDefinitions[1].labels['x y']", "/portDefinitions(1)/labels/x y")]
    public void ToMarathonPath_ConvertsJsonPath(string jsonPath, string expected) =>
        Assert.Equal(expected, MarathonJson.ToMarathonPath(jsonPath));

    [Fact]
    public void Serialize_Error_MarathonShape()
    {
        var error = new MarathonError
        {
            Message = "Object is not valid",
            Details = [new MarathonErrorDetail("/cpus", ["error.min"])],
        };

        Assert.Equal("""{"message":"Object is not valid","details":[{"path":"/cpus","errors":["error.min"]}]}""", MarathonJson.Serialize(error));
    }

    [Fact]
    public void Serialize_Decimals_WrittenExactly()
    {
        var json = MarathonJson.Serialize(Parse("""{"id":"w","cmd":"x","cpus":0.1,"backoffFactor":1.15}""").WithDefaults());

        using var doc = JsonDocument.Parse(json);
        Assert.Equal("0.1", doc.RootElement.GetProperty("cpus").GetRawText());
        Assert.Equal("1.15", doc.RootElement.GetProperty("backoffFactor").GetRawText());
    }
}
