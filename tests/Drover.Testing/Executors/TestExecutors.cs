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
}
