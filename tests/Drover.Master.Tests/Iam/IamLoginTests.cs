using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Master.Tests.Iam;

/// <summary>Logging in as a user and as a service account (a JWT signed by its own key), and the token service's public key.</summary>
public sealed class IamLoginTests(SecureMasterFixture fixture) : IClassFixture<SecureMasterFixture>
{
    private SecureMaster M => fixture.Master;

    /// <summary>A service account's login JWT as dcos-cli makes it: RS256, <c>{"uid", "exp"}</c>.</summary>
    private static string ServiceLoginToken(SecurityKey key, string algorithm, string uid, DateTime? expires = null, bool withExp = true)
    {
        var claims = new Dictionary<string, object> { ["uid"] = uid };
        if (withExp)
        {
            claims["exp"] = EpochTime.GetIntDate(expires ?? DateTime.UtcNow.AddMinutes(5));
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            SigningCredentials = new SigningCredentials(key, algorithm),
        });
    }

    private async Task<RSA> ServiceAccountAsync(string uid)
    {
        var rsa = RSA.Create(2048);
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, "/acs/api/v1/users/" + uid,
            new JsonObject { ["public_key"] = rsa.ExportSubjectPublicKeyInfoPem(), ["description"] = "service " + uid }.ToJsonString());
        return rsa;
    }

    private async Task AssertRefusedAsync(string uid, string token)
    {
        var reply = await M.LoginReplyAsync(uid, token: token);
        Assert.True(reply.Status == HttpStatusCode.Unauthorized, reply.ToString());
        Assert.Equal("ERR_INVALID_CREDENTIALS", reply.Code);
        Assert.Equal("Invalid credentials.", reply.Description);
        Assert.Equal("401 Unauthorized", reply.Json!["title"]!.GetValue<string>());
        Assert.Contains("acsjwt", reply.Headers.WwwAuthenticate.Select(h => h.ToString()));
    }

    [Fact]
    public async Task Login_ServiceAccountJwtSignedByItsKey_TokenWorks()
    {
        using var rsa = await ServiceAccountAsync("svc-login");

        var reply = await M.LoginReplyAsync("svc-login", token: ServiceLoginToken(new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256, "svc-login"));

        Assert.True(reply.Status == HttpStatusCode.OK, reply.ToString());
        var token = reply.Json!["token"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/auth/jwks", token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/auth/jwks", token, authScheme: "Bearer ")).Status);
        Assert.Equal("svc-login", new JsonWebToken(token).GetClaim("uid").Value);
    }

    [Fact]
    public async Task Login_ServiceAccountJwtSignedByAnotherKey_401()
    {
        using var rsa = await ServiceAccountAsync("svc-otherkey");
        using var other = RSA.Create(2048);

        await AssertRefusedAsync("svc-otherkey", ServiceLoginToken(new RsaSecurityKey(other), SecurityAlgorithms.RsaSha256, "svc-otherkey"));
    }

    [Fact]
    public async Task Login_ServiceAccountJwtHs256KeyedWithThePublicKey_401()
    {
        using var rsa = await ServiceAccountAsync("svc-hs256");
        var publicPem = rsa.ExportSubjectPublicKeyInfoPem();

        // The classic confusion attack: HMAC keyed with the (public) RSA key, as a verifier that trusts the token's alg would accept.
        await AssertRefusedAsync("svc-hs256", ServiceLoginToken(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(publicPem)), SecurityAlgorithms.HmacSha256, "svc-hs256"));
        await AssertRefusedAsync("svc-hs256", ServiceLoginToken(new SymmetricSecurityKey(rsa.ExportSubjectPublicKeyInfo()), SecurityAlgorithms.HmacSha256, "svc-hs256"));
    }

    [Fact]
    public async Task Login_ServiceAccountJwtAlgNoneOrWrongUidOrExpired_401()
    {
        using var rsa = await ServiceAccountAsync("svc-bad");
        using var victim = await ServiceAccountAsync("svc-victim");
        var key = new RsaSecurityKey(rsa);

        var unsigned = new JsonWebTokenHandler().CreateToken(new JsonObject { ["uid"] = "svc-bad", ["exp"] = EpochTime.GetIntDate(DateTime.UtcNow.AddMinutes(5)) }.ToJsonString());
        await AssertRefusedAsync("svc-bad", unsigned);
        await AssertRefusedAsync("svc-victim", ServiceLoginToken(key, SecurityAlgorithms.RsaSha256, "svc-bad")); // its own token, another account
        await AssertRefusedAsync("svc-bad", ServiceLoginToken(key, SecurityAlgorithms.RsaSha256, "svc-victim"));
        await AssertRefusedAsync("svc-bad", ServiceLoginToken(key, SecurityAlgorithms.RsaSha256, "svc-bad", DateTime.UtcNow.AddMinutes(-10)));
        await AssertRefusedAsync("svc-bad", ServiceLoginToken(key, SecurityAlgorithms.RsaSha256, "svc-bad", withExp: false));
        await AssertRefusedAsync("svc-bad", "not-a-jwt");
    }

    [Fact]
    public async Task Login_PasswordOfServiceAccountOrTokenOfUser_401()
    {
        using var rsa = await ServiceAccountAsync("svc-nopassword");
        await M.UserAsync("u-notoken", "password-123");

        var asPassword = await M.LoginReplyAsync("svc-nopassword", password: "password-123");
        Assert.Equal(HttpStatusCode.Unauthorized, asPassword.Status);
        await AssertRefusedAsync("u-notoken", ServiceLoginToken(new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256, "u-notoken"));
    }

    [Fact]
    public async Task PatchPublicKey_EndsOlderTokensAndTheOldKey()
    {
        using var first = await ServiceAccountAsync("svc-rotate");
        var session = (await M.LoginReplyAsync("svc-rotate", token: ServiceLoginToken(new RsaSecurityKey(first), SecurityAlgorithms.RsaSha256, "svc-rotate"))).Json!["token"]!.GetValue<string>();
        using var second = RSA.Create(3072);

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Patch, "/acs/api/v1/users/svc-rotate", new JsonObject { ["public_key"] = second.ExportSubjectPublicKeyInfoPem() }.ToJsonString());

        Assert.Equal(HttpStatusCode.Unauthorized, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/auth/jwks", session)).Status);
        await AssertRefusedAsync("svc-rotate", ServiceLoginToken(new RsaSecurityKey(first), SecurityAlgorithms.RsaSha256, "svc-rotate"));
        var fresh = await M.LoginReplyAsync("svc-rotate", token: ServiceLoginToken(new RsaSecurityKey(second), SecurityAlgorithms.RsaSha256, "svc-rotate"));
        Assert.Equal(HttpStatusCode.OK, fresh.Status);
        Assert.Equal(second.ExportSubjectPublicKeyInfoPem(), (await M.AsAdmin(HttpMethod.Get, "/acs/api/v1/users/svc-rotate")).Json!["public_key"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"uid": "admin"}""", "Exactly one of `token` and `password`")]
    [InlineData("""{"uid": "admin", "password": "x", "token": "y"}""", "Exactly one of `token` and `password`")]
    [InlineData("""{"uid": "", "password": "x"}""", "`uid` is required")]
    [InlineData("""{"uid": "admin", "password": ""}""", "`password` must not be empty")]
    public async Task Login_BadBody_400InvalidData(string json, string description)
    {
        var reply = await M.SendAsync(HttpMethod.Post, "/acs/api/v1/auth/login", null, json);

        Assert.Equal(HttpStatusCode.BadRequest, reply.Status);
        Assert.Equal("ERR_INVALID_DATA", reply.Code);
        Assert.Contains(description, reply.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_WrongPasswordOrUnknownUid_SameAnswer()
    {
        var wrong = await M.LoginReplyAsync("admin", "not-the-password");
        var unknown = await M.LoginReplyAsync("no-such-user", "not-the-password");

        Assert.Equal(HttpStatusCode.Unauthorized, wrong.Status);
        Assert.Equal(wrong.Body, unknown.Body);
        Assert.Equal(wrong.Status, unknown.Status);
    }

    [Fact]
    public async Task Jwks_VerifiesTheTokensTheMasterIssues()
    {
        var reply = await M.AsAdmin(HttpMethod.Get, "/acs/api/v1/auth/jwks");

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var jwk = Assert.Single(reply.Json!["keys"]!.AsArray())!;
        Assert.Equal("RSA", jwk["kty"]!.GetValue<string>());
        Assert.Equal("RS256", jwk["alg"]!.GetValue<string>());
        Assert.Equal("sig", jwk["use"]!.GetValue<string>());
        Assert.Equal(new JsonWebToken(M.AdminToken).Kid, jwk["kid"]!.GetValue<string>());
        Assert.DoesNotContain("\"d\"", reply.Body, StringComparison.Ordinal); // no private part

        var key = new JsonWebKey { Kty = "RSA", Kid = jwk["kid"]!.GetValue<string>(), N = jwk["n"]!.GetValue<string>(), E = jwk["e"]!.GetValue<string>() };
        var parameters = new TokenValidationParameters { IssuerSigningKey = key, ValidIssuer = "drover", ValidateAudience = false, ValidAlgorithms = [SecurityAlgorithms.RsaSha256] };
        var valid = await new JsonWebTokenHandler().ValidateTokenAsync(M.AdminToken, parameters);
        Assert.True(valid.IsValid, valid.Exception?.Message);
        Assert.Equal("admin", valid.Claims["uid"]);

        using var other = RSA.Create(2048);
        var forged = ServiceLoginToken(new RsaSecurityKey(other) { KeyId = key.Kid }, SecurityAlgorithms.RsaSha256, "admin");
        var loose = parameters.Clone();
        loose.ValidateIssuer = false;
        Assert.False((await new JsonWebTokenHandler().ValidateTokenAsync(forged, loose)).IsValid);
    }

    [Fact]
    public async Task Jwks_NoCredentials_401()
    {
        var reply = await M.SendAsync(HttpMethod.Get, "/acs/api/v1/auth/jwks", null);

        Assert.Equal(HttpStatusCode.Unauthorized, reply.Status);
        Assert.Contains("acsjwt", reply.Headers.WwwAuthenticate.Select(h => h.ToString()));
    }
}
