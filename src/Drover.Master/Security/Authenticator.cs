using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Drover.Core.Security;
using Drover.Master.Iam;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Drover.Master.Security;

/// <summary>
/// Finds out who sent a request, from (in this order) the <c>Authorization</c> header — a login token as
/// <c>token=&lt;JWT&gt;</c> (DC/OS) or <c>Bearer &lt;JWT&gt;</c>, or HTTP Basic with a uid and password
/// (Mesos frameworks' principal and secret) — or else the TLS client certificate (agents, masters).
/// Credentials that are present but wrong are an error, never a silent fall-back to anonymous.
/// </summary>
public sealed class Authenticator(IamStore iam, TokenService tokens, SecurityOptions options)
{
    private const int MaxBasicCacheEntries = 10_000;

    /// <summary>
    /// Verified Basic credentials, keyed by a hash of uid and secret, valid for one IAM generation: PBKDF2 is
    /// deliberately slow and a framework sends its credentials with every call.
    /// </summary>
    private readonly ConcurrentDictionary<string, (string Uid, long Generation)> _basic = new(StringComparer.Ordinal);

    public bool Enabled => options.Enabled;

    /// <summary>The caller, or null with no credentials, or the reason presented credentials are refused.</summary>
    public async ValueTask<(Caller? Caller, string? Error)> AuthenticateAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!options.Enabled)
        {
            return (Caller.Dev, null);
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
                return FromBasic(http, header["Basic ".Length..].Trim());
            }

            return (null, "the Authorization header must be 'token=<JWT>', 'Bearer <JWT>' or 'Basic <credentials>'");
        }

        // The TLS layer accepted the certificate only if the cluster CA issued it. The identity is read once per
        // connection: an agent's heartbeats, updates and command stream reuse theirs.
        var certificate = http.Connection.ClientCertificate;
        if (certificate is null)
        {
            return (null, null);
        }

        var items = http.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items?.TryGetValue(ConnectionCallerKey, out var cached) == true && cached is (X509Certificate2 c, Caller known) && ReferenceEquals(c, certificate))
        {
            return (known, null);
        }

        var machine = WorkloadIdentity.FromCertificate(certificate);
        if (items is not null && machine is not null)
        {
            items[ConnectionCallerKey] = (certificate, machine);
        }

        return (machine, null);
    }

    private static readonly object ConnectionCallerKey = new();

    /// <summary>A person or service account from a login token; its credential version and expiry are recorded on the request (<see cref="CredentialLease"/>).</summary>
    private async ValueTask<(Caller?, string?)> FromTokenAsync(HttpContext http, string token)
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
    private (Caller?, string?) FromBasic(HttpContext http, string encoded)
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

        var user = iam.VerifyPassword(uid, decoded[(colon + 1)..]);
        if (user is null)
        {
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
