using System.Globalization;
using Drover.Agent.Execution.Spawn;
using Drover.Agent.Execution.Stages;
using Drover.Core;

namespace Drover.Agent.Execution.Runtime;

/// <summary>
/// Runs a prepared task as a Linux process tree: <c>posix_spawn</c> of a fixed <c>/bin/sh</c> shim
/// (<see cref="ShimScript"/>) in a new session, which redirects its stdio into the sandbox, waits until the agent has
/// placed it (in its cgroups: the stages' AfterStart), then runs the command as its child and records how it ended in
/// the task's checkpoint. The shim is the task's supervisor: the exit status survives the agent, and a restarted agent
/// finds the shims again (<see cref="FindShims"/>) and adopts them. Nothing user-supplied is ever interpolated into
/// shell source: the command travels as arguments.
/// </summary>
/// <remarks>
/// The runtime is the last step of the launch pipeline (<c>Stages/README.md</c>): it reads what the stages prepared
/// (<see cref="TaskRun.Sandbox"/>, <see cref="TaskRun.RunAs"/>, <see cref="TaskRun.Mounts"/>,
/// <see cref="TaskRun.Environment"/>) and owns the task's processes: start, release, signals, exit status, adoption.
/// An isolated task's shim is started by the <see cref="NamespaceSpawner"/> as PID 1 of the task's new PID namespace,
/// in its new mount and IPC namespaces; it reaps whatever is orphaned in there, and the agent signals the task's
/// process group from outside (the command is in it), so a graceful kill reaches the command as before.
/// </remarks>
internal sealed class ProcessRuntime(TaskCheckpoint checkpoint, string? setpriv)
{
    /// <summary>
    /// $1 = the exits log (named for a restarted agent to recognise the shim; the status is written to descriptor 4, the
    /// log open for appending), $2 = the task id, then the argv of the command. Descriptor 3 is the release pipe: the shim
    /// waits for the agent's <c>go</c> (<c>go proc</c>: mount /proc yourself) and gives up with exit status 125 and the
    /// marker file (a launch failure, not a task failure) when the pipe closes without one.
    /// </summary>
    /// <remarks>
    /// The shim stays as the command's parent so the exit status outlives the agent: it appends
    /// <c>"$2 status"</c> to the exits log (one write, see <see cref="TaskCheckpoint"/>) and exits with it. Signals sent
    /// to the task's process group reach the shim too; it traps them, and POSIX sh defers a trap until the foreground
    /// command has completed, so the shim always outlives the command and records how it ended. A command run in the
    /// foreground starts with default dispositions for the trapped signals (a background one would ignore
    /// SIGINT/SIGQUIT). The command gets neither descriptor 3 nor 4.
    /// </remarks>
    internal const string ShimScript = """
        exec </dev/null >>stdout 2>>stderr
        task=$2
        shift 2
        if ! read -r go proc <&3 || [ "$go" != go ]; then
          echo "drover: the agent could not place this task in its cgroups" >&2
          echo "could not join its cgroups" >.drover-launch-failed
          exit 125
        fi
        exec 3<&-
        if [ "$proc" = proc ] && ! { mount -t proc -o nosuid,nodev,noexec proc /proc && mount -o bind,ro /proc/sys /proc/sys; }; then
          echo "could not mount its /proc" >.drover-launch-failed
          exit 125
        fi
        trap : TERM INT HUP QUIT USR1 USR2
        "$@" 4>&-
        code=$?
        echo "$task $code" >&4
        exit $code
        """;

    /// <summary>argv[0] of the shim: how a restarted agent recognises its tasks' supervisors in /proc.</summary>
    private const string ShimName = "drover-shim";

    private const string LaunchFailedMarker = ".drover-launch-failed";
    private const string Shell = "/bin/sh";

    /// <summary>The kernel's name (<c>/proc/PID/comm</c>) of a process exec'd as <see cref="Shell"/>: the base name of the path exec'd.</summary>
    private const string ShellComm = "sh";

    /// <summary>
    /// Spawns the task's shim in a new session (it leads the task's session and process group), in the task's namespaces
    /// when it has a <see cref="TaskRun.Mounts"/> plan, reaped by the <see cref="ChildReaper"/> (see
    /// <see cref="ChildProcess"/> for why not <c>System.Diagnostics.Process</c>). Sets <see cref="TaskRun.Pid"/>,
    /// <see cref="TaskRun.ShimExited"/> and <see cref="TaskRun.ReleaseFd"/>: the shim waits for <see cref="Release"/>.
    /// Throws when the spawn fails.
    /// </summary>
    public void Start(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        File.Delete(Path.Combine(run.Sandbox!, LaunchFailedMarker));
        var (wait, release) = Native.Pipe();
        var exits = checkpoint.ExitsHandle(run.ExitsLog!);
        var added = false;
        try
        {
            exits.DangerousAddRef(ref added);
            using var request = new SpawnRequest(Shell, BuildArgv(run), run.Environment, run.Sandbox, newSession: true,
                [(wait, 3), ((int)exits.DangerousGetHandle(), 4)]);
            // A shim started in namespaces that could not be finished (NamespaceSpawnException) never gets its go: the
            // release end closes below, and it ends on its own.
            var procMounted = true;
            var child = run.Mounts is { } plan
                ? NamespaceSpawner.Instance.SpawnIsolated(request, plan, out procMounted)
                : request.Spawn();
            run.ShimMountsProc = !procMounted;
            run.Pid = child.Pid;
            run.ShimExited = child.Exited;
            run.ReleaseFd = release;
            release = -1;
        }
        finally
        {
            Native.Close(wait);
            Native.Close(release);
            if (added)
            {
                exits.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Lets the shim run the command (<paramref name="go"/>), or makes it give up as a launch failure (a stage could not
    /// finish placing it). Idempotent.
    /// </summary>
    public static void Release(TaskRun run, bool go)
    {
        ArgumentNullException.ThrowIfNull(run);
        var fd = run.ReleaseFd;
        run.ReleaseFd = -1;
        if (fd < 0)
        {
            return;
        }

        if (go)
        {
            Native.Write(fd, run.ShimMountsProc ? "go proc\n"u8 : "go\n"u8);
        }

        Native.Close(fd);
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

    /// <summary>
    /// Why the shim gave up before running the command (it was not released: the agent could not place it in its
    /// cgroups), as the terminal update's message, or null when it ran the command. The marker it leaves is read without
    /// following links: the sandbox is the task's.
    /// </summary>
    public static string? LaunchFailure(TaskRun run, int? exitCode)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (exitCode != 125)
        {
            return null;
        }

        using var marker = Native.OpenBeneath(run.Sandbox!, LaunchFailedMarker);
        if (marker is null)
        {
            return null;
        }

        Span<byte> text = stackalloc byte[200];
        var read = RandomAccess.Read(marker, text, 0);
        var reason = System.Text.Encoding.UTF8.GetString(text[..read]).Trim();
        return $"Failed to launch task: {(reason.Length > 0 ? reason : "could not join its cgroups")}";
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

    /// <summary><c>sh -c SHIM drover-shim exits task [setpriv … --] command…</c> (argv[0] included).</summary>
    private List<string> BuildArgv(TaskRun run)
    {
        var spec = run.Spec;
        var argv = new List<string>(24) { Shell, "-c", ShimScript, ShimName, run.ExitsLog!, spec.Id };

        // No setsid step: the shim is spawned in a new session already, so it leads the task's session and process group.
        if (run.RunAs is { } user)
        {
            argv.AddRange(UserStage.SetprivArguments(setpriv!, user));
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
