using System.Net;
using System.Text.Json.Nodes;
using Drover.Core.Security.Pki;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>A <c>drover master</c> process serving HTTPS by default, on loopback, with no agents.</summary>
public sealed class TlsMasterFixture : IAsyncLifetime
{
    public string Root { get; } = Directory.CreateTempSubdirectory("drover-tls-cli-").FullName;

    public DroverProcess? Master { get; private set; }

    public Uri Url { get; private set; } = null!;

    public string CaFile => Path.Combine(Root, "master", "ca.pem");

    public string CaFingerprint { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var port = DevClusterFixture.FreePort();
        Url = new Uri($"https://127.0.0.1:{port}");
        Master = DroverProcess.Start("tls-master", ["master", "--data-dir", Path.Combine(Root, "master"), "--listen", $"127.0.0.1:{port}", "--log-level", "warning"],
            logFile: Path.Combine(Root, "master.log"));
        CaFingerprint = await WaitForCaAsync(Master, CaFile);
    }

    /// <summary>Waits until a master has written its CA file (it does once it serves) and returns the CA's fingerprint.</summary>
    public static async Task<string> WaitForCaAsync(DroverProcess master, string caFile)
    {
        await Wait.UntilAsync(() => Task.FromResult(master.HasExited || (File.Exists(caFile) && new FileInfo(caFile).Length > 0)), TimeSpan.FromSeconds(60), "the master's ca.pem");
        Assert.False(master.HasExited, master.Tail());
        return PemCertificates.Fingerprint(PemCertificates.Load(await File.ReadAllTextAsync(caFile)).Value!);
    }

    /// <summary>Runs the CLI against the master with the given environment (NAME=value) and arguments.</summary>
    public Task<ProcessResult> Cli(string[] environment, params string[] args) =>
        ProcessRunner.RunAsync("env", [.. environment, DroverProcess.DotnetHost, DroverProcess.DroverDll, "--master", Url.ToString(), .. args], TimeSpan.FromSeconds(60));

    public async Task DisposeAsync()
    {
        if (Master is not null)
        {
            await Master.DisposeAsync();
        }

        Directory.Delete(Root, recursive: true);
    }
}

/// <summary>How the CLI trusts a master's HTTPS certificate: <c>--ca-cert</c>, <c>DROVER_CA_CERT</c>, a pinned CA, and the sentence it fails with otherwise.</summary>
public sealed class TlsCliTests(TlsMasterFixture master) : IClassFixture<TlsMasterFixture>
{
    /// <summary>What the CLI says when the master answered (past TLS) that a login is needed.</summary>
    private const string NotLoggedIn = "not logged in to https://127.0.0.1:";

    /// <summary>A fresh per-user configuration directory, so no test sees another's pinned CA.</summary>
    private string Config() => Directory.CreateDirectory(Path.Combine(master.Root, "config-" + Guid.NewGuid().ToString("N")[..8])).FullName;

    [Fact]
    public async Task Cli_MasterCaNotTrusted_FailsWithOneSentenceNamingTheCaFingerprint()
    {
        var r = await master.Cli([$"XDG_CONFIG_HOME={Config()}"], "node", "ls");

        Assert.True(r.ExitCode == 1, r.ToString());
        var line = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("does not trust", line, StringComparison.Ordinal);
        Assert.Contains(master.CaFingerprint, line, StringComparison.Ordinal);
        Assert.Contains("--ca-cert", line, StringComparison.Ordinal);
        Assert.Empty(r.StdOut);
    }

    [Fact]
    public async Task Cli_CaCertFlagOrEnvironment_TrustsTheMaster()
    {
        var config = $"XDG_CONFIG_HOME={Config()}";

        var flag = await master.Cli([config], "--ca-cert", master.CaFile, "node", "ls");
        var env = await master.Cli([config, $"DROVER_CA_CERT={master.CaFile}"], "node", "ls");

        // Past TLS, the master's gate answers: no login yet (logins are not this test's subject).
        foreach (var r in new[] { flag, env })
        {
            Assert.True(r.ExitCode == 2, r.ToString());
            Assert.DoesNotContain("does not trust", r.StdErr, StringComparison.Ordinal);
            Assert.Contains(NotLoggedIn, r.StdErr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Cli_CaCertOfAnotherCa_RefusedWithTheMastersFingerprint()
    {
        var other = Path.Combine(master.Root, "other-ca.pem");
        using (var ca = CertificateAuthority.CreateCa("some other CA", DateTimeOffset.UtcNow, TimeSpan.FromDays(1)))
        {
            await File.WriteAllTextAsync(other, PemCertificates.Export(ca));
        }

        var r = await master.Cli([$"XDG_CONFIG_HOME={Config()}"], "--ca-cert", other, "node", "ls");

        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains(master.CaFingerprint, r.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CaPin_WrongFingerprintRefused_RightOnePinnedPrivatelyAndTrusted()
    {
        var configDir = Config();
        var config = $"XDG_CONFIG_HOME={configDir}";
        var pinned = Path.Combine(configDir, "drover", "masters", "127.0.0.1_" + master.Url.Port, "ca.pem");

        var wrong = await master.Cli([config], "ca", "pin", "--fingerprint", new string('A', 64));
        Assert.True(wrong.ExitCode == 1, wrong.ToString());
        Assert.Contains(master.CaFingerprint, wrong.StdOut + wrong.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(pinned), "a CA was pinned despite the wrong fingerprint");

        var right = await master.Cli([config], "ca", "pin", "--fingerprint", master.CaFingerprint.ToLowerInvariant());
        Assert.True(right.ExitCode == 0, right.ToString());
        Assert.Equal(await File.ReadAllTextAsync(master.CaFile), await File.ReadAllTextAsync(pinned));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(pinned));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(pinned)!));

        var trusted = await master.Cli([config], "node", "ls");
        Assert.True(trusted.ExitCode == 2, trusted.ToString());
        Assert.Contains(NotLoggedIn, trusted.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CaShow_Unverified_PrintsTheFingerprintOfTheCaFile()
    {
        var r = await master.Cli([$"XDG_CONFIG_HOME={Config()}"], "ca", "show", "--json");

        Assert.True(r.ExitCode == 0, r.ToString());
        var info = JsonNode.Parse(r.StdOut)!;
        Assert.Equal(master.CaFingerprint, info["fingerprint"]!.GetValue<string>());
        Assert.Equal(await File.ReadAllTextAsync(master.CaFile), info["certificate"]!.GetValue<string>());
    }

    [Fact]
    public async Task Master_OperatorCertificate_IsServedAndItsCaPublished()
    {
        var dir = Directory.CreateDirectory(Path.Combine(master.Root, "operator")).FullName;
        var now = DateTimeOffset.UtcNow;
        using var ca = CertificateAuthority.CreateCa("operator CA", now, TimeSpan.FromDays(30));
        using var serving = CertificateAuthority.IssueWithNewKey(ca, new CertificateProfile
        {
            Identity = SpiffeId.Master("127.0.0.1:1"), // any: clients check the host name
            IpAddresses = [IPAddress.Loopback],
            DnsNames = ["localhost"],
            Lifetime = TimeSpan.FromDays(1),
        }, now);
        var pem = PemCertificates.ExportWithKey(serving);
        await File.WriteAllTextAsync(Path.Combine(dir, "cert.pem"), PemCertificates.Export(serving));
        await File.WriteAllTextAsync(Path.Combine(dir, "key.pem"), pem[pem.IndexOf("-----BEGIN PRIVATE KEY-----", StringComparison.Ordinal)..]);
        await File.WriteAllTextAsync(Path.Combine(dir, "ca.pem"), PemCertificates.Export(ca));
        var port = DevClusterFixture.FreePort();
        await using var own = DroverProcess.Start("operator-master", ["master", "--data-dir", Path.Combine(dir, "data"), "--listen", $"127.0.0.1:{port}",
            "--tls-cert", Path.Combine(dir, "cert.pem"), "--tls-key", Path.Combine(dir, "key.pem"), "--tls-ca", Path.Combine(dir, "ca.pem"), "--log-level", "warning"]);
        var published = await TlsMasterFixture.WaitForCaAsync(own, Path.Combine(dir, "data", "ca.pem"));
        Assert.Equal(PemCertificates.Fingerprint(ca), published);

        string[] cli = [DroverProcess.DotnetHost, DroverProcess.DroverDll, "--master", $"https://127.0.0.1:{port}"];
        var trusted = await ProcessRunner.RunAsync("env", [$"XDG_CONFIG_HOME={Config()}", .. cli, "--ca-cert", Path.Combine(dir, "ca.pem"), "node", "ls"], TimeSpan.FromSeconds(60));
        Assert.True(trusted.ExitCode == 2 && trusted.StdErr.Contains(NotLoggedIn, StringComparison.Ordinal), trusted.ToString());
        var clusterCa = await ProcessRunner.RunAsync("env", [$"XDG_CONFIG_HOME={Config()}", .. cli, "--ca-cert", master.CaFile, "node", "ls"], TimeSpan.FromSeconds(60));
        Assert.True(clusterCa.ExitCode == 1 && clusterCa.StdErr.Contains(published, StringComparison.Ordinal), clusterCa.ToString());
    }
}
