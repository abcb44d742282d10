using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Drover.Agent.Executors;

/// <summary>
/// Executor authentication, as a Mesos agent does it with <c>--authenticate_http_executors</c>: every executor
/// container gets its own JWT (HS256, signed with a per-agent secret key) whose claims name its framework id
/// (<c>fid</c>), executor id (<c>eid</c>) and container id (<c>cid</c>), exported as
/// <c>MESOS_EXECUTOR_AUTHENTICATION_TOKEN</c>; the executor presents it on every <c>/api/v1/executor</c> call as
/// <c>Authorization: Bearer &lt;token&gt;</c>. Thread-safe.
/// </summary>
/// <remarks>
/// The key is made once, with a CSPRNG, and kept in the agent's work dir (<see cref="KeyFileName"/>, mode 0600), so
/// executors that outlive an agent process keep authenticating to the next one. Tokens carry no expiry (Mesos' do not
/// either): a token is good for its container only, since the agent checks <c>cid</c> against the executor's current
/// container, and so it dies with the container. Deleting the key file invalidates every running executor's token.
/// </remarks>
public sealed class ExecutorTokens
{
    /// <summary>The key's file in the agent's <c>{WorkDir}/meta</c>: raw key bytes, mode 0600.</summary>
    public const string KeyFileName = "executor-token.key";

    /// <summary>Claim names of Mesos' executor tokens.</summary>
    public const string FrameworkClaim = "fid";

    public const string ExecutorClaim = "eid";

    public const string ContainerClaim = "cid";

    /// <summary>The HTTP authentication realm named in <c>WWW-Authenticate</c> (Mesos' executor realm is <c>mesos-agent-executor</c>).</summary>
    public const string Realm = "drover-agent-executor";

    /// <summary>64 bytes: HMAC-SHA256's block size, so the key is used as it is, without being hashed first.</summary>
    private const int KeyBytes = 64;

    /// <summary>A key file shorter than this is refused (HS256 needs at least 256 bits).</summary>
    private const int MinKeyBytes = 32;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly SymmetricSecurityKey _key;
    private readonly SigningCredentials _signing;
    private readonly TokenValidationParameters _validation;
    private readonly TimeProvider _time;

    // No default iat/nbf/exp on creation (exp would otherwise be one hour): see the remarks.
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };

    private ExecutorTokens(byte[] key, TimeProvider time)
    {
        _key = new SymmetricSecurityKey(key);
        _signing = new SigningCredentials(_key, SecurityAlgorithms.HmacSha256);
        _time = time;
        _validation = new TokenValidationParameters
        {
            IssuerSigningKey = _key,
            // Only what this agent issues: HS256 with its own key. An unsigned token (alg "none") or any other
            // algorithm (HS512 with the same key, RS256 …) fails validation.
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            ValidateIssuer = false,
            ValidateAudience = false,
            RequireExpirationTime = false,
            ValidateLifetime = true,
        };
    }

    /// <summary>
    /// Reads the agent's key from <c>{directory}/</c><see cref="KeyFileName"/>, or makes one there (0600) on the agent's
    /// first start. Throws when the file exists but cannot be a key (an infrastructure fault: the operator decides).
    /// </summary>
    public static ExecutorTokens LoadOrCreate(string directory, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, KeyFileName);
        if (!File.Exists(path))
        {
            Create(path);
        }

        // Drover runs on Linux; the guard only keeps the platform analyzer informed.
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & ~OwnerOnly) != 0)
        {
            File.SetUnixFileMode(path, OwnerOnly); // e.g. restored from a backup with a wider mode
        }

        var key = File.ReadAllBytes(path);
        if (key.Length < MinKeyBytes)
        {
            throw new InvalidDataException(
                $"{path} holds {key.Length} bytes, not an executor token key (at least {MinKeyBytes}); delete it to make a new one "
                + "(executors still running from before then cannot authenticate and must be restarted)");
        }

        return new ExecutorTokens(key, time);
    }

    /// <summary>Written beside and renamed into place, so a crash never leaves a torn key behind.</summary>
    private static void Create(string path) => Security.PrivateFile.Write(path, RandomNumberGenerator.GetBytes(KeyBytes), overwrite: false);

    /// <summary>The token of one executor container.</summary>
    public string Issue(string frameworkId, string executorId, string containerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(frameworkId);
        ArgumentException.ThrowIfNullOrEmpty(executorId);
        ArgumentException.ThrowIfNullOrEmpty(containerId);
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object>(StringComparer.Ordinal)
            {
                [FrameworkClaim] = frameworkId,
                [ExecutorClaim] = executorId,
                [ContainerClaim] = containerId,
            },
            IssuedAt = _time.GetUtcNow().UtcDateTime,
            SigningCredentials = _signing,
        });
    }

    /// <summary>
    /// Checks an <c>Authorization</c> header value: a principal, or the reason it is refused (answered 401 with
    /// <see cref="Challenge"/>). A missing header has no reason (RFC 6750 §3.1: no error information then).
    /// </summary>
    internal async Task<ExecutorAuthentication> AuthenticateAsync(string? authorization)
    {
        if (string.IsNullOrEmpty(authorization))
        {
            return ExecutorAuthentication.Refused(null);
        }

        var parts = authorization.Split(' ');
        if (parts.Length != 2 || parts[1].Length == 0)
        {
            return ExecutorAuthentication.Refused("Malformed 'Authorization' header");
        }

        if (!string.Equals(parts[0], "Bearer", StringComparison.OrdinalIgnoreCase))
        {
            return ExecutorAuthentication.Refused("Only the 'Bearer' scheme is supported");
        }

        var result = await _handler.ValidateTokenAsync(parts[1], _validation).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return ExecutorAuthentication.Refused("Invalid JWT: " + Reason(result.Exception));
        }

        if (Claim(result, FrameworkClaim) is not { } frameworkId
            || Claim(result, ExecutorClaim) is not { } executorId
            || Claim(result, ContainerClaim) is not { } containerId)
        {
            return ExecutorAuthentication.Refused($"JWT claims missing: '{FrameworkClaim}', '{ExecutorClaim}' and '{ContainerClaim}' are required");
        }

        return new ExecutorAuthentication(new ExecutorPrincipal { FrameworkId = frameworkId, ExecutorId = executorId, ContainerId = containerId }, null);
    }

    /// <summary>The <c>WWW-Authenticate</c> value of a 401 (RFC 6750 §3; the reason is never text from the request).</summary>
    internal static string Challenge(string? error) =>
        error is null
            ? $"Bearer realm=\"{Realm}\""
            : $"Bearer realm=\"{Realm}\", error=\"invalid_token\", error_description=\"{error}\"";

    private static string? Claim(TokenValidationResult result, string name) =>
        result.Claims.TryGetValue(name, out var value) && value is string text && text.Length > 0 ? text : null;

    /// <summary>A short reason without the library's diagnostics (which may quote the token).</summary>
    private static string Reason(Exception? e) => e switch
    {
        SecurityTokenInvalidAlgorithmException => "Algorithm not allowed: only HS256 is accepted",
        SecurityTokenInvalidSignatureException => "Token signature does not match",
        SecurityTokenMalformedException => "Malformed token",
        SecurityTokenExpiredException => "Token expired",
        _ => "Token rejected",
    };
}

/// <summary>The executor a valid token speaks for: its claims.</summary>
internal sealed record ExecutorPrincipal
{
    public required string FrameworkId { get; init; }

    public required string ExecutorId { get; init; }

    public required string ContainerId { get; init; }
}

/// <summary>The outcome of checking an executor's token: a principal, or why there is none (null: no credentials at all).</summary>
internal readonly record struct ExecutorAuthentication(ExecutorPrincipal? Principal, string? Error)
{
    public static ExecutorAuthentication Refused(string? error) => new(null, error);
}
