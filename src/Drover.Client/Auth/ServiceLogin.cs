using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Client.Auth;

/// <summary>
/// The JWT a service account logs in with (DC/OS' service login): <c>{"uid", "exp"}</c> signed RS256 with the
/// account's RSA private key, valid for five minutes as dcos-cli makes it. The master checks it against the public
/// key stored with the account and answers with a login token.
/// </summary>
public static class ServiceLogin
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    /// <exception cref="ArgumentException">The PEM holds no RSA private key.</exception>
    public static string CreateToken(string uid, string privateKeyPem, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(uid);
        ArgumentException.ThrowIfNullOrEmpty(privateKeyPem);
        using var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(privateKeyPem);
            rsa.ExportParameters(includePrivateParameters: true); // a public key alone cannot sign
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException("the key file does not hold an RSA private key in PEM form: " + e.Message, nameof(privateKeyPem), e);
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object>
            {
                ["uid"] = uid,
                ["exp"] = (now + Lifetime).ToUnixTimeSeconds(),
            },
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256),
        });
    }

    /// <summary>The <c>uid</c> and expiry a login token names, read without verifying it (for messages only), or nulls.</summary>
    public static (string? Uid, DateTimeOffset? Expires) Describe(string token)
    {
        try
        {
            var jwt = new JsonWebToken(token);
            var uid = jwt.TryGetPayloadValue<string>("uid", out var u) ? u : null;
            return (uid, jwt.ValidTo == DateTime.MinValue ? null : new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero));
        }
        catch (ArgumentException)
        {
            return (null, null);
        }
    }
}
