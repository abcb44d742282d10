using System.Security.Cryptography;
using System.Text;
using Drover.Agent.Execution;
using Drover.Core;
using Drover.Core.Protocol;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>
/// The secrets stage with real isolated tasks: a value reaches its task — in the environment, and as a 0400 file of the
/// task's user on a tmpfs in the task's own mount namespace — while nothing the host can read holds it: not the sandbox,
/// not the agent's checkpoints, not any file under the work dir. Needs root (always runs under CI=true).
/// </summary>
public sealed class SecretsStageTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly byte[] EnvValue = Encoding.UTF8.GetBytes("env-secret-6b1f0c2e");
    private static readonly byte[] FileValue = Encoding.UTF8.GetBytes("file-secret-93a7d4\nsecond line\n");

    private ExecutorHarness? _harness;

    private ExecutorHarness H => _harness ??= new ExecutorHarness("secrets");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_harness is not null)
        {
            await _harness.DisposeAsync();
        }
    }

    [Fact]
    public async Task Launch_EnvAndFileSecrets_TaskSeesThemAndTheHostNowhere()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        // The task prints hashes of what it sees, its file's mode and owner, and waits (so its namespace lives while we look).
        var spec = ExecutorHarness.Shell(
            "printf %s \"$DB_PASSWORD\" | sha256sum; sha256sum < conf/tls/key.pem; stat -L -c '%a %U' conf/tls/key.pem; "
            + "echo \"$DB_PASSWORD\" > /dev/null; touch ready; sleep 600") with
        {
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("PLAIN", "1"),
            Secrets =
            [
                new TaskSecret { Target = SecretTarget.Env, Name = "DB_PASSWORD", Path = "team-a/db" },
                new TaskSecret { Target = SecretTarget.File, Name = "conf/tls/key.pem", Path = "team-a/key" },
            ],
        };
        H.Executor.Launch(new LaunchTask
        {
            Task = spec,
            SecretValues = [new SecretValue { TaskId = spec.Id, Index = 0, Data = [.. EnvValue] }, new SecretValue { TaskId = spec.Id, Index = 1, Data = [.. FileValue] }],
        });

        await H.WaitForStateAsync(spec.Id, TaskState.Running);
        var sandbox = H.Executor.SandboxPath(spec.Id)!;
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(sandbox, "ready")), "the task to have looked");

        var lines = H.ReadSandboxFile(spec.Id, "stdout").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        output.WriteLine(string.Join('\n', lines));
        Assert.Equal(Hash(EnvValue) + "  -", lines[0]);
        Assert.Equal(Hash(FileValue) + "  -", lines[1]);
        Assert.Equal("400 nobody", lines[2]);

        // The host's view: the mount point is empty, the file is a link that leads nowhere here.
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(sandbox, ".secrets")));
        var link = new FileInfo(Path.Combine(sandbox, "conf/tls/key.pem"));
        Assert.Equal("../../.secrets/conf/tls/key.pem", link.LinkTarget);
        Assert.ThrowsAny<IOException>(() => File.ReadAllBytes(link.FullName));
        AssertNowhereUnder(H.WorkDir);
    }

    [Fact]
    public async Task AgentRestart_RunningTaskKeepsItsSecretsNothingRelaunchedNothingOnDisk()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var h = new ExecutorHarness("secrets-restart", configure: o => o with { KillTasksOnDispose = false });
        // Hashes what it sees each time 'again' appears, as long as it lives.
        var spec = ExecutorHarness.Shell(
            "while :; do if [ -f again ]; then rm again; { printf %s \"$TOKEN\" | sha256sum; sha256sum < key; } >> seen; fi; sleep 0.05; done") with
        {
            Secrets = [new TaskSecret { Target = SecretTarget.Env, Name = "TOKEN", Path = "t" }, new TaskSecret { Target = SecretTarget.File, Name = "key", Path = "k" }],
        };
        h.Executor.Launch(new LaunchTask
        {
            Task = spec,
            SecretValues = [new SecretValue { TaskId = spec.Id, Index = 0, Data = [.. EnvValue] }, new SecretValue { TaskId = spec.Id, Index = 1, Data = [.. FileValue] }],
        });
        await h.WaitForStateAsync(spec.Id, TaskState.Running);
        var sandbox = h.Executor.SandboxPath(spec.Id)!;
        var shim = h.Executor.PidOf(spec.Id)!.Value;

        await h.Executor.DisposeAsync(); // the agent goes; its task stays
        await using var after = new ProcessTaskExecutor(h.Options, Microsoft.Extensions.Logging.Abstractions.NullLogger<ProcessTaskExecutor>.Instance, TimeProvider.System);
        await File.WriteAllTextAsync(Path.Combine(sandbox, "again"), "");
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(sandbox, "seen")) && File.ReadAllLines(Path.Combine(sandbox, "seen")).Length == 2, "the adopted task to look again");

        Assert.Equal(shim, after.PidOf(spec.Id)); // adopted, not relaunched
        Assert.Equal([Hash(EnvValue) + "  -", Hash(FileValue) + "  -"], File.ReadAllLines(Path.Combine(sandbox, "seen")));
        AssertNowhereUnder(h.WorkDir);
        after.Kill(spec.Id, TimeSpan.Zero);
        await Eventually.TrueAsync(() => !Native.IsAlive(shim), "the task killed");
    }

    [Fact]
    public async Task Launch_SecretFileWithoutIsolation_FailsWithoutWritingIt()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        await using var plain = new ExecutorHarness("secrets-plain", configure: o => o with { Isolate = false });
        var spec = ExecutorHarness.Shell("cat key") with { Secrets = [new TaskSecret { Target = SecretTarget.File, Name = "key", Path = "k" }] };
        plain.Executor.Launch(new LaunchTask { Task = spec, SecretValues = [new SecretValue { TaskId = spec.Id, Index = 0, Data = [.. FileValue] }] });

        var end = await plain.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, end.State);
        Assert.Equal(TaskReasons.ContainerLaunchFailed, end.Reason);
        Assert.Contains("need the task's own mount namespace", end.Message, StringComparison.Ordinal);
        AssertNowhereUnder(plain.WorkDir);
    }

    [Fact]
    public async Task Launch_SecretWithoutItsValue_FailsNamingIt()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = H.Launch(ExecutorHarness.Shell("true") with { Secrets = [new TaskSecret { Target = SecretTarget.Env, Name = "TOKEN", Path = "t" }] });

        var end = await H.WaitForTerminalAsync(spec.Id);

        Assert.Equal(TaskState.Failed, end.State);
        Assert.Contains("carried no value for its secret environment variable TOKEN", end.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Launch_EnvSecretNamedAsAnAgentVariable_AgentsValueWins()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var spec = ExecutorHarness.Shell("echo \"$MESOS_TASK_ID\"") with { Secrets = [new TaskSecret { Target = SecretTarget.Env, Name = "MESOS_TASK_ID", Path = "t" }] };
        H.Executor.Launch(new LaunchTask { Task = spec, SecretValues = [new SecretValue { TaskId = spec.Id, Index = 0, Data = [.. EnvValue] }] });

        Assert.Equal(TaskState.Finished, (await H.WaitForTerminalAsync(spec.Id)).State);
        Assert.Equal(spec.Id, H.ReadSandboxFile(spec.Id, "stdout").Trim());
    }

    private static string Hash(byte[] value) => Convert.ToHexStringLower(SHA256.HashData(value));

    /// <summary>No file under <paramref name="root"/> (sandboxes, checkpoints, update log) holds either value.</summary>
    private static void AssertNowhereUnder(string root)
    {
        foreach (var file in Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            if (new FileInfo(file).LinkTarget is not null)
            {
                continue;
            }

            var bytes = File.ReadAllBytes(file);
            Assert.True(bytes.AsSpan().IndexOf(EnvValue) < 0 && bytes.AsSpan().IndexOf(FileValue.AsSpan(0, 18)) < 0, $"{file} holds a secret value");
        }
    }
}
