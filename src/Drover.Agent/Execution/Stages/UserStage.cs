using System.Collections.Concurrent;
using System.Globalization;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// Who the task runs as, and with which privileges. A task with <see cref="Drover.Core.TaskSpec.User"/> (Marathon's
/// <c>user</c>) runs as that Unix user; on an isolating agent a task without one runs as the agent's default task user
/// (<c>nobody</c>). The user is resolved through NSS and owns the sandbox (mode 0700), as in Mesos. The runtime drops
/// to the user with <c>setpriv</c> (util-linux) right before it execs the command; the shim (joining the logs,
/// recording the exit status) stays with the agent's privileges. Whether a submitter may ask for a user (root) is the
/// master's decision: the agent runs what it is told.
/// </summary>
/// <remarks>
/// Isolated tasks are confined (<see cref="RunAsUser.Confined"/>): every capability dropped for a user other than root,
/// all but Docker's default set for root (no <c>CAP_SYS_ADMIN</c>: no mounts, so no read-write cgroupfs), and
/// <c>no_new_privs</c> for both, so a setuid program or file capability gives nothing more. The user is
/// checkpointed (state <c>uid:gid:name</c>) so an adopted task's COMMAND checks run as it after an agent restart.
/// </remarks>
internal sealed class UserStage(bool isolate, string defaultUser, string? setpriv, string hostname) : ILaunchStage
{
    /// <summary>Each user's supplementary groups (NSS, looked up once per user): setpriv gets them as numbers.</summary>
    private readonly ConcurrentDictionary<(string Name, uint Gid), string> _groups = new();

    /// <summary>The agent's PATH as each user sees it, by (uid, gid, PATH).</summary>
    private readonly ConcurrentDictionary<(uint Uid, uint Gid, string Path), string> _paths = new();

    /// <summary>
    /// Docker's default capability set (what a root task keeps when isolated) as a mask of capability numbers: chown 0,
    /// dac_override 1, fowner 3, fsetid 4, kill 5, setgid 6, setuid 7, setpcap 8, net_bind_service 10, net_raw 13,
    /// sys_chroot 18, mknod 27, audit_write 29, setfcap 31 (<c>CapBnd: 00000000a80425fb</c> in a Docker container).
    /// </summary>
    public const ulong ContainerCapabilityMask = 0xa80425fb;

    /// <summary>The same set in <c>setpriv</c>'s names.</summary>
    public const string ContainerCapabilities =
        "+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap";

    /// <summary>The path of <c>setpriv</c>, or null when it is not installed.</summary>
    public string? Setpriv { get; } = setpriv;

    public string Name => "user";

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var user = run.Spec.User ?? (isolate ? defaultUser : null);
        if (user is null)
        {
            return null;
        }

        if (Setpriv is null)
        {
            return $"Cannot run as user '{user}': setpriv (util-linux) is not installed on this agent";
        }

        if (!Native.TryGetUser(user, out var uid, out var gid))
        {
            return $"Cannot run as user '{user}': no such user on agent {hostname}";
        }

        // Groups as numbers: setpriv --init-groups would load the NSS modules and read the group database per launch.
        var groups = _groups.GetOrAdd((user, gid), key => string.Join(',', Native.GroupsOf(key.Name, key.Gid)));
        run.RunAs = new RunAsUser(user, uid, gid, Confined: isolate) { Groups = groups };
        run.Environment["USER"] = user;
        run.Environment["LOGNAME"] = user;
        if (uid != 0 && !run.Spec.Env.ContainsKey("PATH") && run.Environment.TryGetValue("PATH", out var path))
        {
            // The agent's PATH without the directories the user cannot enter: useless to the task, and setpriv looks the
            // command up before it gives up the agent's capabilities, so it would find (and run) programs there that the
            // user itself could not reach.
            run.Environment["PATH"] = _paths.GetOrAdd((uid, gid, path), key =>
                string.Join(':', key.Path.Split(':').Where(dir => dir.Length > 0 && CanEnter(dir, key.Uid, key.Gid, ancestors: true))));
        }

        // The sandbox belongs to the task's user, as Mesos does it, and to nobody else (0700).
        Native.Chown(run.Sandbox!, uid, gid);
        Native.Chown(Path.Combine(run.Sandbox!, "stdout"), uid, gid);
        Native.Chown(Path.Combine(run.Sandbox!, "stderr"), uid, gid);
        if (isolate)
        {
            run.SaveStageState(Name, string.Create(CultureInfo.InvariantCulture, $"{uid}:{gid}:{user}"));
        }

        return null;
    }

    public void AfterStart(TaskRun run)
    {
    }

    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The user the task was launched as (checkpointed): its COMMAND checks run as that user.</summary>
    public void Recover(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.StageState?.GetValueOrDefault(Name) is { } state
            && state.Split(':', 3) is [var uid, var gid, var name]
            && uint.TryParse(uid, NumberStyles.None, CultureInfo.InvariantCulture, out var u)
            && uint.TryParse(gid, NumberStyles.None, CultureInfo.InvariantCulture, out var g))
        {
            run.RunAs = new RunAsUser(name, u, g, Confined: true);
        }
    }

    /// <summary>
    /// Whether <paramref name="uid"/>/<paramref name="gid"/> may enter <paramref name="dir"/> (and, with
    /// <paramref name="ancestors"/>, every directory above it), by the permission bits (supplementary groups are not
    /// considered: the answer errs on the side of "no"). A directory that does not exist cannot be entered.
    /// </summary>
    public static bool CanEnter(string dir, uint uid, uint gid, bool ancestors)
    {
        if (uid == 0)
        {
            return Directory.Exists(dir);
        }

        for (var path = dir; !string.IsNullOrEmpty(path); path = ancestors ? Path.GetDirectoryName(path) : null)
        {
            if (!Native.TryStat(path, out var status) || !status.IsDirectory)
            {
                return false;
            }

            var mode = (UnixFileMode)(status.Mode & 0x1ff);
            if (!(mode.HasFlag(UnixFileMode.OtherExecute)
                || (status.Uid == uid && mode.HasFlag(UnixFileMode.UserExecute))
                || (status.Gid == gid && mode.HasFlag(UnixFileMode.GroupExecute))))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// <c>setpriv</c> and its arguments up to <c>--</c>, to prefix a command with so it runs as <paramref name="user"/>
    /// (also used for COMMAND checks, which must never run with more privileges than their task).
    /// </summary>
    public static IEnumerable<string> SetprivArguments(string setpriv, RunAsUser user)
    {
        ArgumentNullException.ThrowIfNull(user);
        yield return setpriv;
        yield return string.Create(CultureInfo.InvariantCulture, $"--reuid={user.Uid}");
        yield return string.Create(CultureInfo.InvariantCulture, $"--regid={user.Gid}");
        yield return user.Groups is { Length: > 0 } groups ? "--groups=" + groups : "--init-groups";
        if (user.Confined)
        {
            yield return "--inh-caps=-all";
            yield return user.Uid == 0 ? "--bounding-set=-all," + ContainerCapabilities : "--bounding-set=-all";
            yield return "--no-new-privs";
        }

        yield return "--";
    }
}
