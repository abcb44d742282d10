using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Drover.Store;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Master.Iam;

/// <summary>
/// Issues and checks the cluster's login tokens: JWTs signed RS256 with one RSA-2048 key that the first master
/// creates and keeps in the state store (<see cref="KeyName"/>), so every master of a highly available set
/// accepts every other's tokens. Claims: <c>uid</c> (DC/OS' claim), <c>cv</c> (the account's credential
/// version: a password change ends older tokens), <c>iss</c>, <c>iat</c>, <c>exp</c>.
/// Only RS256 verifies: <c>alg: none</c>, HS256 keyed with the public key and every other algorithm are refused
/// by the library's algorithm allow-list.
/// </summary>
public sealed class TokenService(IStateStore store, TimeProvider time)
{
    public const string KeyName = "/drover/security/jwt-signing-key";
    public const string Issuer = "drover";
    public const string UidClaim = "uid";
    public const string CredentialVersionClaim = "cv";

    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private SigningCredentials? _signing;
    private TokenValidationParameters? _validation;

    /// <summary>Loads the signing key from the store, creating it on a new cluster (several masters at once agree).</summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        var entry = await store.GetAsync(KeyName, ct).ConfigureAwait(false);
        if (entry is null)
        {
            using var fresh = RSA.Create(2048);
            var pem = Encoding.UTF8.GetBytes(fresh.ExportPkcs8PrivateKeyPem());
            await store.CompareAndSwapAsync(KeyName, 0, pem, ct).ConfigureAwait(false);
            entry = await store.GetAsync(KeyName, ct).ConfigureAwait(false) ?? throw new InvalidOperationException("the token signing key vanished from the store");
        }

        var rsa = RSA.Create();
        rsa.ImportFromPem(Encoding.UTF8.GetString(entry.Value));
        var key = new RsaSecurityKey(rsa) { KeyId = KeyId(rsa) };
        _signing = new SigningCredentials(key, SecurityAlgorithms.RsaSha256);
        _validation = new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidateAudience = false,
            IssuerSigningKey = key,
            ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromSeconds(30),
            LifetimeValidator = ValidLifetime,
        };
    }

    /// <summary>The signing key's public half as a JWK (<c>GET /acs/api/v1/auth/jwks</c>), so tools can verify tokens themselves.</summary>
    public Drover.Core.Iam.IamJwk PublicJwk()
    {
        var key = (RsaSecurityKey)(_signing ?? throw new InvalidOperationException("TokenService.LoadAsync was not called")).Key;
        var p = key.Rsa.ExportParameters(includePrivateParameters: false);
        return new Drover.Core.Iam.IamJwk
        {
            Kid = key.KeyId,
            N = System.Buffers.Text.Base64Url.EncodeToString(p.Modulus),
            E = System.Buffers.Text.Base64Url.EncodeToString(p.Exponent),
        };
    }

    /// <summary>A token for <paramref name="user"/> valid for <paramref name="lifetime"/>.</summary>
    public string Issue(IamUser user, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(user);
        var now = time.GetUtcNow().UtcDateTime;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            IssuedAt = now,
            Expires = now + lifetime,
            Claims = new Dictionary<string, object>
            {
                [UidClaim] = user.Uid,
                [CredentialVersionClaim] = user.CredentialVersion,
            },
            SigningCredentials = _signing ?? throw new InvalidOperationException("TokenService.LoadAsync was not called"),
        });
    }

    /// <summary>The uid, credential version and expiry (<c>exp</c>) a valid token names, or the reason it is not valid.</summary>
    public async Task<(string? Uid, int CredentialVersion, DateTimeOffset Expires, string? Error)> ValidateAsync(string token)
    {
        var result = await _handler.ValidateTokenAsync(token, _validation ?? throw new InvalidOperationException("TokenService.LoadAsync was not called")).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return (null, 0, default, Describe(result.Exception));
        }

        var uid = result.Claims.TryGetValue(UidClaim, out var u) ? u as string : null;
        var cv = result.Claims.TryGetValue(CredentialVersionClaim, out var v) ? Convert.ToInt32(v, CultureInfo.InvariantCulture) : 0;
        var expires = new DateTimeOffset(DateTime.SpecifyKind(result.SecurityToken.ValidTo, DateTimeKind.Utc));
        return string.IsNullOrEmpty(uid) ? (null, 0, default, "the token has no uid claim") : (uid, cv, expires, null);
    }

    /// <summary>
    /// Checks a service account's login JWT (DC/OS: RS256 only, signed by the account's private key, <c>uid</c> naming it,
    /// with an <c>exp</c>) against the account's public key. Drover requires the <c>exp</c> (bouncer only warns without one):
    /// a login token that never expires could be replayed for ever.
    /// </summary>
    public async Task<string?> ValidateServiceLoginAsync(string token, IamUser account)
    {
        ArgumentNullException.ThrowIfNull(account);
        if (account.PublicKey is not { } pem)
        {
            return "the account has no public key";
        }

        if (PublicKeyOf(pem) is not { } key)
        {
            return "the account's public key is not an RSA key in PEM form";
        }

        var result = await _handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidateIssuer = false,
            ValidateAudience = false,
            IssuerSigningKey = key,
            ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromSeconds(30),
            LifetimeValidator = ValidLifetime,
        }).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return Describe(result.Exception);
        }

        if (result.SecurityToken is JsonWebToken jwt && jwt.ValidTo > time.GetUtcNow().UtcDateTime + MaxServiceLoginLifetime)
        {
            // A long-lived login token would be a replayable credential; dcos-cli signs them for 5 minutes.
            return $"the login token's exp is more than {MaxServiceLoginLifetime.TotalMinutes:0} minutes away; sign a short-lived one";
        }

        return result.Claims.TryGetValue(UidClaim, out var u) && u is string uid && uid == account.Uid
            ? null
            : "the login token's uid claim does not name the account";
    }

    /// <summary>How far ahead a service account's login JWT may expire (bouncer warns beyond 10 minutes).</summary>
    public static readonly TimeSpan MaxServiceLoginLifetime = TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(30);

    /// <summary>An RSA public key from PEM, or null.</summary>
    public static SecurityKey? PublicKeyOf(string pem)
    {
        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(pem);
            return new RsaSecurityKey(rsa);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            rsa.Dispose();
            return null;
        }
    }

    /// <summary>Lifetime against the injected clock (tests move time), with the library's skew.</summary>
    private bool ValidLifetime(DateTime? notBefore, DateTime? expires, SecurityToken token, TokenValidationParameters parameters)
    {
        var now = time.GetUtcNow().UtcDateTime;
        if (expires is null || now > expires.Value.ToUniversalTime() + parameters.ClockSkew)
        {
            throw new SecurityTokenExpiredException("the token has expired");
        }

        if (notBefore is { } nbf && now + parameters.ClockSkew < nbf.ToUniversalTime())
        {
            throw new SecurityTokenNotYetValidException("the token is not valid yet");
        }

        return true;
    }

    private static string Describe(Exception? e) => e switch
    {
        SecurityTokenExpiredException => "the token has expired",
        SecurityTokenNotYetValidException => "the token is not valid yet",
        SecurityTokenInvalidAlgorithmException => "the token's signing algorithm is not accepted",
        SecurityTokenInvalidSignatureException or SecurityTokenSignatureKeyNotFoundException => "the token's signature does not verify",
        SecurityTokenInvalidIssuerException => "the token was not issued by this cluster",
        SecurityTokenMalformedException or ArgumentException => "the token is not a well-formed JWT",
        null => "the token is not valid",
        _ => "the token is not valid",
    };

    private static string KeyId(RSA rsa) => Convert.ToHexStringLower(SHA256.HashData(rsa.ExportSubjectPublicKeyInfo()))[..16];
}
