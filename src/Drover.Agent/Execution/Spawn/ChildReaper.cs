using System.Collections.Concurrent;
using System.ComponentModel;
using System.Runtime.InteropServices;

namespace Drover.Agent.Execution.Spawn;

/// <summary>
/// Reaps the children started by <see cref="ChildProcess"/>: one background thread waits in
/// <c>epoll_wait</c> on a <c>pidfd</c> per child and, when one becomes readable (the child exited),
/// collects exactly that child with <c>waitpid(pid)</c>. It never waits for other children, so it
/// coexists with <see cref="System.Diagnostics.Process"/> and anything else in the process.
/// Thread-safe; one instance per process.
/// <para>
/// Each watch is its own registration, named in the epoll set by a number never reused, not by the
/// pid: one pid can be watched twice at once. An agent restarted inside the same process (tests,
/// <c>InProcessCluster</c>) adopts, as foreign, a shim the previous executor spawned and still
/// watches; and an adopted shim's pid can be reused by a new child once its parent reaped it,
/// before this thread handled its exit. Keyed by pid, the second watch replaced the first, whose
/// pidfd stayed in the (level-triggered) epoll set, ready forever: this thread spun on it, the
/// child was never reaped (a zombie whose <c>Exited</c> never completed), and in the reuse case the
/// stale event made it <c>waitpid</c> the new, live child, so no other exit was seen until that
/// child ended.
/// </para>
/// </summary>
internal sealed partial class ChildReaper
{
    public static readonly ChildReaper Instance = new();

    private readonly int _epoll;
    private readonly ConcurrentDictionary<ulong, Registration> _watches = new();
    private long _lastToken;

    /// <summary>What <see cref="WatchForeign"/>'s task completes with: the process was not ours to reap.</summary>
    public const int UnknownStatus = -1;

    private ChildReaper()
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new PlatformNotSupportedException("the child reaper's epoll_event layout is x86-64's");
        }

        _epoll = epoll_create1(EpollCloExec);
        if (_epoll < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), "epoll_create1 failed");
        }

        var thread = new Thread(Run) { IsBackground = true, Name = "drover-child-reaper" };
        thread.Start();
    }

    /// <summary>Starts watching <paramref name="pid"/> (a child of this process that nobody else reaps).</summary>
    public Task<int> Watch(int pid)
    {
        var pidfd = (int)syscall(SysPidfdOpen, pid, 0);
        if (pidfd < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), $"pidfd_open({pid}) failed");
        }

        return Register(pid, pidfd, reap: true);
    }

    /// <summary>
    /// Watches a process that is not a child of this one (a task supervisor left by a previous agent
    /// process): the task completes with <see cref="UnknownStatus"/> when it exits — only its parent
    /// can learn the status. Null when no such process exists or <paramref name="isExpected"/> says
    /// the pid now belongs to someone else. The check runs after the pidfd is open, and a pidfd pins
    /// one process, so a pid reused after the check can never be mistaken for the expected one.
    /// </summary>
    public Task<int>? WatchForeign(int pid, Func<int, bool> isExpected)
    {
        ArgumentNullException.ThrowIfNull(isExpected);
        var pidfd = (int)syscall(SysPidfdOpen, pid, 0);
        if (pidfd < 0)
        {
            return null;
        }

        if (!isExpected(pid))
        {
            close(pidfd);
            return null;
        }

        return Register(pid, pidfd, reap: false);
    }

    private Task<int> Register(int pid, int pidfd, bool reap)
    {
        var exit = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var token = (ulong)Interlocked.Increment(ref _lastToken);
        _watches[token] = new Registration(pid, pidfd, exit, reap);
        var ev = new EpollEvent { Events = EpollIn, Data = token };
        if (epoll_ctl(_epoll, EpollCtlAdd, pidfd, ref ev) != 0)
        {
            var error = Marshal.GetLastPInvokeError();
            _watches.TryRemove(token, out _);
            close(pidfd);
            throw new Win32Exception(error, $"epoll_ctl({pid}) failed");
        }

        return exit.Task;
    }

    private void Run()
    {
        var events = new EpollEvent[64];
        while (true)
        {
            var n = epoll_wait(_epoll, events, events.Length, -1);
            if (n < 0)
            {
                continue; // EINTR
            }

            for (var i = 0; i < n; i++)
            {
                // Every registration leaves the epoll set when its one event is handled, so a token
                // always names a live registration.
                if (!_watches.TryRemove(events[i].Data, out var watch))
                {
                    continue;
                }

                epoll_ctl(_epoll, EpollCtlDel, watch.PidFd, ref events[i]);
                close(watch.PidFd);
                if (!watch.Reap)
                {
                    watch.Exit.TrySetResult(UnknownStatus);
                    continue;
                }

                // The pidfd said this very child exited, and only this registration reaps it (a pid
                // cannot be reused before it is reaped): waitpid returns at once.
                int status;
                int rc;
                do
                {
                    rc = waitpid(watch.Pid, out status, 0);
                }
                while (rc < 0 && Marshal.GetLastPInvokeError() == EIntr);

                watch.Exit.TrySetResult(rc < 0 ? 255 : Decode(status));
            }
        }
    }

    /// <summary>waitpid status → exit code, or 128 + signal for a signalled child.</summary>
    internal static int Decode(int status)
    {
        var signal = status & 0x7f;
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal;
    }

    /// <summary>One watched process: its pidfd (in the epoll set), who waits for it, and whether to reap it.</summary>
    private readonly record struct Registration(int Pid, int PidFd, TaskCompletionSource<int> Exit, bool Reap);

    private const int EpollCloExec = 0x80000;
    private const int EpollCtlAdd = 1;
    private const int EpollCtlDel = 2;
    private const uint EpollIn = 0x001;
    private const long SysPidfdOpen = 434;
    private const int EIntr = 4;

    /// <summary>struct epoll_event: packed (12 bytes) on x86-64, the architecture Drover agents run on.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, ref EpollEvent ev);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, [Out] EpollEvent[] events, int maxEvents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, int pid, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
