using System.Security.Cryptography;
using System.Text.Json;
using Drover.Testing;
using Drover.Testing.Processes;

namespace Drover.Integration.Tests;

/// <summary>A master with logins on (in the test process, no agents) for the CLI to log in to.</summary>
public sealed class SecureMasterFixture : IAsyncLifetime
{
    public InProcessCluster Cluster { get; private set; } = null!;

    public Uri Url => Cluster.Master.Url;

    /// <summary>The file the master wrote the bootstrap admin's password to.</summary>
    public string AdminPasswordFile => Path.Combine(Cluster.Root, "master", "bootstrap-admin-password");

    public async Task InitializeAsync() => Cluster = await InProcessCluster.StartAsync(secure: true);

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync();
        }
    }
}

/// <summary>
/// <c>drover login|logout|iam</c> as a user runs them: the real CLI process against a master with logins on, each
/// test with a home and configuration directory of its own.
/// </summary>
public sealed class IamCliTests(SecureMasterFixture master) : IClassFixture<SecureMasterFixture>, IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("drover-cli-home-").FullName;

    public void Dispose() => Directory.Delete(_home, recursive: true);

    private string ConfigDir => Path.Combine(_home, "xdg");

    /// <summary>Where <c>drover login</c> keeps the token for the test master.</summary>
    private string TokenFile => Path.Combine(ConfigDir, "drover", "masters", $"127.0.0.1_{master.Url.Port}", "token");

    /// <summary>Runs the CLI with this test's HOME and XDG_CONFIG_HOME (and DROVER_TOKEN unset unless given).</summary>
    private Task<ProcessResult> Cli(string[] args, string? token = null, bool xdg = true) =>
        ProcessRunner.RunAsync(DroverProcess.DotnetHost, [DroverProcess.DroverDll, "--master", master.Url.ToString(), .. args], TimeSpan.FromSeconds(60),
            new Dictionary<string, string?>
            {
                ["HOME"] = _home,
                ["XDG_CONFIG_HOME"] = xdg ? ConfigDir : null,
                ["DROVER_TOKEN"] = token,
                ["DROVER_MASTER"] = null,
            });

    private Task<ProcessResult> Cli(params string[] args) => Cli(args, token: null);

    private async Task<ProcessResult> Ok(params string[] args)
    {
        var r = await Cli(args);
        Assert.True(r.ExitCode == 0, $"drover {string.Join(' ', args)}: {r}");
        return r;
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_home, name);
        File.WriteAllText(path, content);
        return path;
    }

    private Task<ProcessResult> LoginAdmin() => Ok("login", "--username", "admin", "--password-file", master.AdminPasswordFile);

    private static void AssertLoginHint(ProcessResult r)
    {
        Assert.True(r.ExitCode == 2, r.ToString());
        var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.Contains("drover login", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_PasswordFile_StoresToken0600InXdgConfigAndCommandsSendIt()
    {
        var login = await LoginAdmin();

        Assert.Contains("Logged in", login.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(TokenFile), login.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(TokenFile));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(TokenFile)!));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(ConfigDir, "drover")));
        var ls = await Ok("iam", "user", "ls");
        Assert.Contains("admin", ls.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, (await Cli("node", "ls")).ExitCode);
        Assert.Equal(0, (await Cli("app", "ls")).ExitCode);
    }

    [Fact]
    public async Task Login_WithoutXdgConfigHome_UsesDotConfigInHome()
    {
        var r = await Cli(["login", "--username", "admin", "--password-file", master.AdminPasswordFile], xdg: false);

        Assert.True(r.ExitCode == 0, r.ToString());
        var token = Path.Combine(_home, ".config", "drover", "masters", $"127.0.0.1_{master.Url.Port}", "token");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(token));
        Assert.Equal(0, (await Cli(["iam", "group", "ls"], xdg: false)).ExitCode);
    }

    [Fact]
    public async Task Login_WrongPassword_RefusedAndNothingStored()
    {
        var r = await Cli("login", "--username", "admin", "--password-file", Write("wrong", "not-the-password\n"));

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("Invalid credentials", r.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(TokenFile));
    }

    [Fact]
    public async Task Commands_WithoutLogin_PrintOneSentenceTellingToLogIn()
    {
        AssertLoginHint(await Cli("iam", "user", "ls"));
        AssertLoginHint(await Cli("node", "ls"));
        AssertLoginHint(await Cli("app", "ls"));
        AssertLoginHint(await Cli("task", "ls"));
    }

    [Fact]
    public async Task DroverToken_OverridesTheStoredToken()
    {
        await LoginAdmin();
        var token = (await File.ReadAllTextAsync(TokenFile)).Trim();

        var forged = await Cli(["iam", "user", "ls"], token: token[..^4] + "AAAA");
        AssertLoginHint(forged);
        Assert.Contains("refused the login token", forged.StdErr, StringComparison.Ordinal);

        Assert.Equal(0, (await Cli("logout")).ExitCode);
        Assert.False(File.Exists(TokenFile));
        AssertLoginHint(await Cli("iam", "user", "ls"));
        var withEnv = await Cli(["iam", "user", "ls"], token: token);
        Assert.True(withEnv.ExitCode == 0, withEnv.ToString());
        Assert.Contains("admin", withEnv.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Iam_UserGroupGrantPermissionsRevokeRemove_RoundTrip()
    {
        await LoginAdmin();
        var carolPassword = Write("carol-pw", "carol-password-1\n");
        await Ok("iam", "user", "add", "carol", "--password-file", carolPassword, "--description", "Carol C");
        await Ok("iam", "group", "add", "cli-team", "--description", "CLI team");
        await Ok("iam", "group", "member", "add", "cli-team", "carol");
        await Ok("iam", "grant", "cli-team", "dcos:service:marathon:marathon:services:/cli-team", "full");
        await Ok("iam", "grant", "user:carol", "dcos:adminrouter:acs", "read");

        var users = await Ok("iam", "user", "ls");
        Assert.Contains("Carol C", users.StdOut, StringComparison.Ordinal);
        var groups = await Ok("iam", "group", "ls");
        Assert.Contains("carol", groups.StdOut, StringComparison.Ordinal);
        var permissions = await Ok("iam", "permissions", "carol", "--json");
        using (var doc = JsonDocument.Parse(permissions.StdOut))
        {
            var direct = Assert.Single(doc.RootElement.GetProperty("direct").EnumerateArray());
            Assert.Equal("dcos:adminrouter:acs", direct.GetProperty("rid").GetString());
            var viaGroup = Assert.Single(doc.RootElement.GetProperty("groups").EnumerateArray());
            Assert.Equal("dcos:service:marathon:marathon:services:/cli-team", viaGroup.GetProperty("rid").GetString());
            Assert.Equal("cli-team", viaGroup.GetProperty("gid").GetString());
            Assert.Equal("full", Assert.Single(viaGroup.GetProperty("actions").EnumerateArray()).GetProperty("name").GetString());
        }

        // carol logs in (in her own configuration) and may read users, not create them.
        var carolHome = Path.Combine(_home, "carol");
        Task<ProcessResult> AsCarol(params string[] args) => ProcessRunner.RunAsync(DroverProcess.DotnetHost,
            [DroverProcess.DroverDll, "--master", master.Url.ToString(), .. args], TimeSpan.FromSeconds(60),
            new Dictionary<string, string?> { ["HOME"] = carolHome, ["XDG_CONFIG_HOME"] = carolHome, ["DROVER_TOKEN"] = null });
        Assert.Equal(0, (await AsCarol("login", "-u", "carol", "--password-file", carolPassword)).ExitCode);
        Assert.Equal(0, (await AsCarol("iam", "user", "ls")).ExitCode);
        var denied = await AsCarol("iam", "group", "add", "carols-own");
        Assert.Equal(2, denied.ExitCode);
        Assert.Contains("lacks permission 'dcos:adminrouter:acs'", denied.StdErr, StringComparison.Ordinal);

        await Ok("iam", "revoke", "carol", "dcos:adminrouter:acs", "read");
        var revoked = await AsCarol("iam", "user", "ls");
        Assert.Equal(2, revoked.ExitCode);
        Assert.Contains("lacks permission", revoked.StdErr, StringComparison.Ordinal);

        await Ok("iam", "group", "member", "rm", "cli-team", "carol");
        Assert.Empty(JsonDocument.Parse((await Ok("iam", "permissions", "carol", "--json")).StdOut).RootElement.GetProperty("groups").EnumerateArray());
        await Ok("iam", "group", "rm", "cli-team");
        await Ok("iam", "user", "rm", "carol");
        var gone = await AsCarol("iam", "user", "ls");
        AssertLoginHint(gone);
        Assert.Contains("refused the login token", gone.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("carol", (await Ok("iam", "user", "ls")).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Iam_Mistakes_ExitTwoWithTheReason()
    {
        await LoginAdmin();

        var shortPassword = await Cli("iam", "user", "add", "dave", "--password-file", Write("short", "abc\n"));
        Assert.Equal(2, shortPassword.ExitCode);
        Assert.Contains("at least 8 characters", shortPassword.StdErr, StringComparison.Ordinal);
        var badAction = await Cli("iam", "grant", "admin", "dcos:x", "everything");
        Assert.Equal(2, badAction.ExitCode);
        Assert.Contains("not one of create, read, update, delete, full", badAction.StdErr, StringComparison.Ordinal);
        var nobody = await Cli("iam", "grant", "nobody-known", "dcos:x", "read");
        Assert.Equal(2, nobody.ExitCode);
        Assert.Contains("no user or group 'nobody-known'", nobody.StdErr, StringComparison.Ordinal);
        var lastSuperuser = await Cli("iam", "user", "rm", "admin");
        Assert.Equal(2, lastSuperuser.ExitCode);
        Assert.Contains("dcos:superuser", lastSuperuser.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_ServiceAccountKey_LogsInWithItsPrivateKey()
    {
        using var rsa = RSA.Create(2048);
        await LoginAdmin();
        await Ok("iam", "user", "add", "cli-robot", "--public-key-file", Write("robot.pub", rsa.ExportSubjectPublicKeyInfoPem()));
        await Ok("iam", "grant", "cli-robot", "dcos:adminrouter:acs", "read");
        await Ok("logout");

        var login = await Cli("login", "--username", "cli-robot", "--service-account-key", Write("robot.key", rsa.ExportPkcs8PrivateKeyPem()));
        Assert.True(login.ExitCode == 0, login.ToString());
        var ls = await Ok("iam", "user", "ls");
        Assert.Contains("cli-robot", ls.StdOut, StringComparison.Ordinal);
        Assert.Contains("service", ls.StdOut, StringComparison.Ordinal);

        using var other = RSA.Create(2048);
        var wrongKey = await Cli("login", "--username", "cli-robot", "--service-account-key", Write("other.key", other.ExportPkcs8PrivateKeyPem()));
        Assert.Equal(2, wrongKey.ExitCode);
        Assert.Contains("Invalid credentials", wrongKey.StdErr, StringComparison.Ordinal);
        var publicOnly = await Cli("login", "--username", "cli-robot", "--service-account-key", Write("robot.pub2", rsa.ExportSubjectPublicKeyInfoPem()));
        Assert.Equal(2, publicOnly.ExitCode);
        Assert.Contains("RSA private key", publicOnly.StdErr, StringComparison.Ordinal);
    }
}
