using System.Globalization;
using Drover.Agent.Execution.Spawn;
using Drover.Core;

namespace Drover.Agent.Execution.Runtime;

/// <summary>
/// Runs a prepared task as a Linux process tree: <c>posix_spawn</c> of a fixed <c>/bin/sh</c> shim
/// (<see cref="ShimScript"/>) in a new session, which redirects its stdio into the sandbox, joins the task's
/// cgroups, then runs the command as its child and records how it ended in the task's checkpoint. The shim is
/// the task's supervisor: the exit status survives the agent, and a restarted agent finds the shims again
/// (<see cref="FindShims"/>) and adopts them. Nothing user-supplied is ever interpolated into shell source: the
/// command travels as arguments.
/// </summary>
/// <remarks>
/// The runtime is the last step of the launch pipeline (<c>Stages/README.md</c>): it reads what the stages
/// prepared (<see cref="TaskRun.Sandbox"/>, <see cref="TaskRun.Cgroup"/>, <see cref="TaskRun.RunAs"/>,
/// <see cref="TaskRun.Environment"/>) and owns the task's processes: start, signals, exit status, adoption.
/// </remarks>
internal sealed class ProcessRuntime(TaskCheckpoint checkpoint, string? setpriv)
{
    /// <summary>
    /// $1 = the exits log to record the exit status in, $2 = the task id, $3 = number of cgroup.procs files, then those files, then
    /// the argv of the command. Exit status 125 with the marker file means the shim could not join a
    /// cgroup (a launch failure, not a task failure).
    /// </summary>
    /// <remarks>
    /// The shim stays as the command's parent so the exit status outlives the agent: it appends
    /// <c>"$2 status"</c> to <c>$1</c> (one write, see <see cref="TaskCheckpoint"/>) and exits with it. Signals sent to the task's process group reach the shim
    /// too; it traps them, and POSIX sh defers a trap until the foreground command has completed, so
    /// the shim always outlives the command and records how it ended. A command run in the foreground
    /// starts with default dispositions for the trapped signals (a background one would ignore
    /// SIGINT/SIGQUIT).
    /// </remarks>
    internal const string ShimScript = """
        exec </dev/null >>stdout 2>>stderr
        exits=$1
        task=$2
        n=$3
        shift 3
        while [ "$n" -gt 0 ]; do
          if ! echo $$ >"$1"; then
            echo "drover: cannot join cgroup $1" >&2
            : >.drover-launch-failed
            exit 125
          fi
          shift
          n=$((n - 1))
        done
        trap : TERM INT HUP QUIT USR1 USR2
        "$@"
        code=$?
        echo "$task $code" >>"$exits"
        exit $code
        """;

    /// <summary>argv[0] of the shim: how a restarted agent recognises its tasks' supervisors in /proc.</summary>
    private const string ShimName = "drover-shim";

    private const string LaunchFailedMarker = ".drover-launch-failed";
    private const string Shell = "/bin/sh";

    /// <summary>The kernel's name (<c>/proc/PID/comm</c>) of a process exec'd as <see cref="Shell"/>: the base name of the path exec'd.</summary>
    private const string ShellComm = "sh";

    /// <summary>
    /// Spawns the task's shim in a new session (it leads the task's session and process group), reaped by the
    /// <see cref="ChildReaper"/> (see <see cref="ChildProcess"/> for why not <c>System.Diagnostics.Process</c>).
    /// Sets <see cref="TaskRun.Pid"/> and <see cref="TaskRun.ShimExited"/>; throws when the spawn fails.
    /// </summary>
    public void Start(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        File.Delete(Path.Combine(run.Sandbox!, LaunchFailedMarker));
        var child = ChildProcess.Start(Shell, BuildArgv(run), SpawnEnvironment(run), run.Sandbox, newSession: true);
        run.Pid = child.Pid;
        run.ShimExited = child.Exited;
    }

    /// <summary>Signals the task's process group (the shim was spawned in a new session, so the task leads one).</summary>
    public static void Signal(TaskRun run, int signal)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (!Native.KillGroup(run.Pid, signal))
        {
            Native.Kill(run.Pid, signal);
        }
    }

    /// <summary>
    /// The command's exit status: what the shim recorded, else (the shim itself was killed) the shim's
    /// own status when this process is its parent, else unknown.
    /// </summary>
    public int? ExitCodeOf(TaskRun run, int shimStatus)
    {
        ArgumentNullException.ThrowIfNull(run);
        return checkpoint.ReadExit(run.Spec.Id) ?? (shimStatus == ChildReaper.UnknownStatus ? null : shimStatus);
    }

    /// <summary>Whether the shim gave up before running the command (it could not join the task's cgroups).</summary>
    public static bool LaunchFailed(TaskRun run, int? exitCode)
    {
        ArgumentNullException.ThrowIfNull(run);
        return exitCode == 125 && File.Exists(Path.Combine(run.Sandbox!, LaunchFailedMarker));
    }

    /// <summary>
    /// Takes over the shim of a task a previous agent process launched, if it still runs (found by
    /// <see cref="FindShims"/>; checked again through a pidfd, since it may have ended since the scan).
    /// False when there is none to adopt (the task ended while the agent was down, or never started).
    /// </summary>
    public static bool Adopt(TaskRun run, int shim, bool exitRecorded)
    {
        ArgumentNullException.ThrowIfNull(run);
        var identity = new ProcessTaskExecutor.ShimIdentity(run.ExitsLog!, run.Spec.Id);
        var watch = shim > 0 && !exitRecorded ? ChildReaper.Instance.WatchForeign(shim, p => IdentifyShim(p) == identity) : null;
        run.Pid = shim;
        run.ShimExited = watch ?? Task.FromResult(ChildReaper.UnknownStatus);
        return watch is not null;
    }

    /// <summary>
    /// The shims running on this machine, by the exits log and task id their command line names (one
    /// scan of /proc when the agent starts: the shims do not record their pids, to keep a launch to as
    /// few files as possible). Shims of other agents on the machine name other work dirs.
    /// </summary>
    public static Dictionary<ProcessTaskExecutor.ShimIdentity, int> FindShims()
    {
        var shims = new Dictionary<ProcessTaskExecutor.ShimIdentity, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            // comm first: reading a command line takes the process' mmap lock, which a process hung
            // in the kernel may hold; a shim's comm is that of /bin/sh.
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && ReadProc(pid, "comm")?.TrimEnd('\n') == ShellComm
                && IdentifyShim(pid) is { } identity)
            {
                shims[identity] = pid;
            }
        }

        return shims;
    }

    /// <summary>The task's whole environment (also given to its COMMAND health checks).</summary>
    public static Dictionary<string, string> EnvironmentOf(TaskRun run, string path, string lang, string hostname)
    {
        ArgumentNullException.ThrowIfNull(run);
        var spec = run.Spec;
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = path,
            ["LANG"] = lang,
        };
        foreach (var (key, value) in spec.Env)
        {
            if (key.Length > 0 && !key.Contains('=', StringComparison.Ordinal))
            {
                env[key] = value;
            }
        }

        // Drover's own variables win over the task's: a task cannot lie to itself about its ports.
        env["MESOS_SANDBOX"] = run.Sandbox!;
        env["DROVER_SANDBOX"] = run.Sandbox!;
        env["MESOS_TASK_ID"] = spec.Id;
        env["DROVER_TASK_ID"] = spec.Id;
        env["HOST"] = hostname;
        var ports = run.Ports.IsDefault ? [] : run.Ports;
        for (var i = 0; i < ports.Length; i++)
        {
            env[string.Create(CultureInfo.InvariantCulture, $"PORT{i}")] = ports[i].ToString(CultureInfo.InvariantCulture);
        }

        for (var i = 0; i < ports.Length && i < spec.PortNames.Length; i++)
        {
            // Marathon's PORT_<NAME> for named ports (upper-cased, anything but letters/digits as '_').
            if (spec.PortNames[i] is { Length: > 0 } name)
            {
                var key = new string([.. name.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
                env["PORT_" + key] = ports[i].ToString(CultureInfo.InvariantCulture);
            }
        }

        if (ports.Length > 0)
        {
            env["PORT"] = ports[0].ToString(CultureInfo.InvariantCulture);
            env["PORTS"] = string.Join(',', ports.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        }

        return env;
    }

    /// <summary><c>sh -c SHIM drover-shim exits task n procs… [setpriv …] command…</c> (argv[0] included).</summary>
    private List<string> BuildArgv(TaskRun run)
    {
        var spec = run.Spec;
        var procs = run.Cgroup?.Directories ?? [];
        var argv = new List<string>(16 + procs.Length) { Shell, "-c", ShimScript, ShimName, run.ExitsLog!, spec.Id, procs.Length.ToString(CultureInfo.InvariantCulture) };
        foreach (var file in run.Cgroup?.ProcsFiles ?? [])
        {
            argv.Add(file);
        }

        // No setsid step: the shim is spawned in a new session already, so it leads the task's session and process group.
        if (run.RunAs is { } user)
        {
            argv.Add(setpriv!);
            argv.Add(string.Create(CultureInfo.InvariantCulture, $"--reuid={user.Uid}"));
            argv.Add(string.Create(CultureInfo.InvariantCulture, $"--regid={user.Gid}"));
            argv.Add("--init-groups");
            argv.Add("--");
        }

        if (!string.IsNullOrWhiteSpace(spec.Shell))
        {
            if (SimpleCommand.TrySplit(spec.Shell) is { } words)
            {
                // "sleep 600": the program itself under the shim, without a `sh -c` process in between.
                argv.AddRange(words);
            }
            else
            {
                argv.Add(Shell);
                argv.Add("-c");
                argv.Add(spec.Shell);
            }
        }
        else
        {
            argv.AddRange(spec.Args);
        }

        return argv;
    }

    /// <summary>The task's environment, plus <c>USER</c> and <c>LOGNAME</c> when it runs as a user of its own.</summary>
    private static IEnumerable<KeyValuePair<string, string>> SpawnEnvironment(TaskRun run) =>
        run.RunAs is { } user
            ? run.Environment.Where(kv => kv.Key is not ("USER" or "LOGNAME"))
                .Append(new("USER", user.Name)).Append(new("LOGNAME", user.Name))
            : run.Environment;

    /// <summary>The exits log and task id named by <paramref name="pid"/>'s command line if it is a shim, else null.</summary>
    private static ProcessTaskExecutor.ShimIdentity? IdentifyShim(int pid)
    {
        var argv = ReadProc(pid, "cmdline")?.Split('\0');
        var at = argv is null ? -1 : Array.IndexOf(argv, ShimName);
        return at >= 0 && at + 2 < argv!.Length ? new ProcessTaskExecutor.ShimIdentity(argv[at + 1], argv[at + 2]) : null;
    }

    private static string? ReadProc(int pid, string file)
    {
        try
        {
            return File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/{file}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
