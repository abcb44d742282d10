using System.Globalization;
using System.Runtime.InteropServices;

namespace Drover.Agent.Execution;

/// <summary>
/// A tmpfs that is mounted nowhere (the new mount API: <c>fsopen</c>, <c>fsconfig</c>, <c>fsmount</c>): the secrets
/// stage writes a task's secret files into it through its descriptor, and the namespace spawner attaches it in the
/// task's own mount namespace. Until then no path leads to it, in any namespace.
/// </summary>
internal static partial class Native
{
    private const long SysFsopen = 430;
    private const long SysFsconfig = 431;
    private const long SysFsmount = 432;
    private const long SysMountSetattrCall = 442;
    private const uint FsopenCloexec = 0x1;
    private const uint FsmountCloexec = 0x1;
    private const uint FsconfigSetString = 1;
    private const uint FsconfigCmdCreate = 6;
    private const uint MountAttrRdonly = 0x1;
    private const uint MountAttrNosuid = 0x2;
    private const uint MountAttrNodev = 0x4;
    private const uint MountAttrNoexec = 0x8;
    private const int OExcl = 0x80;

    /// <summary>
    /// A detached tmpfs of <paramref name="sizeBytes"/> (and as many inodes), its root directory mode
    /// <paramref name="rootMode"/> owned by <paramref name="uid"/>:<paramref name="gid"/>, mounted nosuid, nodev, noexec.
    /// Returns the mount's descriptor (close-on-exec); throws <see cref="IOException"/> naming the step that failed.
    /// </summary>
    public static int CreateDetachedTmpfs(long sizeBytes, int inodes, uint rootMode, uint uid, uint gid)
    {
        var fs = (int)syscall_fsopen(SysFsopen, "tmpfs", FsopenCloexec);
        if (fs < 0)
        {
            throw Failure("fsopen tmpfs");
        }

        try
        {
            foreach (var (key, value) in new[]
            {
                ("size", sizeBytes.ToString(CultureInfo.InvariantCulture)),
                ("nr_inodes", inodes.ToString(CultureInfo.InvariantCulture)),
                ("mode", Convert.ToString(rootMode, 8)),
                ("uid", uid.ToString(CultureInfo.InvariantCulture)),
                ("gid", gid.ToString(CultureInfo.InvariantCulture)),
            })
            {
                if (syscall_fsconfig(SysFsconfig, fs, FsconfigSetString, key, value, 0) < 0)
                {
                    throw Failure($"fsconfig tmpfs {key}={value}");
                }
            }

            if (syscall_fsconfig(SysFsconfig, fs, FsconfigCmdCreate, null, null, 0) < 0)
            {
                throw Failure("create the tmpfs");
            }

            var mount = (int)syscall_fsmount(SysFsmount, fs, FsmountCloexec, MountAttrNosuid | MountAttrNodev | MountAttrNoexec);
            return mount >= 0 ? mount : throw Failure("fsmount the tmpfs");
        }
        finally
        {
            close(fs);
        }
    }

    /// <summary>Makes the mount behind <paramref name="mountFd"/> read-only (and keeps it nosuid, nodev, noexec).</summary>
    public static void MakeReadOnly(int mountFd)
    {
        var attr = new MountAttrStruct { AttrSet = MountAttrRdonly | MountAttrNosuid | MountAttrNodev | MountAttrNoexec };
        if (syscall_mount_setattr(SysMountSetattrCall, mountFd, "", (uint)AtEmptyPath, ref attr, (nuint)Marshal.SizeOf<MountAttrStruct>()) < 0)
        {
            throw Failure("make the secrets tmpfs read-only");
        }
    }

    /// <summary>Creates directory <paramref name="relative"/> under the directory <paramref name="dirFd"/> (mode, owner); an existing one is fine.</summary>
    public static void MkdirAt(int dirFd, string relative, uint mode, uint uid, uint gid)
    {
        if (mkdirat(dirFd, relative, mode) < 0 && Marshal.GetLastPInvokeError() != EExist)
        {
            throw Failure($"mkdir {relative}");
        }

        if (fchownat(dirFd, relative, uid, gid, AtSymlinkNofollow) < 0)
        {
            throw Failure($"chown {relative}");
        }
    }

    /// <summary>
    /// Creates file <paramref name="relative"/> under the directory <paramref name="dirFd"/> (it must not exist, nor be a
    /// link), mode <paramref name="mode"/>, owner <paramref name="uid"/>:<paramref name="gid"/>, holding <paramref name="data"/>.
    /// </summary>
    public static void WriteNewFileAt(int dirFd, string relative, ReadOnlySpan<byte> data, uint mode, uint uid, uint gid)
    {
        var fd = openat(dirFd, relative, OWronly | OCreat | OExcl | ONofollow | OCloexec, mode);
        if (fd < 0)
        {
            throw Failure($"create {relative}");
        }

        try
        {
            while (!data.IsEmpty)
            {
                var n = write(fd, ref MemoryMarshal.GetReference(data), (nuint)data.Length);
                if (n < 0)
                {
                    throw Failure($"write {relative}");
                }

                data = data[(int)n..];
            }

            if (fchown(fd, uid, gid) < 0)
            {
                throw Failure($"chown {relative}");
            }
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Sets the owner of <paramref name="path"/> itself (a symbolic link is not followed).</summary>
    public static void Lchown(string path, uint uid, uint gid)
    {
        if (fchownat(AtFdcwd, path, uid, gid, AtSymlinkNofollow) < 0)
        {
            throw Failure($"chown {path}");
        }
    }

    private static IOException Failure(string what) => new($"{what}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");

    [StructLayout(LayoutKind.Sequential)]
    private struct MountAttrStruct
    {
        public ulong AttrSet;
        public ulong AttrClr;
        public ulong Propagation;
        public ulong UsernsFd;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_fsopen(long number, string fsName, uint flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_fsconfig(long number, int fd, uint cmd, string? key, string? value, int aux);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_fsmount(long number, int fd, uint flags, uint attrFlags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_mount_setattr(long number, int dirFd, string path, uint flags, ref MountAttrStruct attr, nuint size);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(int dirFd, string path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdirat(int dirFd, string path, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fchownat(int dirFd, string path, uint owner, uint group, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchown(int fd, uint owner, uint group);
}
