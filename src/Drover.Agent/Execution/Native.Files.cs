using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Drover.Agent.Execution;

/// <summary>Files, namespaces and process handles: the system calls the isolation stages and the sandbox reader need.</summary>
internal static partial class Native
{
    public const int ENoent = 2;
    public const int EExist = 17;
    public const int ELoop = 40;
    public const int EXdev = 18;

    private const int OWronly = 0x1;
    private const int OCreat = 0x40;
    private const int OAppend = 0x400;
    private const int OPath = 0x200000;
    private const int ODirectory = 0x10000;
    private const int ONofollow = 0x20000;
    private const int OCloexec = 0x80000;
    private const int ONonblock = 0x800;
    private const int AtFdcwd = -100;
    private const int AtSymlinkNofollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const long SysPidfdOpen = 434;
    private const long SysOpenat2 = 437;
    private const ulong ResolveNoXdev = 0x01;
    private const ulong ResolveNoMagiclinks = 0x02;
    private const ulong ResolveNoSymlinks = 0x04;
    private const ulong ResolveBeneath = 0x08;
    private const uint StatxBasicStats = 0x7ff;
    private const int PrCapbsetDrop = 24;
    private const int PrSetNoNewPrivs = 38;

    /// <summary>unshare(2); 0 or -1 (error in <see cref="Marshal.GetLastPInvokeError"/>).</summary>
    public static int Unshare(int flags) => unshare(flags);

    /// <summary>A pidfd for <paramref name="pid"/>, or a negative number when it does not exist.</summary>
    public static long PidfdOpen(int pid) => pid <= 0 ? -1 : syscall_pidfd(SysPidfdOpen, pid, 0);

    public static void Close(int fd)
    {
        if (fd >= 0)
        {
            close(fd);
        }
    }

    /// <summary>Opens a file read-only (close-on-exec) and returns its descriptor; throws with the OS error.</summary>
    public static int OpenReadOnly(string path)
    {
        var fd = open(path, OCloexec, 0);
        return fd >= 0 ? fd : throw new IOException($"open {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>
    /// Confines the calling thread for good: <c>no_new_privs</c>, and every capability not in <paramref name="keep"/> (a
    /// mask of capability numbers) dropped from its bounding set. What it spawns inherits both. Returns why it could not,
    /// or null.
    /// </summary>
    public static string? Confine(ulong keep)
    {
        if (prctl(PrSetNoNewPrivs, 1, 0, 0, 0) != 0)
        {
            return $"no_new_privs: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}";
        }

        var last = int.TryParse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 40;
        for (var cap = 0; cap <= last; cap++)
        {
            if ((keep & (1UL << cap)) == 0 && prctl(PrCapbsetDrop, (ulong)cap, 0, 0, 0) != 0)
            {
                return $"dropping capability {cap} from the bounding set: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}";
            }
        }

        return null;
    }

    /// <summary>The calling thread's uid, gid and supplementary groups (the groups in native memory, kept for good).</summary>
    public static unsafe Credentials CurrentCredentials()
    {
        var count = getgroups(0, null);
        var groups = (uint*)NativeMemory.Alloc((nuint)Math.Max(1, count) * sizeof(uint));
        count = getgroups(count, groups);
        return new Credentials(geteuid(), getegid(), groups, Math.Max(0, count));
    }

    /// <summary>The supplementary groups of <paramref name="user"/> (NSS, with its primary group <paramref name="gid"/>), as initgroups sets them.</summary>
    public static unsafe uint[] GroupsOf(string user, uint gid)
    {
        var count = 64;
        while (true)
        {
            var groups = new uint[count];
            fixed (uint* p = groups)
            {
                var n = count;
                if (getgrouplist(user, gid, p, ref n) >= 0)
                {
                    return groups[..n];
                }

                count = Math.Max(n, count * 2);
            }
        }
    }

    /// <summary>A thread's credentials: what a spawner thread returns to (<see cref="Groups"/> in native memory).</summary>
    internal readonly unsafe struct Credentials(uint uid, uint gid, uint* groups, int groupCount)
    {
        public uint Uid { get; } = uid;

        public uint Gid { get; } = gid;

        public uint* Groups { get; } = groups;

        public int GroupCount { get; } = groupCount;
    }

    /// <summary>A pipe, both ends close-on-exec; throws with the OS error.</summary>
    public static (int Read, int Write) Pipe()
    {
        Span<int> fds = stackalloc int[2];
        if (pipe2(ref MemoryMarshal.GetReference(fds), OCloexec) != 0)
        {
            throw new IOException($"pipe2: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        return (fds[0], fds[1]);
    }

    /// <summary>Writes all of <paramref name="data"/> (a few bytes to a pipe: one write); false when it could not.</summary>
    public static bool Write(int fd, ReadOnlySpan<byte> data) => write(fd, ref MemoryMarshal.GetReference(data), (nuint)data.Length) == data.Length;

    /// <summary>Opens (creating, 0600) a file for appending with <c>O_APPEND</c>: every write lands at its end, whoever else appends.</summary>
    public static SafeFileHandle OpenAppend(string path)
    {
        var fd = open(path, OWronly | OAppend | OCreat | OCloexec, 0x180);
        return fd >= 0
            ? new SafeFileHandle(fd, ownsHandle: true)
            : throw new IOException($"open {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>
    /// Opens <paramref name="name"/> inside the directory <paramref name="directory"/> for reading without following any
    /// symbolic link and without leaving the directory (<c>openat2</c> with <c>RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
    /// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV</c>), and only if it is a regular file (a FIFO would block the reader).
    /// The directory itself is opened as named: its path is the agent's. Null when there is no such regular file, or it
    /// is reached only through a link.
    /// </summary>
    public static SafeFileHandle? OpenBeneath(string directory, string name)
    {
        var dir = open(directory, OPath | ODirectory | OCloexec, 0);
        if (dir < 0)
        {
            return null;
        }

        try
        {
            var how = new OpenHow
            {
                Flags = (ulong)(OCloexec | ONofollow | ONonblock),
                Resolve = ResolveBeneath | ResolveNoSymlinks | ResolveNoMagiclinks | ResolveNoXdev,
            };
            var fd = (int)syscall_openat2(SysOpenat2, dir, name, ref how, (nuint)Marshal.SizeOf<OpenHow>());
            if (fd < 0)
            {
                return null;
            }

            var handle = new SafeFileHandle(fd, ownsHandle: true);
            if (!TryStat(handle, out var stat) || (stat.Mode & 0xF000) != 0x8000)
            {
                handle.Dispose();
                return null;
            }

            return handle;
        }
        finally
        {
            close(dir);
        }
    }

    /// <summary>Status of an open file.</summary>
    public static bool TryStat(SafeFileHandle handle, out FileStatus status)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, out status);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>Status of <paramref name="path"/> (what a link points to). False when it does not exist.</summary>
    public static bool TryStat(string path, out FileStatus status) => Statx(AtFdcwd, path, 0, out status);

    /// <summary>Status of <paramref name="path"/> (a link itself, not what it points to). False when it does not exist.</summary>
    public static bool TryLstat(string path, out FileStatus status) => Statx(AtFdcwd, path, AtSymlinkNofollow, out status);

    /// <summary>Status of <paramref name="name"/> in the directory <paramref name="dirFd"/>, not following a link.</summary>
    public static bool TryLstatAt(int dirFd, string name, out FileStatus status) => Statx(dirFd, name, AtSymlinkNofollow, out status);

    /// <summary>
    /// Opens the directory <paramref name="relative"/> below the directory <paramref name="root"/> (<c>""</c> = the root
    /// itself) without following links, leaving it, or crossing into another filesystem. A descriptor, or -1.
    /// </summary>
    public static int OpenDirectoryBeneath(int root, string relative)
    {
        var how = new OpenHow
        {
            Flags = (ulong)(ODirectory | OCloexec | ONofollow),
            Resolve = ResolveBeneath | ResolveNoSymlinks | ResolveNoMagiclinks | ResolveNoXdev,
        };
        var fd = syscall_openat2(SysOpenat2, root, relative.Length == 0 ? "." : relative, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        return fd < 0 ? -1 : (int)fd;
    }

    /// <summary>Opens a directory (not through a final link); a descriptor or -1.</summary>
    public static int OpenDirectory(string path) => open(path, ODirectory | OCloexec | ONofollow, 0);

    /// <summary>mkdir(2) with <paramref name="mode"/> (less the umask); an existing directory is fine. Throws with the OS error.</summary>
    public static void Mkdir(string path, UnixFileMode mode)
    {
        if (mkdir(path, (uint)mode) != 0 && Marshal.GetLastPInvokeError() is var error && error != EExist)
        {
            throw new IOException($"mkdir {path}: {Marshal.GetPInvokeErrorMessage(error)}");
        }
    }

    /// <summary>chmod(2); throws with the OS error when it fails.</summary>
    public static void Chmod(string path, UnixFileMode mode)
    {
        if (chmod(path, (uint)mode) != 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), $"chmod {path}");
        }
    }

    private static bool Statx(int dirFd, string path, int flags, out FileStatus status)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (statx(dirFd, path, flags, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            status = default;
            return false;
        }

        // struct statx: stx_nlink @16, stx_uid @20, stx_gid @24, stx_mode @28 (u16), stx_ino @32, stx_size @40,
        // stx_blocks @48, stx_dev_major @136, stx_dev_minor @140.
        status = new FileStatus(
            Mode: MemoryMarshal.Read<ushort>(buffer[28..]),
            Uid: MemoryMarshal.Read<uint>(buffer[20..]),
            Gid: MemoryMarshal.Read<uint>(buffer[24..]),
            Links: MemoryMarshal.Read<uint>(buffer[16..]),
            Inode: MemoryMarshal.Read<ulong>(buffer[32..]),
            Size: MemoryMarshal.Read<long>(buffer[40..]),
            Blocks: MemoryMarshal.Read<long>(buffer[48..]),
            Device: ((ulong)MemoryMarshal.Read<uint>(buffer[136..]) << 32) | MemoryMarshal.Read<uint>(buffer[140..]));
        return true;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int unshare(int flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_pidfd(long number, int pid, uint flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_openat2(long number, int dirFd, string path, ref OpenHow how, nuint size);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe2(ref int fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int getgroups(int size, uint* list);

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc")]
    private static partial uint getegid();

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int getgrouplist(string user, uint group, uint* groups, ref int count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, ref byte data, nuint count);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirFd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chmod(string path, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdir(string path, uint mode);
}

/// <summary>What <c>statx</c> says about a file (the fields Drover uses).</summary>
/// <param name="Blocks">Allocated 512-byte blocks (what <c>du</c> counts).</param>
internal readonly record struct FileStatus(ushort Mode, uint Uid, uint Gid, uint Links, ulong Inode, long Size, long Blocks, ulong Device)
{
    public bool IsDirectory => (Mode & 0xF000) == 0x4000;

    public bool IsRegularFile => (Mode & 0xF000) == 0x8000;
}
