using Drover.Core.Marathon;
using static Drover.Core.Tests.Marathon.MarathonTestSupport;

namespace Drover.Core.Tests.Marathon;

public class MarathonValidatorTests
{
    // ---- Examples from Marathon's documentation, as published ----

    [Fact]
    public void Validate_ApplicationBasicsHelloMarathon_Valid()
    {
        // "Application Basics": basic-0.
        var app = Valid("""
            {
                "id": "basic-0",
                "cmd": "while [ true ] ; do echo 'Hello Marathon' ; sleep 5 ; done",
                "cpus": 0.1,
                "mem": 10.0,
                "instances": 1
            }
            """);

        Assert.Equal("/basic-0", app.WithDefaults().Id);
        Assert.Equal("cpus:0.1;mem:10;disk:0", app.RequestedResources.ToString());
        Assert.Equal(1, app.PortCount);
    }

    [Fact]
    public void Validate_PythonSimpleHttpServerExample_Valid()
    {
        // examples/PythonSimpleHTTPServer.json in Marathon's repository.
        var app = Valid("""
            {
              "id": "http",
              "cmd": "python -m SimpleHTTPServer $PORT",
              "mem": 50,
              "cpus": 0.1,
              "instances": 1,
              "constraints": [
                ["hostname", "UNIQUE"]
              ]
            }
            """);

        Assert.Equal(["hostname", "UNIQUE"], app.Constraints!.Value[0].ToArray());
    }

    [Fact]
    public void Validate_PythonHttpServerWithHttpHealthCheck_Valid()
    {
        // The "Health Checks" page's options on a python3 http.server app with a named port.
        Valid("""
            {
              "id": "http-index-test",
              "cmd": "python3 -m http.server $PORT0",
              "cpus": 1,
              "mem": 128,
              "disk": 0,
              "instances": 1,
              "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http"}],
              "requirePorts": false,
              "env": {},
              "labels": {},
              "healthChecks": [
                {
                  "path": "/api/health",
                  "portIndex": 0,
                  "protocol": "HTTP",
                  "gracePeriodSeconds": 300,
                  "intervalSeconds": 60,
                  "timeoutSeconds": 20,
                  "maxConsecutiveFailures": 3,
                  "ignoreHttp1xx": false
                }
              ]
            }
            """);
    }

    [Fact]
    public void Validate_HealthCheckPageTcpAndCommandExamples_Valid()
    {
        Valid("""
            {
              "id": "checked",
              "cmd": "./serve",
              "healthChecks": [
                {"portIndex": 0, "protocol": "TCP", "gracePeriodSeconds": 300, "intervalSeconds": 60,
                 "timeoutSeconds": 20, "maxConsecutiveFailures": 0},
                {"protocol": "COMMAND", "command": {"value": "curl -f -X GET http://$HOST:$PORT0/health"},
                 "gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3}
              ]
            }
            """);
    }

    [Theory]
    [InlineData("""[["hostname", "UNIQUE"]]""")]
    [InlineData("""[["rack_id", "CLUSTER", "rack-1"]]""")]
    [InlineData("""[["hostname", "CLUSTER", "a.specific.node.com"]]""")]
    [InlineData("""[["rack_id", "GROUP_BY"]]""")]
    [InlineData("""[["rack_id", "GROUP_BY", "3"]]""")]
    [InlineData("""[["rack_id", "LIKE", "rack-[1-3]"]]""")]
    [InlineData("""[["rack_id", "UNLIKE", "rack-[7-9]"]]""")]
    [InlineData("""[["rack_id", "MAX_PER", "2"]]""")]
    [InlineData("""[["@zone", "IS", "us-east-1a"]]""")]
    public void Validate_ConstraintsPageExamples_Valid(string constraints) =>
        Valid($$$"""{"id": "sleep-constraint", "cmd": "sleep 60", "instances": 3, "constraints": {{{constraints}}}}""");

    [Fact]
    public void Validate_PortsPageVipExample_Valid()
    {
        var app = Valid("""
            {
              "id": "acme",
              "cmd": "./acme --port $PORT0",
              "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "acme", "labels": {"VIP_0": "/acme:10000"}}]
            }
            """);

        Assert.Equal("/acme:10000", app.PortDefinitions!.Value[0].Labels!["VIP_0"]);
    }

    [Fact]
    public void Validate_PortsPageRequirePortsExample_Valid()
    {
        var app = Valid("""{"id": "fixed", "cmd": "./serve", "ports": [2001, 2002, 3000], "requirePorts": true}""");

        Assert.Equal([2001, 2002, 3000], app.RequiredHostPorts.ToArray());
    }

    [Fact]
    public void Validate_ReadinessChecksPageExample_Valid()
    {
        Valid("""
            {
              "id": "ready",
              "cmd": "./serve",
              "portDefinitions": [{"port": 0, "name": "http-api"}],
              "readinessChecks": [
                {
                  "name": "readinessCheck",
                  "protocol": "HTTP",
                  "path": "/",
                  "portName": "http-api",
                  "intervalSeconds": 30,
                  "timeoutSeconds": 10,
                  "httpStatusCodesForReady": [ 200 ],
                  "preserveLastResponse": false
                }
              ]
            }
            """);
    }

    [Fact]
    public void Validate_DcosExportWithEmptyCollections_Valid()
    {
        // What DC/OS exports for a plain command app: every field spelled out, empties included.
        Valid("""
            {
              "id": "/tenant/basic-task",
              "backoffFactor": 1.15, "backoffSeconds": 1,
              "cmd": "python3 -m http.server $PORT0",
              "container": null,
              "cpus": 0.5, "disk": 0, "instances": 1, "maxLaunchDelaySeconds": 300, "mem": 32, "gpus": 0,
              "networks": [{"mode": "host"}],
              "portDefinitions": [{"port": 10000, "protocol": "tcp", "name": "default"}],
              "requirePorts": false,
              "upgradeStrategy": {"maximumOverCapacity": 1, "minimumHealthCapacity": 1},
              "killSelection": "YOUNGEST_FIRST",
              "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
              "healthChecks": [], "fetch": [], "constraints": [], "storeUrls": [], "dependencies": [],
              "env": {}, "labels": {}, "secrets": {}, "executor": "", "role": "*",
              "acceptedResourceRoles": ["*"], "ipAddress": null, "residency": null,
              "version": "2024-01-02T03:04:05.678Z",
              "versionInfo": {"lastScalingAt": "2024-01-02T03:04:05.678Z", "lastConfigChangeAt": "2024-01-02T03:04:05.678Z"},
              "tasksStaged": 0, "tasksRunning": 1, "tasksHealthy": 0, "tasksUnhealthy": 0, "deployments": []
            }
            """);
    }

    [Fact]
    public void Validate_ArgsInsteadOfCmd_Valid() =>
        Valid("""{"id": "args", "args": ["/bin/sleep", "100"]}""");

    [Fact]
    public void Validate_GpusAndImagelessMesosContainer_Valid() =>
        Valid("""{"id": "gpu", "cmd": "nvidia-smi", "gpus": 2, "container": {"type": "MESOS", "volumes": []}}""");

    [Fact]
    public void Validate_AlreadyDefaulted_StillValid()
    {
        var app = Valid("""{"id": "web", "cmd": "x", "healthChecks": [{"protocol": "MESOS_TCP"}]}""");

        Assert.Null(MarathonValidator.Validate(app.WithDefaults()));
    }

    // ---- Id ----

    [Fact]
    public void Validate_MissingId_PathMissing() =>
        OnlyError("""{"cmd": "x"}""", "/id", "error.path.missing");

    [Theory]
    [InlineData("/Web", "error.pattern")]
    [InlineData("", "error.minLength")]
    [InlineData("/prod/tasks", "must not end with any of the following reserved keywords: restart, tasks, versions")]
    [InlineData("/", "Path must contain at least one path element")]
    [InlineData("..", "Path must contain at least one path element")]
    [InlineData("./web", "error.pattern")]
    public void Validate_BadId_IdError(string id, string expected) =>
        OnlyError($$"""{"id": "{{id}}", "cmd": "x"}""", "/id", expected);

    [Theory]
    [InlineData("web")]
    [InlineData("/prod/web")]
    [InlineData("../prod/web")]
    public void Validate_IdInParentGroup_Valid(string id) =>
        Valid($$"""{"id": "{{id}}", "cmd": "x"}""", "/prod");

    [Theory]
    [InlineData("/other/web")]
    [InlineData("a/web")]
    [InlineData("../web")]
    public void Validate_IdNotDirectlyInParentGroup_NotChildError(string id)
    {
        var error = Invalid($$"""{"id": "{{id}}", "cmd": "x"}""", "/prod");

        HasError(error, "/id", "Identifier is not child of /prod. Hint: use relative paths.");
    }

    [Fact]
    public void Validate_NestedRelativeIdWithoutParent_Valid() =>
        Assert.Equal("/a/b/web", Valid("""{"id": "a/b/web", "cmd": "x"}""").WithDefaults().Id);

    // ---- Command ----

    [Theory]
    [InlineData("""{"id": "w"}""")]
    [InlineData("""{"id": "w", "cmd": "x", "args": ["y"]}""")]
    [InlineData("""{"id": "w", "args": []}""")]
    public void Validate_NotExactlyOneOfCmdArgs_RootError(string json) =>
        OnlyError(json, "/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.");

    [Fact]
    public void Validate_EmptyCmd_MinLength()
    {
        var error = Invalid("""{"id": "w", "cmd": ""}""");

        HasError(error, "/cmd", "error.minLength");
    }

    [Fact]
    public void Validate_NullArg_ExpectedString() =>
        OnlyError("""{"id": "w", "args": ["a", null]}""", "/args(1)", "error.expected.jsstring");

    // ---- Resources and scalars ----

    [Theory]
    [InlineData("cpus", "0", "error.min")]
    [InlineData("cpus", "0.0009", "error.min")]
    [InlineData("cpus", "2000000", "error.max")]
    [InlineData("mem", "-1", "error.min")]
    [InlineData("mem", "1e15", "error.max")]
    [InlineData("disk", "-0.5", "error.min")]
    [InlineData("gpus", "-1", "error.min")]
    [InlineData("instances", "-1", "error.min")]
    [InlineData("backoffSeconds", "-1", "error.min")]
    [InlineData("backoffFactor", "0.99", "error.min")]
    [InlineData("maxLaunchDelaySeconds", "-1", "error.min")]
    [InlineData("taskKillGracePeriodSeconds", "-1", "error.min")]
    [InlineData("killSelection", "\"RANDOM\"", "error.unknown.enum.literal")]
    public void Validate_ScalarOutOfRange_FieldError(string field, string value, string expected) =>
        OnlyError($$$"""{"id": "w", "cmd": "x", "{{{field}}}": {{{value}}}}""", "/" + field, expected);

    [Theory]
    [InlineData("cpus", "0.001")]
    [InlineData("mem", "0")]
    [InlineData("instances", "0")]
    [InlineData("backoffFactor", "1")]
    [InlineData("killSelection", "\"oldest_first\"")]
    public void Validate_ScalarAtBoundary_Valid(string field, string value) =>
        Valid($$$"""{"id": "w", "cmd": "x", "{{{field}}}": {{{value}}}}""");

    // ---- Env and labels ----

    [Fact]
    public void Validate_SecretEnvReferenceToAnUndefinedSecret_MarathonMessage() =>
        OnlyError("""{"id": "w", "cmd": "x", "env": {"PW": {"secret": "db"}}}""", "/env/PW", "references an undefined secret");

    // ---- Secrets ----

    [Fact]
    public void Validate_SecretsInEnvAndVolumes_ValidAndModelled()
    {
        var app = Valid("""
            {
              "id": "/team-a/web", "cmd": "x",
              "secrets": {"db": {"source": "/team-a/db-password"}, "cert": {"source": "team-a/tls/cert.pem"}},
              "env": {"DB_PASSWORD": {"secret": "db"}, "PLAIN": "1"},
              "container": {"type": "MESOS", "volumes": [{"containerPath": "tls/cert.pem", "secret": "cert"}]}
            }
            """);

        Assert.Equal("/team-a/db-password", app.Secrets!["db"].Source);
        Assert.Equal([new SecretVolume("tls/cert.pem", "cert")], app.SecretVolumes.ToArray());
        Assert.Equal("db", app.Env!["DB_PASSWORD"].Secret);
    }

    [Theory]
    [InlineData("""{"secrets": {"db": {"source": "team-a//db"}}}""", "/secrets/db/source", "'team-a//db' has an empty segment (a secret path is segments separated by single '/', without a trailing '/')")]
    [InlineData("""{"secrets": {"db": {"source": "team a/db"}}}""", "/secrets/db/source", "'team a/db' may contain only letters, digits, '.', '_' and '-' between its '/'")]
    [InlineData("""{"secrets": {"db": {"source": "../team-b/db"}}}""", "/secrets/db/source", "'../team-b/db' has a '..' segment")]
    [InlineData("""{"secrets": {"db": {}}}""", "/secrets/db/source", "must be the secret's path in the secret store")]
    [InlineData("""{"secrets": {"db": {"source": "a", "key": "k"}}}""", "/secrets/db/key", "Drover does not know this field")]
    [InlineData("""{"container": {"volumes": [{"containerPath": "pw", "secret": "nope"}]}}""", "/container/volumes(0)/secret", "references an undefined secret")]
    [InlineData("""{"secrets": {"s": {"source": "a"}}, "container": {"volumes": [{"containerPath": "/etc/pw", "secret": "s"}]}}""", "/container/volumes(0)/containerPath", "'/etc/pw' is absolute: a secret file goes inside the task's sandbox, so its path is relative to it")]
    [InlineData("""{"secrets": {"s": {"source": "a"}}, "container": {"volumes": [{"containerPath": "../../x", "secret": "s"}]}}""", "/container/volumes(0)/containerPath", "'../../x' must be file names separated by single '/', without '.' or '..'")]
    [InlineData("""{"secrets": {"s": {"source": "a"}}, "container": {"volumes": [{"containerPath": "stdout", "secret": "s"}]}}""", "/container/volumes(0)/containerPath", "'stdout' is the task's own output file")]
    [InlineData("""{"secrets": {"s": {"source": "a"}}, "container": {"volumes": [{"containerPath": "p", "secret": "s", "mode": "RW"}]}}""", "/container/volumes(0)/mode", "Drover does not know this field")]
    public void Validate_BadSecretOrSecretVolume_RejectedWithPath(string fields, string path, string expected) =>
        OnlyError(WithFields(fields), path, expected);

    [Fact]
    public void Validate_TwoSecretVolumesOnOnePath_Rejected() =>
        OnlyError(WithFields("""{"secrets": {"s": {"source": "a"}}, "container": {"volumes": [{"containerPath": "p", "secret": "s"}, {"containerPath": "p", "secret": "s"}]}}"""),
            "/container/volumes(1)/containerPath", "secret volume container paths must be unique");

    [Fact]
    public void Validate_EnvNameTooLong_MarathonMessage() =>
        OnlyError("{\"id\": \"w\", \"cmd\": \"x\", \"env\": {\"" + new string('A', 255) + "\": \"1\"}}", "/env/" + new string('A', 255), "variable name must be 254 chars or less");

    [Fact]
    public void Validate_EnvNameWithEquals_Rejected() =>
        OnlyError("""{"id": "w", "cmd": "x", "env": {"A=B": "1"}}""", "/env/A=B", "an environment variable name must not contain '=' or NUL");

    [Fact]
    public void Validate_EnvNullValue_ExpectedString() =>
        OnlyError("""{"id": "w", "cmd": "x", "env": {"A": null}}""", "/env/A", "error.expected.jsstring");

    [Fact]
    public void Validate_SingleInstanceLabelWithTwoInstances_RootError() =>
        OnlyError("""{"id": "w", "cmd": "x", "instances": 2, "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}}""", "/", "Single instance app may only have one instance");

    // ---- Ports ----

    [Theory]
    [InlineData("""{"portDefinitions": [{"port": -1}]}""", "/portDefinitions(0)/port", "error.min")]
    [InlineData("""{"portDefinitions": [{"port": 65536}]}""", "/portDefinitions(0)/port", "error.max")]
    [InlineData("""{"portDefinitions": [{"port": 0, "protocol": "sctp"}]}""", "/portDefinitions(0)/protocol", "error.unknown.enum.literal")]
    [InlineData("""{"portDefinitions": [{"port": 0, "name": "Http_API"}]}""", "/portDefinitions(0)/name", "error.pattern")]
    [InlineData("""{"portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "http"}]}""", "/portDefinitions", "Port names must be unique.")]
    [InlineData("""{"portDefinitions": [{"port": 8080}, {"port": 8080}]}""", "/portDefinitions", "Ports must be unique.")]
    [InlineData("""{"ports": [8080, 8080]}""", "/", "ports must be unique")]
    [InlineData("""{"ports": [70000]}""", "/ports(0)", "error.max")]
    [InlineData("""{"ports": [0], "portDefinitions": [{"port": 0}, {"port": 0}]}""", "/", "cannot specify both ports and port definitions")]
    [InlineData("""{"portDefinitions": [{"port": 0, "host": "x"}]}""", "/portDefinitions(0)/host", "Drover does not know this field")]
    public void Validate_BadPorts_PortError(string fields, string path, string expected) =>
        OnlyError(WithFields(fields), path, expected);

    [Theory]
    [InlineData("""{"portDefinitions": [{"port": 0}, {"port": 0}, {"port": 0}]}""")]
    [InlineData("""{"ports": [0, 0, 0]}""")]
    [InlineData("""{"ports": [8080], "portDefinitions": [{"port": 8080, "name": "http"}]}""")]
    [InlineData("""{"portDefinitions": [{"port": 0, "protocol": "udp,tcp"}, {"port": 0, "protocol": "tcp,udp"}]}""")]
    public void Validate_GoodPorts_Valid(string fields) => Valid(WithFields(fields));

    // ---- Constraints ----

    [Theory]
    [InlineData("""["hostname"]""", "Each constraint must have either 2 or 3 fields")]
    [InlineData("""["hostname", "UNIQUE", "a", "b"]""", "Each constraint must have either 2 or 3 fields")]
    [InlineData("""["", "UNIQUE"]""", "Missing field and operator")]
    [InlineData("""["hostname", "SPREAD"]""", "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS")]
    [InlineData("""["hostname", "unique"]""", "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS")]
    [InlineData("""["hostname", "UNIQUE", "x"]""", "Value specified but not used")]
    [InlineData("""["rack", "CLUSTER"]""", "Missing value")]
    [InlineData("""["rack", "GROUP_BY", "many"]""", "Value was specified but is not a number")]
    [InlineData("""["rack", "MAX_PER"]""", "Value was not specified or is not a number")]
    [InlineData("""["rack", "MAX_PER", "two"]""", "Value was not specified or is not a number")]
    [InlineData("""["rack", "LIKE"]""", "A regular expression value must be provided")]
    [InlineData("""["rack", "UNLIKE", "rack-[1"]""", "'rack-[1' is not a valid regular expression")]
    [InlineData("""["rack", "MAX_PER", "0"]""", "MAX_PER needs a whole number of at least 1")]
    [InlineData("""["rack", "IS"]""", "IS needs a value")]
    public void Validate_BadConstraint_ConstraintError(string constraint, string expected) =>
        OnlyError(WithFields("""{"constraints": [""" + constraint + "]}"), "/constraints(0)", expected);

    [Fact]
    public void Validate_SecondConstraintBad_IndexedPath() =>
        OnlyError(WithFields("""{"constraints": [["hostname", "UNIQUE"], ["rack", "CLUSTER"]]}"""), "/constraints(1)", "Missing value");

    [Fact]
    public void Validate_NullInsideConstraint_ExpectedString() =>
        OnlyError(WithFields("""{"constraints": [["hostname", null]]}"""), "/constraints(0)(1)", "error.expected.jsstring");

    // ---- Health checks ----

    [Theory]
    [InlineData("""{"portDefinitions": [], "healthChecks": [{"protocol": "HTTP"}]}""", "/healthChecks(0)")]
    [InlineData("""{"healthChecks": [{"protocol": "HTTP", "portIndex": 1}]}""", "/healthChecks(0)")]
    [InlineData("""{"ports": [0, 0], "healthChecks": [{"protocol": "TCP"}, {"protocol": "TCP", "portIndex": 2}]}""", "/healthChecks(1)")]
    [InlineData("""{"healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 3}]}""", "/healthChecks(0)")]
    public void Validate_HealthCheckPortIndexOutOfRange_MarathonMessage(string fields, string path) =>
        OnlyError(WithFields(fields), path, "Health check port indices must address an element of the ports array or container port mappings.");

    [Theory]
    [InlineData("""{"portDefinitions": [], "healthChecks": [{"protocol": "TCP", "port": 8080}]}""")]
    [InlineData("""{"portDefinitions": [], "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]}""")]
    [InlineData("""{"ports": [0, 0], "healthChecks": [{"protocol": "HTTPS", "portIndex": 1, "path": "/"}]}""")]
    [InlineData("""{"healthChecks": [{"protocol": "MESOS_HTTPS", "ipProtocol": "IPv6"}]}""")]
    public void Validate_HealthCheckPortAddressed_Valid(string fields) => Valid(WithFields(fields));

    [Theory]
    [InlineData("""{"protocol": "GRPC"}""", "/healthChecks(0)/protocol", "error.unknown.enum.literal")]
    [InlineData("""{"gracePeriodSeconds": -1}""", "/healthChecks(0)/gracePeriodSeconds", "error.min")]
    [InlineData("""{"intervalSeconds": -1}""", "/healthChecks(0)/intervalSeconds", "error.min")]
    [InlineData("""{"timeoutSeconds": -1}""", "/healthChecks(0)/timeoutSeconds", "error.min")]
    [InlineData("""{"maxConsecutiveFailures": -1}""", "/healthChecks(0)/maxConsecutiveFailures", "error.min")]
    [InlineData("""{"delaySeconds": -1}""", "/healthChecks(0)/delaySeconds", "error.min")]
    [InlineData("""{"protocol": "TCP", "port": 65536}""", "/healthChecks(0)/port", "error.max")]
    [InlineData("""{"protocol": "COMMAND"}""", "/healthChecks(0)/command", "error.path.missing")]
    [InlineData("""{"command": {}}""", "/healthChecks(0)/command/value", "error.path.missing")]
    [InlineData("""{"ipProtocol": "IPv5"}""", "/healthChecks(0)/ipProtocol", "error.unknown.enum.literal")]
    [InlineData("""{"interval": 5}""", "/healthChecks(0)/interval", "Drover does not know this field")]
    public void Validate_BadHealthCheckField_FieldError(string check, string path, string expected) =>
        OnlyError(WithFields("""{"healthChecks": [""" + check + "]}"), path, expected);

    [Fact]
    public void Validate_TwoMesosHealthChecks_RootError() =>
        OnlyError(WithFields("""{"healthChecks": [{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}]}"""), "/", "AppDefinition can contain at most one Mesos health check");

    [Fact]
    public void Validate_MesosAndCommandHealthChecks_Valid() =>
        Valid(WithFields("""{"healthChecks": [{"protocol": "MESOS_HTTP"}, {"command": {"value": "true"}}, {"command": {"value": "true"}}]}"""));

    // ---- Readiness checks ----

    [Fact]
    public void Validate_TwoReadinessChecks_AtMostOne()
    {
        var error = Invalid(WithFields("""{"portDefinitions": [{"port": 0, "name": "http-api"}], "readinessChecks": [{}, {}]}"""));

        HasError(error, "/readinessChecks", "got 2, expected 1 or less");
    }

    [Fact]
    public void Validate_ReadinessPortNameUnknown_MarathonMessage() =>
        OnlyError(WithFields("""{"readinessChecks": [{"portName": "admin"}]}"""), "/readinessChecks(0)/portName", "No port definition reference for portName admin");

    [Fact]
    public void Validate_ReadinessDefaultPortNameMissing_MarathonMessage() =>
        OnlyError(WithFields("""{"readinessChecks": [{}]}"""), "/readinessChecks(0)/portName", "No port definition reference for portName http-api");

    [Theory]
    [InlineData("""{"timeoutSeconds": 30}""", "/readinessChecks(0)/timeoutSeconds", "got 30, expected less than 30")]
    [InlineData("""{"intervalSeconds": 5}""", "/readinessChecks(0)/timeoutSeconds", "got 10, expected less than 5")]
    [InlineData("""{"protocol": "TCP"}""", "/readinessChecks(0)/protocol", "error.unknown.enum.literal")]
    [InlineData("""{"httpStatusCodesForReady": [200, 99]}""", "/readinessChecks(0)/httpStatusCodesForReady(1)", "error.min")]
    [InlineData("""{"httpStatusCodesForReady": [1000]}""", "/readinessChecks(0)/httpStatusCodesForReady(0)", "error.max")]
    [InlineData("""{"portName": "Http_Api"}""", "/readinessChecks(0)/portName", "error.pattern")]
    public void Validate_BadReadinessCheck_FieldError(string check, string path, string expected) =>
        OnlyError(WithFields("""{"portDefinitions": [{"port": 0, "name": "http-api"}], "readinessChecks": [""" + check + "]}"), path, expected);

    // ---- Strategies ----

    [Theory]
    [InlineData("""{"upgradeStrategy": {"minimumHealthCapacity": -0.1}}""", "/upgradeStrategy/minimumHealthCapacity", "error.min")]
    [InlineData("""{"upgradeStrategy": {"minimumHealthCapacity": 1.5}}""", "/upgradeStrategy/minimumHealthCapacity", "error.max")]
    [InlineData("""{"upgradeStrategy": {"maximumOverCapacity": -1}}""", "/upgradeStrategy/maximumOverCapacity", "error.min")]
    [InlineData("""{"upgradeStrategy": {"maximumOverCapacity": 2}}""", "/upgradeStrategy/maximumOverCapacity", "error.max")]
    [InlineData("""{"unreachableStrategy": {"inactiveAfterSeconds": -1, "expungeAfterSeconds": 10}}""", "/unreachableStrategy/inactiveAfterSeconds", "inactiveAfterSeconds (-1) must be greater than or equal to 0")]
    [InlineData("""{"unreachableStrategy": {"inactiveAfterSeconds": 700}}""", "/unreachableStrategy/inactiveAfterSeconds", "inactiveAfterSeconds (700) must be less or equal to expungeAfterSeconds, which is 600")]
    public void Validate_BadStrategy_FieldError(string fields, string path, string expected) =>
        OnlyError(WithFields(fields), path, expected);

    [Theory]
    [InlineData("""{"upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}""")]
    [InlineData("""{"unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}}""")]
    [InlineData("""{"unreachableStrategy": "disabled"}""")]
    public void Validate_GoodStrategy_Valid(string fields) => Valid(WithFields(fields));

    // ---- Dependencies ----

    [Theory]
    [InlineData("/prod/db")]
    [InlineData("../db")]
    [InlineData("db")]
    public void Validate_GoodDependency_Valid(string dependency) =>
        Valid($$"""{"id": "/prod/web", "cmd": "x", "dependencies": ["{{dependency}}"]}""");

    [Theory]
    [InlineData("/Prod/DB", "error.pattern")]
    [InlineData("../..", "Path must contain at least one path element")]
    public void Validate_BadDependency_IndexedError(string dependency, string expected) =>
        OnlyError($$"""{"id": "/prod/web", "cmd": "x", "dependencies": ["/prod/db", "{{dependency}}"]}""", "/dependencies(1)", expected);

    // ---- Fields Drover cannot honour: refused, naming the field ----

    [Theory]
    [InlineData("""{"container": {"type": "DOCKER", "docker": {"image": "python:3"}}}""", "/container/docker", "Drover does not support container images yet")]
    [InlineData("""{"container": {"type": "MESOS", "docker": {"image": "python:3"}}}""", "/container/docker", "Drover does not support container images yet")]
    [InlineData("""{"container": {"type": "MESOS", "appc": {"image": "x"}}}""", "/container/appc", "Drover does not support container images yet")]
    [InlineData("""{"container": {"type": "MESOS", "volumes": [{"containerPath": "data", "persistent": {"size": 10}}]}}""", "/container/volumes(0)", "Drover does not support volumes yet, except secret volumes ({\"containerPath\": \"path\", \"secret\": \"name\"})")]
    [InlineData("""{"container": {"type": "MESOS", "portMappings": [{"containerPort": 80}]}}""", "/container/portMappings", "Drover does not support container port mappings yet (only host networking)")]
    [InlineData("""{"container": {"type": "MESOS", "linuxInfo": {"seccomp": {"unconfined": true}}}}""", "/container/linuxInfo", "Drover does not support this container option yet")]
    [InlineData("""{"container": {"type": "DOCKER"}}""", "/container/type", "Drover does not support container images yet")]
    [InlineData("""{"container": {"type": "RKT"}}""", "/container/type", "error.unknown.enum.literal")]
    [InlineData("""{"container": "docker"}""", "/container", "error.expected.jsobject")]
    [InlineData("""{"fetch": [{"uri": "https://example.com/app.tgz"}]}""", "/fetch", "Drover does not support fetching artifacts yet")]
    [InlineData("""{"uris": ["https://example.com/app/cool-script.sh"]}""", "/uris", "Drover does not support fetching artifacts yet")]
    [InlineData("""{"storeUrls": ["https://example.com/x"]}""", "/storeUrls", "Drover does not support the artifact store yet")]
    [InlineData("""{"residency": {"taskLostBehavior": "WAIT_FOREVER"}}""", "/residency", "Drover does not support resident tasks (persistent volumes) yet")]
    [InlineData("""{"ipAddress": {"networkName": "dcos"}}""", "/ipAddress", "Drover does not support IP-per-task networking yet (only host networking)")]
    [InlineData("""{"networks": [{"mode": "container/bridge"}]}""", "/networks(0)/mode", "Drover supports only host networking yet: use a single {\"mode\": \"host\"}")]
    [InlineData("""{"networks": [{"name": "dcos"}]}""", "/networks(0)/mode", "Drover supports only host networking yet: use a single {\"mode\": \"host\"}")]
    [InlineData("""{"networks": [{"mode": "overlay"}]}""", "/networks(0)/mode", "error.unknown.enum.literal")]
    [InlineData("""{"executor": "/opt/executor"}""", "/executor", "Drover does not support custom executors yet (only \"\" or \"//cmd\")")]
    [InlineData("""{"user": "no body"}""", "/user", "must be a user name of up to 32 letters, digits, '_', '-' or '.'")]
    [InlineData("""{"acceptedResourceRoles": ["slave_public"]}""", "/acceptedResourceRoles", "Drover does not support resource roles yet (only \"*\")")]
    [InlineData("""{"acceptedResourceRoles": []}""", "/acceptedResourceRoles", "must not be empty")]
    [InlineData("""{"role": "slave_public"}""", "/role", "Drover does not support resource roles yet (only \"*\")")]
    [InlineData("""{"check": {"http": {"portIndex": 0, "path": "/"}}}""", "/check", "Drover does not support Mesos checks yet (use healthChecks)")]
    [InlineData("""{"tty": true}""", "/tty", "Drover does not support a TTY for tasks yet")]
    [InlineData("""{"resourceLimits": {"cpus": "unlimited"}}""", "/resourceLimits", "Drover does not support resource limits above the requested resources yet")]
    [InlineData("""{"cmdd": "typo"}""", "/cmdd", "Drover does not know this field")]
    [InlineData("""{"upgradeStrategy": {"minimumHealthCapacity": 1, "maxSurge": 2}}""", "/upgradeStrategy/maxSurge", "Drover does not know this field")]
    [InlineData("""{"unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSecs": 0}}""", "/unreachableStrategy/expungeAfterSecs", "Drover does not know this field")]
    public void Validate_UnsupportedField_RejectedWithPath(string fields, string path, string expected) =>
        OnlyError(WithFields(fields), path, expected);

    [Fact]
    public void Validate_TwoHostNetworks_Rejected() =>
        OnlyError(WithFields("""{"networks": [{"mode": "host"}, {"mode": "host"}]}"""), "/networks", "Drover supports only host networking yet: use a single {\"mode\": \"host\"}");

    [Fact]
    public void Validate_ApplicationBasicsDockerExample_RejectedOnContainerAndNetwork()
    {
        // "Application Basics": basic-3, a python:3 Docker image on the bridge network.
        var error = Invalid("""
            {
              "id": "basic-3",
              "cmd": "python3 -m http.server 8080",
              "cpus": 0.5,
              "mem": 32.0,
              "networks": [ { "mode": "container/bridge" } ],
              "container": {
                "type": "DOCKER",
                "docker": {
                  "image": "python:3"
                },
                "portMappings": [
                  { "containerPort": 8080, "hostPort": 0 }
                ]
              }
            }
            """);

        Assert.Equal(["/container/docker", "/container/portMappings", "/networks(0)/mode"], error.Details.Select(d => d.Path).ToArray());
    }

    [Fact]
    public void Validate_DockerImageWithoutCmd_OnlyImageRefused()
    {
        var error = Invalid("""{"id": "nginx", "container": {"type": "DOCKER", "docker": {"image": "nginx"}}}""");

        Assert.Empty(error.ErrorsAt("/"));
        HasError(error, "/container/docker", "Drover does not support container images yet");
    }

    [Fact]
    public void Validate_ApplicationBasicsUrisExample_RejectedOnUris()
    {
        // "Application Basics": basic-1.
        OnlyError("""
            {
                "id": "basic-1",
                "cmd": "`chmod u+x cool-script.sh && ./cool-script.sh`",
                "cpus": 0.1,
                "mem": 10.0,
                "instances": 1,
                "uris": [
                    "https://example.com/app/cool-script.sh"
                ]
            }
            """, "/uris", "Drover does not support fetching artifacts yet");
    }

    // ---- All at once ----

    [Fact]
    public void Validate_ManyProblems_AllReportedGroupedByPath()
    {
        var error = Invalid("""
            {
              "id": "/Bad_Id",
              "cpus": -1,
              "mem": -5,
              "instances": -2,
              "constraints": [["hostname", "NEAR"]],
              "healthChecks": [{"portIndex": 7, "intervalSeconds": -1}],
              "upgradeStrategy": {"minimumHealthCapacity": 2},
              "container": {"type": "DOCKER", "docker": {"image": "x"}},
              "env": {"PW": {"secret": "pw"}}
            }
            """);

        Assert.Equal(
            [
                "/id", "/container/docker", "/env/PW", "/instances", "/cpus", "/mem",
                "/constraints(0)", "/healthChecks(0)/intervalSeconds", "/healthChecks(0)",
                "/upgradeStrategy/minimumHealthCapacity",
            ],
            error.Details.Select(d => d.Path).ToArray());
        Assert.All(error.Details, d => Assert.Single(d.Errors));
        Assert.Equal(error.Details.Length, error.Details.Select(d => d.Path).Distinct().Count());
    }

    [Fact]
    public void Validate_TwoErrorsOnOnePath_OneDetailTwoErrors()
    {
        var error = Invalid("""{"id": "w", "cmd": "x", "acceptedResourceRoles": ["a"], "role": "b", "ports": [1, 1], "healthChecks": [{"protocol": "MESOS_TCP"}, {"protocol": "MESOS_HTTP"}]}""");

        Assert.Equal(["ports must be unique", "AppDefinition can contain at most one Mesos health check"], error.ErrorsAt("/").ToArray());
    }

    [Fact]
    public void Validate_Error_SerializesInMarathonShape()
    {
        var error = Invalid("""{"id": "w", "cmd": "x", "cpus": 0}""");

        Assert.Equal("""{"message":"Object is not valid","details":[{"path":"/cpus","errors":["error.min"]}]}""", MarathonJson.Serialize(error));
    }

    private static string WithFields(string fields) => """{"id": "w", "cmd": "x", """ + fields.TrimStart()[1..];
}
