using System.Collections.Immutable;
using System.Text;

namespace Drover.Testing.Executors;

/// <summary>Custom executors (Mesos' executor HTTP API) used by tests.</summary>
public static class TestExecutors
{
    /// <summary>
    /// <c>echo_executor.py</c> (Python 3): subscribes, runs tasks by their data ("finish", "fail", "crash",
    /// "run", "run ignore-kill"), echoes MESSAGEs, exits on SHUTDOWN, logs every event to
    /// <c>events.log</c> in its sandbox. See the script's docstring.
    /// </summary>
    public static string EchoExecutorPath => Path.Combine(AppContext.BaseDirectory, "Executors", "echo_executor.py");

    /// <summary>
    /// The echo executor as an exec-form command that carries the script itself: a task sees a private <c>/tmp</c>
    /// (its own mount namespace), so a script under a test checkout in <c>/tmp</c> is not there for it.
    /// </summary>
    public static ImmutableArray<string> EchoExecutorArgs => ["python3", "-c", Loader];

    /// <summary>The same as a shell command (Mesos' <c>CommandInfo.value</c>).</summary>
    public static string EchoExecutorShell => $"python3 -c \"{Loader}\"";

    /// <summary>A one-line program that runs the script from base64 (no quotes a shell would touch).</summary>
    private static string Loader =>
        $"import base64;exec(compile(base64.b64decode('{Convert.ToBase64String(File.ReadAllBytes(EchoExecutorPath))}'),'echo_executor.py','exec'))";
}
