using Drover.Testing.Processes;
using Microsoft.Win32.SafeHandles;

namespace Drover.Testing;

/// <summary>
/// A small tmpfs mounted on a fresh directory, for disk-full tests (root only). <see cref="Fill"/> takes every free
/// byte with one file, <see cref="Free"/> deletes it. Disposing unmounts it (lazily, should a process still hold a file
/// in it) and removes the directory, whatever state the test left it in.
/// </summary>
public sealed class TmpfsMount : IAsyncDisposable
{
    private const string FillerName = ".filler";

    private TmpfsMount(string path) => Path = path;

    /// <summary>Where it is mounted.</summary>
    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="megabytes"/> MiB, owner-only, on a new temporary directory.</summary>
    public static async Task<TmpfsMount> MountAsync(int megabytes)
    {
        var dir = Directory.CreateTempSubdirectory("drover-tmpfs-").FullName;
        var mount = await ProcessRunner.RunAsync("mount", "-t", "tmpfs", "-o", $"size={megabytes}m,mode=0700", "tmpfs", dir).ConfigureAwait(false);
        if (mount.ExitCode != 0)
        {
            Directory.Delete(dir);
            throw new InvalidOperationException($"mount -t tmpfs on {dir} failed: {mount}");
        }

        return new TmpfsMount(dir);
    }

    /// <summary>Bytes the file system still has for files, as the kernel reports them.</summary>
    public long FreeBytes => new DriveInfo(Path).AvailableFreeSpace;

    /// <summary>Writes one file until the file system refuses more (ENOSPC), page by page at the end. Returns its size.</summary>
    public long Fill()
    {
        var chunk = new byte[64 * 1024];
        using SafeFileHandle file = File.OpenHandle(System.IO.Path.Combine(Path, FillerName), FileMode.Create, FileAccess.Write);
        long offset = 0;
        foreach (var size in new[] { chunk.Length, 4096, 512 })
        {
            while (true)
            {
                try
                {
                    RandomAccess.Write(file, chunk.AsSpan(0, size), offset);
                    offset += size;
                }
                catch (IOException)
                {
                    break; // full at this granularity; try smaller writes for what is left
                }
            }
        }

        return offset;
    }

    /// <summary>Deletes the file <see cref="Fill"/> wrote.</summary>
    public void Free() => File.Delete(System.IO.Path.Combine(Path, FillerName));

    public async ValueTask DisposeAsync()
    {
        await ProcessRunner.RunAsync("umount", "--lazy", Path).ConfigureAwait(false);
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
