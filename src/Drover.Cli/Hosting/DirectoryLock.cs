using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Drover.Cli.Hosting;

/// <summary>
/// An exclusive <c>flock(2)</c> on <c>&lt;dir&gt;/drover.lock</c>, held for the life of a master, agent or dev process
/// on that data or work dir, and taken before anything in the dir is read or touched: a second process on the same
/// dir would otherwise recover the first one's tasks (and kill them) or write the same store. The holder's PID is
/// written into the file for the refusal message. The kernel drops the lock when the process dies, however it dies,
/// so a crash never leaves a stale lock. The descriptor is close-on-exec: tasks never inherit (and keep) it.
/// <para>
/// Raw <c>open</c>/<c>flock</c>, not <see cref="FileStream"/>: .NET takes its own advisory lock for
/// <see cref="FileShare"/> (and can be told not to), so its locks are not a contract to build on, and a reader of the
/// PID through it would be refused by that lock.
/// </para>
/// </summary>
public sealed partial class DirectoryLock : IDisposable
{
    /// <summary>The lock file's name in each locked dir.</summary>
    public const string FileName = "drover.lock";

    private readonly SafeFileHandle _handle;

    private DirectoryLock(string dir, SafeFileHandle handle)
    {
        Directory = dir;
        _handle = handle;
    }

    /// <summary>The locked directory.</summary>
    public string Directory { get; }

    /// <summary>
    /// Locks <paramref name="dir"/> (created if missing), or throws <see cref="HostStartException"/> with
    /// "&lt;dir&gt; is already in use by PID N" when another process holds it.
    /// </summary>
    public static DirectoryLock Acquire(string dir)
    {
        dir = Path.GetFullPath(dir);
        System.IO.Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, FileName);
        var fd = open(path, ORdwr | OCreat | OCloexec, 0x1a4 /* 0644 */);
        if (fd < 0)
        {
            var error = Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
            throw new HostStartException($"cannot lock {dir}: open {path}: {error}", new IOException(error));
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (flock(fd, LockEx | LockNb) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EWouldBlock)
            {
                handle.Dispose();
                var error = Marshal.GetPInvokeErrorMessage(errno);
                throw new HostStartException($"cannot lock {dir}: flock {path}: {error}", new IOException(error));
            }

            var holder = ReadHolder(handle);
            handle.Dispose();
            throw new HostStartException($"{dir} is already in use by PID {holder}", new IOException($"{path} is locked"));
        }

        // Ours now: replace whatever PID a previous (dead) holder left.
        var pid = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        if (ftruncate(fd, 0) != 0)
        {
            var error = Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
            handle.Dispose();
            throw new HostStartException($"cannot lock {dir}: truncate {path}: {error}", new IOException(error));
        }

        RandomAccess.Write(handle, pid, 0);
        return new DirectoryLock(dir, handle);
    }

    /// <summary>Releases the lock (closing the descriptor drops it).</summary>
    public void Dispose() => _handle.Dispose();

    /// <summary>The PID the holder wrote; "unknown" in the instant between its lock and its write.</summary>
    private static string ReadHolder(SafeFileHandle handle)
    {
        var buffer = new byte[32];
        var read = RandomAccess.Read(handle, buffer, 0);
        var text = Encoding.ASCII.GetString(buffer, 0, read).Trim();
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid.ToString(CultureInfo.InvariantCulture) : "unknown";
    }

    private const int ORdwr = 0x2;
    private const int OCreat = 0x40;
    private const int OCloexec = 0x80000;
    private const int LockEx = 2;
    private const int LockNb = 4;
    private const int EWouldBlock = 11;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ftruncate(int fd, long length);
}
