using Microsoft.Extensions.Logging;

namespace Drover.Agent.Health;

internal sealed partial class HealthChecker
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Debug, Message = "Health checking task {TaskId} ({Protocol})")]
    private static partial void LogStarted(ILogger logger, string taskId, string protocol);

    [LoggerMessage(EventId = 301, Level = LogLevel.Debug, Message = "Stopped health checking task {TaskId}")]
    private static partial void LogStopped(ILogger logger, string taskId);

    [LoggerMessage(EventId = 310, Level = LogLevel.Debug, Message = "Health check of task {TaskId} passed: {Detail}")]
    private static partial void LogPassed(ILogger logger, string taskId, string detail);

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning, Message = "Health check of task {TaskId} failed {Failures} time(s) in a row: {Detail}")]
    private static partial void LogFailed(ILogger logger, string taskId, int failures, string detail);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "Ignoring failed health check of task {TaskId} in its grace period: {Detail}")]
    private static partial void LogFailureInGrace(ILogger logger, string taskId, string detail);

    [LoggerMessage(EventId = 313, Level = LogLevel.Debug, Message = "Ignoring health check result of task {TaskId}: {Detail}")]
    private static partial void LogIgnored(ILogger logger, string taskId, string detail);

    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "Killing task {TaskId}: {Reason}")]
    private static partial void LogKilling(ILogger logger, string taskId, string reason);

    [LoggerMessage(EventId = 330, Level = LogLevel.Error, Message = "Health check of task {TaskId} crashed")]
    private static partial void LogCheckError(ILogger logger, string taskId, Exception exception);
}
