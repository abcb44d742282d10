using System.Runtime.InteropServices;

namespace Drover.Agent.Execution;

/// <summary>The few libc calls the executor needs.</summary>
internal static partial class Native
{
    public const int SigKill = 9;
    public const int SigTerm = 15;

    private const int Eperm = 1;

    /// <summary>Sends <paramref name="signal"/> to one process. False when it does not exist (any more).</summary>
    public static bool Kill(int pid, int signal)
    {
        // kill(0) and kill(-1) address our own group and every process: never let a bad pid get there.
        if (pid <= 1)
        {
            return false;
        }

        return SysKill(pid, signal) == 0;
    }

    /// <summary>Sends <paramref name="signal"/> to the process group <paramref name="pgid"/>. False when the group does not exist.</summary>
    public static bool KillGroup(int pgid, int signal)
    {
        if (pgid <= 1)
        {
            return false;
        }

        return SysKill(-pgid, signal) == 0;
    }

    /// <summary>True while the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        if (pid <= 1)
        {
            return false;
        }

        if (SysKill(pid, 0) != 0 && Marshal.GetLastPInvokeError() != Eperm)
        {
            return false;
        }

        try
        {
            // "pid (comm) S ..." — comm may contain spaces or parentheses, so look after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || stat[close + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => $"signal {signal}",
    };

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    /// <summary>Looks up a user (through NSS, so LDAP users work too). False when there is no such user.</summary>
    public static bool TryGetUser(string name, out uint uid, out uint gid)
    {
        uid = gid = 0;
        var pwd = Marshal.AllocHGlobal(64);       // struct passwd is 48 bytes on 64-bit Linux
        var buffer = Marshal.AllocHGlobal(16384);
        try
        {
            if (getpwnam_r(name, pwd, buffer, 16384, out var result) != 0 || result == IntPtr.Zero)
            {
                return false;
            }

            uid = (uint)Marshal.ReadInt32(pwd, 16); // pw_uid after two pointers
            gid = (uint)Marshal.ReadInt32(pwd, 20); // pw_gid
            return true;
        }
        finally
        {
            Marshal.FreeHGlobal(buffer);
            Marshal.FreeHGlobal(pwd);
        }
    }

    /// <summary>chown(2); throws with the OS error when it fails.</summary>
    public static void Chown(string path, uint uid, uint gid)
    {
        if (chown(path, uid, gid) != 0)
        {
            throw new IOException($"chown {path} to {uid}:{gid} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int getpwnam_r(string name, IntPtr pwd, IntPtr buffer, nuint length, out IntPtr result);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chown(string path, uint owner, uint group);
}
