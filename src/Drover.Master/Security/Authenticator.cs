using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Drover.Core.Security;
using Drover.Core.Security.Pki;
using Drover.Master.Iam;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Security;

/// <summary>
/// Finds out who sent a request, from (in this order) the <c>Authorization</c> header — a login token as
/// <c>token=&lt;JWT&gt;</c> (DC/OS) or <c>Bearer &lt;JWT&gt;</c>, or HTTP Basic with a uid and password
/// (Mesos frameworks' principal and secret) — or else the TLS client certificate (agents, masters: its
/// <c>spiffe://drover/…</c> identity, checked against the cluster CA, <see cref="PeerIdentity"/>).
/// Credentials that are present but wrong are an error, never a silent fall-back to anonymous.
/// </summary>
public sealed class Authenticator(IamStore iam, TokenService tokens, SecurityOptions options, CredentialThrottle throttle,
    Pki.MasterCredentials? credentials = null, TimeProvider? time = null)
{
    private const int MaxBasicCacheEntries = 10_000;

    /// <summary>
    /// Verified Basic credentials, keyed by a hash of uid and secret, valid for one IAM generation: PBKDF2 is
    /// deliberately slow and a framework sends its credentials with every call.
    /// </summary>
    private readonly ConcurrentDictionary<string, (string Uid, long Generation)> _basic = new(StringComparer.Ordinal);

    public bool Enabled => options.Enabled;

    /// <summary>
    /// The caller, or null with no credentials, or the reason presented credentials are refused (answered 401,
    /// or 429 with <see cref="AuthResult.RetryAfter"/> when password checking is throttled).
    /// </summary>
    public async ValueTask<AuthResult> AuthenticateAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!options.Enabled)
        {
            // No logins; but a master that serves TLS identities still holds agents to theirs (an agent certificate
            // speaks for its agent only), so a presented certificate counts even here.
            return credentials is not null && http.Connection.ClientCertificate is not null ? FromCertificate(http) : new AuthResult(Caller.Dev, null);
        }

        var header = http.Request.Headers.Authorization.ToString();
        if (header.Length > 0)
        {
            if (header.StartsWith("token=", StringComparison.OrdinalIgnoreCase))
            {
                return await FromTokenAsync(http, header["token=".Length..].Trim()).ConfigureAwait(false);
            }

            if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return await FromTokenAsync(http, header["Bearer ".Length..].Trim()).ConfigureAwait(false);
            }

            if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
            {
                return await FromBasicAsync(http, header["Basic ".Length..].Trim()).ConfigureAwait(false);
            }

            return (null, "the Authorization header must be 'token=<JWT>', 'Bearer <JWT>' or 'Basic <credentials>'");
        }

        return http.Connection.ClientCertificate is null ? (null, null) : FromCertificate(http);
    }

    /// <summary>The agent or master a TLS client certificate names.</summary>
    private (Caller?, string?) FromCertificate(HttpContext http)
    {
        if (credentials is null)
        {
            return (null, "this master serves no TLS identities; a client certificate proves nothing here");
        }

        // The TLS layer accepted the certificate only if the cluster CA issued it; checked again here, per
        // request, so one that expires while its connection stays open stops counting. The chain is built once
        // per certificate (one per connection: an agent's heartbeats, updates and command stream reuse theirs).
        var (identity, error) = PeerIdentity.Of(http.Connection.ClientCertificate, credentials.Ca.Roots, (time ?? TimeProvider.System).GetUtcNow());
        return identity is null ? (null, "the client certificate is refused: " + error) : (identity.ToCaller(), null);
    }

    /// <summary>A person or service account from a login token; its credential version and expiry are recorded on the request (<see cref="CredentialLease"/>).</summary>
    private async ValueTask<AuthResult> FromTokenAsync(HttpContext http, string token)
    {
        if (token.Length == 0 || token.Length > 16 * 1024)
        {
            return (null, "the token is empty or too long");
        }

        var (uid, cv, expires, error) = await tokens.ValidateAsync(token).ConfigureAwait(false);
        if (error is not null)
        {
            return (null, error);
        }

        var user = iam.Snapshot.Users.GetValueOrDefault(uid!);
        if (user is null)
        {
            return (null, $"the token's user '{uid}' no longer exists");
        }

        if (user.CredentialVersion != cv)
        {
            return (null, "the token was issued before the account's credentials changed; log in again");
        }

        http.Features.Set(new CallerCredential(user.Uid, cv, expires));
        return (ToCaller(user), null);
    }

    /// <summary>A principal from HTTP Basic (uid and password); its credential version is recorded on the request (<see cref="CredentialLease"/>).</summary>
    private async ValueTask<AuthResult> FromBasicAsync(HttpContext http, string encoded)
    {
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
        }
        catch (FormatException)
        {
            return (null, "the Basic credentials are not base64");
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return (null, "the Basic credentials must be 'principal:secret'");
        }

        var uid = decoded[..colon];
        var generation = iam.Generation;
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(decoded)));
        if (_basic.TryGetValue(key, out var hit) && hit.Generation == generation && hit.Uid == uid
            && iam.Snapshot.Users.GetValueOrDefault(uid) is { } cached)
        {
            http.Features.Set(new CallerCredential(cached.Uid, cached.CredentialVersion, Expires: null));
            return (ToCaller(cached), null);
        }

        var client = http.Connection.RemoteIpAddress?.ToString() ?? "?";
        if (throttle.Blocked(client) is { } wait)
        {
            return new AuthResult(null, "too many failed credential checks from this address; retry later", wait);
        }

        var (ran, user) = await throttle.RunAsync(() => iam.VerifyPassword(uid, decoded[(colon + 1)..]), http.RequestAborted).ConfigureAwait(false);
        if (!ran)
        {
            return new AuthResult(null, "too many credential checks in progress; retry later", CredentialThrottle.SlotWait);
        }

        if (user is null)
        {
            throttle.Failed(client);
            return (null, "invalid principal or secret");
        }

        if (_basic.Count >= MaxBasicCacheEntries)
        {
            _basic.Clear();
        }

        _basic[key] = (uid, generation);
        http.Features.Set(new CallerCredential(user.Uid, user.CredentialVersion, Expires: null));
        return (ToCaller(user), null);
    }

    private static Caller ToCaller(IamUser user) => new(user.Kind == AccountKind.Service ? CallerKind.ServiceAccount : CallerKind.User, user.Uid);
}

/// <summary>What authentication found: a caller, nothing (no credentials), or a refusal with its reason.</summary>
public readonly record struct AuthResult(Caller? Caller, string? Error, TimeSpan? RetryAfter = null)
{
    public static implicit operator AuthResult((Caller? Caller, string? Error) pair) => new(pair.Caller, pair.Error);

    public void Deconstruct(out Caller? caller, out string? error)
    {
        caller = Caller;
        error = Error;
    }
}
