using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Drover.Agent.Execution.Spawn;

/// <summary>
/// Spawns processes into Linux namespaces without a helper process: a task's first process into fresh mount,
/// PID and IPC namespaces laid out by a <see cref="MountPlan"/> (<see cref="SpawnIsolated"/>), or a health
/// check into a running task's namespaces, as the task's user (<see cref="SpawnAs"/>).
/// </summary>
/// <remarks>
/// <para>
/// How: a dedicated thread, which has its own filesystem context (<c>unshare(CLONE_FS)</c> once), enters the
/// namespaces itself (<c>unshare</c> or <c>setns</c>; mount and IPC namespaces are per thread, the PID namespace
/// applies to the thread's children), lays out the mounts, calls <c>posix_spawn</c> (the child inherits the
/// thread's namespaces, and is PID 1 of a new PID namespace), mounts the new namespace's <c>/proc</c>, and goes
/// back to the agent's namespaces. That costs a few dozen system calls per launch instead of the processes a
/// chain of <c>unshare</c>, <c>mount</c> and a shell would (about 1 ms of CPU each on this VM).
/// </para>
/// <para>
/// Why so careful: while the thread is in a task's namespaces, any thread the runtime creates from it (the GC's
/// background thread, the tiered JIT's worker) would inherit them and share the thread's filesystem context,
/// which would then make <c>setns</c> back impossible. So the whole sequence — the <i>window</i> — runs in one
/// method compiled fully optimized up front (no call counting), calls libc only through function pointers (no
/// marshalling stubs), and touches only native memory prepared beforehand (no managed allocation, so no GC is
/// triggered from it). A thread that cannot return to the agent's namespaces is retired, never reused.
/// </para>
/// <para>
/// A COMMAND check must run as its task's user with no more privileges than its task, but spawning it through
/// <c>setpriv</c> would cost an exec per check, and checks run all the time. So checks are spawned by other threads,
/// <i>confined</i> for good when they start (<c>no_new_privs</c>, capability bounding set reduced to Docker's default
/// set, as a root task's): for each check such a thread takes the user's credentials itself (<c>setgroups</c>,
/// <c>setresgid</c>, <c>setresuid</c> as raw system calls, which change only the calling thread; the saved uid stays
/// 0 so it can come back), spawns (the exec makes the child's credentials entirely the user's and leaves it no
/// capability), and returns to the agent's credentials.
/// </para>
/// <para>
/// <c>/proc</c> of the new PID namespace is mounted by the agent with the <c>pidns=</c> option (Linux 6.18+). An
/// older kernel refuses the option; then the task's shim mounts it (<see cref="ShimMountsProc"/>), which costs one
/// <c>mount</c> process per launch.
/// </para>
/// </remarks>
internal sealed unsafe class NamespaceSpawner
{
    private const int CloneFs = 0x00000200;
    private const int CloneNewNs = 0x00020000;
    private const int CloneNewIpc = 0x08000000;
    private const int CloneNewPid = 0x20000000;

    /// <summary>
    /// Threads of each kind: a launch waits for one of them (it holds it for a few hundred microseconds, most of it in
    /// <c>posix_spawn</c> until the child has exec'd), so a burst of launches needs a few, not one per launch thread.
    /// </summary>
    private static readonly Lazy<NamespaceSpawner> Shared = new(() => new NamespaceSpawner(Math.Clamp(Environment.ProcessorCount * 2, 4, 16)));

    private readonly BlockingCollection<Work> _queue = [];
    private readonly BlockingCollection<Work> _confinedQueue = [];
    private readonly ConcurrentDictionary<(string Name, uint Gid), uint[]> _groups = new();
    private readonly LibC* _libc;
    private int _procByShim;

    private NamespaceSpawner(int threads)
    {
        _libc = LibC.Load();
        for (var i = 0; i < threads; i++)
        {
            StartThread(i, confined: false);
            StartThread(i, confined: true);
        }

        // What every isolated launch needs, tried once: an agent on a kernel without it fails to start, not per task.
        using var probe = new Program(_libc, request: null);
        probe.Add(Code.Unshare, flags: CloneNewNs | CloneNewPid | CloneNewIpc);
        probe.Add(Code.Mount, b: "/", flags: MsRec | MsSlave, what: "make / a slave mount");
        probe.Add(Code.Mount, a: "tmpfs", b: "/tmp", c: "tmpfs", d: "mode=1777", flags: MsNosuid | MsNodev);
        probe.Add(Code.OpenTree, a: "/tmp", slot: 0, flags: OpenTreeClone | OpenTreeCloexec);
        probe.Add(Code.SetattrSlot, slot: 0, flags: MountAttrRdonly);
        probe.Add(Code.MoveMount, slot: 0, b: "/tmp");
        probe.Add(Code.SetattrPath, a: "/tmp", flags: MountAttrRdonly, recursive: true);
        var failure = Run(probe, CloneNewNs | CloneNewPid | CloneNewIpc).Failure;
        if (failure is null)
        {
            using var confinedProbe = new Program(_libc, request: null);
            confinedProbe.SetCredentials(new RunAsUser("nobody", 65534, 65534, Confined: true), []);
            failure = Run(confinedProbe, 0, confined: true).Failure;
        }

        if (failure is not null)
        {
            throw new InvalidOperationException(
                $"tasks cannot be isolated on this machine: {failure}. Task isolation needs Linux 5.12 or later and root.");
        }
    }

    /// <summary>The process-wide spawner (its threads live as long as the process).</summary>
    public static NamespaceSpawner Instance => Shared.Value;

    /// <summary>
    /// True once the kernel refused to mount a task's <c>/proc</c> from the agent (no <c>pidns=</c> mount option):
    /// from then on the task's shim mounts it.
    /// </summary>
    public bool ShimMountsProc
    {
        get => Volatile.Read(ref _procByShim) != 0;

        // Tests take the older kernels' path on this one.
        internal set => Volatile.Write(ref _procByShim, value ? 1 : 0);
    }

    /// <summary>
    /// Spawns <paramref name="request"/> in new mount, PID and IPC namespaces laid out by <paramref name="plan"/>: the
    /// child is PID 1 of its namespace. Throws <see cref="IOException"/> naming the step that failed (a child already
    /// spawned is then still returned through <paramref name="spawned"/>, to be reaped).
    /// </summary>
    public ChildProcess SpawnIsolated(SpawnRequest request, MountPlan plan, out bool procMounted)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(plan);
        using var program = new Program(_libc, request);
        program.Add(Code.Unshare, flags: CloneNewNs | CloneNewPid | CloneNewIpc);
        program.Add(Code.Mount, b: "/", flags: MsRec | MsSlave, what: "make / a slave mount");

        // Detached copies of what the task keeps, taken before anything hides it.
        const int sandboxSlot = 0;
        program.Add(Code.OpenTree, a: plan.Sandbox, slot: sandboxSlot, flags: OpenTreeClone | OpenTreeCloexec);
        for (var i = 0; i < plan.Cgroups.Length; i++)
        {
            program.Add(Code.OpenTree, a: plan.Cgroups[i].Directory, slot: 1 + i, flags: OpenTreeClone | OpenTreeCloexec);
            program.Add(Code.SetattrSlot, slot: 1 + i, flags: MountAttrRdonly | MountAttrNosuid | MountAttrNodev | MountAttrNoexec);
        }

        foreach (var tmp in plan.Tmp)
        {
            program.Add(Code.Mount, a: "tmpfs", b: tmp, c: "tmpfs", d: "mode=1777", flags: MsNosuid | MsNodev);
        }

        if (plan.Mask is { } mask)
        {
            program.Add(Code.Mount, a: "tmpfs", b: mask, c: "tmpfs", d: "mode=755", flags: MsNosuid | MsNodev);
        }

        foreach (var dir in plan.MountPoints)
        {
            program.Add(Code.Mkdir, a: dir, flags: 0x1ed); // 0755, root's: the task can enter, not change them
        }

        program.Add(Code.MoveMount, slot: sandboxSlot, b: plan.Sandbox);
        if (plan.SecretsMount >= 0)
        {
            // The task's secret files, on a tmpfs that exists in no other mount namespace: the host's view of the sandbox
            // (and of the agent's work dir) shows only the empty directory it covers.
            const int secretsSlot = 13;
            program.SetSlot(secretsSlot, plan.SecretsMount);
            program.Add(Code.MoveMount, slot: secretsSlot, b: plan.Sandbox + "/" + Drover.Core.Secrets.SecretPaths.ReservedSandboxDir, what: "mount the task's secrets");
        }

        if (plan.Mask is { } masked)
        {
            program.Add(Code.SetattrPath, a: masked, flags: MountAttrRdonly);
        }

        if (plan.Cgroups is [(_, null)])
        {
            program.Add(Code.MoveMount, slot: 1, b: "/sys/fs/cgroup");
        }
        else if (!plan.Cgroups.IsEmpty)
        {
            program.Add(Code.Mount, a: "tmpfs", b: "/sys/fs/cgroup", c: "tmpfs", d: "mode=755", flags: MsNosuid | MsNodev | MsNoexec);
            for (var i = 0; i < plan.Cgroups.Length; i++)
            {
                var target = "/sys/fs/cgroup/" + plan.Cgroups[i].Name;
                program.Add(Code.Mkdir, a: target, flags: 0x1ed);
                program.Add(Code.MoveMount, slot: 1 + i, b: target);
            }
        }

        foreach (var readOnly in plan.ReadOnly)
        {
            program.Add(Code.SetattrPath, a: readOnly, flags: MountAttrRdonly, recursive: true);
        }

        program.Add(Code.Spawn);
        if (!ShimMountsProc)
        {
            // Soft: an older kernel refuses pidns=, and the shim mounts /proc itself (then /proc/sys too).
            const int proc = 1, sysrq = 2;
            program.Add(Code.MountProc, b: "/proc", flags: MsNosuid | MsNodev | MsNoexec, softGroup: proc);
            program.Add(Code.OpenTree, a: "/proc/sys", slot: 14, flags: OpenTreeClone | OpenTreeCloexec | AtRecursive, requires: proc);
            program.Add(Code.SetattrSlot, slot: 14, flags: MountAttrRdonly, recursive: true, requires: proc);
            program.Add(Code.MoveMount, slot: 14, b: "/proc/sys", requires: proc);

            // A kernel without magic SysRq has no such file: nothing to protect then.
            program.Add(Code.OpenTree, a: "/proc/sysrq-trigger", slot: 15, flags: OpenTreeClone | OpenTreeCloexec, requires: proc, softGroup: sysrq);
            program.Add(Code.SetattrSlot, slot: 15, flags: MountAttrRdonly, requires: proc | sysrq);
            program.Add(Code.MoveMount, slot: 15, b: "/proc/sysrq-trigger", requires: proc | sysrq);
        }

        var result = Run(program, CloneNewNs | CloneNewPid | CloneNewIpc);
        procMounted = result.ProcMounted;
        if (!result.ProcMounted && !ShimMountsProc && result.Pid > 0)
        {
            Interlocked.Exchange(ref _procByShim, 1);
        }

        return Finish(result, "set up the task's namespaces");
    }

    /// <summary>
    /// Spawns <paramref name="request"/> on a confined thread (<c>no_new_privs</c>, Docker's capability bounding set):
    /// in the mount, PID and IPC namespaces of the process <paramref name="inside"/> (a task's shim) when given, and as
    /// <paramref name="user"/> when given (the child's real, effective and saved ids all the user's, its supplementary
    /// groups the user's, no capability). Throws <see cref="IOException"/> when the namespaces cannot be entered (the
    /// task ended) or the credentials taken.
    /// </summary>
    public ChildProcess SpawnAs(int? inside, RunAsUser? user, SpawnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var pidfd = -1;
        if (inside is { } pid)
        {
            pidfd = (int)Native.PidfdOpen(pid);
            if (pidfd < 0)
            {
                throw new IOException(string.Create(CultureInfo.InvariantCulture, $"cannot enter the namespaces of process {pid}: it does not exist"));
            }
        }

        try
        {
            using var program = new Program(_libc, request);
            var namespaces = 0;
            if (pidfd >= 0)
            {
                namespaces = CloneNewNs | CloneNewPid | CloneNewIpc;
                program.SetSlot(0, pidfd);
                program.Add(Code.SetnsSlot, slot: 0, flags: namespaces, what: "enter the task's namespaces");
            }

            if (user is { Uid: not 0 })
            {
                program.SetCredentials(user, GroupsOf(user));
            }

            program.Add(Code.Spawn);
            return Finish(Run(program, namespaces, confined: true), "start the process in the task's namespaces as its user");
        }
        finally
        {
            Native.Close(pidfd);
        }
    }

    /// <summary>The user's supplementary groups (NSS, as initgroups would set them), cached per user.</summary>
    private uint[] GroupsOf(RunAsUser user) => _groups.GetOrAdd((user.Name, user.Gid), key => Native.GroupsOf(key.Name, key.Gid));

    private static ChildProcess Finish(Result result, string what)
    {
        ChildProcess? child = result.Pid > 0 ? new ChildProcess(result.Pid, ChildReaper.Instance.Watch(result.Pid)) : null;
        if (result.Failure is { } failure)
        {
            throw new NamespaceSpawnException($"cannot {what}: {failure}", child);
        }

        return child!;
    }

    private Result Run(Program program, int namespaces, bool confined = false)
    {
        program.Namespaces = namespaces;
        using var work = new Work(program);
        (confined ? _confinedQueue : _queue).Add(work);
        work.Done.Wait();
        return work.Result ?? throw new InvalidOperationException("the namespace spawner thread failed", work.Fault);
    }

    private void StartThread(int index, bool confined)
    {
        var name = confined ? $"drover-ns-checks-{index}" : $"drover-ns-spawner-{index}";
        var thread = new Thread(() => Loop(index, confined)) { IsBackground = true, Name = name };
        thread.Start();
    }

    private void Loop(int index, bool confined)
    {
        // Our own filesystem context, so that this thread alone changes mount namespace; and the namespaces to
        // come back to, opened while still in them.
        HostNamespaces? home = null;
        string? unusable = null;
        try
        {
            if (Native.Unshare(CloneFs) != 0)
            {
                unusable = $"unshare(CLONE_FS): {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}";
            }
            else if (confined && Native.Confine(UserStageCapabilities) is { } error)
            {
                unusable = error;
            }
            else
            {
                home = new HostNamespaces(
                    Native.OpenReadOnly("/proc/thread-self/ns/mnt"),
                    Native.OpenReadOnly("/proc/thread-self/ns/pid"),
                    Native.OpenReadOnly("/proc/thread-self/ns/ipc"),
                    Native.CurrentCredentials());
            }
        }
        catch (IOException e)
        {
            // Every request then fails with this (the probe at start first): an exception here would end the process.
            unusable = e.Message;
        }

        foreach (var work in (confined ? _confinedQueue : _queue).GetConsumingEnumerable())
        {
            if (home is null)
            {
                work.Result = new Result(0, false, unusable);
                work.Done.Set();
                continue;
            }

            var program = work.Program;
            program.Native->HostMnt = home.Mnt;
            program.Native->HostPid = home.Pid;
            program.Native->HostIpc = home.Ipc;
            program.Native->HostUid = home.Credentials.Uid;
            program.Native->HostGid = home.Credentials.Gid;
            program.Native->HostGroups = home.Credentials.Groups;
            program.Native->HostGroupCount = home.Credentials.GroupCount;
            try
            {
                Window(program.Native);
                work.Result = program.Outcome();
            }
            catch (Exception e)
            {
                work.Fault = e;
            }

            var broken = program.Native->RestoreFailed != 0;
            work.Done.Set();
            if (broken)
            {
                // Stranded in a task's namespaces or credentials: never spawn from here again. A fresh thread takes over.
                StartThread(index, confined);
                return;
            }
        }
    }

    /// <summary>
    /// The window: enters the namespaces, runs the program, spawns, and comes back. Native calls only, through the
    /// function pointers in <see cref="LibC"/>, on memory prepared before (see the remarks on the class).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static void Window(NativeProgram* p)
    {
        var lib = p->Lib;
        var failedGroups = 0;
        for (var i = 0; i < p->Count; i++)
        {
            var op = p->Ops + i;
            if ((op->Requires & failedGroups) != 0)
            {
                continue;
            }

            long rc;
            switch (op->Code)
            {
                case Code.Unshare:
                    rc = lib->Unshare((int)op->Flags);
                    break;
                case Code.SetnsSlot:
                    rc = lib->Setns(p->Slots[op->Slot], (int)op->Flags);
                    break;
                case Code.Mount:
                    rc = lib->Mount(op->A, op->B, op->C, (nuint)op->Flags, op->D);
                    break;
                case Code.Mkdir:
                    rc = lib->Mkdir(op->A, (uint)op->Flags);
                    if (rc != 0 && *lib->Errno() == Eexist)
                    {
                        rc = 0;
                    }

                    break;
                case Code.OpenTree:
                    rc = lib->OpenTree(SysOpenTree, AtFdcwd, op->A, (uint)op->Flags);
                    if (rc >= 0)
                    {
                        p->Slots[op->Slot] = (int)rc;
                    }

                    break;
                case Code.SetattrSlot:
                {
                    var attr = new MountAttr { AttrSet = (ulong)op->Flags };
                    rc = lib->MountSetattr(SysMountSetattr, p->Slots[op->Slot], p->Empty, AtEmptyPath | (op->Recursive != 0 ? AtRecursive : 0u), &attr, (nuint)sizeof(MountAttr));
                    break;
                }

                case Code.SetattrPath:
                {
                    var attr = new MountAttr { AttrSet = (ulong)op->Flags };
                    rc = lib->MountSetattr(SysMountSetattr, AtFdcwd, op->A, op->Recursive != 0 ? AtRecursive : 0u, &attr, (nuint)sizeof(MountAttr));
                    break;
                }

                case Code.MoveMount:
                    rc = lib->MoveMount(SysMoveMount, p->Slots[op->Slot], p->Empty, AtFdcwd, op->B, MoveMountFEmptyPath);
                    break;
                case Code.Spawn:
                {
                    var pid = 0;
                    var error = lib->PosixSpawn(&pid, p->Path, p->Actions, p->Attr, p->Argv, p->Envp);
                    if (error != 0)
                    {
                        *lib->Errno() = error;
                        rc = -1;
                    }
                    else
                    {
                        p->Pid = pid;
                        rc = 0;
                    }

                    break;
                }

                case Code.SetCredentials:
                    rc = lib->Credentials(SysSetgroups, p->GroupCount, (long)p->Groups, 0);
                    if (rc == 0)
                    {
                        p->CredentialsChanged = 1;
                        rc = lib->Credentials(SysSetresgid, p->Gid, p->Gid, p->Gid);
                    }

                    if (rc == 0)
                    {
                        // The saved uid stays 0: the thread can take its own credentials back; the child's exec makes
                        // its saved uid the user's.
                        rc = lib->Credentials(SysSetresuid, p->Uid, p->Uid, 0);
                    }

                    break;
                case Code.MountProc:
                    FormatPidns(p->ProcData, p->Pid);
                    rc = lib->Mount(p->ProcSource, op->B, p->ProcSource, (nuint)op->Flags, p->ProcData);
                    if (rc == 0)
                    {
                        p->ProcMounted = 1;
                    }

                    break;
                default:
                    rc = -1;
                    break;
            }

            if (rc < 0)
            {
                if (op->SoftGroup != 0)
                {
                    failedGroups |= op->SoftGroup;
                    continue;
                }

                p->FailedAt = i;
                p->Errno = *lib->Errno();
                break;
            }
        }

        // Back to the agent's credentials (uid first: that gives back the capabilities the rest needs) and
        // namespaces, whatever happened.
        if (p->CredentialsChanged != 0
            && (lib->Credentials(SysSetresuid, p->HostUid, p->HostUid, p->HostUid) != 0
                || lib->Credentials(SysSetresgid, p->HostGid, p->HostGid, p->HostGid) != 0
                || lib->Credentials(SysSetgroups, p->HostGroupCount, (long)p->HostGroups, 0) != 0))
        {
            p->RestoreFailed = 1;
            p->RestoreErrno = *lib->Errno();
        }
        else if (((p->Namespaces & CloneNewNs) != 0 && lib->Setns(p->HostMnt, CloneNewNs) != 0)
            || ((p->Namespaces & CloneNewPid) != 0 && lib->Setns(p->HostPid, CloneNewPid) != 0)
            || ((p->Namespaces & CloneNewIpc) != 0 && lib->Setns(p->HostIpc, CloneNewIpc) != 0))
        {
            p->RestoreFailed = 1;
            p->RestoreErrno = *lib->Errno();
        }

        for (var s = 0; s < NativeProgram.SlotCount; s++)
        {
            if (p->Slots[s] >= 0 && (p->OwnedSlots & (1 << s)) != 0)
            {
                lib->Close(p->Slots[s]);
                p->Slots[s] = -1;
            }
        }
    }

    /// <summary>Writes <c>pidns=/proc/{pid}/ns/pid\0</c> into <paramref name="buffer"/> (64 bytes). Runs in the window.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FormatPidns(byte* buffer, int pid)
    {
        var prefix = "pidns=/proc/"u8;
        var suffix = "/ns/pid"u8;
        var n = 0;
        for (var i = 0; i < prefix.Length; i++)
        {
            buffer[n++] = prefix[i];
        }

        var digits = stackalloc byte[12];
        var d = 0;
        do
        {
            digits[d++] = (byte)('0' + (pid % 10));
            pid /= 10;
        }
        while (pid > 0);

        while (d > 0)
        {
            buffer[n++] = digits[--d];
        }

        for (var i = 0; i < suffix.Length; i++)
        {
            buffer[n++] = suffix[i];
        }

        buffer[n] = 0;
    }

    private const int AtFdcwd = -100;
    private const uint AtEmptyPath = 0x1000;
    private const uint AtRecursive = 0x8000;
    private const uint OpenTreeClone = 1;
    private const uint OpenTreeCloexec = 0x80000;
    private const uint MoveMountFEmptyPath = 0x4;
    private const long MountAttrRdonly = 0x1;
    private const long MountAttrNosuid = 0x2;
    private const long MountAttrNodev = 0x4;
    private const long MountAttrNoexec = 0x8;
    private const long MsNosuid = 2;
    private const long MsNodev = 4;
    private const long MsNoexec = 8;
    private const long MsRec = 16384;
    private const long MsSlave = 1 << 19;
    private const int Eexist = 17;
    private const long SysOpenTree = 428;
    private const long SysMoveMount = 429;
    private const long SysMountSetattr = 442;
    private const long SysSetgroups = 116;
    private const long SysSetresuid = 117;
    private const long SysSetresgid = 119;

    /// <summary>The bounding set of the confined threads: what a root task keeps (the user stage's list).</summary>
    private const ulong UserStageCapabilities = Stages.UserStage.ContainerCapabilityMask;

    private enum Code
    {
        Unshare,
        SetnsSlot,
        Mount,
        Mkdir,
        OpenTree,
        SetattrSlot,
        SetattrPath,
        MoveMount,
        Spawn,
        MountProc,
        SetCredentials,
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MountAttr
    {
        public ulong AttrSet;
        public ulong AttrClr;
        public ulong Propagation;
        public ulong UsernsFd;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NativeOp
    {
        public Code Code;
        public int Slot;
        public long Flags;
        public byte SoftGroup;
        public byte Requires;
        public byte Recursive;
        public byte* A;
        public byte* B;
        public byte* C;
        public byte* D;
        public byte* What;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NativeProgram
    {
        public const int SlotCount = 16;

        public LibC* Lib;
        public NativeOp* Ops;
        public int Count;
        public int Namespaces;
        public int HostMnt;
        public int HostPid;
        public int HostIpc;
        public fixed int Slots[SlotCount];
        public int OwnedSlots;
        public IntPtr Path;
        public IntPtr Actions;
        public IntPtr Attr;
        public IntPtr Argv;
        public IntPtr Envp;
        public byte* Empty;
        public byte* ProcSource;
        public byte* ProcData;
        public int Pid;
        public int ProcMounted;
        public int FailedAt;
        public int Errno;
        public int RestoreFailed;
        public int RestoreErrno;
        public long Uid;
        public long Gid;
        public uint* Groups;
        public long GroupCount;
        public int CredentialsChanged;
        public long HostUid;
        public long HostGid;
        public uint* HostGroups;
        public long HostGroupCount;
    }

    /// <summary>
    /// The libc functions the window calls, as raw function pointers (no marshalling stub between managed code
    /// and libc). <c>syscall</c> appears once per signature it is used with.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct LibC
    {
        public delegate* unmanaged<int, int> Unshare;
        public delegate* unmanaged<int, int, int> Setns;
        public delegate* unmanaged<byte*, byte*, byte*, nuint, byte*, int> Mount;
        public delegate* unmanaged<byte*, uint, int> Mkdir;
        public delegate* unmanaged<int, int> Close;
        public delegate* unmanaged<int*, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int> PosixSpawn;
        public delegate* unmanaged<int*> Errno;
        public delegate* unmanaged<long, int, byte*, uint, long> OpenTree;
        public delegate* unmanaged<long, int, byte*, int, byte*, uint, long> MoveMount;
        public delegate* unmanaged<long, int, byte*, uint, MountAttr*, nuint, long> MountSetattr;
        public delegate* unmanaged<long, long, long, long, long> Credentials;

        public static LibC* Load()
        {
            var libc = NativeLibrary.Load("libc.so.6");
            var lib = (LibC*)NativeMemory.AllocZeroed((nuint)sizeof(LibC));
            lib->Unshare = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(libc, "unshare");
            lib->Setns = (delegate* unmanaged<int, int, int>)NativeLibrary.GetExport(libc, "setns");
            lib->Mount = (delegate* unmanaged<byte*, byte*, byte*, nuint, byte*, int>)NativeLibrary.GetExport(libc, "mount");
            lib->Mkdir = (delegate* unmanaged<byte*, uint, int>)NativeLibrary.GetExport(libc, "mkdir");
            lib->Close = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(libc, "close");
            lib->PosixSpawn = (delegate* unmanaged<int*, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int>)NativeLibrary.GetExport(libc, "posix_spawn");
            lib->Errno = (delegate* unmanaged<int*>)NativeLibrary.GetExport(libc, "__errno_location");
            var syscall = NativeLibrary.GetExport(libc, "syscall");
            lib->OpenTree = (delegate* unmanaged<long, int, byte*, uint, long>)syscall;
            lib->MoveMount = (delegate* unmanaged<long, int, byte*, int, byte*, uint, long>)syscall;
            lib->MountSetattr = (delegate* unmanaged<long, int, byte*, uint, MountAttr*, nuint, long>)syscall;
            lib->Credentials = (delegate* unmanaged<long, long, long, long, long>)syscall;
            return lib;
        }
    }

    /// <summary>A program for the window: its ops and every string they use, in native memory freed on dispose.</summary>
    private sealed class Program : IDisposable
    {
        private const int MaxOps = 96;
        private readonly List<IntPtr> _strings = [];
        private readonly List<(Code Code, string? A, string? B, string? C, string? What)> _steps = [];

        public Program(LibC* lib, SpawnRequest? request)
        {
            Native = (NativeProgram*)NativeMemory.AllocZeroed((nuint)sizeof(NativeProgram));
            Native->Lib = lib;
            Native->Ops = (NativeOp*)NativeMemory.AllocZeroed((nuint)(sizeof(NativeOp) * MaxOps));
            for (var s = 0; s < NativeProgram.SlotCount; s++)
            {
                Native->Slots[s] = -1;
            }

            if (request is not null)
            {
                Native->Path = request.Path;
                Native->Actions = request.Actions;
                Native->Attr = request.Attr;
                Native->Argv = request.Argv;
                Native->Envp = request.Envp;
            }

            Native->Empty = Utf8("");
            Native->ProcSource = Utf8("proc");
            Native->ProcData = (byte*)NativeMemory.AllocZeroed(64);
            Native->FailedAt = -1;
        }

        public NativeProgram* Native { get; }

        public int Namespaces
        {
            set => Native->Namespaces = value;
        }

        /// <summary>The credentials to take (before a <see cref="Code.Spawn"/>): uid, gid and supplementary groups.</summary>
        public void SetCredentials(RunAsUser user, uint[] groups)
        {
            Native->Uid = user.Uid;
            Native->Gid = user.Gid;
            Native->GroupCount = groups.Length;
            Native->Groups = (uint*)NativeMemory.Alloc((nuint)Math.Max(1, groups.Length) * sizeof(uint));
            groups.CopyTo(new Span<uint>(Native->Groups, groups.Length));
            Add(Code.SetCredentials, what: $"take the credentials of {user.Name}");
        }

        /// <summary>Puts a descriptor this program does not own (not closed by the window) in a slot.</summary>
        public void SetSlot(int slot, int fd) => Native->Slots[slot] = fd;

        /// <param name="softGroup">A failure is no error: it marks this group failed instead (a bit).</param>
        /// <param name="requires">Skipped when one of these groups failed.</param>
        public void Add(Code code, string? a = null, string? b = null, string? c = null, string? d = null, long flags = 0, int slot = 0,
            int softGroup = 0, int requires = 0, bool recursive = false, string? what = null)
        {
            if (Native->Count == MaxOps)
            {
                throw new InvalidOperationException("namespace program too long");
            }

            var op = Native->Ops + Native->Count++;
            op->Code = code;
            op->A = a is null ? null : Utf8(a);
            op->B = b is null ? null : Utf8(b);
            op->C = c is null ? null : Utf8(c);
            op->D = d is null ? null : Utf8(d);
            op->Flags = flags;
            op->Slot = slot;
            op->SoftGroup = (byte)softGroup;
            op->Requires = (byte)requires;
            op->Recursive = (byte)(recursive ? 1 : 0);
            if (code == Code.OpenTree)
            {
                Native->OwnedSlots |= 1 << slot;
            }

            _steps.Add((code, a, b, c, what));
        }

        public Result Outcome()
        {
            var n = Native;
            string? failure = null;
            if (n->FailedAt >= 0)
            {
                var step = _steps[n->FailedAt];
                failure = $"{step.What ?? Describe(step.Code, step.A, step.B, step.C)}: {Marshal.GetPInvokeErrorMessage(n->Errno)} (errno {n->Errno})";
            }
            else if (n->RestoreFailed != 0)
            {
                failure = $"return to the agent's namespaces: {Marshal.GetPInvokeErrorMessage(n->RestoreErrno)}";
            }

            return new Result(n->Pid, n->ProcMounted != 0, failure);
        }

        public void Dispose()
        {
            foreach (var s in _strings)
            {
                NativeMemory.Free((void*)s);
            }

            NativeMemory.Free(Native->ProcData);
            NativeMemory.Free(Native->Groups);
            NativeMemory.Free(Native->Ops);
            NativeMemory.Free(Native);
        }

        private static string Describe(Code code, string? a, string? b, string? c) => code switch
        {
            Code.Mount when c is not null => $"mount {c} on {b}",
            Code.Mount => $"mount {b}",
            Code.Mkdir => $"create {a}",
            Code.OpenTree => $"open {a}",
            Code.SetattrSlot => "make a mount read-only",
            Code.SetattrPath => $"make {a} read-only",
            Code.MoveMount => $"mount on {b}",
            Code.Spawn => "start the process",
            Code.MountProc => $"mount proc on {b}",
            Code.Unshare => "create namespaces",
            _ => code.ToString(),
        };

        private byte* Utf8(string text)
        {
            var bytes = Encoding.UTF8.GetByteCount(text);
            var p = (byte*)NativeMemory.Alloc((nuint)(bytes + 1));
            Encoding.UTF8.GetBytes(text, new Span<byte>(p, bytes));
            p[bytes] = 0;
            _strings.Add((IntPtr)p);
            return p;
        }
    }

    private sealed record Result(int Pid, bool ProcMounted, string? Failure);

    private sealed record HostNamespaces(int Mnt, int Pid, int Ipc, Native.Credentials Credentials);

    private sealed class Work(Program program) : IDisposable
    {
        public Program Program { get; } = program;

        public ManualResetEventSlim Done { get; } = new();

        public Result? Result { get; set; }

        public Exception? Fault { get; set; }

        public void Dispose() => Done.Dispose();
    }
}

/// <summary>A namespace spawn failed after the child was started: the child (to be released or reaped) comes with it.</summary>
internal sealed class NamespaceSpawnException(string message, ChildProcess? child) : IOException(message)
{
    /// <summary>The child, if it was spawned before the failure (it waits for a go that will never come).</summary>
    public ChildProcess? Child { get; } = child;
}
