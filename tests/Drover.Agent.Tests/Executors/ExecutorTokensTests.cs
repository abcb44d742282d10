using System.Security.Cryptography;
using Drover.Agent.Executors;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Agent.Tests.Executors;

/// <summary>
/// The executor tokens on their own: the agent's key on disk, and every token that is not one this agent issued refused.
/// The HTTP answers (401 with <c>WWW-Authenticate</c>, 403 for another executor's ids) are tested end to end in
/// <c>Drover.Master.Tests/Executors/CustomExecutorTests.Authentication.cs</c>.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes: Drover runs on Linux
public sealed class ExecutorTokensTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "drover-agent-tests", Guid.NewGuid().ToString("N"), "meta");

    private string KeyFile => Path.Combine(_dir, ExecutorTokens.KeyFileName);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path.GetDirectoryName(_dir)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task LoadOrCreate_FirstStartThenRestart_KeyOwnerOnlyKeptAndEarlierTokensStillAccepted()
    {
        var first = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);
        var key = await File.ReadAllBytesAsync(KeyFile);
        var token = first.Issue("fw-1", "exec-1", "container-1");

        var second = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System); // the agent restarted

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyFile));
        Assert.Equal(64, key.Length);
        Assert.Equal(key, await File.ReadAllBytesAsync(KeyFile));
        var principal = (await second.AuthenticateAsync("Bearer " + token)).Principal;
        Assert.Equal(new ExecutorPrincipal { FrameworkId = "fw-1", ExecutorId = "exec-1", ContainerId = "container-1" }, principal);
    }

    [Fact]
    public async Task LoadOrCreate_TwoAgents_DifferentKeysSoOnesTokenIsRefusedByTheOther()
    {
        var mine = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);
        var other = ExecutorTokens.LoadOrCreate(Path.Combine(Path.GetDirectoryName(_dir)!, "other-agent"), TimeProvider.System);

        var refused = await mine.AuthenticateAsync("Bearer " + other.Issue("fw-1", "exec-1", "container-1"));

        Assert.Null(refused.Principal);
        Assert.Equal("Invalid JWT: Token signature does not match", refused.Error);
    }

    [Fact]
    public async Task LoadOrCreate_KeyFileWithWiderMode_TightenedToOwnerOnly()
    {
        ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);
        File.SetUnixFileMode(KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var tokens = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyFile));
        Assert.NotNull((await tokens.AuthenticateAsync("Bearer " + tokens.Issue("f", "e", "c"))).Principal);
    }

    [Fact]
    public void LoadOrCreate_TruncatedKeyFile_Throws()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(KeyFile, new byte[8]);

        Assert.Throws<InvalidDataException>(() => ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System));
    }

    [Fact]
    public async Task Authenticate_NoAuthorizationHeader_RefusedWithoutErrorInformation()
    {
        var tokens = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);

        var refused = await tokens.AuthenticateAsync(null);

        Assert.Null(refused.Principal);
        Assert.Null(refused.Error);
        Assert.Equal("Bearer realm=\"drover-agent-executor\"", ExecutorTokens.Challenge(refused.Error));
    }

    [Theory]
    [InlineData("payload-swapped", "Invalid JWT: Token signature does not match")]
    [InlineData("alg-none", "Invalid JWT: ")]
    [InlineData("other-key", "Invalid JWT: Token signature does not match")]
    [InlineData("hs512-with-the-agents-key", "Invalid JWT: ")]
    [InlineData("hs256-without-cid", "JWT claims missing: 'fid', 'eid' and 'cid' are required")]
    [InlineData("not-a-jwt", "Invalid JWT: ")]
    [InlineData("basic-scheme", "Only the 'Bearer' scheme is supported")]
    [InlineData("bearer-without-token", "Malformed 'Authorization' header")]
    public async Task Authenticate_NotATokenThisAgentIssued_Refused(string variant, string reason)
    {
        var tokens = ExecutorTokens.LoadOrCreate(_dir, TimeProvider.System);
        var genuine = tokens.Issue("fw-1", "mine", "container-1");
        var header = variant switch
        {
            "payload-swapped" => "Bearer " + SwapPayload(genuine, Claims("fw-1", "victim", "container-2")),
            "alg-none" => "Bearer " + Unsigned(Claims("fw-1", "victim", "container-2")),
            "other-key" => "Bearer " + Sign(RandomNumberGenerator.GetBytes(64), SecurityAlgorithms.HmacSha256, Claims("fw-1", "victim", "container-2")),
            "hs512-with-the-agents-key" => "Bearer " + Sign(File.ReadAllBytes(KeyFile), SecurityAlgorithms.HmacSha512, Claims("fw-1", "victim", "container-2")),
            "hs256-without-cid" => "Bearer " + Sign(File.ReadAllBytes(KeyFile), SecurityAlgorithms.HmacSha256,
                new Dictionary<string, object> { ["fid"] = "fw-1", ["eid"] = "victim" }),
            "not-a-jwt" => "Bearer not.a.jwt",
            "basic-scheme" => "Basic " + Convert.ToBase64String("fw-1:secret"u8),
            "bearer-without-token" => "Bearer",
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };

        var refused = await tokens.AuthenticateAsync(header);

        Assert.Null(refused.Principal);
        Assert.StartsWith(reason, refused.Error, StringComparison.Ordinal);
        Assert.StartsWith("Bearer realm=\"drover-agent-executor\", error=\"invalid_token\", error_description=\"", ExecutorTokens.Challenge(refused.Error), StringComparison.Ordinal);
        // The genuine token still works: the refusals are the forgeries', not a broken key.
        Assert.NotNull((await tokens.AuthenticateAsync("Bearer " + genuine)).Principal);
    }

    private static Dictionary<string, object> Claims(string framework, string executor, string container) =>
        new() { ["fid"] = framework, ["eid"] = executor, ["cid"] = container };

    private static string Sign(byte[] key, string algorithm, Dictionary<string, object> claims) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), algorithm),
        });

    /// <summary>The genuine header and signature around other claims.</summary>
    private static string SwapPayload(string token, Dictionary<string, object> claims)
    {
        var parts = token.Split('.');
        return $"{parts[0]}.{Payload(claims)}.{parts[2]}";
    }

    /// <summary>RFC 7519's unsecured JWT: <c>{"alg":"none"}</c> and an empty signature.</summary>
    private static string Unsigned(Dictionary<string, object> claims) =>
        $"{Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""")}.{Payload(claims)}.";

    private static string Payload(Dictionary<string, object> claims) =>
        Base64UrlEncoder.Encode(System.Text.Json.JsonSerializer.Serialize(claims.ToDictionary(kv => kv.Key, kv => (string)kv.Value)));
}
