using System.CommandLine;
using Drover.Master.Overload;

namespace Drover.Cli.Commands;

/// <summary>The flags of <see cref="OverloadOptions"/>, shared by <c>drover master</c> and <c>drover dev</c>.</summary>
internal sealed class OverloadFlags
{
    private static readonly OverloadOptions Defaults = new();

    private readonly Option<int> _clientConcurrency = new("--client-concurrency")
    {
        Description = "Requests one client (user, service account, or address without a login) may have in progress; more wait in its queue",
        DefaultValueFactory = _ => Defaults.ClientConcurrency,
    };

    private readonly Option<int> _clientQueue = new("--client-queue")
    {
        Description = "Requests of one client that may wait for a slot; past it the client gets 429 with Retry-After",
        DefaultValueFactory = _ => Defaults.ClientQueue,
    };

    private readonly Option<int> _maxSubscribers = new("--max-event-subscribers")
    {
        Description = "Open /v2/events streams at most; past it 503 with Retry-After",
        DefaultValueFactory = _ => Defaults.MaxEventSubscribers,
    };

    private readonly Option<int> _subscriberBuffer = new("--event-subscriber-buffer")
    {
        Description = "MiB of events an event-stream client may fall behind by before it counts as full",
        DefaultValueFactory = _ => (int)(Defaults.EventSubscriberBufferBytes / (1024 * 1024)),
    };

    private readonly Option<double> _slowGrace = new("--slow-subscriber-grace")
    {
        Description = "Seconds an event-stream client may stay full before it is detached (event_stream_detached)",
        DefaultValueFactory = _ => Defaults.SlowSubscriberGrace.TotalSeconds,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(_clientConcurrency);
        command.Options.Add(_clientQueue);
        command.Options.Add(_maxSubscribers);
        command.Options.Add(_subscriberBuffer);
        command.Options.Add(_slowGrace);
    }

    public OverloadOptions Read(ParseResult pr)
    {
        var grace = pr.GetValue(_slowGrace);
        return new OverloadOptions
        {
            ClientConcurrency = AtLeast(pr.GetValue(_clientConcurrency), 1, "--client-concurrency"),
            ClientQueue = AtLeast(pr.GetValue(_clientQueue), 0, "--client-queue"),
            MaxEventSubscribers = AtLeast(pr.GetValue(_maxSubscribers), 1, "--max-event-subscribers"),
            EventSubscriberBufferBytes = AtLeast(pr.GetValue(_subscriberBuffer), 1, "--event-subscriber-buffer") * 1024L * 1024,
            SlowSubscriberGrace = grace > 0 && grace <= 86_400
                ? TimeSpan.FromSeconds(grace)
                : throw new CliException("--slow-subscriber-grace: must be a number of seconds greater than 0 and at most a day", 2),
        };
    }

    private static int AtLeast(int value, int min, string flag) =>
        value >= min ? value : throw new CliException($"{flag}: must be at least {min}", 2);
}
