using System.Text;
using Drover.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Drover.Master.HighAvailability;

/// <summary>Settings of one master's <see cref="LeaderElection"/>.</summary>
public sealed record LeaderElectionOptions
{
    public const string DefaultKey = "/drover/master/leader";

    /// <summary>The key the leader holds, attached to its lease; its value is the leader's address.</summary>
    public string Key { get; init; } = DefaultKey;

    /// <summary>This master's advertised address (host:port), written as the key's value when it leads.</summary>
    public required string Address { get; init; }

    /// <summary>TTL of the leader's lease: a dead leader keeps the role at most this long.</summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long before its lease could expire a leader that could not renew it steps down, covering
    /// clock drift and the time etcd took to receive the last keep-alive. Default: a quarter of the TTL, at least 500 ms.
    /// </summary>
    public TimeSpan? StepDownMargin { get; init; }

    internal TimeSpan Margin => StepDownMargin ?? TimeSpan.FromMilliseconds(Math.Max(500, LeaseTtl.TotalMilliseconds / 4));
}

/// <summary>
/// Elects one leader among the masters sharing a store. Each campaigns with a transaction
/// <c>Compare.Absent(key) → put key = address with a fresh lease</c>; the winner keeps the lease alive
/// every TTL/3, the others read and watch the key (<see cref="Leader"/>) and campaign again when it
/// disappears. A leader whose keep-alive is refused, or that has not renewed its lease for
/// TTL − margin (etcd unreachable), steps down — before its lease can have expired, so two masters
/// never both believe they lead. A leader never campaigns again: <see cref="Lost"/> fires and the
/// master process exits (see docs/fault-tolerance.md), as a Mesos master does on losing ZooKeeper.
/// The key's mod revision while this master leads (<see cref="LeaderRevision"/>) fences its writes
/// (<see cref="FencedStateStore"/>).
/// </summary>
public sealed partial class LeaderElection(IStateStore store, LeaderElectionOptions options, TimeProvider time, ILogger<LeaderElection> logger)
    : BackgroundService, ILeaderFence
{
    private readonly TaskCompletionSource _elected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _lost = new();
    private long _leaderRevision;
    private volatile string? _leader;
    private int _steppedDown;

    /// <summary>Completes when this master becomes the leader.</summary>
    public Task Elected => _elected.Task;

    /// <summary>Cancelled when this master, having led, is no longer the leader.</summary>
    public CancellationToken Lost => _lost.Token;

    public bool IsLeader => Volatile.Read(ref _leaderRevision) > 0 && !_lost.IsCancellationRequested;

    /// <summary>The current leader's address as last read (this master's own once it leads); null when there is none.</summary>
    public string? Leader => _leader;

    public string Key => options.Key;

    public long LeaderRevision => Volatile.Read(ref _leaderRevision);

    /// <summary>Steps down: this master stops being the leader (a fenced write failed, or the lease could not be renewed).</summary>
    public void StepDown(string reason)
    {
        if (Interlocked.Exchange(ref _steppedDown, 1) == 0)
        {
            LogSteppedDown(logger, options.Address, reason);
            _leader = null;
            _lost.Cancel();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long lease;
        while (true)
        {
            try
            {
                lease = await CampaignAsync(stoppingToken).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogCampaignFailed(logger, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(500), time, stoppingToken).ConfigureAwait(false);
            }
        }

        try
        {
            await LeadAsync(lease, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            if (stoppingToken.IsCancellationRequested && !_lost.IsCancellationRequested)
            {
                // A clean stop hands over at once instead of making the others wait for the TTL.
                StepDown("the master is stopping");
                try
                {
                    using var revoke = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await store.RevokeAsync(lease, revoke.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
                {
                    LogRevokeFailed(logger, e.Message);
                }
            }
        }
    }

    /// <summary>Returns the lease once this master holds the key; follows (tracking <see cref="Leader"/>) until then.</summary>
    private async Task<long> CampaignAsync(CancellationToken ct)
    {
        var address = Encoding.UTF8.GetBytes(options.Address);
        while (true)
        {
            var current = await store.GetAsync(options.Key, ct).ConfigureAwait(false);
            if (current is null)
            {
                // Taken before the grant: etcd starts the lease's TTL when it grants it, before we hear back.
                var renewedAt = time.GetTimestamp();
                var lease = await store.GrantLeaseAsync(options.LeaseTtl, ct).ConfigureAwait(false);
                var result = await store.CommitAsync(new Transaction { Compares = [Compare.Absent(options.Key)], Writes = [WriteOp.Put(options.Key, address, lease)] }, ct)
                    .ConfigureAwait(false);
                if (result.Succeeded)
                {
                    var mine = await store.GetAsync(options.Key, ct).ConfigureAwait(false);
                    if (mine is not null && mine.Lease == lease)
                    {
                        _leader = options.Address;
                        Volatile.Write(ref _leaderRevision, mine.ModRevision);
                        _renewedAt = renewedAt;
                        LogElected(logger, options.Address, mine.ModRevision);
                        _elected.TrySetResult();
                        return lease;
                    }
                }

                await RevokeQuietlyAsync(lease, ct).ConfigureAwait(false);
                continue;
            }

            var leader = Encoding.UTF8.GetString(current.Value);
            if (leader != _leader)
            {
                LogFollowing(logger, leader);
            }

            _leader = leader;

            // Wait until the key changes (or re-read after a TTL, in case the watch missed it).
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(options.LeaseTtl);
            try
            {
                await foreach (var e in store.WatchAsync(options.Key, current.ModRevision, wait.Token).ConfigureAwait(false))
                {
                    if (e.Key == options.Key)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            catch (RevisionCompactedException)
            {
            }
        }
    }

    private long _renewedAt;

    private async Task LeadAsync(long lease, CancellationToken ct)
    {
        var interval = options.LeaseTtl / 3;
        var deadline = options.LeaseTtl - options.Margin;
        while (!ct.IsCancellationRequested && !_lost.IsCancellationRequested)
        {
            var sinceRenewal = time.GetElapsedTime(_renewedAt);
            var wait = interval - sinceRenewal;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, ct).ConfigureAwait(false);
            }

            var left = deadline - time.GetElapsedTime(_renewedAt);
            if (left <= TimeSpan.Zero)
            {
                StepDown($"the lease was not renewed for {deadline.TotalSeconds:0.##} s");
                return;
            }

            var sent = time.GetTimestamp();
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
            attempt.CancelAfter(left);
            try
            {
                if (!await store.KeepAliveAsync(lease, attempt.Token).ConfigureAwait(false))
                {
                    StepDown("etcd says the lease has expired");
                    return;
                }

                _renewedAt = sent;
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is OperationCanceledException or IOException or InvalidOperationException or HttpRequestException)
            {
                LogKeepAliveFailed(logger, e.Message);
            }
        }
    }

    private async Task RevokeQuietlyAsync(long lease, CancellationToken ct)
    {
        try
        {
            await store.RevokeAsync(lease, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            LogRevokeFailed(logger, e.Message);
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _lost.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Elected leader as {Address} (leader key revision {Revision})")]
    private static partial void LogElected(ILogger logger, string address, long revision);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Following the leader at {Leader}")]
    private static partial void LogFollowing(ILogger logger, string leader);

    [LoggerMessage(Level = LogLevel.Error, Message = "Master {Address} steps down: {Reason}")]
    private static partial void LogSteppedDown(ILogger logger, string address, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Campaign for leadership failed, retrying: {Reason}")]
    private static partial void LogCampaignFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Leader lease keep-alive failed: {Reason}")]
    private static partial void LogKeepAliveFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Revoking a lease failed: {Reason}")]
    private static partial void LogRevokeFailed(ILogger logger, string reason);
}
