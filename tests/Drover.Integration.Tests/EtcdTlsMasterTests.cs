using System.Text;
using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Processes;
using Drover.Testing.Tls;

namespace Drover.Integration.Tests;

/// <summary>
/// <c>drover master --store etcd://… --store-ca --store-cert --store-key</c> as a real process on a
/// real etcd that serves only TLS and requires client certificates; and the flags refused before
/// anything starts.
/// </summary>
public sealed class EtcdTlsMasterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Directory.CreateTempSubdirectory("drover-etcd-tls-master-").FullName;
    private readonly List<DroverProcess> _processes = [];
    private const string Password = "tls-test-admin";
    private HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private HttpClient _noRedirect = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private EtcdCluster _etcd = null!;

    public async Task InitializeAsync() => _etcd = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 1, Tls = new EtcdClusterTlsOptions() });

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            await p.DisposeAsync();
        }

        if (_etcd is not null)
        {
            await _etcd.DisposeAsync();
        }

        _http.Dispose();
        _noRedirect.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Master_EtcdOverTlsWithClientCertificate_LeadsServesAndKeepsStateInEtcd()
    {
        var tls = _etcd.Tls!;
        var (master, url) = StartMaster("m1", "/it-tls", tls.CaFile, tls.ClientCertificateFile, tls.ClientKeyFile);
        await TrustMasterCaAsync(master, "m1"); // the master serves HTTPS with the cluster CA it keeps in etcd

        var leader = await Wait.UntilAsync(() => LeaderAsync(url), l => l is not null, Timeout, $"the master to lead ({master.Tail()})", retryOn: e => e is HttpRequestException);
        Assert.Equal(url.Authority, leader);
        var token = await Wait.UntilAsync(() => LoginAsync(url), t => t is not null, Timeout, "the admin to log in (users are in etcd)", retryOn: e => e is HttpRequestException);
        _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        var marathon = new MarathonClient(url, _http);
        await marathon.CreateAppAsync(new JsonObject { ["id"] = "/over-tls", ["cmd"] = "sleep 600", ["cpus"] = 0.01, ["mem"] = 8, ["instances"] = 0 });

        Assert.Equal("/over-tls", (string)(await marathon.GetAppAsync("/over-tls"))["id"]!);
        Assert.Contains(await EtcdKeysAsync("/it-tls"), k => k.Contains("over-tls", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_root, "m1", "state.db")), "the embedded store was not used");
    }

    [Fact]
    public async Task Master_ClientCertificateFromAnotherCa_NeverLeadsAndLogsWhyEtcdRefusedIt()
    {
        using var other = TestCertificateAuthority.Create("another CA");
        using var intruder = other.IssueClient("intruder");
        var (cert, key) = other.WritePem(intruder, Path.Combine(_root, "intruder"), "client");
        var (master, url) = StartMaster("m1", "/it-tls-refused", _etcd.Tls!.CaFile, cert, key);

        await Wait.UntilAsync(() => Task.FromResult(master.Tail()), log => log.Contains("does not accept our client certificate CN=intruder", StringComparison.Ordinal) || master.HasExited,
            Timeout, "the master to log etcd's refusal");

        Assert.False(master.HasExited, master.Tail());
        // Without the store it has no cluster CA to serve HTTPS with, so it answers nothing (and keeps trying).
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => LeaderAsync(url));
        Assert.False(File.Exists(Path.Combine(_root, "m1", "ca.pem")), "a CA was published without the store");
        Assert.Empty(await EtcdKeysAsync("/it-tls-refused")); // no leader key, no users, no CA: nothing got in
    }

    private (DroverProcess Process, Uri Url) StartMaster(string name, string prefix, string ca, string cert, string key)
    {
        var port = DevClusterFixture.FreePort();
        var process = DroverProcess.Start(name,
            ["master", "--data-dir", Path.Combine(_root, name), "--listen", $"127.0.0.1:{port}", "--store", _etcd.StoreAddress, "--store-prefix", prefix,
                "--store-ca", ca, "--store-cert", cert, "--store-key", key, "--bootstrap-password-file", PasswordFile(), "--leader-lease", "3",
                "--secrets-key-file", SecretsKey(), "--log-level", "warning"],
            logFile: Path.Combine(_root, name + ".log"));
        _processes.Add(process);
        return (process, new Uri($"https://127.0.0.1:{port}"));
    }

    /// <summary>Waits for the master's <c>ca.pem</c> and makes the test's clients trust it.</summary>
    private async Task TrustMasterCaAsync(DroverProcess master, string name)
    {
        await TlsMasterFixture.WaitForCaAsync(master, Path.Combine(_root, name, "ca.pem"));
        var roots = Drover.Core.Security.Pki.PemCertificates.LoadAll(await File.ReadAllTextAsync(Path.Combine(_root, name, "ca.pem"))).Value!;
        _http.Dispose();
        _noRedirect.Dispose();
        _http = new HttpClient(Drover.Client.MasterTls.CreateHandler(roots)) { Timeout = TimeSpan.FromSeconds(10) };
        var noRedirect = Drover.Client.MasterTls.CreateHandler(roots);
        noRedirect.AllowAutoRedirect = false;
        _noRedirect = new HttpClient(noRedirect) { Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <summary>The one key file the masters share (masters on etcd must share one).</summary>
    private string SecretsKey()
    {
        var path = Path.Combine(_root, "secrets.key");
        return File.Exists(path) ? path : SecretsKeyFiles.Create(path);
    }

    private string PasswordFile()
    {
        var file = Path.Combine(_root, "admin-password");
        File.WriteAllText(file, Password);
        return file;
    }

    /// <summary>The leader's address from <c>/master/redirect</c> (anonymous): its 307 target; null while none leads (503).</summary>
    private async Task<string?> LeaderAsync(Uri master)
    {
        using var response = await _noRedirect.GetAsync(new Uri(master, "/master/redirect"));
        return response.StatusCode == System.Net.HttpStatusCode.TemporaryRedirect ? response.Headers.Location?.Authority : null;
    }

    private async Task<string?> LoginAsync(Uri master)
    {
        using var response = await _noRedirect.PostAsync(new Uri(master, "/acs/api/v1/auth/login"),
            new StringContent(new JsonObject { ["uid"] = "admin", ["password"] = Password }.ToJsonString(), Encoding.UTF8, "application/json"));
        return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync())?["token"]?.GetValue<string>() : null;
    }

    /// <summary>Every key under the prefix, read from etcd over TLS with the cluster's own client certificate (not through a master).</summary>
    private async Task<List<string>> EtcdKeysAsync(string prefix)
    {
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
        var end = prefix[..^1] + (char)(prefix[^1] + 1);
        using var json = await _etcd.PostJsonAsync(0, "v3/kv/range", $$"""{"key":"{{B64(prefix)}}","range_end":"{{B64(end)}}","keys_only":true}""");
        return json.RootElement.TryGetProperty("kvs", out var kvs)
            ? [.. kvs.EnumerateArray().Select(kv => Encoding.UTF8.GetString(Convert.FromBase64String(kv.GetProperty("key").GetString()!)))]
            : [];
    }
}

/// <summary><c>drover master</c>'s store TLS flags, refused with exit code 2 and one sentence before anything starts.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MasterStoreTlsFlagTests
{
    [Theory]
    [InlineData("--store-ca {ca}", "--store-ca: TLS to the store only applies with --store etcd://")]
    [InlineData("--store etcd://127.0.0.1:1 --store-ca {missing}", "--store-ca: {missing} does not exist")]
    [InlineData("--store etcd://127.0.0.1:1 --store-ca {ca} --store-cert {cert}", "--store-cert: a client certificate needs its private key (--store-key) too")]
    [InlineData("--store etcd://127.0.0.1:1 --store-ca {ca} --store-key {key}", "--store-key: a client key needs its certificate (--store-cert) too")]
    [InlineData("--store etcd://127.0.0.1:1 --store-cert {cert} --store-key {key}", "--store-cert: TLS to etcd needs --store-ca too")]
    [InlineData("--store etcd://127.0.0.1:1 --store-ca {ca} --store-cert {cert} --store-key {loosekey}", "--store-key: {loosekey} is accessible by other users (mode 644)")]
    [InlineData("--store etcd://127.0.0.1:1 --store-ca {ca} --store-cert {ca} --store-key {key}", "--store-key: {key} is not the private key of the certificate in {ca}")]
    [InlineData("--store http://127.0.0.1:1,http://127.0.0.2:1 --store-ca {ca}", "--store: http://127.0.0.1:1,http://127.0.0.2:1 names plain http:// endpoints, but --store-ca asks for TLS")]
    [InlineData("--store https://127.0.0.1:1", "--store: https://127.0.0.1:1 names https:// endpoints; give --store-ca")]
    public async Task Master_BadStoreTlsFlags_ExitsTwoWithOneSentence(string flags, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("drover-store-tls-flags-").FullName;
        try
        {
            using var ca = TestCertificateAuthority.Create();
            using var client = ca.IssueClient("drover");
            var (cert, key) = ca.WritePem(client, dir, "client");
            var files = new Dictionary<string, string>
            {
                ["{ca}"] = ca.WriteCertificate(Path.Combine(dir, "ca.pem")),
                ["{cert}"] = cert,
                ["{key}"] = key,
                ["{missing}"] = Path.Combine(dir, "missing.pem"),
                ["{loosekey}"] = Path.Combine(dir, "loose-key.pem"),
            };
            File.Copy(key, files["{loosekey}"]);
            File.SetUnixFileMode(files["{loosekey}"], (UnixFileMode)0b110_100_100); // 0644
            await AssertRefusedAsync(dir, files, flags, expected);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task AssertRefusedAsync(string dir, Dictionary<string, string> files, string flags, string expected)
    {
        string Fill(string text) => files.Aggregate(text, (t, f) => t.Replace(f.Key, f.Value, StringComparison.Ordinal));

        var r = await ProcessRunner.RunAsync(DroverProcess.DotnetHost,
            [DroverProcess.DroverDll, "master", "--data-dir", dir, "--listen", "127.0.0.1:0", .. Fill(flags).Split(' ')], TimeSpan.FromSeconds(60));

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(Fill(expected), r.StdErr, StringComparison.Ordinal);
        Assert.Single(r.StdErr.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(dir, "state.db")), "no store is opened for a refused command line");
    }
}
