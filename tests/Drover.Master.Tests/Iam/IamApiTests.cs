using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Iam;

/// <summary>DC/OS' IAM API (<c>/acs/api/v1</c>) on a secure master: shapes, status codes, error codes, validation, who may call it.</summary>
public sealed class IamApiTests(SecureMasterFixture fixture) : IClassFixture<SecureMasterFixture>
{
    private const string Users = "/acs/api/v1/users/";
    private const string Groups = "/acs/api/v1/groups/";
    private const string Acls = "/acs/api/v1/acls/";

    private SecureMaster M => fixture.Master;

    private static string Body(params (string Key, string Value)[] fields)
    {
        var o = new JsonObject();
        foreach (var (k, v) in fields)
        {
            o[k] = v;
        }

        return o.ToJsonString();
    }

    private static void AssertError(Reply reply, HttpStatusCode status, string code, string? descriptionContains = null)
    {
        Assert.True(reply.Status == status, $"expected {(int)status} {code}, got {reply}");
        Assert.Equal(code, reply.Code);
        Assert.Equal($"{(int)status} {reply.Status switch { HttpStatusCode.BadRequest => "Bad Request", HttpStatusCode.Conflict => "Conflict", HttpStatusCode.Unauthorized => "Unauthorized", HttpStatusCode.Forbidden => "Forbidden", _ => "?" }}",
            reply.Json!["title"]!.GetValue<string>());
        if (descriptionContains is not null)
        {
            Assert.Contains(descriptionContains, reply.Description, StringComparison.Ordinal);
        }
    }

    /// <summary>DC/OS' client pattern: create the ACL (a 409 when it exists is fine), then grant.</summary>
    private async Task GrantAsync(string uid, string rid, string action)
    {
        var acl = await M.AsAdmin(HttpMethod.Put, Acls + rid);
        Assert.True(acl.Status is HttpStatusCode.Created or HttpStatusCode.Conflict, acl.ToString());
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, $"{Acls}{rid}/users/{uid}/{action}");
    }

    // ------------------------------------------------------------------ users

    [Fact]
    public async Task PutUser_Password_201ThenGetAndListShowDcosShape()
    {
        var created = await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-shape", Body(("password", "password-123"), ("description", "Shape Test")));
        Assert.Equal("", created.Body);

        var user = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Users + "u-shape")).Json!.AsObject();
        Assert.Equal("u-shape", user["uid"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/users/u-shape", user["url"]!.GetValue<string>());
        Assert.Equal("Shape Test", user["description"]!.GetValue<string>());
        Assert.False(user["is_remote"]!.GetValue<bool>());
        Assert.False(user["is_service"]!.GetValue<bool>());
        Assert.Equal("internal", user["provider_type"]!.GetValue<string>());
        Assert.Equal("", user["provider_id"]!.GetValue<string>());
        Assert.False(user.ContainsKey("public_key"));
        Assert.False(user.ContainsKey("password"));

        var list = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, "/acs/api/v1/users")).Json!["array"]!.AsArray();
        Assert.Contains(list, u => u!["uid"]!.GetValue<string>() == "u-shape");
        Assert.Contains(list, u => u!["uid"]!.GetValue<string>() == "admin");
    }

    [Fact]
    public async Task PutUser_Twice_409UserExists()
    {
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-dup", Body(("password", "password-123")));

        var again = await M.AsAdmin(HttpMethod.Put, Users + "u-dup", Body(("password", "password-456")));

        AssertError(again, HttpStatusCode.Conflict, "ERR_USER_EXISTS", "User with id `u-dup` already exists.");
        await M.LoginAsync("u-dup", "password-123"); // the first password still holds
    }

    [Theory]
    [InlineData("bad%20uid")]
    [InlineData("-starts-with-dash")]
    [InlineData("has*star")]
    public async Task PutUser_BadUid_400InvalidUserId(string uid)
    {
        var reply = await M.AsAdmin(HttpMethod.Put, Users + uid, Body(("password", "password-123")));

        AssertError(reply, HttpStatusCode.BadRequest, "ERR_INVALID_USER_ID");
    }

    [Fact]
    public async Task PutUser_UidOf97Characters_400InvalidUserId()
    {
        var reply = await M.AsAdmin(HttpMethod.Put, Users + new string('a', 97), Body(("password", "password-123")));

        AssertError(reply, HttpStatusCode.BadRequest, "ERR_INVALID_USER_ID");
    }

    [Theory]
    [InlineData("""{"password": "short"}""", "ERR_INVALID_DATA", "at least 8 characters")]
    [InlineData("""{"description": "no credential"}""", "ERR_INVALID_DATA", "Exactly one of `password`")]
    [InlineData("""{"password": "password-123", "public_key": "x"}""", "ERR_INVALID_DATA", "Exactly one of `password`")]
    [InlineData("""{"password": "password-123", "admin": "yes"}""", "ERR_INVALID_DATA", "Unknown field `admin`")]
    [InlineData("""{"password": 12345678}""", "ERR_INVALID_DATA", "`password` must be a string")]
    [InlineData("""["password"]""", "ERR_INVALID_DATA", "must be a JSON object")]
    [InlineData("""{"password": "password-123",""", "ERR_MALFORMED_DATA", "bad JSON")]
    [InlineData("""{"public_key": "not a key"}""", "ERR_INVALID_PUBLIC_KEY", "not a PEM-encoded public key")]
    public async Task PutUser_BadBody_400NamesTheProblemAndCreatesNothing(string json, string code, string description)
    {
        var uid = "u-bad-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

        var reply = await M.AsAdmin(HttpMethod.Put, Users + uid, json);

        AssertError(reply, HttpStatusCode.BadRequest, code, description);
        AssertError(await M.AsAdmin(HttpMethod.Get, Users + uid), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
    }

    [Fact]
    public async Task PutUser_NoBody_400InvalidData()
    {
        var reply = await M.AsAdmin(HttpMethod.Put, Users + "u-nobody");

        AssertError(reply, HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Request body is required");
    }

    [Fact]
    public async Task PutUser_PrivateKeyOrSmallKey_400InvalidPublicKey()
    {
        using var rsa = RSA.Create(2048);
        var asPrivate = await M.AsAdmin(HttpMethod.Put, Users + "svc-private", Body(("public_key", rsa.ExportPkcs8PrivateKeyPem())));
        AssertError(asPrivate, HttpStatusCode.BadRequest, "ERR_INVALID_PUBLIC_KEY", "is a private key");

        using var small = RSA.Create(1024);
        var tooSmall = await M.AsAdmin(HttpMethod.Put, Users + "svc-small", Body(("public_key", small.ExportSubjectPublicKeyInfoPem())));
        AssertError(tooSmall, HttpStatusCode.BadRequest, "ERR_INVALID_PUBLIC_KEY", "1024-bit");

        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var notRsa = await M.AsAdmin(HttpMethod.Put, Users + "svc-ec", Body(("public_key", ec.ExportSubjectPublicKeyInfoPem())));
        AssertError(notRsa, HttpStatusCode.BadRequest, "ERR_INVALID_PUBLIC_KEY", "not an RSA public key");
    }

    [Fact]
    public async Task PutUser_PublicKey_IsServiceAccountListedOnlyWithTypeService()
    {
        using var rsa = RSA.Create(2048);
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "svc-list", Body(("public_key", rsa.ExportSubjectPublicKeyInfoPem()), ("description", "a CI job")));

        var account = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Users + "svc-list")).Json!;
        Assert.True(account["is_service"]!.GetValue<bool>());
        Assert.Equal(rsa.ExportSubjectPublicKeyInfoPem(), account["public_key"]!.GetValue<string>());

        var services = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, "/acs/api/v1/users?type=service")).Json!["array"]!.AsArray();
        var people = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, "/acs/api/v1/users")).Json!["array"]!.AsArray();
        Assert.Contains(services, u => u!["uid"]!.GetValue<string>() == "svc-list");
        Assert.All(services, u => Assert.True(u!["is_service"]!.GetValue<bool>()));
        Assert.DoesNotContain(people, u => u!["uid"]!.GetValue<string>() == "svc-list");
        AssertError(await M.AsAdmin(HttpMethod.Get, "/acs/api/v1/users?type=robot"), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "`type`");
    }

    [Fact]
    public async Task GetUser_Unknown_400UnknownUserId()
    {
        var reply = await M.AsAdmin(HttpMethod.Get, Users + "nobody-here");

        AssertError(reply, HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID", "User with uid `nobody-here` not known.");
    }

    [Fact]
    public async Task PatchUser_Description_204AndShown()
    {
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-patch", Body(("password", "password-123")));

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Patch, Users + "u-patch", Body(("description", "renamed")));

        Assert.Equal("renamed", (await M.AsAdmin(HttpMethod.Get, Users + "u-patch")).Json!["description"]!.GetValue<string>());
        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "u-patch", "{}"), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "nothing to change");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "u-patch", Body(("uid", "other"))), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Unknown field `uid`");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "u-patch", Body(("password", "abc"))), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "at least 8");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "u-missing", Body(("description", "x"))), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
    }

    [Fact]
    public async Task PatchUser_PasswordOfServiceAccountOrKeyOfUser_400()
    {
        using var rsa = RSA.Create(2048);
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "svc-nopass", Body(("public_key", rsa.ExportSubjectPublicKeyInfoPem())));
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-nokey", Body(("password", "password-123")));

        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "svc-nopass", Body(("password", "password-123"))),
            HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Password update is not available for service user accounts.");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Users + "u-nokey", Body(("public_key", rsa.ExportSubjectPublicKeyInfoPem()))),
            HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "only on a service account");
    }

    [Fact]
    public async Task PatchUser_Password_EndsOlderTokensAndTheOldPassword()
    {
        var old = await M.UserAsync("u-passwd", "first-password");
        await GrantAsync("u-passwd", "dcos:adminrouter:acs", "read");
        Assert.Equal(HttpStatusCode.OK, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/groups", old)).Status);

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Patch, Users + "u-passwd", Body(("password", "second-password")));

        var refused = await M.SendAsync(HttpMethod.Get, "/acs/api/v1/groups", old);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.Status);
        Assert.Contains("acsjwt", refused.Headers.WwwAuthenticate.Select(h => h.ToString()));
        AssertError(await M.LoginReplyAsync("u-passwd", "first-password"), HttpStatusCode.Unauthorized, "ERR_INVALID_CREDENTIALS");
        var fresh = await M.LoginAsync("u-passwd", "second-password");
        Assert.Equal(HttpStatusCode.OK, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/groups", fresh)).Status);
    }

    [Fact]
    public async Task DeleteUser_EndsItsTokens_EvenWhenTheUidIsCreatedAgain()
    {
        var token = await M.UserAsync("u-gone");
        await GrantAsync("u-gone", "dcos:adminrouter:acs", "read");
        Assert.Equal(HttpStatusCode.OK, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/acls", token)).Status);

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Users + "u-gone");

        Assert.Equal(HttpStatusCode.Unauthorized, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/acls", token)).Status);
        AssertError(await M.AsAdmin(HttpMethod.Get, Users + "u-gone"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
        AssertError(await M.AsAdmin(HttpMethod.Delete, Users + "u-gone"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");

        // A new account with the same uid neither inherits the grants nor accepts the old account's token.
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-gone", Body(("password", "password-123")));
        Assert.Equal(HttpStatusCode.Unauthorized, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/acls", token)).Status);
        var again = await M.LoginAsync("u-gone", "password-123");
        Assert.Equal(HttpStatusCode.Forbidden, (await M.SendAsync(HttpMethod.Get, "/acs/api/v1/acls", again)).Status);
    }

    // ------------------------------------------------------------------ groups

    [Fact]
    public async Task Groups_CreateMembershipPermissionsDelete_RoundTripInDcosShapes()
    {
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Groups + "g-round", Body(("description", "Team Round")));
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-round", Body(("description", "again"))), HttpStatusCode.Conflict, "ERR_GROUP_EXISTS", "Group with id `g-round` already exists.");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Patch, Groups + "g-round", Body(("description", "Team Round 2")));
        var group = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Groups + "g-round")).Json!;
        Assert.Equal("Team Round 2", group["description"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/groups/g-round", group["url"]!.GetValue<string>());
        Assert.Equal("internal", group["provider_type"]!.GetValue<string>());
        Assert.Contains((await M.AsAdmin(HttpMethod.Get, "/acs/api/v1/groups")).Json!["array"]!.AsArray(), g => g!["gid"]!.GetValue<string>() == "g-round");

        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-member", Body(("password", "password-123")));
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Groups + "g-round/users/u-member");
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-round/users/u-member"), HttpStatusCode.Conflict, "ERR_USER_ALREADY_IN_GROUP");

        var members = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Groups + "g-round/users")).Json!["array"]!.AsArray();
        var member = Assert.Single(members)!;
        Assert.Equal("/acs/api/v1/groups/g-round/users/u-member", member["membershipurl"]!.GetValue<string>());
        Assert.Equal("u-member", member["user"]!["uid"]!.GetValue<string>());
        var groupsOf = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Users + "u-member/groups")).Json!["array"]!.AsArray();
        Assert.Equal("g-round", Assert.Single(groupsOf)!["group"]!["gid"]!.GetValue<string>());

        const string rid = "dcos:service:marathon:marathon:services:/round";
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Acls + "dcos:service:marathon:marathon:services:%252Fround", Body(("description", "round apps")));
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + "dcos:service:marathon:marathon:services:%252Fround/groups/g-round/update");
        var groupPerms = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Groups + "g-round/permissions")).Json!["array"]!.AsArray();
        var perm = Assert.Single(groupPerms)!;
        Assert.Equal(rid, perm["rid"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/acls/dcos:service:marathon:marathon:services:%252Fround", perm["aclurl"]!.GetValue<string>());
        Assert.Equal("update", Assert.Single(perm["actions"]!.AsArray())!["name"]!.GetValue<string>());

        var userPerms = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Users + "u-member/permissions")).Json!;
        Assert.Empty(userPerms["direct"]!.AsArray());
        var viaGroup = Assert.Single(userPerms["groups"]!.AsArray())!;
        Assert.Equal("g-round", viaGroup["gid"]!.GetValue<string>());
        Assert.Equal(rid, viaGroup["rid"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/groups/g-round/users/u-member", viaGroup["membershipurl"]!.GetValue<string>());

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Groups + "g-round/users/u-member");
        AssertError(await M.AsAdmin(HttpMethod.Delete, Groups + "g-round/users/u-member"), HttpStatusCode.BadRequest, "ERR_USER_NOT_IN_GROUP");
        Assert.Empty((await M.AsAdmin(HttpMethod.Get, Users + "u-member/groups")).Json!["array"]!.AsArray());

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Groups + "g-round");
        AssertError(await M.AsAdmin(HttpMethod.Get, Groups + "g-round"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_GROUP_ID", "Group with gid `g-round` not known.");
        Assert.Empty((await M.AsAdmin(HttpMethod.Get, Acls + "dcos:service:marathon:marathon:services:%252Fround/permissions")).Json!["groups"]!.AsArray());
    }

    [Fact]
    public async Task Groups_UnknownAndInvalid_400()
    {
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "bad*gid"), HttpStatusCode.BadRequest, "ERR_INVALID_GROUP_ID");
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Groups + "g-nouser");
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-nouser/users/nobody-at-all"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-missing/users/admin"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_GROUP_ID");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Groups + "g-missing", Body(("description", "x"))), HttpStatusCode.BadRequest, "ERR_UNKNOWN_GROUP_ID");
        AssertError(await M.AsAdmin(HttpMethod.Delete, Groups + "g-missing"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_GROUP_ID");
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-body", Body(("name", "x"))), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Unknown field `name`");
        AssertError(await M.AsAdmin(HttpMethod.Put, Groups + "g-long", Body(("description", new string('d', 1025)))), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "at most 1024");
    }

    // ------------------------------------------------------------------ ACLs

    [Fact]
    public async Task Acls_RidWithSlashes_DoubleEncodedInUrlsAndGrantsCheckedWithHierarchy()
    {
        const string rid = "dcos:service:marathon:marathon:services:/team-x";
        const string url = "dcos:service:marathon:marathon:services:%252Fteam-x";
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Acls + url, Body(("description", "team x apps")));
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + url), HttpStatusCode.Conflict, "ERR_ACL_EXISTS");

        var acl = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + url)).Json!;
        Assert.Equal(rid, acl["rid"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/acls/" + url, acl["url"]!.GetValue<string>());
        Assert.Contains((await M.AsAdmin(HttpMethod.Get, "/acs/api/v1/acls")).Json!["array"]!.AsArray(), a => a!["rid"]!.GetValue<string>() == rid);
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Patch, Acls + url, Body(("description", "Team X")));
        Assert.Equal("Team X", (await M.AsAdmin(HttpMethod.Get, Acls + url)).Json!["description"]!.GetValue<string>());
        // A single-encoded slash reaches the same ACL (the server sees %2F either way).
        Assert.Equal(rid, (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + "dcos:service:marathon:marathon:services:%2Fteam-x")).Json!["rid"]!.GetValue<string>());

        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-acl", Body(("password", "password-123")));
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Groups + "g-acl");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Groups + "g-acl/users/u-acl");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/users/u-acl/read");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/users/u-acl/read"); // granting again changes nothing
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/groups/g-acl/delete");

        var actions = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + url + "/users/u-acl")).Json!["array"]!.AsArray();
        var read = Assert.Single(actions)!;
        Assert.Equal("read", read["name"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/acls/" + url + "/users/u-acl/read", read["url"]!.GetValue<string>());

        var permissions = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + url + "/permissions")).Json!;
        var userEntry = Assert.Single(permissions["users"]!.AsArray())!;
        Assert.Equal("u-acl", userEntry["uid"]!.GetValue<string>());
        Assert.Equal("/acs/api/v1/users/u-acl", userEntry["userurl"]!.GetValue<string>());
        var groupEntry = Assert.Single(permissions["groups"]!.AsArray())!;
        Assert.Equal("/acs/api/v1/groups/g-acl", groupEntry["groupurl"]!.GetValue<string>());

        async Task<bool> Allowed(string path) => (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + path)).Json!["allowed"]!.GetValue<bool>();
        Assert.True(await Allowed(url + "/users/u-acl/read"));
        Assert.True(await Allowed("dcos:service:marathon:marathon:services:%252Fteam-x%252Fweb/users/u-acl/read")); // a child, without an ACL of its own
        Assert.True(await Allowed(url + "/users/u-acl/delete")); // through g-acl
        Assert.False(await Allowed(url + "/users/u-acl/create"));
        Assert.False(await Allowed(url + "/users/u-acl/full"));
        Assert.False(await Allowed("dcos:service:marathon:marathon:services:%252Fteam-xy/users/u-acl/read"));
        Assert.True(await Allowed(url + "/users/admin/full")); // dcos:superuser
        Assert.True(await Allowed(url + "/groups/g-acl/delete"));
        Assert.False(await Allowed(url + "/groups/g-acl/read"));

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Acls + url + "/users/u-acl/read");
        AssertError(await M.AsAdmin(HttpMethod.Delete, Acls + url + "/users/u-acl/read"), HttpStatusCode.BadRequest, "ERR_USER_NOT_IN_ACL", "User `u-acl` is not part of ACL");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/users/u-acl/create");
        AssertError(await M.AsAdmin(HttpMethod.Delete, Acls + url + "/users/u-acl/update"), HttpStatusCode.BadRequest, "ERR_ACTION_NOT_YET_STORED", "Action `update` unknown for user `u-acl`");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/users/u-acl/update");
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Acls + url + "/users/u-acl"); // every action at once
        AssertError(await M.AsAdmin(HttpMethod.Get, Acls + url + "/users/u-acl"), HttpStatusCode.BadRequest, "ERR_USER_NOT_IN_ACL");
        Assert.False(await Allowed(url + "/users/u-acl/create"));

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Put, Acls + url + "/groups/g-acl/read");
        var groupActions = (await M.AdminExpect(HttpStatusCode.OK, HttpMethod.Get, Acls + url + "/groups/g-acl")).Json!["array"]!.AsArray();
        Assert.Equal(new[] { "read", "delete" }, groupActions.Select(a => a!["name"]!.GetValue<string>()));
        Assert.Equal("/acs/api/v1/acls/" + url + "/groups/g-acl/read", groupActions[0]!["url"]!.GetValue<string>());
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Acls + url + "/groups/g-acl/read");
        Assert.False(await Allowed(url + "/groups/g-acl/read"));
        Assert.True(await Allowed(url + "/groups/g-acl/delete"));
        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Acls + url + "/groups/g-acl");
        AssertError(await M.AsAdmin(HttpMethod.Get, Acls + url + "/groups/g-acl"), HttpStatusCode.BadRequest, "ERR_GROUP_NOT_IN_ACL");

        await M.AdminExpect(HttpStatusCode.NoContent, HttpMethod.Delete, Acls + url);
        AssertError(await M.AsAdmin(HttpMethod.Get, Acls + url), HttpStatusCode.BadRequest, "ERR_UNKNOWN_RESOURCE_ID", $"Protected resource with rid `{rid}` not known.");
        Assert.Empty((await M.AsAdmin(HttpMethod.Get, Users + "u-acl/permissions")).Json!["direct"]!.AsArray());
    }

    [Fact]
    public async Task Acls_BadInput_400AndNothingChanges()
    {
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Users + "u-aclbad", Body(("password", "password-123")));

        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:never-created/users/u-aclbad/read"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_RESOURCE_ID");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos::empty-part"), HttpStatusCode.BadRequest, "ERR_INVALID_RESOURCE_ID");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:percent%2525"), HttpStatusCode.BadRequest, "ERR_INVALID_RESOURCE_ID", "'%'");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:x", Body(("description", "x"), ("actions", "full"))), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Unknown field `actions`");
        await M.AdminExpect(HttpStatusCode.Created, HttpMethod.Put, Acls + "dcos:acl-bad");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:acl-bad/users/u-aclbad/everything"), HttpStatusCode.BadRequest, "ERR_INVALID_DATA", "Action `everything` is not one of");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:acl-bad/users/u-aclbad/READ"), HttpStatusCode.BadRequest, "ERR_INVALID_DATA");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:acl-bad/users/nobody-at-all/read"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
        AssertError(await M.AsAdmin(HttpMethod.Put, Acls + "dcos:acl-bad/groups/no-group/read"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_GROUP_ID");
        AssertError(await M.AsAdmin(HttpMethod.Get, Acls + "dcos:acl-bad/users/nobody-at-all/read"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_USER_ID");
        AssertError(await M.AsAdmin(HttpMethod.Patch, Acls + "dcos:never-created", Body(("description", "x"))), HttpStatusCode.BadRequest, "ERR_UNKNOWN_RESOURCE_ID");

        Assert.Empty((await M.AsAdmin(HttpMethod.Get, Users + "u-aclbad/permissions")).Json!["direct"]!.AsArray());
        AssertError(await M.AsAdmin(HttpMethod.Get, Acls + "dcos:never-created"), HttpStatusCode.BadRequest, "ERR_UNKNOWN_RESOURCE_ID");
    }

    // ------------------------------------------------------------------ who may call it

    /// <summary>Every IAM route, from the endpoint data source, so a route added later cannot be forgotten.</summary>
    private IEnumerable<(string Method, string Path)> IamRoutes()
    {
        var source = M.Cluster.Master.Services.GetRequiredService<EndpointDataSource>();
        foreach (var endpoint in source.Endpoints.OfType<RouteEndpoint>())
        {
            var pattern = endpoint.RoutePattern.RawText ?? "";
            if (!pattern.StartsWith("/acs/api/v1/", StringComparison.Ordinal) || pattern.StartsWith("/acs/api/v1/auth/", StringComparison.Ordinal))
            {
                continue;
            }

            var path = pattern.Replace("{uid}", "admin", StringComparison.Ordinal).Replace("{id}", "admin", StringComparison.Ordinal)
                .Replace("{gid}", "some-group", StringComparison.Ordinal).Replace("{rid}", "dcos:superuser", StringComparison.Ordinal)
                .Replace("{action}", "full", StringComparison.Ordinal);
            foreach (var method in endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods)
            {
                yield return (method, path);
            }
        }
    }

    [Fact]
    public async Task EveryIamRoute_UserWithoutPermission_403AndNothingChanges()
    {
        var token = await M.UserAsync("u-noperm");
        var routes = IamRoutes().ToList();
        Assert.True(routes.Count >= 30, $"only {routes.Count} IAM routes found");

        foreach (var (method, path) in routes)
        {
            var body = method is "PUT" or "PATCH" ? Body(("description", "x")) : null;
            var reply = await M.SendAsync(new HttpMethod(method), path, token, body);
            AssertError(reply, HttpStatusCode.Forbidden, "ERR_FORBIDDEN", "dcos:adminrouter:acs");
        }

        Assert.True((await M.AsAdmin(HttpMethod.Get, Users + "admin")).Status == HttpStatusCode.OK);
        Assert.Contains("admin", (await M.AsAdmin(HttpMethod.Get, Acls + "dcos:superuser/permissions")).Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryIamRoute_NoCredentials_401WithChallenge()
    {
        foreach (var (method, path) in IamRoutes())
        {
            var reply = await M.SendAsync(new HttpMethod(method), path, null);
            AssertError(reply, HttpStatusCode.Unauthorized, "ERR_MISSING_AUTH_TOKEN");
            Assert.Contains("acsjwt", reply.Headers.WwwAuthenticate.Select(h => h.ToString()));
        }
    }

    [Fact]
    public async Task EveryIamRoute_ReadOnlyAccount_ReadsButChangesNothing()
    {
        var token = await M.UserAsync("u-reader");
        await GrantAsync("u-reader", "dcos:adminrouter:acs", "read");

        foreach (var (method, path) in IamRoutes())
        {
            var body = method is "PUT" or "PATCH" ? Body(("description", "x")) : null;
            var reply = await M.SendAsync(new HttpMethod(method), path, token, body);
            if (method == "GET")
            {
                Assert.True(reply.Status is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"GET {path}: {reply}");
            }
            else
            {
                AssertError(reply, HttpStatusCode.Forbidden, "ERR_FORBIDDEN");
            }
        }
    }

    [Fact]
    public async Task PatchPassword_AcsUpdateWithoutFull_403()
    {
        var token = await M.UserAsync("u-updater");
        await GrantAsync("u-updater", "dcos:adminrouter:acs", "update");

        AssertError(await M.SendAsync(HttpMethod.Patch, Users + "admin", token, Body(("password", "taken-over-1"))), HttpStatusCode.Forbidden, "ERR_FORBIDDEN", "full");
        AssertError(await M.SendAsync(HttpMethod.Patch, Users + "u-updater", token, Body(("password", "my-own-new-1"))), HttpStatusCode.Forbidden, "ERR_FORBIDDEN", "full");
        Assert.Equal(HttpStatusCode.NoContent, (await M.SendAsync(HttpMethod.Patch, Users + "u-updater", token, Body(("description", "mine")))).Status);
        await M.LoginAsync("admin", M.AdminPassword);
    }
}
