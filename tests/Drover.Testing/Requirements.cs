namespace Drover.Testing;

/// <summary>
/// Decides whether tests that need root (cgroups, network namespaces) can run. Outside CI they are
/// skipped with a message when not root; in CI (<c>CI=true</c>) they must run, so a missing
/// privilege fails the test instead of hiding it.
/// </summary>
public static class Requirements
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static bool IsRoot => Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root" || GetEuid() == 0;

    /// <summary>True when the caller may go on; false (skip) outside CI without root; throws in CI without root.</summary>
    public static bool RootAvailable()
    {
        if (IsRoot && Directory.Exists("/sys/fs/cgroup"))
        {
            return true;
        }

        if (IsCi)
        {
            throw new InvalidOperationException("CI=true but this test needs root and /sys/fs/cgroup; it must not be skipped in CI");
        }

        Console.Error.WriteLine("skipping: needs root and cgroups (runs in CI)");
        return false;
    }

    private static uint GetEuid()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    return uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return uint.MaxValue;
    }
}
