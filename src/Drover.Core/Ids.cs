using System.Security.Cryptography;

namespace Drover.Core;

/// <summary>Identifier generation and validation in one place.</summary>
public static class Ids
{
    /// <summary>
    /// A task id: the (sanitised) name, a dot and a random suffix, the way Marathon forms
    /// <c>app.uuid</c> ids, so ids stay readable in process lists and cgroup paths.
    /// </summary>
    public static string NewTaskId(string? name)
    {
        var prefix = string.IsNullOrEmpty(name) ? "task" : Sanitise(name);
        return $"{prefix}.{RandomSuffix()}";
    }

    public static string NewAgentId() => $"agent-{RandomSuffix()}";

    public static string NewUuid() => Guid.NewGuid().ToString();

    private static string RandomSuffix() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>Letters, digits, '_', '-', '.'; 1-128 characters. Safe in paths, cgroup names and URLs.</summary>
    public static bool IsValidName(string name)
    {
        if (name.Length is 0 or > 128 || name is "." or "..")
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Unix user name a task may ask to run as (Marathon's <c>user</c>): 1-32 letters, digits, '_', '-' or '.'.
    /// Whether the user exists is for the agent that runs the task to say.
    /// </summary>
    public static bool IsValidUserName(string user) =>
        user.Length is > 0 and <= 32 && user.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    private static string Sanitise(string name)
    {
        Span<char> buf = stackalloc char[Math.Min(name.Length, 64)];
        for (var i = 0; i < buf.Length; i++)
        {
            var c = name[i];
            buf[i] = char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_';
        }

        return new string(buf);
    }
}
