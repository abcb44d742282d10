using Microsoft.Extensions.Logging;

namespace Drover.Agent.Execution;

public sealed partial class ProcessTaskExecutor
{
    [LoggerMessage(EventId = 109, Level = LogLevel.Warning, Message = "Tasks are not isolated (the agent is not root, or isolation is off): they run as the agent's own user, in its namespaces, with its capabilities; run the agent as root to isolate them")]
    private static partial void LogNotIsolating(ILogger logger);

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "Task {TaskId} launched as pid {Pid} in cgroup {Cgroup}")]
    private static partial void LogLaunched(ILogger logger, string taskId, int pid, string? cgroup);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Task {TaskId} failed to launch")]
    private static partial void LogLaunchFailed(ILogger logger, string taskId, Exception exception);

    [LoggerMessage(EventId = 112, Level = LogLevel.Debug, Message = "Task {TaskId} is already known; ignoring the repeated launch")]
    private static partial void LogDuplicateLaunch(ILogger logger, string taskId);

    [LoggerMessage(EventId = 113, Level = LogLevel.Information, Message = "Task {TaskId} exited with status {ExitCode}")]
    private static partial void LogExited(ILogger logger, string taskId, int exitCode);

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "Killing task {TaskId} (grace period {GraceSeconds} s)")]
    private static partial void LogKilling(ILogger logger, string taskId, double graceSeconds);

    [LoggerMessage(EventId = 121, Level = LogLevel.Information, Message = "Task {TaskId} killed")]
    private static partial void LogKilled(ILogger logger, string taskId);

    [LoggerMessage(EventId = 122, Level = LogLevel.Error, Message = "Task {TaskId} (pid {Pid}) did not die after SIGKILL")]
    private static partial void LogUnkillable(ILogger logger, string taskId, int pid);

    [LoggerMessage(EventId = 135, Level = LogLevel.Information, Message = "Executor stopped; left {Count} tasks running for the next agent run to recover")]
    private static partial void LogLeftRunning(ILogger logger, int count);

    [LoggerMessage(EventId = 134, Level = LogLevel.Information, Message = "Recovered tasks of a previous agent run: {Adopted} still running, {Ended} ended while the agent was down")]
    private static partial void LogRecovered(ILogger logger, int adopted, int ended);

    [LoggerMessage(EventId = 140, Level = LogLevel.Error, Message = "Supervising task {TaskId} failed")]
    private static partial void LogSupervisionFailed(ILogger logger, string taskId, Exception exception);

    [LoggerMessage(EventId = 141, Level = LogLevel.Debug, Message = "Not forgetting task {TaskId}: it has not ended")]
    private static partial void LogForgetActive(ILogger logger, string taskId);

    [LoggerMessage(EventId = 150, Level = LogLevel.Information, Message = "Executor stopped; killed {Count} tasks")]
    private static partial void LogDisposed(ILogger logger, int count);
}
