namespace Drover.Integration.Tests;

/// <summary>
/// <c>drover group …</c> against a real <c>drover dev</c> process: a group of two subgroups, one depending
/// on the other, deployed from YAML as one plan. Each test has its own group.
/// </summary>
public sealed class GroupCliTests(DevClusterFixture cluster) : IClassFixture<DevClusterFixture>
{
    [Fact]
    public async Task GroupDeploy_YamlWithDependentSubgroups_ExitsZeroAndLsShowsTreeThenRmRemovesIt()
    {
        if (!cluster.Available)
        {
            return;
        }

        var id = "/group-cli-" + Guid.NewGuid().ToString("N")[..6];
        var deploy = await cluster.Cli("group", "deploy", WriteYaml(id, cpus: "0.05"), "--timeout", "30s");
        var ls = await cluster.Cli("group", "ls", id);

        Assert.True(deploy.ExitCode == 0, deploy.ToString());
        Assert.Contains("finished", deploy.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{id}/db/store", deploy.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{id}/web/api", deploy.StdOut, StringComparison.Ordinal);
        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.Equal(new[] { "1/1", "1/1" }, Row(ls.StdOut, $"{id}/db/store")[1..3]); // running/wanted, healthy/wanted
        Assert.Equal(new[] { "1/1", "-" }, Row(ls.StdOut, $"{id}/web/api")[1..3]);
        Assert.Equal("2/2", Row(ls.StdOut, id)[1]);
        Assert.Equal("1/1", Row(ls.StdOut, $"{id}/db")[1]);
        Assert.Equal("1/1", Row(ls.StdOut, $"{id}/web")[1]);

        var rm = await cluster.Cli("group", "rm", id, "--wait", "--timeout", "30s");
        var gone = await cluster.Cli("group", "ls", id);

        Assert.True(rm.ExitCode == 0, rm.ToString());
        Assert.True(gone.ExitCode == 2, gone.ToString());
        Assert.DoesNotContain(id, (await cluster.Cli("app", "ls")).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GroupDeploy_AppWithNegativeCpus_ExitsTwoNamingTheApp()
    {
        if (!cluster.Available)
        {
            return;
        }

        var id = "/group-cli-invalid-" + Guid.NewGuid().ToString("N")[..6];
        var r = await cluster.Cli("group", "deploy", WriteYaml(id, cpus: "-1"));

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("/groups(0)/apps(0)/cpus: ", r.StdErr, StringComparison.Ordinal);
        Assert.Contains($"{id}/db/store", r.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, (await cluster.Cli("group", "ls", id)).ExitCode);
    }

    /// <summary>
    /// <c>ID/db</c> with one health-checked app, and <c>ID/web</c>, which depends on <c>ID/db</c>, with one app;
    /// <paramref name="cpus"/> is the db app's.
    /// </summary>
    private string WriteYaml(string id, string cpus)
    {
        var path = Path.Combine(cluster.DataDir, id.Trim('/') + ".yaml");
        File.WriteAllText(path, $"""
            # a Marathon group definition, as YAML
            id: {id}
            groups:
              - id: db
                apps:
                  - id: store
                    cmd: sleep 1000
                    cpus: {cpus}
                    mem: 16
                    healthChecks:
                      - protocol: COMMAND
                        command:
                          value: "true"
                        intervalSeconds: 1
                        gracePeriodSeconds: 10
                        delaySeconds: 0
              - id: web
                dependencies: [{id}/db]
                apps:
                  - id: api
                    cmd: sleep 1000
                    cpus: 0.05
                    mem: 16
            """);
        return path;
    }

    /// <summary>The columns of the table row whose first column is <paramref name="id"/> (after any tree drawing).</summary>
    private static string[] Row(string table, string id) =>
        table.Split('\n')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(c => !c.StartsWith('/')).ToArray())
            .FirstOrDefault(c => c.Length > 0 && c[0] == id)
        ?? throw new Xunit.Sdk.XunitException($"no row for {id} in:\n{table}");
}
