using System.Threading.Channels;

namespace Drover.Agent.Executors;

/// <summary>
/// One SUBSCRIBE stream of one executor: events queued by the manager (under its lock, so in order),
/// written out by the HTTP endpoint in RecordIO framing. A newer subscription or the executor's end
/// completes it. Thread-safe.
/// </summary>
internal sealed class ExecutorSubscription
{
    private readonly Channel<ExecutorEvent> _events = Channel.CreateUnbounded<ExecutorEvent>(new UnboundedChannelOptions { SingleReader = true });

    public ExecutorSubscription(ExecutorManager.ExecutorRun run) => Run = run;

    public ExecutorManager.ExecutorRun Run { get; }

    public ChannelReader<ExecutorEvent> Events => _events.Reader;

    public void Send(ExecutorEvent e) => _events.Writer.TryWrite(e);

    public void Complete() => _events.Writer.TryComplete();
}

/// <summary>The HTTP answer to an executor call: a status code and, for errors, Mesos' plain-text reason.</summary>
internal readonly record struct CallOutcome(int StatusCode, string? Error)
{
    public static readonly CallOutcome Ok = new(200, null);

    public static readonly CallOutcome Accepted = new(202, null);

    public static CallOutcome BadRequest(string error) => new(400, error);

    public static CallOutcome Forbidden(string error) => new(403, error);
}
