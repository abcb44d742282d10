using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Drover.Client;
using Drover.Core.Security.Pki;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>Highly available masters serving HTTPS (the default): one cluster CA for all, created by whichever starts first.</summary>
public sealed class EtcdHaTlsMasterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-etcd-ha-tls-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private EtcdCluster? _etcd;

    public async Task InitializeAsync() => _etcd = await EtcdCluster.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_processes))
        {
            await p.DisposeAsync();
        }

        if (_etcd is not null)
        {
            await _etcd.DisposeAsync();
        }

        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task TwoMasters_StartingTogetherOnANewCluster_ShareOneCa_AndAnAgentJoinsThroughEither()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var password = Path.Combine(_root, "admin-password");
        await File.WriteAllTextAsync(password, "bootstrap-pw-1234\n");
        var secretsKey = SecretsKeyFiles.Create(Path.Combine(_root, "secrets.key")); // masters on etcd share it
        var masters = Enumerable.Range(1, 2).Select(i =>
        {
            var port = DevClusterFixture.FreePort();
            _processes.Add(DroverProcess.Start($"m{i}", ["master", "--data-dir", Path.Combine(_root, $"m{i}"), "--listen", $"127.0.0.1:{port}",
                "--store", _etcd!.StoreAddress, "--store-prefix", "/it-tls", "--leader-lease", "3", "--bootstrap-password-file", password, "--secrets-key-file", secretsKey, "--log-level", "warning"],
                logFile: Path.Combine(_root, $"m{i}.log")));
            return new Uri($"https://127.0.0.1:{port}/");
        }).ToList();

        // Both masters publish the same CA: the one the first of them stored.
        var fingerprints = new List<string>();
        for (var i = 1; i <= 2; i++)
        {
            fingerprints.Add(await TlsMasterFixture.WaitForCaAsync(_processes[i - 1], Path.Combine(_root, $"m{i}", "ca.pem")));
        }

        Assert.Single(fingerprints.Distinct());
        var roots = PemCertificates.LoadAll(await File.ReadAllTextAsync(Path.Combine(_root, "m1", "ca.pem"))).Value!;

        // The follower sends clients to the leader over HTTPS.
        using var raw = new HttpClient(AllowRedirects(MasterTls.CreateHandler(roots), false)) { Timeout = TimeSpan.FromSeconds(10) };
        var leader = await Wait.UntilAsync(async () =>
        {
            using var r = await raw.GetAsync(new Uri(masters[0], "master/redirect"));
            return r.StatusCode == HttpStatusCode.TemporaryRedirect ? r.Headers.Location : null;
        }, l => l is not null, Timeout, "a leader", retryOn: e => e is HttpRequestException or TaskCanceledException);
        Assert.Equal(Uri.UriSchemeHttps, leader!.Scheme);

        using var http = new HttpClient(MasterTls.CreateHandler(roots)) { Timeout = TimeSpan.FromSeconds(10) };
        var token = await Wait.UntilAsync(async () =>
        {
            using var login = await http.PostAsJsonAsync(new Uri(leader, "acs/api/v1/auth/login"), new JsonObject { ["uid"] = "admin", ["password"] = "bootstrap-pw-1234" });
            login.EnsureSuccessStatusCode();
            return JsonNode.Parse(await login.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        }, t => t.Length > 0, Timeout, "the admin's login on the leader", retryOn: e => e is HttpRequestException);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var client = new DroverClient(leader, http);
        var joinToken = (await client.CreateJoinTokenAsync(TimeSpan.FromMinutes(10))).Token;

        // An agent given both masters joins and registers through whichever answers (the follower redirects).
        _processes.Add(DroverProcess.Start("agent", ["agent", "--master", string.Join(',', masters.Select(m => m.GetLeftPart(UriPartial.Authority))),
            "--listen", $"127.0.0.1:{DevClusterFixture.FreePort()}", "--work-dir", Path.Combine(_root, "agent"), "--hostname", "tls-agent",
            "--resources", TestPorts.Resources("cpus:1;mem:512;disk:512"), "--kill-tasks-on-stop", "--join-token", joinToken, "--log-level", "information"],
            logFile: Path.Combine(_root, "agent.log")));
        var agent = await Wait.UntilAsync(async () => (await client.ListAgentsAsync()).SingleOrDefault(a => a.Hostname == "tls-agent" && a.Status == "active"),
            a => a is not null, Timeout, "the agent to join and register", retryOn: e => e is HttpRequestException);
        Assert.StartsWith("https://", agent!.Address, StringComparison.Ordinal);
    }

    private static System.Net.Http.SocketsHttpHandler AllowRedirects(System.Net.Http.SocketsHttpHandler handler, bool allow)
    {
        handler.AllowAutoRedirect = allow;
        return handler;
    }
}
