using System.Diagnostics;
using Drover.Agent.Execution.Spawn;

namespace Drover.Agent.Tests.Execution;

public sealed class ChildProcessTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static ChildProcess Sh(string script, string? cwd = null, bool newSession = false, params (string, string)[] env) =>
        ChildProcess.Start("/bin/sh", ["/bin/sh", "-c", script], env.Select(e => new KeyValuePair<string, string>(e.Item1, e.Item2)).Append(new("PATH", "/usr/bin:/bin")), cwd, newSession);

    [Theory]
    [InlineData("exit 0", 0)]
    [InlineData("exit 7", 7)]
    [InlineData("kill -9 $$", 137)]
    [InlineData("kill -15 $$", 143)]
    public async Task Exited_ExitOrSignal_ShellConventionCode(string script, int expected)
    {
        var child = Sh(script);

        Assert.Equal(expected, await child.Exited.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Start_EnvironmentAndWorkingDirectory_AsGiven()
    {
        var dir = Directory.CreateTempSubdirectory("drover-spawn-").FullName;
        try
        {
            var child = Sh("echo \"$GREETING $(pwd)\" > out", dir, false, ("GREETING", "hello world"));

            Assert.Equal(0, await child.Exited.WaitAsync(Timeout));
            Assert.Equal($"hello world {dir}\n", await File.ReadAllTextAsync(Path.Combine(dir, "out")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Start_NewSession_ChildLeadsItsSessionAndGroup()
    {
        var dir = Directory.CreateTempSubdirectory("drover-spawn-").FullName;
        try
        {
            // ps prints the session id and process group of the shell itself.
            var child = Sh("ps -o sid=,pgid= -p $$ > ids", dir, newSession: true);

            Assert.Equal(0, await child.Exited.WaitAsync(Timeout));
            var ids = (await File.ReadAllTextAsync(Path.Combine(dir, "ids"))).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            Assert.Equal([child.Pid, child.Pid], ids);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Start_ManyConcurrentChildren_EachReapedWithItsOwnCode()
    {
        var children = Enumerable.Range(0, 200).Select(i => (Code: i % 50, Child: Sh($"exit {i % 50}"))).ToList();

        var codes = await Task.WhenAll(children.Select(c => c.Child.Exited.WaitAsync(Timeout)));

        Assert.Equal(children.Select(c => c.Code).ToArray(), codes);
        Assert.All(children, c => Assert.False(Directory.Exists($"/proc/{c.Child.Pid}"), $"{c.Child.Pid} left a zombie"));
    }

    [Fact]
    public async Task Reaper_CoexistsWithSystemDiagnosticsProcess_BothSeeTheirExits()
    {
        var ours = Sh("sleep 0.2; exit 3");
        using var theirs = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "sleep 0.1; exit 4"]))!;

        await theirs.WaitForExitAsync().WaitAsync(Timeout);

        Assert.Equal(4, theirs.ExitCode);
        Assert.Equal(3, await ours.Exited.WaitAsync(Timeout));
    }

    [Fact]
    public void Start_MissingProgram_Throws()
    {
        Assert.Throws<System.ComponentModel.Win32Exception>(() => ChildProcess.Start("/nonexistent/program", ["x"], [], null, false));
    }
}
