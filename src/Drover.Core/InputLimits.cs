using System.Text;

namespace Drover.Core;

/// <summary>
/// Size and content limits on what a task asks the kernel to exec, and on the metadata the master keeps per
/// object, shared by every API (Marathon, Mesos, <c>/drover/v1</c>) so that each refuses the same input for the
/// same reason, before anything is stored or an offer consumed. A command past these limits could never be
/// exec'd (E2BIG) or could not even be represented in an environment block (NUL, '=' in a name). Pure.
/// Documented in docs/limits.md.
/// </summary>
public static class InputLimits
{
    /// <summary>
    /// Linux' <c>MAX_ARG_STRLEN</c> (32 pages): the longest single argv or environment string execve accepts,
    /// its terminating NUL included. <c>cmd</c> (run as <c>sh -c cmd</c>), each <c>args</c> element and each
    /// <c>NAME=value</c> must fit.
    /// </summary>
    public const int MaxArgStringBytes = 131072;

    /// <summary>
    /// All argv and environment strings of one command together (with their NULs). The kernel's <c>ARG_MAX</c> is a
    /// quarter of the stack limit (2 MiB at the usual 8 MiB); half of that leaves room for the variables the agent
    /// adds (ports, Mesos and Marathon variables, the sandbox).
    /// </summary>
    public const int MaxCommandBytes = 1024 * 1024;

    /// <summary>
    /// The environment of one task (names and values), and separately its labels: 256 KiB each, as Kubernetes caps
    /// an object's annotations in total.
    /// </summary>
    public const int MaxEnvBytes = 256 * 1024;

    /// <inheritdoc cref="MaxEnvBytes"/>
    public const int MaxLabelsBytes = 256 * 1024;

    /// <summary>A Marathon app or group id as an absolute path (as Kubernetes' names and DNS names, a few hundred characters at most).</summary>
    public const int MaxAppIdLength = 255;

    /// <summary>Elements of a list field such as constraints, URIs or health checks: more is a mistake, not a configuration.</summary>
    public const int MaxListItems = 100;

    /// <summary>A short free-text field (a constraint's field or value, a health check's path, a URI).</summary>
    public const int MaxShortText = 4096;

    /// <summary>UTF-8 size of a string plus its terminating NUL, as execve counts it.</summary>
    public static long CStringBytes(string s) => Encoding.UTF8.GetByteCount(s) + 1L;

    /// <summary>Why one argv string (a shell command or an argument) cannot be exec'd; null when it can.</summary>
    public static string? ArgumentError(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            return "must not contain NUL (a process argument ends at the first NUL)";
        }

        var bytes = CStringBytes(value);
        return bytes > MaxArgStringBytes
            ? FormattableString.Invariant($"is {bytes - 1} bytes; a process argument may have at most {MaxArgStringBytes - 1} (the kernel's MAX_ARG_STRLEN)")
            : null;
    }

    /// <summary>Why an environment variable name cannot be set in a process' environment; null when it can.</summary>
    public static string? EnvNameError(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "an environment variable name must not be empty";
        }

        return name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal)
            ? "an environment variable name must not contain '=' or NUL"
            : null;
    }

    /// <summary>Why <c>NAME=value</c> cannot be set; null when it can (the name is checked by <see cref="EnvNameError"/>).</summary>
    public static string? EnvValueError(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            return "an environment variable value must not contain NUL";
        }

        var bytes = Encoding.UTF8.GetByteCount(name) + 1L + CStringBytes(value);
        return bytes > MaxArgStringBytes
            ? FormattableString.Invariant($"NAME=value is {bytes - 1} bytes; at most {MaxArgStringBytes - 1} (the kernel's MAX_ARG_STRLEN)")
            : null;
    }

    /// <summary>Bytes of an environment as execve counts them (<c>NAME=value\0</c> each).</summary>
    public static long EnvBytes(IEnumerable<KeyValuePair<string, string>> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        long total = 0;
        foreach (var (k, v) in env)
        {
            total += Encoding.UTF8.GetByteCount(k ?? "") + 1L + CStringBytes(v ?? "");
        }

        return total;
    }

    /// <summary>Why the environment as a whole is too large; null when it fits <see cref="MaxEnvBytes"/>.</summary>
    public static string? EnvTotalError(long envBytes) => envBytes > MaxEnvBytes
        ? FormattableString.Invariant($"the environment is {envBytes} bytes in total; at most {MaxEnvBytes} (256 KiB)")
        : null;

    /// <summary>Why a command (argv and environment together) is too large to exec; null when it fits <see cref="MaxCommandBytes"/>.</summary>
    public static string? CommandTotalError(IEnumerable<string> argv, long envBytes)
    {
        ArgumentNullException.ThrowIfNull(argv);
        var total = envBytes + argv.Sum(a => CStringBytes(a ?? ""));
        return total > MaxCommandBytes
            ? FormattableString.Invariant($"the command's arguments and environment are {total} bytes together; at most {MaxCommandBytes} (1 MiB)")
            : null;
    }

    /// <summary>Bytes of a label (or annotation) map: keys and values, UTF-8.</summary>
    public static long LabelBytes(IEnumerable<KeyValuePair<string, string>> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        return labels.Sum(kv => (long)Encoding.UTF8.GetByteCount(kv.Key ?? "") + Encoding.UTF8.GetByteCount(kv.Value ?? ""));
    }

    /// <summary>Why a label map is too large; null when it fits <see cref="MaxLabelsBytes"/>.</summary>
    public static string? LabelsTotalError(long bytes) => bytes > MaxLabelsBytes
        ? FormattableString.Invariant($"labels are {bytes} bytes in total (keys and values); at most {MaxLabelsBytes} (256 KiB)")
        : null;
}
