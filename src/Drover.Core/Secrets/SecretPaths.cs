namespace Drover.Core.Secrets;

/// <summary>
/// Secret paths and limits, shared by the secrets API, Marathon's <c>secrets</c>, Mesos' <c>Secret.Reference</c>
/// and the agent. A path is <c>/</c>-separated segments of <c>[A-Za-z0-9._-]</c> (<c>team-a/db/password</c>),
/// written with or without a leading <c>/</c>; its canonical form has none. Pure.
/// </summary>
public static class SecretPaths
{
    /// <summary>The longest canonical path.</summary>
    public const int MaxLength = 512;

    /// <summary>The most segments in a path.</summary>
    public const int MaxSegments = 32;

    /// <summary>
    /// The largest value (bytes). Values travel in each launch command of each task that uses them, so they are
    /// meant for keys, passwords, certificates and small configuration files, not bulk data (Kubernetes caps a
    /// Secret at 1 MiB; 256 KiB keeps a burst of launches cheap).
    /// </summary>
    public const int MaxValueBytes = 256 * 1024;

    /// <summary>The most secrets one task may use (environment variables and files together).</summary>
    public const int MaxPerTask = 64;

    /// <summary>The canonical form of a valid path (no leading <c>/</c>), or null with the reason in <paramref name="error"/>.</summary>
    public static string? Canonical(string? path, out string error)
    {
        if (string.IsNullOrEmpty(path))
        {
            error = "a secret path must not be empty";
            return null;
        }

        var canonical = path[0] == '/' ? path[1..] : path;
        if (canonical.Length == 0)
        {
            error = "a secret path must name a secret, not the root";
            return null;
        }

        if (canonical.Length > MaxLength)
        {
            error = $"a secret path is at most {MaxLength} characters";
            return null;
        }

        var segments = 0;
        foreach (var segment in canonical.Split('/'))
        {
            segments++;
            if (segment.Length == 0)
            {
                error = $"'{Printable(path)}' has an empty segment (a secret path is segments separated by single '/', without a trailing '/')";
                return null;
            }

            if (segment is "." or "..")
            {
                error = $"'{Printable(path)}' has a '{segment}' segment";
                return null;
            }

            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                {
                    error = $"'{Printable(path)}' may contain only letters, digits, '.', '_' and '-' between its '/'";
                    return null;
                }
            }
        }

        if (segments > MaxSegments)
        {
            error = $"a secret path has at most {MaxSegments} segments";
            return null;
        }

        error = "";
        return canonical;
    }

    /// <summary>
    /// A prefix to list under: empty (everything) or a valid path, optionally ending in <c>/</c>; canonical
    /// without a leading or trailing <c>/</c>. Null with the reason when invalid.
    /// </summary>
    public static string? CanonicalPrefix(string? prefix, out string error)
    {
        var trimmed = (prefix ?? "").Trim('/');
        if (trimmed.Length == 0)
        {
            error = "";
            return "";
        }

        return Canonical(trimmed, out error);
    }

    /// <summary>Whether <paramref name="path"/> lies under <paramref name="prefix"/> (both canonical; the empty prefix holds everything).</summary>
    public static bool IsUnder(string path, string prefix) =>
        prefix.Length == 0 || path == prefix || (path.Length > prefix.Length && path.StartsWith(prefix, StringComparison.Ordinal) && path[prefix.Length] == '/');

    /// <summary>
    /// Where a secret file goes, relative to the task's sandbox (Marathon's <c>containerPath</c>, Mesos'
    /// <c>Volume.container_path</c>): relative, <c>/</c>-separated file names without <c>.</c>/<c>..</c>, NUL or
    /// control characters, not <c>stdout</c>/<c>stderr</c>, nor under <see cref="ReservedSandboxDir"/>. Null when valid.
    /// </summary>
    public static string? FilePathError(string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return "a secret file's path must not be empty";
        }

        if (path.Length > 255)
        {
            return "a secret file's path is at most 255 characters";
        }

        if (path[0] == '/')
        {
            return $"'{Printable(path)}' is absolute: a secret file goes inside the task's sandbox, so its path is relative to it";
        }

        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
            {
                return $"'{Printable(path)}' must be file names separated by single '/', without '.' or '..'";
            }

            if (segment.Any(c => char.IsControl(c)))
            {
                return "a secret file's path must not contain control characters";
            }
        }

        if (path is "stdout" or "stderr")
        {
            return $"'{path}' is the task's own output file";
        }

        if (path == ReservedSandboxDir || path.StartsWith(ReservedSandboxDir + "/", StringComparison.Ordinal))
        {
            return $"'{ReservedSandboxDir}' in the sandbox is the agent's";
        }

        return null;
    }

    /// <summary>The sandbox directory the agent mounts the task's secret files on (a tmpfs inside the task's mount namespace).</summary>
    public const string ReservedSandboxDir = ".secrets";

    /// <summary>An environment variable name a secret may fill: non-empty, at most 254 characters, without '=' or NUL. Null when valid.</summary>
    public static string? EnvNameError(string? name) => name switch
    {
        null or "" => "an environment variable name must not be empty",
        { Length: > 254 } => "an environment variable name is at most 254 characters",
        _ when name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal) => "an environment variable name must not contain '=' or NUL",
        _ => null,
    };

    private static string Printable(string s) => s.Length > 80 ? s[..80] + "…" : s;
}
