using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary><c>drover master</c>'s timeout flags are checked before anything starts.</summary>
public sealed class MasterCommandTests
{
    [Theory]
    [InlineData("--agent-timeout", "0")]
    [InlineData("--agent-unreachable-timeout", "-3")]
    [InlineData("--agent-removal-timeout", "0")]
    [InlineData("--heartbeat-interval", "-1")]
    [InlineData("--offer-timeout", "0")]
    [InlineData("--unknown-task-grace", "0")]
    public async Task Master_NonPositiveTimeout_ExitsTwoNamingTheFlag(string flag, string value)
    {
        var (r, storeOpened) = await MasterInFreshDirAsync(flag, value);

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(flag is "--agent-unreachable-timeout" ? "--agent-timeout" : flag, r.StdErr, StringComparison.Ordinal);
        Assert.False(storeOpened, "no store is opened for a refused command line");
    }

    [Theory]
    [InlineData("web")]
    [InlineData("web=0")]
    [InlineData("web=2,batch=x")]
    public async Task Master_BadRoleWeights_ExitsTwoNamingTheFlag(string value)
    {
        var (r, _) = await MasterInFreshDirAsync("--role-weights", value);

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("--role-weights", r.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Master_HeartbeatNotShorterThanAgentTimeout_ExitsTwo()
    {
        var (r, _) = await MasterInFreshDirAsync("--agent-timeout", "2", "--heartbeat-interval", "2");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("--heartbeat-interval: must be shorter than --agent-timeout", r.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--store", "redis://h1:6379", "--store")]
    [InlineData("--store", "etcd://", "--store")]
    [InlineData("--store", "etcd://h1:99999", "--store")]
    [InlineData("--leader-lease", "0", "--leader-lease")]
    [InlineData("--leader-lease", "1.5", "--leader-lease")]
    [InlineData("--store-prefix", "/x", "--store-prefix")]
    public async Task Master_BadStoreFlag_ExitsTwoNamingTheFlag(string flag, string value, string named)
    {
        var (r, storeOpened) = await MasterInFreshDirAsync(flag, value);

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(named + ":", r.StdErr, StringComparison.Ordinal);
        Assert.False(storeOpened, "no store is opened for a refused command line");
    }

    [Fact]
    public async Task Master_StorePrefixContradictsTheStoreUrl_ExitsTwo()
    {
        var (r, _) = await MasterInFreshDirAsync("--store", "etcd://127.0.0.1:1/a", "--store-prefix", "/b");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("--store-prefix: '/b' contradicts", r.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0.0.0.0:0")]
    [InlineData("10.11.12.13:5050")]
    public async Task Master_InsecureOnANonLoopbackAddress_ExitsTwoWithOneSentence(string listen)
    {
        var dir = Directory.CreateTempSubdirectory("drover-flags-").FullName;
        try
        {
            var r = await ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, "master", "--data-dir", dir, "--listen", listen, "--insecure"], TimeSpan.FromSeconds(60));

            Assert.True(r.ExitCode == 2, r.ToString());
            var line = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("drover: --insecure: plain HTTP is refused on", line, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(dir, "state.db")), "no store is opened for a refused command line");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Master_EtcdStoreWithoutSecretsKeyFile_ExitsTwoWithOneSentence()
    {
        var (r, storeOpened) = await MasterInFreshDirAsync("--store", "etcd://127.0.0.1:1");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Equal(
            "drover: --secrets-key-file: required with --store etcd://…, and the same file on every master, so that each can decrypt the secrets the others stored",
            r.StdErr.Trim());
        Assert.False(storeOpened);
    }

    [Fact]
    public async Task Master_SecretsKeyFileOthersCanRead_ExitsTwoNamingTheFlag()
    {
        var dir = Directory.CreateTempSubdirectory("drover-key-").FullName;
        try
        {
            var key = Drover.Testing.SecretsKeyFiles.Create(Path.Combine(dir, "secrets.key"));
            File.SetUnixFileMode(key, (UnixFileMode)0b110_100_100); // 0644

            var (r, _) = await MasterInFreshDirAsync("--secrets-key-file", key);

            Assert.True(r.ExitCode == 2, r.ToString());
            Assert.Contains($"--secrets-key-file {key}: others can read it", r.StdErr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("--tls-cert", "/nonexistent/cert.pem", "--tls-cert, --tls-key and --tls-ca go together")]
    [InlineData("--tls-ca", "/nonexistent/ca.pem", "--tls-cert, --tls-key and --tls-ca go together")]
    [InlineData("--agent-cert-lifetime", "5", "--agent-cert-lifetime")]
    public async Task Master_BadTlsFlags_ExitsTwoNamingTheFlag(string flag, string value, string says)
    {
        var (r, storeOpened) = await MasterInFreshDirAsync(flag, value);

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(says, r.StdErr, StringComparison.Ordinal);
        Assert.False(storeOpened, "no store is opened for a refused command line");
    }

    [Fact]
    public async Task Master_TlsFilesThatDoNotExist_ExitsTwoNamingTheFile()
    {
        var (r, _) = await MasterInFreshDirAsync("--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--tls-ca", "/nonexistent/ca.pem");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("--tls-cert: cannot read /nonexistent/cert.pem", r.StdErr, StringComparison.Ordinal);
    }

    /// <summary>Runs <c>drover master</c> with <paramref name="flags"/> on a fresh data dir; whether it opened a store there.</summary>
    private static async Task<(ProcessResult Result, bool StoreOpened)> MasterInFreshDirAsync(params string[] flags)
    {
        var dir = Directory.CreateTempSubdirectory("drover-flags-").FullName;
        try
        {
            var r = await Master(dir, flags);
            return (r, File.Exists(Path.Combine(dir, "state.db")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static Task<ProcessResult> Master(string dir, params string[] flags) =>
        ProcessRunner.RunAsync(DroverProcess.DotnetHost,
            [DroverProcess.DroverDll, "master", "--data-dir", dir, "--listen", "127.0.0.1:0", .. flags], TimeSpan.FromSeconds(60));
}
