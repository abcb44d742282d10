namespace Drover.Agent.Security;

/// <summary>
/// Files only their owner may read (keys, certificates with their keys, generated passwords): created 0600 from
/// the first byte, written beside the target, flushed to disk and renamed into place, so a crash leaves the old
/// file or the new one and never a torn or briefly readable one.
/// </summary>
internal static class PrivateFile
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/>. Without <paramref name="overwrite"/>, an existing
    /// <paramref name="path"/> (another process made it first) is an <see cref="IOException"/> and stays as it was.
    /// </summary>
    public static void Write(string path, ReadOnlySpan<byte> content, bool overwrite = true)
    {
        var temp = path + ".tmp";
        File.Delete(temp); // left by a crash: its mode is not ours to trust
        using (var file = new FileStream(temp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnly }))
        {
            file.Write(content);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite);
    }
}
