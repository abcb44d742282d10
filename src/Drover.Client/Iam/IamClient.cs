using System.Collections.Immutable;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Drover.Core.Iam;

namespace Drover.Client.Iam;

/// <summary>An error answer of the IAM API: the HTTP status and DC/OS' <c>{"title", "description", "code"}</c>.</summary>
public sealed class IamApiException(int statusCode, string? code, string description)
    : Exception($"{description} (HTTP {statusCode}{(code is null ? "" : ", " + code)})")
{
    public int StatusCode { get; } = statusCode;

    /// <summary>DC/OS' error code, e.g. <c>ERR_UNKNOWN_USER_ID</c>; null when the body was not an IAM error.</summary>
    public string? Code { get; } = code;

    public string Description { get; } = description;
}

/// <summary>
/// Typed client for the master's DC/OS IAM API (<c>/acs/api/v1</c>): login, users and service accounts, groups,
/// ACLs and grants. Errors throw <see cref="IamApiException"/>. Thread-safe as HttpClient is.
/// </summary>
public sealed class IamClient : IDisposable
{
    private readonly HttpClient _http;

    /// <summary>A client over <paramref name="handler"/> (see <see cref="Auth.MasterHttp"/>), which it owns.</summary>
    public IamClient(Uri master, HttpMessageHandler handler)
    {
        ArgumentNullException.ThrowIfNull(master);
        _http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(100) };
        Master = master.AbsoluteUri.EndsWith('/') ? master : new Uri(master.AbsoluteUri + "/");
    }

    public Uri Master { get; }

    // ------------------------------------------------------------------ login

    /// <summary>Logs in with a password and returns the login token.</summary>
    public Task<string> LoginAsync(string uid, string password, CancellationToken ct = default) =>
        LoginAsync(new IamLoginRequest { Uid = uid, Password = password }, ct);

    /// <summary>Logs in as a service account with a JWT signed by its private key (<see cref="Auth.ServiceLogin.CreateToken"/>).</summary>
    public Task<string> LoginWithServiceTokenAsync(string uid, string serviceToken, CancellationToken ct = default) =>
        LoginAsync(new IamLoginRequest { Uid = uid, Token = serviceToken }, ct);

    private async Task<string> LoginAsync(IamLoginRequest body, CancellationToken ct) =>
        (await SendAsync(HttpMethod.Post, "acs/api/v1/auth/login", JsonContent.Create(body, IamJsonContext.Default.IamLoginRequest),
            IamJsonContext.Default.IamLoginResponse, ct).ConfigureAwait(false)).Token;

    // ------------------------------------------------------------------ users

    public async Task<ImmutableArray<IamUserView>> ListUsersAsync(bool serviceAccounts, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "acs/api/v1/users" + (serviceAccounts ? "?type=service" : ""), null, IamJsonContext.Default.IamArrayIamUserView, ct).ConfigureAwait(false)).Array;

    /// <summary>The user or service account, or null when there is none with this uid.</summary>
    public async Task<IamUserView?> FindUserAsync(string uid, CancellationToken ct = default)
    {
        try
        {
            return await SendAsync(HttpMethod.Get, Rel(IamPaths.User(uid)), null, IamJsonContext.Default.IamUserView, ct).ConfigureAwait(false);
        }
        catch (IamApiException e) when (e.Code == "ERR_UNKNOWN_USER_ID")
        {
            return null;
        }
    }

    /// <summary>Creates a user (<paramref name="password"/>) or a service account (<paramref name="publicKeyPem"/>).</summary>
    public Task CreateUserAsync(string uid, string? password, string? publicKeyPem, string? description, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Put, Rel(IamPaths.User(uid)),
            JsonContent.Create(new IamUserRequest { Password = password, PublicKey = publicKeyPem, Description = description }, IamJsonContext.Default.IamUserRequest), ct);

    public Task UpdateUserAsync(string uid, string? description = null, string? password = null, string? publicKeyPem = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Patch, Rel(IamPaths.User(uid)),
            JsonContent.Create(new IamUserRequest { Password = password, PublicKey = publicKeyPem, Description = description }, IamJsonContext.Default.IamUserRequest), ct);

    public Task DeleteUserAsync(string uid, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, Rel(IamPaths.User(uid)), null, ct);

    public async Task<ImmutableArray<IamUserGroupEntry>> UserGroupsAsync(string uid, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, Rel(IamPaths.User(uid)) + "/groups", null, IamJsonContext.Default.IamArrayIamUserGroupEntry, ct).ConfigureAwait(false)).Array;

    public Task<IamUserPermissions> UserPermissionsAsync(string uid, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, Rel(IamPaths.User(uid)) + "/permissions", null, IamJsonContext.Default.IamUserPermissions, ct);

    // ------------------------------------------------------------------ groups

    public async Task<ImmutableArray<IamGroupView>> ListGroupsAsync(CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, "acs/api/v1/groups", null, IamJsonContext.Default.IamArrayIamGroupView, ct).ConfigureAwait(false)).Array;

    /// <summary>The group, or null when there is none with this gid.</summary>
    public async Task<IamGroupView?> FindGroupAsync(string gid, CancellationToken ct = default)
    {
        try
        {
            return await SendAsync(HttpMethod.Get, Rel(IamPaths.Group(gid)), null, IamJsonContext.Default.IamGroupView, ct).ConfigureAwait(false);
        }
        catch (IamApiException e) when (e.Code == "ERR_UNKNOWN_GROUP_ID")
        {
            return null;
        }
    }

    public Task CreateGroupAsync(string gid, string? description, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Put, Rel(IamPaths.Group(gid)), JsonContent.Create(new IamDescriptionRequest(description), IamJsonContext.Default.IamDescriptionRequest), ct);

    public Task DeleteGroupAsync(string gid, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, Rel(IamPaths.Group(gid)), null, ct);

    public async Task<ImmutableArray<IamGroupUserEntry>> GroupUsersAsync(string gid, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Get, Rel(IamPaths.Group(gid)) + "/users", null, IamJsonContext.Default.IamArrayIamGroupUserEntry, ct).ConfigureAwait(false)).Array;

    public Task AddMemberAsync(string gid, string uid, CancellationToken ct = default) => SendAsync(HttpMethod.Put, Rel(IamPaths.Membership(gid, uid)), null, ct);

    public Task RemoveMemberAsync(string gid, string uid, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, Rel(IamPaths.Membership(gid, uid)), null, ct);

    // ------------------------------------------------------------------ ACLs

    /// <summary>Creates the ACL of <paramref name="rid"/>; false when it already exists (DC/OS' 409, which clients ignore).</summary>
    public async Task<bool> EnsureAclAsync(string rid, string? description = null, CancellationToken ct = default)
    {
        try
        {
            await SendAsync(HttpMethod.Put, Rel(IamPaths.Acl(rid)), JsonContent.Create(new IamDescriptionRequest(description), IamJsonContext.Default.IamDescriptionRequest), ct).ConfigureAwait(false);
            return true;
        }
        catch (IamApiException e) when (e.StatusCode == (int)HttpStatusCode.Conflict)
        {
            return false;
        }
    }

    /// <summary>Grants <paramref name="action"/> on an existing ACL to a user or (<paramref name="isGroup"/>) a group.</summary>
    public Task GrantAsync(string rid, string principal, bool isGroup, string action, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Put, Rel(isGroup ? IamPaths.AclGroup(rid, principal) : IamPaths.AclUser(rid, principal)) + "/" + Uri.EscapeDataString(action), null, ct);

    public Task RevokeAsync(string rid, string principal, bool isGroup, string action, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Delete, Rel(isGroup ? IamPaths.AclGroup(rid, principal) : IamPaths.AclUser(rid, principal)) + "/" + Uri.EscapeDataString(action), null, ct);

    public Task<IamAclPermissions> AclPermissionsAsync(string rid, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Get, Rel(IamPaths.Acl(rid)) + "/permissions", null, IamJsonContext.Default.IamAclPermissions, ct);

    // ------------------------------------------------------------------ plumbing

    /// <summary>An IAM path relative to the master URL (which may have a path of its own).</summary>
    private static string Rel(string absolutePath) => absolutePath.TrimStart('/');

    private async Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? content, JsonTypeInfo<T> type, CancellationToken ct)
    {
        using var response = await SendRawAsync(method, path, content, ct).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync(type, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"empty response from {method} {path}");
    }

    private async Task SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var response = await SendRawAsync(method, path, content, ct).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> SendRawAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        // The path is already escaped (IamPaths): a Uri built from it must keep %252F as it is.
        using var request = new HttpRequestMessage(method, new Uri(Master, path)) { Content = content };
        var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            IamErrorBody? error = null;
            try
            {
                error = JsonSerializer.Deserialize(text, IamJsonContext.Default.IamErrorBody);
            }
            catch (JsonException)
            {
            }

            var description = error is { Description.Length: > 0 } ? error.Description : text.Length > 0 ? text : response.ReasonPhrase ?? "error";
            throw new IamApiException((int)response.StatusCode, error?.Code, description);
        }
    }

    public void Dispose() => _http.Dispose();
}
