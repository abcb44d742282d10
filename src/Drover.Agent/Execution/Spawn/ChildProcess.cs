using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;

namespace Drover.Agent.Execution.Spawn;

/// <summary>
/// A child process started with <c>posix_spawn</c> and reaped by the <see cref="ChildReaper"/>.
/// <para>
/// Why not <see cref="System.Diagnostics.Process"/>: for every Process child .NET keeps a wait handle
/// (closed later on the finalizer thread) and, on every SIGCHLD, calls <c>waitpid</c> on each child it
/// tracks. With a thousand long-running tasks, every short-lived child that exits (a health check, a
/// shim) then costs a thousand system calls; profiling showed that bookkeeping taking over half the
/// agent's CPU during launch bursts. Children spawned here are unknown to .NET and cost nothing
/// until they exit.
/// </para>
/// </summary>
internal sealed class ChildProcess
{
    internal ChildProcess(int pid, Task<int> exited)
    {
        Pid = pid;
        Exited = exited;
    }

    public int Pid { get; }

    /// <summary>
    /// Completes with the exit status in shell convention: the exit code, or 128 + signal number
    /// for a process killed by a signal (as <see cref="System.Diagnostics.Process.ExitCode"/> reports it).
    /// </summary>
    public Task<int> Exited { get; }

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="argv"/> (argv[0] included) and exactly the
    /// given environment, in <paramref name="workingDirectory"/>, with default signal dispositions and an
    /// empty signal mask, optionally in a new session (<c>setsid</c>, so the child leads its own
    /// process group). Throws <see cref="Win32Exception"/> when the spawn fails.
    /// </summary>
    public static ChildProcess Start(string path, IReadOnlyList<string> argv, IEnumerable<KeyValuePair<string, string>> environment,
        string? workingDirectory, bool newSession)
    {
        using var request = new SpawnRequest(path, argv, environment, workingDirectory, newSession, []);
        return request.Spawn();
    }
}

/// <summary>
/// Everything <c>posix_spawn</c> needs, marshalled to native memory up front (path, argv, envp, attributes,
/// file actions), so the spawn itself is one native call: the <see cref="NamespaceSpawner"/> makes it at a
/// moment when no managed allocation may happen.
/// </summary>
internal sealed unsafe class SpawnRequest : IDisposable
{
    private readonly NativeStringArray _argv;
    private readonly NativeStringArray _envp;
    private readonly IntPtr _path;
    private readonly IntPtr _attr;
    private readonly IntPtr _actions;
    private bool _disposed;

    /// <param name="inherit">Descriptors of this process the child gets, each as the given number (<c>dup2</c>).</param>
    public SpawnRequest(string path, IReadOnlyList<string> argv, IEnumerable<KeyValuePair<string, string>> environment,
        string? workingDirectory, bool newSession, ReadOnlySpan<(int Fd, int As)> inherit)
    {
        _argv = new NativeStringArray(argv);
        _envp = new NativeStringArray([.. environment.Select(kv => kv.Key + "=" + kv.Value)]);
        _path = Marshal.StringToCoTaskMemUTF8(path);
        _attr = Marshal.AllocHGlobal(PosixSpawn.AttrSize);
        _actions = Marshal.AllocHGlobal(PosixSpawn.FileActionsSize);
        var sigset = stackalloc byte[PosixSpawn.SigSetSize];
        Check(PosixSpawn.posix_spawnattr_init(_attr), "posix_spawnattr_init");
        Check(PosixSpawn.posix_spawn_file_actions_init(_actions), "posix_spawn_file_actions_init");
        short flags = PosixSpawn.SetSigMask | PosixSpawn.SetSigDef;
        if (newSession)
        {
            flags |= PosixSpawn.SetSid;
        }

        PosixSpawn.sigemptyset((IntPtr)sigset);
        Check(PosixSpawn.posix_spawnattr_setsigmask(_attr, (IntPtr)sigset), "posix_spawnattr_setsigmask");
        PosixSpawn.sigfillset((IntPtr)sigset);
        Check(PosixSpawn.posix_spawnattr_setsigdefault(_attr, (IntPtr)sigset), "posix_spawnattr_setsigdefault");
        Check(PosixSpawn.posix_spawnattr_setflags(_attr, flags), "posix_spawnattr_setflags");
        foreach (var (fd, target) in inherit)
        {
            Check(PosixSpawn.posix_spawn_file_actions_adddup2(_actions, fd, target), "posix_spawn_file_actions_adddup2");
        }

        if (workingDirectory is not null)
        {
            Check(PosixSpawn.posix_spawn_file_actions_addchdir_np(_actions, workingDirectory), "posix_spawn_file_actions_addchdir_np");
        }
    }

    public IntPtr Path => _path;

    public IntPtr Attr => _attr;

    public IntPtr Actions => _actions;

    public IntPtr Argv => _argv.Pointer;

    public IntPtr Envp => _envp.Pointer;

    /// <summary>Spawns the child in this thread's namespaces and starts reaping it. Throws <see cref="Win32Exception"/> when the spawn fails.</summary>
    public ChildProcess Spawn()
    {
        // Registering after the spawn cannot miss the exit: the child stays a zombie until reaped.
        var rc = PosixSpawn.posix_spawn(out var pid, _path, _actions, _attr, _argv.Pointer, _envp.Pointer);
        Check(rc, $"posix_spawn {Marshal.PtrToStringUTF8(_path)}");
        return new ChildProcess(pid, ChildReaper.Instance.Watch(pid));
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        PosixSpawn.posix_spawn_file_actions_destroy(_actions);
        PosixSpawn.posix_spawnattr_destroy(_attr);
        Marshal.FreeHGlobal(_attr);
        Marshal.FreeHGlobal(_actions);
        Marshal.FreeCoTaskMem(_path);
        _argv.Dispose();
        _envp.Dispose();
    }

    private static void Check(int rc, string what)
    {
        if (rc != 0)
        {
            throw new Win32Exception(rc, $"{what} failed: {new Win32Exception(rc).Message}");
        }
    }

    /// <summary>A NULL-terminated array of NUL-terminated UTF-8 strings in unmanaged memory.</summary>
    private sealed class NativeStringArray : IDisposable
    {
        private readonly IntPtr[] _strings;

        public NativeStringArray(IReadOnlyList<string> values)
        {
            _strings = new IntPtr[values.Count];
            Pointer = Marshal.AllocHGlobal(IntPtr.Size * (values.Count + 1));
            for (var i = 0; i < values.Count; i++)
            {
                var bytes = Encoding.UTF8.GetBytes(values[i] + "\0");
                _strings[i] = Marshal.AllocHGlobal(bytes.Length);
                Marshal.Copy(bytes, 0, _strings[i], bytes.Length);
                Marshal.WriteIntPtr(Pointer, i * IntPtr.Size, _strings[i]);
            }

            Marshal.WriteIntPtr(Pointer, values.Count * IntPtr.Size, IntPtr.Zero);
        }

        public IntPtr Pointer { get; }

        public void Dispose()
        {
            foreach (var s in _strings)
            {
                Marshal.FreeHGlobal(s);
            }

            Marshal.FreeHGlobal(Pointer);
        }
    }
}

/// <summary>glibc's posix_spawn family (sizes rounded up generously for x86-64 and arm64).</summary>
internal static partial class PosixSpawn
{
    public const int AttrSize = 512;        // sizeof(posix_spawnattr_t) is 336
    public const int FileActionsSize = 128; // sizeof(posix_spawn_file_actions_t) is 80
    public const int SigSetSize = 128;      // sizeof(sigset_t)

    public const short SetSigDef = 0x04;
    public const short SetSigMask = 0x08;
    public const short SetSid = 0x80;       // glibc extension (2.26+)

    [LibraryImport("libc")]
    internal static partial int posix_spawn(out int pid, IntPtr path, IntPtr fileActions, IntPtr attr, IntPtr argv, IntPtr envp);

    [LibraryImport("libc")]
    internal static partial int posix_spawnattr_init(IntPtr attr);

    [LibraryImport("libc")]
    internal static partial int posix_spawnattr_destroy(IntPtr attr);

    [LibraryImport("libc")]
    internal static partial int posix_spawnattr_setflags(IntPtr attr, short flags);

    [LibraryImport("libc")]
    internal static partial int posix_spawnattr_setsigmask(IntPtr attr, IntPtr sigset);

    [LibraryImport("libc")]
    internal static partial int posix_spawnattr_setsigdefault(IntPtr attr, IntPtr sigset);

    [LibraryImport("libc")]
    internal static partial int posix_spawn_file_actions_init(IntPtr actions);

    [LibraryImport("libc")]
    internal static partial int posix_spawn_file_actions_destroy(IntPtr actions);

    [LibraryImport("libc")]
    internal static partial int posix_spawn_file_actions_adddup2(IntPtr actions, int fd, int newFd);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int posix_spawn_file_actions_addchdir_np(IntPtr actions, string path);

    [LibraryImport("libc")]
    internal static partial int sigemptyset(IntPtr set);

    [LibraryImport("libc")]
    internal static partial int sigfillset(IntPtr set);
}
