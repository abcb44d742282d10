using System.Text;
using Drover.Core;
using Drover.Master.Secrets;
using Drover.Store;
using Drover.Store.Sqlite;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Secrets;

/// <summary>The secret store on a real (SQLite) state store: what reaches the disk, restarts, wrong keys and rotation.</summary>
public sealed class SecretStoreTests : IAsyncLifetime
{
    private static readonly byte[] Value = Encoding.UTF8.GetBytes("the-db-password-9f2c");
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-secret-store-").FullName;
    private IStateStore _store = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStateStore.Open(Path.Combine(_dir, "state.db"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    private SecretStore Secrets(SecretKeyRing ring) => new(_store, ring, TimeProvider.System, NullLogger<SecretStore>.Instance);

    [Fact]
    public async Task PutAsync_Value_OnlyCiphertextReachesTheStoreAndTheDisk()
    {
        var secrets = Secrets(SecretKeyRing.Random());

        Assert.Equal(SecretOutcome.Created, await secrets.PutAsync("team-a/db", Value, "alice", "db", SecretWriteMode.Upsert, CancellationToken.None));

        var stored = (await _store.GetAsync(SecretStore.ValuePrefix + "team-a/db"))!.Value;
        Assert.True(stored.AsSpan().IndexOf(Value) < 0);
        await _store.DisposeAsync(); // checkpoint the WAL into state.db
        foreach (var file in Directory.EnumerateFiles(_dir))
        {
            Assert.True((await File.ReadAllBytesAsync(file)).AsSpan().IndexOf(Value) < 0, $"{file} holds the value");
        }

        _store = SqliteStateStore.Open(Path.Combine(_dir, "state.db"));
    }

    [Fact]
    public async Task LoadAsync_AfterRestart_RevealsTheValue()
    {
        var ring = SecretKeyRing.Random();
        await Secrets(ring).PutAsync("team-a/db", Value, "alice", null, SecretWriteMode.Upsert, CancellationToken.None);

        var again = Secrets(ring);
        await again.LoadAsync(_ => false, CancellationToken.None);

        Assert.Equal(Value, again.Reveal("team-a/db").Value);
        Assert.Equal("alice", again.Info("team-a/db")!.Author);
        Assert.Equal(["team-a/db"], again.List("team-a").ToArray());
        Assert.Empty(again.List("team-ab"));
    }

    [Fact]
    public async Task LoadAsync_WithAnotherKeyFile_RefusesWithOneSentenceNamingTheKey()
    {
        var ring = SecretKeyRing.Random();
        await Secrets(ring).PutAsync("team-a/db", Value, "alice", null, SecretWriteMode.Upsert, CancellationToken.None);

        var e = await Assert.ThrowsAsync<SecretKeyMismatchException>(() => Secrets(SecretKeyRing.Random()).LoadAsync(_ => false, CancellationToken.None));

        Assert.Contains($"encrypted under key {ring.Primary.Id}", e.Message, StringComparison.Ordinal);
        Assert.Contains("the same --secrets-key-file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_NewPrimaryKeyBeforeTheOld_RewrapsEverySecretUnderTheNewKey()
    {
        var old = SecretKeyRing.Random();
        await Secrets(old).PutAsync("a", Value, null, null, SecretWriteMode.Upsert, CancellationToken.None);
        await Secrets(old).PutAsync("b/c", Value, null, null, SecretWriteMode.Upsert, CancellationToken.None);
        var fresh = SecretKeyRing.Random();
        var rotated = new SecretKeyRing([fresh.Primary, old.Primary], "rotation");

        await Secrets(rotated).LoadAsync(_ => false, CancellationToken.None);

        // The old key can now be dropped from the file: the new one alone opens everything.
        var afterwards = Secrets(fresh);
        await afterwards.LoadAsync(_ => false, CancellationToken.None);
        Assert.Equal(Value, afterwards.Reveal("a").Value);
        Assert.Equal(Value, afterwards.Reveal("b/c").Value);
    }

    [Fact]
    public async Task PutAsync_Modes_CreateOnlyAndReplaceOnlyAsDcosPutAndPatch()
    {
        var secrets = Secrets(SecretKeyRing.Random());

        Assert.Equal(SecretOutcome.NotFound, await secrets.PutAsync("x", Value, null, null, SecretWriteMode.ReplaceOnly, CancellationToken.None));
        Assert.Equal(SecretOutcome.Created, await secrets.PutAsync("x", Value, null, null, SecretWriteMode.CreateOnly, CancellationToken.None));
        Assert.Equal(SecretOutcome.Exists, await secrets.PutAsync("x", "other"u8.ToArray(), null, null, SecretWriteMode.CreateOnly, CancellationToken.None));
        Assert.Equal(SecretOutcome.Replaced, await secrets.PutAsync("x", "new"u8.ToArray(), null, null, SecretWriteMode.ReplaceOnly, CancellationToken.None));
        Assert.Equal("new"u8.ToArray(), secrets.Reveal("x").Value);
        Assert.Equal(SecretOutcome.Deleted, await secrets.DeleteAsync("x", null, CancellationToken.None));
        Assert.Equal((null, null), secrets.Reveal("x"));
    }

    [Fact]
    public async Task KeepTaskValues_StoredEncryptedResolvedForTheTaskAndGoneOnceItEnds()
    {
        var secrets = Secrets(SecretKeyRing.Random());
        var spec = Build.Task() with { Secrets = [new TaskSecret { Target = SecretTarget.Env, Name = "TOKEN" }] };

        await secrets.KeepTaskValues(spec.Id, [(0, Value)]);
        var stored = await _store.ListAsync(SecretStore.TaskPrefix);
        var (values, error) = secrets.Resolve(spec);

        Assert.Null(error);
        Assert.Equal(Value, Assert.Single(values).Data);
        Assert.True(Assert.Single(stored).Value.AsSpan().IndexOf(Value) < 0);

        secrets.ForgetTask(spec.Id);
        await Drover.Testing.Wait.UntilAsync(async () => (await _store.ListAsync(SecretStore.TaskPrefix)).Length, n => n == 0, TimeSpan.FromSeconds(10), "the task's values deleted");
        Assert.Contains("no longer kept", secrets.Resolve(spec).Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_ValuesOfEndedTasks_Dropped()
    {
        var ring = SecretKeyRing.Random();
        await Secrets(ring).KeepTaskValues("live-task", [(0, Value)]);
        await Secrets(ring).KeepTaskValues("ended-task", [(0, Value), (1, Value)]);

        var again = Secrets(ring);
        await again.LoadAsync(id => id == "live-task", CancellationToken.None);

        Assert.True(again.HasTaskValues("live-task"));
        Assert.False(again.HasTaskValues("ended-task"));
        Assert.Single(await _store.ListAsync(SecretStore.TaskPrefix));
    }

    [Fact]
    public async Task Resolve_StoredSecretDeletedAfterDeploy_SaysWhichAndWhy()
    {
        var secrets = Secrets(SecretKeyRing.Random());
        var spec = Build.Task() with { Secrets = [new TaskSecret { Target = SecretTarget.File, Name = "db/pw", Path = "team-a/db" }] };

        var (values, error) = secrets.Resolve(spec);

        Assert.Empty(values);
        Assert.Equal("secret file db/pw: secret 'team-a/db' does not exist (deleted after the task was deployed?)", error);
    }
}
