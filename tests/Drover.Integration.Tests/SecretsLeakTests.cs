using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Drover.Client.Mesos;
using Drover.Core.Mesos;
using Drover.Master;
using Drover.Store.Etcd;
using Drover.Testing;
using Drover.Testing.Etcd;
using Drover.Testing.Processes;
using Xunit.Abstractions;

namespace Drover.Integration.Tests;

/// <summary>
/// Issue 13's secrets test. Secrets are used by running tasks — a Marathon app (an environment variable and a file
/// from the store) and a Mesos framework's task (a VALUE secret in its environment, a REFERENCE as a file) — and each
/// task proves it sees them by printing their SHA-256. Then everything else is searched for the values, in the clear
/// and in base64: every API answer, the <c>/v2/events</c> stream, the Mesos operator API, the process' debug log, every
/// file under the data dir (master store, audit log, agent checkpoints and update log, sandboxes), and an etcd dump.
/// Only reading a secret back through the secrets API with permission answers it, and that is not asked here.
/// </summary>
public sealed class SecretsLeakTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // Distinct values, none a substring of another, so a hit names what leaked.
    private static readonly byte[] DbPassword = Encoding.UTF8.GetBytes("DbPw-7f3a91c2-leakcheck");
    private static readonly byte[] Certificate = Encoding.UTF8.GetBytes("-----BEGIN TEST KEY-----\nCert-5be04d18-leakcheck\n-----END TEST KEY-----\n");
    private static readonly byte[] InlineToken = Encoding.UTF8.GetBytes("MesosTok-c0ffee42-leakcheck");

    [Fact]
    public async Task DevCluster_SecretsInEnvAndFilesOfRunningTasks_ValueInNoAnswerEventLogOrFile()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        var dir = Directory.CreateTempSubdirectory("drover-secrets-leak-").FullName;
        var port = DevClusterFixture.FreePort();
        var url = new Uri($"http://127.0.0.1:{port}");
        var log = Path.Combine(dir, "dev.log");
        var data = Path.Combine(dir, "data");
        await using var dev = DroverProcess.Start("dev", ["dev", "--listen", $"127.0.0.1:{port}", "--data-dir", data, "--log-level", "debug",
            "--resources", TestPorts.Resources("cpus:2;mem:2048;disk:1024")], logFile: log);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
        using var stop = new CancellationTokenSource();
        try
        {
            await Wait.UntilAsync(async () => (await http.GetFromJsonAsync<JsonObject>("/drover/v1/agents"))!["agents"]!.AsArray().Count > 0,
                ok => ok, Timeout, "drover dev with an agent", retryOn: e => e is HttpRequestException);

            var events = new StringBuilder();
            await using var stream = await SseEventStream.OpenAsync(http, "/v2/events", (type, e, _) =>
            {
                lock (events)
                {
                    events.Append(type).Append(' ').Append(e.ToJsonString()).Append('\n');
                }

                return Task.CompletedTask;
            });

            await Put(http, "team-a/db", DbPassword);
            await Put(http, "team-a/cert", Certificate);
            var appTask = await DeployAppAsync(http);
            using var mesos = new MesosSchedulerClient(url);
            var (frameworkTask, scheduler) = await LaunchMesosTaskAsync(http, mesos, stop.Token);

            // Each task saw its values.
            await AssertTaskSawAsync(http, appTask, [Hash(DbPassword), Hash(Certificate)]);
            await AssertTaskSawAsync(http, frameworkTask, [Hash(InlineToken), Hash(DbPassword)]);

            // Everything the master answers about them.
            var answers = new List<(string What, string Text)>();
            foreach (var path in new[]
            {
                "/v2/apps", "/v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.lastTaskFailure", "/v2/apps/team-a/web", "/v2/apps/team-a/web/tasks",
                "/v2/apps/team-a/web/versions", "/v2/tasks", "/v2/groups", "/v2/groups/team-a", "/v2/groups?embed=group.apps&embed=group.apps.tasks",
                "/v2/deployments", "/v2/queue", "/v2/info", "/master/state", "/state.json", "/drover/v1/tasks", "/drover/v1/tasks?state=TASK_RUNNING",
                $"/drover/v1/tasks/{appTask}", $"/drover/v1/tasks/{frameworkTask}", "/drover/v1/agents", "/drover/v1/secrets", "/secrets/v1/secret/default/?list=true",
                "/metrics", "/drover/v1/audit",
            })
            {
                answers.Add((path, await http.GetStringAsync(path)));
            }

            foreach (var version in (await http.GetFromJsonAsync<JsonObject>("/v2/apps/team-a/web/versions"))!["versions"]!.AsArray())
            {
                answers.Add(("version", await http.GetStringAsync("/v2/apps/team-a/web/versions/" + version!.GetValue<string>())));
            }

            foreach (var call in new[] { "GET_STATE", "GET_TASKS", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_AGENTS" })
            {
                using var response = await http.PostAsync("/api/v1", new StringContent($$"""{"type": "{{call}}"}""", Encoding.UTF8, "application/json"));
                answers.Add(("operator " + call, await response.Content.ReadAsStringAsync()));
            }

            foreach (var (what, text) in answers)
            {
                AssertHoldsNoValue(Encoding.UTF8.GetBytes(text), what);
            }

            Assert.Contains("team-a/db", answers.Single(a => a.What == "/v2/apps/team-a/web").Text, StringComparison.Ordinal); // the reference is shown
            lock (events)
            {
                Assert.Contains("api_post_event", events.ToString(), StringComparison.Ordinal); // the stream saw the deploy
                AssertHoldsNoValue(Encoding.UTF8.GetBytes(events.ToString()), "the /v2/events stream");
            }

            AssertHoldsNoValue(await File.ReadAllBytesAsync(log), "the master's and agent's log (debug)");
            var files = 0;
            foreach (var file in Directory.EnumerateFiles(data, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
            {
                // A running process's dir lock (drover.lock: its PID) is flocked, and .NET's own advisory locking
                // refuses to open a file another process holds exclusively; it holds a number, never a value.
                if (new FileInfo(file).LinkTarget is null && Path.GetFileName(file) != "drover.lock")
                {
                    AssertHoldsNoValue(await File.ReadAllBytesAsync(file), file);
                    files++;
                }
            }

            // The search finds a value where one is: in the one answer that gives it, to a reader with permission.
            var readBack = await http.GetByteArrayAsync("/drover/v1/secrets/team-a/db");
            Assert.Contains("holds the db password", Assert.ThrowsAny<Exception>(() => AssertHoldsNoValue(readBack, "the read-back")).Message, StringComparison.Ordinal);
            output.WriteLine($"searched {answers.Count} answers, the event stream, the log and {files} files");
            Assert.True(files > 10, $"only {files} files under the data dir: is it the right one?");
            await scheduler.TeardownAsync();
        }
        finally
        {
            await stop.CancelAsync();
            await dev.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task EtcdStore_SecretUsedByARunningTask_DumpHoldsOnlyCiphertext()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var etcd = await EtcdCluster.StartAsync(new EtcdClusterOptions { Members = 1 });
        Assert.True(EtcdEndpoints.TryParse(etcd.StoreAddress, out var endpoints, out var error), error);
        var keyDir = Directory.CreateTempSubdirectory("drover-secrets-key-").FullName;
        try
        {
            await using var cluster = await InProcessCluster.StartAsync(new MasterOptions
            {
                Etcd = endpoints,
                StorePrefix = "/leak-" + Guid.NewGuid().ToString("N")[..8],
                SecretsKeyFile = SecretsKeyFiles.Create(Path.Combine(keyDir, "secrets.key")),
            });
            await cluster.AddAgentAsync("a1");
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = cluster.Master.Url, Timeout = TimeSpan.FromSeconds(30) };

            await Put(http, "team-a/db", DbPassword);
            await Put(http, "team-a/cert", Certificate);
            var task = await DeployAppAsync(http);
            await AssertTaskSawAsync(http, task, [Hash(DbPassword), Hash(Certificate)]);

            var dump = await ProcessRunner.RunAsync("etcdctl", ["--endpoints", string.Join(',', etcd.ClientUrls.Select(u => u.Authority)), "get", "--prefix", ""], Timeout);
            Assert.True(dump.ExitCode == 0, dump.ToString());
            Assert.Contains("/drover/secrets/values/team-a/db", dump.StdOut, StringComparison.Ordinal); // the secret is there, sealed
            AssertHoldsNoValue(Encoding.UTF8.GetBytes(dump.StdOut), "etcdctl get --prefix \"\"");
            // etcd's WAL and bolt db (which it holds locked, so grep reads them rather than .NET's locking file API).
            var grep = await ProcessRunner.RunAsync("grep", ["-r", "-a", "-F", "-l", .. Needles().SelectMany(n => new[] { "-e", n.Text }), .. etcd.Members.Select(m => m.DataDir)], Timeout);
            Assert.True(grep.ExitCode == 1, $"etcd's data dirs hold a value (grep: {grep})");
        }
        finally
        {
            Directory.Delete(keyDir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ helpers

    private static async Task Put(HttpClient http, string path, byte[] value)
    {
        using var response = await http.PutAsJsonAsync("/drover/v1/secrets/" + path, new { data = value });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Deploys <c>/team-a/web</c>, which prints the hashes of its env secret and its file secret, then waits; returns its running task's id.</summary>
    private static async Task<string> DeployAppAsync(HttpClient http)
    {
        var app = new JsonObject
        {
            ["id"] = "/team-a/web",
            ["cmd"] = "printf %s \"$DB_PASSWORD\" | sha256sum; sha256sum < tls/cert.pem; exec sleep 600",
            ["cpus"] = 0.1,
            ["mem"] = 32,
            ["instances"] = 1,
            ["secrets"] = new JsonObject { ["db"] = new JsonObject { ["source"] = "/team-a/db" }, ["cert"] = new JsonObject { ["source"] = "team-a/cert" } },
            ["env"] = new JsonObject { ["DB_PASSWORD"] = new JsonObject { ["secret"] = "db" }, ["PLAIN"] = "plain" },
            ["container"] = new JsonObject { ["type"] = "MESOS", ["volumes"] = new JsonArray(new JsonObject { ["containerPath"] = "tls/cert.pem", ["secret"] = "cert" }) },
        };
        using var created = await http.PostAsync("/v2/apps", new StringContent(app.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var tasks = await Wait.UntilAsync(async () => (await http.GetFromJsonAsync<JsonObject>("/v2/apps/team-a/web/tasks"))!["tasks"]!.AsArray(),
            t => t.Any(x => x!["state"]!.GetValue<string>() == "TASK_RUNNING"), Timeout, "the app's instance running");
        return tasks.First(x => x!["state"]!.GetValue<string>() == "TASK_RUNNING")!["id"]!.GetValue<string>();
    }

    /// <summary>
    /// A framework launching one task with a VALUE secret in its environment and a REFERENCE as a file; returns the
    /// task's Drover id once it runs. The scheduler keeps its subscription until <paramref name="ct"/> is cancelled.
    /// </summary>
    private static async Task<(string TaskId, MesosSchedulerClient Scheduler)> LaunchMesosTaskAsync(HttpClient http, MesosSchedulerClient mesos, CancellationToken ct)
    {
        var running = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = Task.Run(async () =>
        {
            try
            {
                var launched = false;
                await foreach (var e in mesos.SubscribeAsync(new MFrameworkInfo { Name = "leak-check", User = "nobody", FailoverTimeout = 600 }, ct))
                {
                    if (e.Type == "OFFERS" && !launched && e.Offers!.Offers.Count > 0)
                    {
                        launched = true;
                        var offer = e.Offers.Offers[0];
                        await mesos.LaunchAsync(offer, [new MTaskInfo
                        {
                            Name = "mesos-secrets",
                            TaskId = new MId("mesos-secrets"),
                            AgentId = offer.AgentId,
                            Resources = [new MResource { Name = "cpus", Type = "SCALAR", Scalar = new MScalar(0.1) }, new MResource { Name = "mem", Type = "SCALAR", Scalar = new MScalar(32) }],
                            Command = new MCommandInfo
                            {
                                Value = "printf %s \"$TOKEN\" | sha256sum; sha256sum < db.txt; exec sleep 600",
                                Environment = new MEnvironment([new MEnvVariable("TOKEN", null, "SECRET", new MSecret("VALUE", Value: new MSecretValue(Convert.ToBase64String(InlineToken))))]),
                            },
                            Container = new MContainerInfo("MESOS", null, null,
                                [new MVolume { Mode = "RO", ContainerPath = "db.txt", Source = new MVolumeSource { Type = "SECRET", Secret = new MSecret("REFERENCE", new MSecretReference("team-a/db")) } }]),
                        }], ct: ct);
                    }
                    else if (e.Type == "UPDATE")
                    {
                        await mesos.AcknowledgeAsync(e.Update!.Status, ct);
                        if (e.Update.Status.State == "TASK_RUNNING")
                        {
                            running.TrySetResult(e.Update.Status.TaskId.Value);
                        }
                        else if (e.Update.Status.State is "TASK_ERROR" or "TASK_FAILED" or "TASK_LOST")
                        {
                            running.TrySetException(new InvalidOperationException($"the framework's task: {e.Update.Status.State} {e.Update.Status.Message}"));
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                running.TrySetException(e);
            }
        }, CancellationToken.None);

        await running.Task.WaitAsync(Timeout);
        var tasks = (await http.GetFromJsonAsync<JsonObject>("/drover/v1/tasks"))!["tasks"]!.AsArray();
        return (tasks.Single(t => t!["id"]!.GetValue<string>().EndsWith("mesos-secrets", StringComparison.Ordinal))!["id"]!.GetValue<string>(), mesos);
    }

    /// <summary>The task printed these hashes (of what it found in its environment and files), in order.</summary>
    private static async Task AssertTaskSawAsync(HttpClient http, string taskId, string[] hashes)
    {
        var expected = string.Concat(hashes.Select(h => h + "  -\n"));
        var stdout = await Wait.UntilAsync(() => http.GetStringAsync($"/drover/v1/tasks/{taskId}/logs?stream=stdout"),
            s => s.Length >= expected.Length, Timeout, $"task {taskId} to print what it sees");
        Assert.Equal(expected, stdout);
    }

    private static string Hash(byte[] value) => Convert.ToHexStringLower(SHA256.HashData(value));

    /// <summary>What must be found nowhere: each value's distinctive line in the clear, and each value in base64 (as JSON carries bytes).</summary>
    private static IEnumerable<(string Name, string Text)> Needles()
    {
        foreach (var (name, value) in new[] { ("db password", DbPassword), ("certificate", Certificate), ("Mesos VALUE token", InlineToken) })
        {
            yield return (name, Encoding.UTF8.GetString(value).Split('\n').First(l => l.Contains("leakcheck", StringComparison.Ordinal)));
            yield return (name + " in base64", Convert.ToBase64String(value));
        }
    }

    private static void AssertHoldsNoValue(byte[] haystack, string where)
    {
        foreach (var (name, text) in Needles())
        {
            Assert.False(haystack.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0, $"{where} holds the {name}");
        }
    }
}
