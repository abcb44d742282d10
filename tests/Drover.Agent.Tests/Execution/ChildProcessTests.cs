using System.Diagnostics;
using Drover.Agent.Execution;
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
    public async Task WatchForeign_OwnChildWatchedTwice_BothSeeTheExitAndTheChildIsReaped()
    {
        // What an agent restarted inside the same process does: it adopts, as a foreign process, a shim
        // the previous executor spawned and still watches. Two watches of one pid at once.
        var child = ChildProcess.Start("/bin/sleep", ["/bin/sleep", "1000"], [], null, false);
        var started = StartTimeOf(child.Pid);
        var foreign = ChildReaper.Instance.WatchForeign(child.Pid, _ => true);
        Assert.NotNull(foreign);

        Assert.True(Native.Kill(child.Pid, Native.SigKill));

        Assert.Equal(ChildReaper.UnknownStatus, await foreign.WaitAsync(Timeout));
        Assert.Equal(137, await child.Exited.WaitAsync(Timeout));
        Assert.NotEqual(started, StartTimeOf(child.Pid)); // reaped: no zombie left with its pid
        Assert.DoesNotContain(child.Pid, OpenPidfdTargets()); // neither watch left its pidfd in the epoll set
        Assert.Equal(5, await Sh("exit 5").Exited.WaitAsync(Timeout)); // and the reaper still serves everyone
    }

    /// <summary>Field 22 of /proc/PID/stat (start time), or null when no process has the pid.</summary>
    private static string? StartTimeOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The pids this process holds a pidfd for (the <c>Pid:</c> line of each pidfd's fdinfo).</summary>
    private static List<int> OpenPidfdTargets()
    {
        var pids = new List<int>();
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget != "anon_inode:[pidfd]")
                {
                    continue;
                }

                var line = File.ReadLines($"/proc/self/fdinfo/{Path.GetFileName(fd)}").FirstOrDefault(l => l.StartsWith("Pid:", StringComparison.Ordinal));
                if (line is not null)
                {
                    pids.Add(int.Parse(line[4..].Trim(), System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // closed meanwhile
            }
        }

        return pids;
    }

    [Fact]
    public void Start_MissingProgram_Throws()
    {
        Assert.Throws<System.ComponentModel.Win32Exception>(() => ChildProcess.Start("/nonexistent/program", ["x"], [], null, false));
    }
}
