using Drover.Master.Iam;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Security;

/// <summary>
/// What a person's request was authenticated with besides who they are: the account's credential version at that
/// moment, and when the login token expires (null for HTTP Basic, good until the secret changes). The
/// <see cref="Authenticator"/> records it on the request (a request feature) for long-lived responses
/// (<see cref="CredentialLease"/>).
/// </summary>
public sealed record CallerCredential(string Uid, int CredentialVersion, DateTimeOffset? Expires);

/// <summary>
/// Whether the caller of a long-lived response (the event stream, a followed log, a Mesos scheduler or operator
/// subscription) may still be served: its login token has not expired, and its account still exists with the
/// credentials it authenticated with (a password change or a new service-account key bumps the credential
/// version; deleting the account removes it). The response checks <see cref="IsCurrent"/> before it writes each
/// event or heartbeat and ends when it is false, so a deleted user receives nothing written after the deletion was
/// answered; it also links <see cref="Expired"/> (cancelled at the token's expiry) into its stop token, so an idle
/// stream ends on time. While IAM is unchanged a check is a read of the clock, of a flag and of
/// <see cref="IamStore.Generation"/>, without allocation; the snapshot is consulted only when the generation moved. A caller without such a
/// credential (a dev cluster without logins, an agent's or master's certificate) has a lease that never ends here.
/// One response's loop uses a lease (not thread-safe).
/// </summary>
public sealed class CredentialLease : IDisposable
{
    /// <summary>Timers run up to about 49 days; a token that lives longer is compared with the clock instead.</summary>
    private static readonly TimeSpan MaxTimer = TimeSpan.FromDays(40);

    private readonly IamStore? _iam;
    private readonly CallerCredential? _credential;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource? _expiry;
    private long _checkedGeneration = -1;

    private CredentialLease(IamStore? iam, CallerCredential? credential, TimeProvider time)
    {
        _iam = iam;
        _credential = credential;
        _time = time;
        if (credential?.Expires is { } expires)
        {
            var left = expires - time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                _expiry = new CancellationTokenSource();
                _expiry.Cancel();
            }
            else
            {
                // Beyond a timer's range the clock comparison in IsCurrent ends it.
                _expiry = left > MaxTimer ? new CancellationTokenSource() : new CancellationTokenSource(left, time);
            }
        }
    }

    /// <summary>The lease of whoever the gate authenticated on <paramref name="http"/>.</summary>
    public static CredentialLease For(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var services = http.RequestServices;
        var credential = http.Features.Get<CallerCredential>();
        return new CredentialLease(credential is null ? null : services.GetRequiredService<IamStore>(), credential,
            services.GetService<TimeProvider>() ?? TimeProvider.System);
    }

    /// <summary>Cancelled when the login token expires (never for other callers).</summary>
    public CancellationToken Expired => _expiry?.Token ?? CancellationToken.None;

    /// <summary>Why the lease ended (empty while it holds).</summary>
    public string Reason { get; private set; } = "";

    /// <summary>Whether the caller may still be served; false from the first time it is not, for good.</summary>
    public bool IsCurrent()
    {
        if (Reason.Length > 0)
        {
            return false;
        }

        if (_credential is null)
        {
            return true;
        }

        // The clock too: a timer may fire a little early or, for a very long token, not at all.
        if (_credential.Expires is { } expires && (_expiry!.IsCancellationRequested || _time.GetUtcNow() >= expires))
        {
            return End("the login token has expired; log in again");
        }

        var generation = _iam!.Generation;
        if (generation == _checkedGeneration)
        {
            return true;
        }

        // The generation is bumped after the new snapshot is published, so this snapshot is at least as new as it.
        var user = _iam.Snapshot.Users.GetValueOrDefault(_credential.Uid);
        if (user is null)
        {
            return End($"the account '{_credential.Uid}' no longer exists");
        }

        if (user.CredentialVersion != _credential.CredentialVersion)
        {
            return End($"the credentials of '{_credential.Uid}' changed; log in again");
        }

        _checkedGeneration = generation;
        return true;
    }

    public void Dispose() => _expiry?.Dispose();

    private bool End(string reason)
    {
        Reason = reason;
        return false;
    }
}
