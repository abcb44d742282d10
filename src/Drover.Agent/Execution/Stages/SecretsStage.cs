using System.Text;
using Drover.Core;
using Drover.Core.Secrets;

namespace Drover.Agent.Execution.Stages;

/// <summary>
/// Puts the values of a task's secrets (<see cref="TaskSpec.Secrets"/>, resolved by the master into the launch command
/// and kept in <see cref="TaskRun.SecretValues"/>, in memory only) into that task and nowhere else:
/// <list type="bullet">
/// <item>an environment variable goes into the environment of the task's process (it overrides a plain variable of the
/// spec, never one the agent sets: <c>MESOS_SANDBOX</c>, <c>PORT0</c>, <c>USER</c>…);</item>
/// <item>a file goes on a tmpfs that is created detached (mounted nowhere), filled through its descriptor, made
/// read-only and attached at <c>{sandbox}/.secrets</c> in the task's own mount namespace by the runtime
/// (<see cref="Spawn.MountPlan.SecretsMount"/>): each file is mode 0400 and owned by the task's user, and
/// <c>{sandbox}/{path}</c> is a symbolic link to it. On the host the sandbox holds only the empty <c>.secrets</c>
/// directory and the links, which lead nowhere there: neither the disk nor a grep of the agent's work dir ever sees
/// a value.</item>
/// </list>
/// Files need the task's mount namespace (an isolating agent, <see cref="NamespacesStage"/>); without one the launch
/// fails rather than write a secret to disk. Once the task's first process has started, the values are cleared and
/// the mount's descriptor closed: the process has its environment and the namespace holds the tmpfs, so an agent
/// restart loses nothing and relaunches nothing. COMMAND health checks get the environment without the secrets.
/// Nothing is checkpointed.
/// </summary>
internal sealed class SecretsStage : ILaunchStage
{
    private const uint FileMode = 0x100; // 0400
    private const uint DirMode = 0x140; // 0500

    /// <summary>Per launching task: the environment variables this stage set, with what they held before (null: absent).</summary>
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<TaskRun, List<(string Name, string? Previous)>> _set = [];

    public string Name => "secrets";

    public string? Prepare(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var secrets = run.Spec.Secrets;
        if (secrets.IsEmpty)
        {
            return null;
        }

        var values = new byte[secrets.Length][];
        foreach (var v in run.SecretValues)
        {
            if (v.Index >= 0 && v.Index < values.Length)
            {
                values[v.Index] = v.Data;
            }
        }

        for (var i = 0; i < secrets.Length; i++)
        {
            if (values[i] is null)
            {
                return $"Failed to launch task: the launch command carried no value for its secret {Describe(secrets[i])}";
            }
        }

        var files = new List<(string Path, byte[] Value)>();
        for (var i = 0; i < secrets.Length; i++)
        {
            var s = secrets[i];
            if (s.Target == SecretTarget.File)
            {
                if (SecretPaths.FilePathError(s.Name) is { } bad)
                {
                    return $"Failed to launch task: secret file: {bad}";
                }

                files.Add((s.Name, values[i]));
                continue;
            }

            if (SecretPaths.EnvNameError(s.Name) is { } badName)
            {
                return $"Failed to launch task: secret environment variable: {badName}";
            }

            if (Text(values[i]) is not { } text)
            {
                return $"Failed to launch task: the value of secret environment variable {s.Name} is not text (UTF-8 without NUL); deliver it as a file";
            }

            // A secret replaces a plain variable of the spec, never one the agent sets itself.
            var had = run.Environment.TryGetValue(s.Name, out var previous);
            if (!had || run.Spec.Env.ContainsKey(s.Name))
            {
                _set.GetOrCreateValue(run).Add((s.Name, had ? previous : null));
                run.Environment[s.Name] = text;
            }
        }

        return files.Count == 0 ? null : PrepareFiles(run, files);
    }

    /// <summary>The tmpfs of the task's secret files, filled and planned for its namespace; or why it cannot be.</summary>
    private static string? PrepareFiles(TaskRun run, List<(string Path, byte[] Value)> files)
    {
        if (run.Mounts is not { } plan)
        {
            return "Failed to launch task: it has secret files, which need the task's own mount namespace, and this agent does not isolate tasks "
                + "(it runs without root, or with isolation off); a secret is never written to disk";
        }

        var uid = run.RunAs?.Uid ?? 0;
        var gid = run.RunAs?.Gid ?? 0;
        var sandbox = run.Sandbox!;

        // What the host sees: the (covered) mount point, and a link per file into it.
        var mountPoint = Path.Combine(sandbox, SecretPaths.ReservedSandboxDir);
        Directory.CreateDirectory(mountPoint);
        File.SetUnixFileMode(mountPoint, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        foreach (var (path, _) in files)
        {
            var link = Path.Combine(sandbox, path);
            var depth = path.Count(c => c == '/');
            for (var dir = Path.GetDirectoryName(link)!; dir.Length > sandbox.Length && !Directory.Exists(dir); dir = Path.GetDirectoryName(dir)!)
            {
                Directory.CreateDirectory(dir);
                Native.Chown(dir, uid, gid);
            }

            var target = string.Concat(Enumerable.Repeat("../", depth)) + SecretPaths.ReservedSandboxDir + "/" + path;
            File.CreateSymbolicLink(link, target);
            Native.Lchown(link, uid, gid);
        }

        // The tmpfs: sized for the files (a page each at least) and a few directories.
        var size = files.Sum(f => (f.Value.Length + 4095L) / 4096 * 4096) + 64 * 1024;
        var fd = Native.CreateDetachedTmpfs(size, inodes: (files.Count * 2) + 16, DirMode, uid, gid);
        try
        {
            foreach (var (path, value) in files)
            {
                var parts = path.Split('/');
                for (var i = 1; i < parts.Length; i++)
                {
                    Native.MkdirAt(fd, string.Join('/', parts[..i]), DirMode, uid, gid);
                }

                Native.WriteNewFileAt(fd, path, value, FileMode, uid, gid);
            }

            Native.MakeReadOnly(fd);
        }
        catch
        {
            Native.Close(fd);
            throw;
        }

        run.Mounts = plan with { SecretsMount = fd };
        return null;
    }

    /// <summary>The task's first process exists (with its environment and, in its namespace, the tmpfs): forget the values.</summary>
    public void AfterStart(TaskRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        Forget(run);
    }

    /// <remarks>After a failed launch: the values and the tmpfs' descriptor (a tmpfs never attached vanishes with it).</remarks>
    public Task CleanupAsync(TaskRun run, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(run);
        lock (run.Gate)
        {
            Forget(run);
        }

        return Task.CompletedTask;
    }

    /// <remarks>Nothing: a running task already has its secrets, and the agent never had them on disk.</remarks>
    public void Recover(TaskRun run)
    {
    }

    private void Forget(TaskRun run)
    {
        foreach (var v in run.SecretValues)
        {
            Array.Clear(v.Data);
        }

        run.SecretValues = [];
        if (_set.TryGetValue(run, out var set))
        {
            // COMMAND checks run with the task's environment: without the secrets, as after an agent restart.
            for (var i = set.Count - 1; i >= 0; i--)
            {
                var (name, previous) = set[i];
                if (previous is null)
                {
                    run.Environment.Remove(name);
                }
                else
                {
                    run.Environment[name] = previous;
                }
            }

            _set.Remove(run);
        }

        if (run.Mounts is { SecretsMount: >= 0 } plan)
        {
            Native.Close(plan.SecretsMount);
            run.Mounts = plan with { SecretsMount = -1 };
        }
    }

    private static string? Text(byte[] value)
    {
        if (value.AsSpan().IndexOf((byte)0) >= 0)
        {
            return null;
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(value);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static string Describe(TaskSecret s) => s.Target == SecretTarget.Env ? $"environment variable {s.Name}" : $"file {s.Name}";
}
