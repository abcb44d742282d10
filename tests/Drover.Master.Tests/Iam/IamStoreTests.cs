using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Store;
using Drover.Store.Etcd;
using Drover.Store.Sqlite;
using Drover.Testing.Etcd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Iam;

/// <summary>A one-member etcd for the IAM store tests that run against etcd.</summary>
public sealed class IamEtcdFixture : IAsyncLifetime
{
    public EtcdCluster Etcd { get; private set; } = null!;

    public async Task InitializeAsync() => Etcd = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 1 });

    public async Task DisposeAsync()
    {
        if (Etcd is not null)
        {
            await Etcd.DisposeAsync();
        }
    }
}

/// <summary><see cref="IamStore"/> against both state stores: what it writes is what a master loads after a restart; races and the superuser rule.</summary>
public sealed class IamStoreTests(IamEtcdFixture fixture) : IClassFixture<IamEtcdFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-iam-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private IStateStore Open(string kind) => kind switch
    {
        "sqlite" => SqliteStateStore.Open(Path.Combine(_dir, "state.db")),
        "etcd" => new EtcdStateStore(fixture.Etcd.ClientUrls, new EtcdStoreOptions { Prefix = $"/test/{Guid.NewGuid():N}" }),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static IamStore Iam(IStateStore store) => new(store, TimeProvider.System, NullLogger<IamStore>.Instance);

    private static IamUser User(string uid) => new() { Uid = uid, Kind = AccountKind.User, PasswordHash = PasswordHasher.Hash("password-123", iterations: 1000) };

    private static void Ok(IamResult result) => Assert.True(result.Succeeded, result.Message);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("etcd")]
    public async Task Changes_AreWhatANewStoreLoads(string kind)
    {
        await using var store = Open(kind);
        var iam = Iam(store);
        await iam.LoadAsync(CancellationToken.None);
        var ct = CancellationToken.None;
        const string rid = "dcos:service:marathon:marathon:services:/team-a";
        Ok(await iam.CreateUserAsync(User("alice"), ct));
        Ok(await iam.CreateUserAsync(User("gone"), ct));
        Ok(await iam.CreateGroupAsync("team-a", "Team A", ct));
        Ok(await iam.AddMemberAsync("team-a", "alice", ct));
        Ok(await iam.CreateAclAsync(rid, "team a apps", ct));
        Ok(await iam.GrantAsync(rid, "team-a", isGroup: true, PermissionAction.Full, ct, createAcl: false));
        Ok(await iam.GrantAsync("dcos:adminrouter:acs", "alice", isGroup: false, PermissionAction.Read, ct));
        Ok(await iam.UpdateAclAsync(rid, "Team A apps", ct));
        Ok(await iam.UpdateGroupAsync("team-a", "Team A!", ct));
        Ok(await iam.CreateAclAsync("dcos:temporary:/x", "", ct));
        Ok(await iam.DeleteAclAsync("dcos:temporary:/x", ct));
        Ok(await iam.DeleteUserAsync("gone", ct));

        var reloaded = Iam(store);
        await reloaded.LoadAsync(ct);

        var s = reloaded.Snapshot;
        Assert.Equal(new[] { "alice" }, s.Users.Keys);
        Assert.Equal(new[] { "alice" }, s.Groups["team-a"].Members);
        Assert.Equal("Team A!", s.Groups["team-a"].Description);
        Assert.Equal("Team A apps", s.Acls[rid].Description);
        Assert.Equal(PermissionAction.Full, s.Acls[rid].Groups["team-a"]);
        Assert.False(s.Acls.ContainsKey("dcos:temporary:/x"));
        Assert.True(s.Allows("alice", rid + "/web", PermissionAction.Delete));
        Assert.True(s.Allows("alice", "dcos:adminrouter:acs", PermissionAction.Read));
        Assert.False(s.Allows("alice", "dcos:adminrouter:acs", PermissionAction.Update));
        Assert.Equal(iam.Snapshot.Users["alice"].CredentialVersion, s.Users["alice"].CredentialVersion);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("etcd")]
    public async Task StaleWriter_IsRefusedNotOverwriting_ThenSeesTheOtherChange(string kind)
    {
        await using var store = Open(kind);
        var ct = CancellationToken.None;
        var first = Iam(store);
        await first.LoadAsync(ct);
        Ok(await first.CreateUserAsync(User("alice"), ct));
        Ok(await first.CreateUserAsync(User("bob"), ct));
        Ok(await first.CreateGroupAsync("team", "", ct));
        var second = Iam(store);
        await second.LoadAsync(ct);

        Ok(await first.AddMemberAsync("team", "alice", ct));
        var stale = await second.AddMemberAsync("team", "bob", ct);

        Assert.Equal(IamError.Concurrent, stale.Error);
        Assert.Equal(new[] { "alice" }, second.Snapshot.Groups["team"].Members); // reloaded
        Ok(await second.AddMemberAsync("team", "bob", ct));
        var third = Iam(store);
        await third.LoadAsync(ct);
        Assert.Equal(new[] { "alice", "bob" }, third.Snapshot.Groups["team"].Members);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("etcd")]
    public async Task Bootstrap_ThenRemovingTheOnlySuperuser_RefusedAndNotWritten(string kind)
    {
        await using var store = Open(kind);
        var ct = CancellationToken.None;
        var iam = Iam(store);
        await iam.LoadAsync(ct);
        var passwordFile = await iam.BootstrapAsync(null, _dir, ct);
        Assert.NotNull(passwordFile);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(passwordFile));
        Assert.Null(await Iam(store).BootstrapAsync(null, _dir, ct)); // once per cluster

        Assert.Equal(IamError.LastSuperuser, (await iam.DeleteUserAsync(IamStore.AdminUid, ct)).Error);
        Assert.Equal(IamError.LastSuperuser, (await iam.RevokeAsync(Rids.Superuser, IamStore.AdminUid, isGroup: false, PermissionAction.Update, ct)).Error);
        Assert.Equal(IamError.LastSuperuser, (await iam.DeleteAclAsync(Rids.Superuser, ct)).Error);

        var reloaded = Iam(store);
        await reloaded.LoadAsync(ct);
        Assert.Equal(1, reloaded.Snapshot.SuperuserCount());
        Assert.NotNull(reloaded.VerifyPassword(IamStore.AdminUid, (await File.ReadAllTextAsync(passwordFile)).Trim()));
    }

    [Fact]
    public async Task CreateUser_SameUidAgain_GetsANewCredentialVersion()
    {
        await using var store = Open("sqlite");
        var ct = CancellationToken.None;
        var iam = Iam(store);
        await iam.LoadAsync(ct);
        var versions = new HashSet<int>();
        for (var i = 0; i < 5; i++)
        {
            Ok(await iam.CreateUserAsync(User("again"), ct));
            versions.Add(iam.Snapshot.Users["again"].CredentialVersion);
            Ok(await iam.DeleteUserAsync("again", ct));
        }

        Assert.Equal(5, versions.Count);
    }
}
