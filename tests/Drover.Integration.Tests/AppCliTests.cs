using System.Text.Json;

namespace Drover.Integration.Tests;

/// <summary>
/// <c>drover app …</c> and <c>drover deployment …</c> against a real <c>drover dev</c> process, with
/// services that serve HTTP and pass (or never pass) an HTTP health check. Each test has its own app.
/// </summary>
public sealed class AppCliTests(DevClusterFixture cluster) : IClassFixture<DevClusterFixture>
{
    private const string HttpServer = "python3 -m http.server $PORT0";

    [Fact]
    public async Task AppDeploy_YamlWithHealthCheck_ExitsZeroAndLsShowsAllHealthy()
    {
        if (!cluster.Available)
        {
            return;
        }

        var deploy = await cluster.Cli("app", "deploy", WriteYaml("/app-cli-deploy", HttpServer, 2));
        var ls = await cluster.Cli("app", "ls");

        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        Assert.Contains("finished", deploy.StdOut, StringComparison.Ordinal);
        Assert.True(ls.ExitCode == 0, ls.ToString());
        var row = Row(ls.StdOut, "/app-cli-deploy");
        Assert.Equal("2/2", row[1]); // INSTANCES running/wanted
        Assert.Equal("2/2", row[2]); // HEALTHY
    }

    [Fact]
    public async Task AppScaleWait_OneToThree_ThreeRunning()
    {
        if (!cluster.Available)
        {
            return;
        }

        await DeployAsync("/app-cli-scale", HttpServer, 1);

        var scale = await cluster.Cli("app", "scale", "app-cli-scale", "3", "--wait"); // relative id
        var app = await ShowAsync("/app-cli-scale");

        Assert.True(scale.ExitCode == 0, scale.ToString());
        Assert.Equal(3, app.GetProperty("instances").GetInt32());
        Assert.Equal(3, app.GetProperty("tasksRunning").GetInt32());
        Assert.Equal(3, app.GetProperty("tasksHealthy").GetInt32());
    }

    [Fact]
    public async Task AppRestartWait_NestedId_AllInstancesOnNewVersion()
    {
        if (!cluster.Available)
        {
            return;
        }

        await DeployAsync("/app-cli/restarted", HttpServer, 2);
        var before = (await ShowAsync("/app-cli/restarted")).GetProperty("version").GetString();

        var restart = await cluster.Cli("app", "restart", "/app-cli/restarted", "--wait");
        var app = await ShowAsync("app-cli/restarted");

        Assert.True(restart.ExitCode == 0, restart.ToString());
        var after = app.GetProperty("version").GetString();
        Assert.NotEqual(before, after);
        var tasks = app.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal(2, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(after, t.GetProperty("version").GetString()));
        Assert.All(tasks, t => Assert.Equal("TASK_RUNNING", t.GetProperty("state").GetString()));
    }

    [Fact]
    public async Task AppDeploy_NegativeCpus_ExitsTwoNamingThePath()
    {
        if (!cluster.Available)
        {
            return;
        }

        var r = await cluster.Cli("app", "deploy", WriteYaml("/app-cli-invalid", "sleep 1000", 1, cpus: "-1"));

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("/cpus: ", r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("/app-cli-invalid", (await cluster.Cli("app", "ls")).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AppRm_DeployedApp_GoneFromLs()
    {
        if (!cluster.Available)
        {
            return;
        }

        await DeployAsync("/app-cli-rm", HttpServer, 1);
        Assert.Contains("/app-cli-rm", (await cluster.Cli("app", "ls")).StdOut, StringComparison.Ordinal);

        var rm = await cluster.Cli("app", "rm", "/app-cli-rm", "--wait");
        var ls = await cluster.Cli("app", "ls");

        Assert.True(rm.ExitCode == 0, rm.ToString());
        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.DoesNotContain("/app-cli-rm", ls.StdOut, StringComparison.Ordinal);
        Assert.Equal(2, (await cluster.Cli("app", "show", "/app-cli-rm")).ExitCode);
    }

    [Fact]
    public async Task DeploymentRollback_NewVersionNeverHealthy_RestoresOldVersion()
    {
        if (!cluster.Available)
        {
            return;
        }

        const string id = "/app-cli-rollback";
        await DeployAsync(id, HttpServer, 1);

        // The new version never answers its HTTP health check, so its deployment never finishes.
        var stuck = await cluster.Cli("app", "deploy", WriteYaml(id, "sleep 1000", 1), "--timeout", "3s");
        Assert.True(stuck.ExitCode == 1, stuck.ToString());
        Assert.Contains("did not finish", stuck.StdErr, StringComparison.Ordinal);
        Assert.Contains("health check", stuck.StdErr, StringComparison.Ordinal);

        var deployments = await cluster.Cli("deployment", "ls", "--json");
        Assert.True(deployments.ExitCode == 0, deployments.ToString());
        using var doc = JsonDocument.Parse(deployments.StdOut);
        var deploymentId = doc.RootElement.EnumerateArray()
            .Single(d => d.GetProperty("affectedApps").EnumerateArray().Any(a => a.GetString() == id))
            .GetProperty("id").GetString()!;

        var rollback = await cluster.Cli("deployment", "rollback", deploymentId, "--wait");
        var app = await ShowAsync(id);

        Assert.True(rollback.ExitCode == 0, rollback.ToString());
        Assert.Equal(HttpServer, app.GetProperty("cmd").GetString());
        Assert.Empty(app.GetProperty("deployments").EnumerateArray());
        var task = Assert.Single(app.GetProperty("tasks").EnumerateArray());
        Assert.Equal(app.GetProperty("version").GetString(), task.GetProperty("version").GetString());
        Assert.Equal(1, app.GetProperty("tasksHealthy").GetInt32());
    }

    private async Task DeployAsync(string id, string cmd, int instances)
    {
        var r = await cluster.Cli("app", "deploy", WriteYaml(id, cmd, instances), "--timeout", "30s");
        Assert.True(r.ExitCode == 0, $"deploying {id}: {r}");
    }

    private async Task<JsonElement> ShowAsync(string id)
    {
        var r = await cluster.Cli("app", "show", id, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        return doc.RootElement.Clone();
    }

    /// <summary>An app serving HTTP on its one port, health-checked every second.</summary>
    private string WriteYaml(string id, string cmd, int instances, string cpus = "0.05")
    {
        var path = Path.Combine(cluster.DataDir, id.Trim('/').Replace('/', '-') + "-" + Guid.NewGuid().ToString("N")[..8] + ".yaml");
        File.WriteAllText(path, $"""
            # a Marathon app definition, as YAML
            id: {id}
            cmd: "{cmd}"
            instances: {instances}
            cpus: {cpus}
            mem: 64
            portDefinitions:
              - port: 0
                name: http
            healthChecks:
              - protocol: HTTP
                path: /
                portIndex: 0
                gracePeriodSeconds: 10
                intervalSeconds: 1
                timeoutSeconds: 1
                delaySeconds: 0
                maxConsecutiveFailures: 3
            upgradeStrategy:
              minimumHealthCapacity: 1
              maximumOverCapacity: 1
            labels:
              owner: app-cli-tests
            """);
        return path;
    }

    /// <summary>The columns of the table row whose first column is <paramref name="id"/>.</summary>
    private static string[] Row(string table, string id) =>
        table.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).FirstOrDefault(c => c.Length > 0 && c[0] == id)
        ?? throw new Xunit.Sdk.XunitException($"no row for {id} in:\n{table}");
}
