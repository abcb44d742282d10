using Microsoft.Extensions.Logging;

namespace Drover.Agent.Health;

internal sealed partial class HealthChecker
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Debug, Message = "Checking task {TaskId} ({HealthChecks} health check(s), {ReadinessChecks} readiness check(s))")]
    private static partial void LogStarted(ILogger logger, string taskId, int healthChecks, int readinessChecks);

    [LoggerMessage(EventId = 301, Level = LogLevel.Debug, Message = "Stopped checking task {TaskId}")]
    private static partial void LogStopped(ILogger logger, string taskId);

    [LoggerMessage(EventId = 310, Level = LogLevel.Debug, Message = "Health check {Number} of task {TaskId} passed: {Detail}")]
    private static partial void LogPassed(ILogger logger, string taskId, int number, string detail);

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning, Message = "Health check {Number} of task {TaskId} failed {Failures} time(s) in a row: {Detail}")]
    private static partial void LogFailed(ILogger logger, string taskId, int number, int failures, string detail);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "Ignoring failed health check {Number} of task {TaskId} in its grace period: {Detail}")]
    private static partial void LogFailureInGrace(ILogger logger, string taskId, int number, string detail);

    [LoggerMessage(EventId = 313, Level = LogLevel.Debug, Message = "Ignoring health check result of task {TaskId}: {Detail}")]
    private static partial void LogIgnored(ILogger logger, string taskId, string detail);

    [LoggerMessage(EventId = 314, Level = LogLevel.Debug, Message = "Task {TaskId} is not ready yet by readiness check '{Name}': {Detail}")]
    private static partial void LogNotReady(ILogger logger, string taskId, string name, string detail);

    [LoggerMessage(EventId = 315, Level = LogLevel.Information, Message = "Task {TaskId} passed readiness check '{Name}': {Detail}")]
    private static partial void LogReady(ILogger logger, string taskId, string name, string detail);

    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "Killing task {TaskId}: {Reason}")]
    private static partial void LogKilling(ILogger logger, string taskId, string reason);

    [LoggerMessage(EventId = 330, Level = LogLevel.Error, Message = "Check of task {TaskId} crashed")]
    private static partial void LogCheckError(ILogger logger, string taskId, Exception exception);
}
