using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Drover.Core;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;
using Drover.Testing;
using Drover.Testing.Clusters;
using Drover.Testing.Processes;
using static Drover.Integration.Tests.FaultInjection.FaultInjectionSupport;

namespace Drover.Integration.Tests.FaultInjection;

/// <summary>
/// Agent identities on a real cluster (<see cref="MultiHostCluster"/>: a <c>drover master</c> process and
/// <c>drover agent</c> processes in their own network namespaces, joined with a join token, speaking mutual
/// TLS). Every test tries to get in: without a certificate, with another CA's, with one agent's certificate
/// for another agent, with bad join tokens, with an expired certificate, and with an impostor agent endpoint.
/// </summary>
[Collection(FaultInjectionCollection.Name)]
public sealed class AgentIdentityTests
{
    [MultiHostFact]
    public async Task AgentProtocol_WithoutACertificateOfTheClusterCa_CannotRegisterOrHeartbeat()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 1 });
        await WithDiagnostics(cluster, async () =>
        {
            var agent1 = (await cluster.FindAgentAsync(1))!;
            var registration = new AgentRegistration
            {
                AgentId = agent1.Id,
                Hostname = "intruder",
                Address = "https://10.99.0.1:5051",
                Resources = Resources.Parse("cpus:64;mem:65536"),
            };

            // No certificate at all: the call reaches the gate, which answers 401.
            using (var anonymous = cluster.CreateHttpClient())
            {
                using var register = await anonymous.PostAsJsonAsync(new Uri(cluster.MasterUrl, "internal/v1/agents/register"), registration, DroverJsonContext.Default.AgentRegistration);
                Assert.Equal(HttpStatusCode.Unauthorized, register.StatusCode);
                using var heartbeat = await anonymous.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{agent1.Id}/heartbeat"), new AgentHeartbeat(), DroverJsonContext.Default.AgentHeartbeat);
                Assert.Equal(HttpStatusCode.Unauthorized, heartbeat.StatusCode);
            }

            // A certificate naming agent 1, from a CA of the attacker's own: the TLS handshake is refused.
            using var otherCa = CertificateAuthority.CreateCa("attacker CA", DateTimeOffset.UtcNow, TimeSpan.FromDays(1));
            using var forged = CertificateAuthority.IssueWithNewKey(otherCa, new CertificateProfile { Identity = SpiffeId.Agent(agent1.Id), Lifetime = TimeSpan.FromHours(1) }, DateTimeOffset.UtcNow);
            using (var intruder = cluster.CreateHttpClient(forged))
            {
                await Assert.ThrowsAnyAsync<HttpRequestException>(() =>
                    intruder.PostAsJsonAsync(new Uri(cluster.MasterUrl, "internal/v1/agents/register"), registration, DroverJsonContext.Default.AgentRegistration));
            }

            // Nothing changed: agent 1 is still the one on host1, with its own resources.
            var after = (await cluster.FindAgentAsync(1))!;
            Assert.Equal((agent1.Hostname, agent1.Address, agent1.Total.Cpus, "active"), (after.Hostname, after.Address, after.Total.Cpus, after.Status));
            Assert.DoesNotContain(await cluster.Client.ListAgentsAsync(), a => a.Hostname == "intruder");
        });
    }

    [MultiHostFact]
    public async Task AgentCertificate_SpeakingForAnotherAgent_IsRefusedAndChangesNothing()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 2 });
        await WithDiagnostics(cluster, async () =>
        {
            var a = (await cluster.FindAgentAsync(1))!;
            var b = (await cluster.FindAgentAsync(2))!;
            var task = await cluster.SubmitAsync("victim", "exec sleep 600", 0.5m, 64, "hostname:IS:host2");
            await cluster.WaitForStateAsync(task.Id, TaskState.Running);
            var processes = await cluster.ProcessesOfAsync(task.Id);
            var usedBefore = (await cluster.Client.GetAgentAsync(b.Id)).Used;
            using var asA = cluster.CreateAgentHttpClient(1);
            var finished = new StatusUpdateBatch
            {
                Updates = [new TaskStatus { TaskId = task.Id, State = TaskState.Finished, Uuid = Ids.NewUuid(), ExitCode = 0, AgentId = b.Id, Message = "forged" }],
            };

            // Every agent-protocol call for agent B, made with A's certificate, is refused.
            var refused = new List<string>();
            async Task ExpectForbidden(string what, Func<Task<HttpResponseMessage>> call)
            {
                using var response = await call();
                if (response.StatusCode != HttpStatusCode.Forbidden)
                {
                    refused.Add($"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }

            await ExpectForbidden("updates", () => asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{b.Id}/updates"), finished, DroverJsonContext.Default.StatusUpdateBatch));
            await ExpectForbidden("heartbeat", () => asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{b.Id}/heartbeat"), new AgentHeartbeat(), DroverJsonContext.Default.AgentHeartbeat));
            await ExpectForbidden("commands", () => asA.GetAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{b.Id}/commands"), HttpCompletionOption.ResponseHeadersRead));
            await ExpectForbidden("messages", () => asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{b.Id}/messages"),
                new FrameworkMessage { FrameworkId = "f", ExecutorId = "e", Data = "" }, DroverJsonContext.Default.FrameworkMessage));
            await ExpectForbidden("re-register as B", () => asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, "internal/v1/agents/register"), new AgentRegistration
            {
                AgentId = b.Id,
                Hostname = "host2",
                Address = a.Address,
                Resources = Resources.Parse("cpus:2;mem:1024"),
            }, DroverJsonContext.Default.AgentRegistration));
            await ExpectForbidden("renew B's certificate", () => asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{b.Id}/certificate"),
                new CertificateRenewal { Csr = CertificateAuthority.CreateSigningRequestPem(CertificateAuthority.NewKey(), "b") }, DroverJsonContext.Default.CertificateRenewal));
            Assert.Empty(refused);

            // Under its own id, A may report, but not about B's task (NodeRestriction): the update is acknowledged
            // (so a confused agent does not retry it forever) and changes nothing.
            using (var own = await asA.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{a.Id}/updates"), finished, DroverJsonContext.Default.StatusUpdateBatch))
            {
                Assert.Equal(HttpStatusCode.OK, own.StatusCode);
            }

            var victim = await cluster.Client.GetTaskAsync(task.Id);
            Assert.Equal(TaskState.Running, victim.State);
            Assert.DoesNotContain(victim.Statuses, s => s.Message == "forged");
            Assert.Equal(usedBefore, (await cluster.Client.GetAgentAsync(b.Id)).Used);
            Assert.All(processes, p => Assert.True(p.IsAlive, $"{p} of B's task died"));
            var agents = await cluster.Client.ListAgentsAsync();
            Assert.Equal(("host2", b.Address, "active"), agents.Where(x => x.Id == b.Id).Select(x => (x.Hostname, x.Address, x.Status)).Single());
            Assert.Equal(2, agents.Length);
            await cluster.Client.KillTaskAsync(task.Id);
        });
    }

    [MultiHostFact]
    public async Task Join_UnknownExpiredRevokedOrOtherCaToken_AgentProcessIsRefused_AndAGoodOneGetsANewId()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 1 });
        await WithDiagnostics(cluster, async () =>
        {
            var good = JoinToken.Parse(cluster.JoinToken).Token!;
            var unknown = JoinToken.Create(good.CaHash).Text;
            var expiring = await cluster.Client.CreateJoinTokenAsync(TimeSpan.FromSeconds(1));
            await Wait.UntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow > expiring.ExpiresAt.AddSeconds(1)), TimeSpan.FromSeconds(10), "the token to expire");
            var revoked = await cluster.Client.CreateJoinTokenAsync(TimeSpan.FromHours(1));
            await cluster.Client.RevokeJoinTokenAsync(revoked.Id);
            var otherCa = (good with { CaHash = "sha256:" + new string('0', 64) }).Text;

            var cases = new (string Name, string Token, string Says)[]
            {
                ("unknown", unknown, "unknown, revoked or wrong"),
                ("expired", expiring.Token, "expired"),
                ("revoked", revoked.Token, "unknown, revoked or wrong"),
                ("other-ca", otherCa, "refusing to send the token"),
                ("garbage", "drover1.not-a-token", "--join-token"),
            };
            foreach (var (name, token, says) in cases)
            {
                var process = cluster.StartExtraAgentProcess(1, "joiner-" + name, ["--join-token", token]);
                Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the agent with the {name} token did not give up\n{process.Tail()}");
                Assert.True(process.ExitCode == 1, $"{name}: exit {process.ExitCode}\n{process.Tail()}");
                Assert.Contains(says, process.Tail(), StringComparison.Ordinal);
                Assert.False(Directory.Exists(Path.Combine(cluster.Root, "joiner-" + name, "tls")), $"the {name} token got a certificate");
            }

            // Without any token the agent cannot start either.
            var none = cluster.StartExtraAgentProcess(1, "joiner-none", []);
            Assert.True(await none.WaitForExitAsync(TimeSpan.FromSeconds(60)), none.Tail());
            Assert.Equal(1, none.ExitCode);
            Assert.Contains("has not joined the cluster yet", none.Tail(), StringComparison.Ordinal);

            // The good token joins; the id is the master's choice, not any existing agent's, and the key is private.
            var existing = (await cluster.Client.ListAgentsAsync()).Select(x => x.Id).ToHashSet();
            var joiner = cluster.StartExtraAgentProcess(1, "joiner-good", ["--join-token", cluster.JoinToken]);
            var joined = await Wait.UntilAsync(
                async () => (await cluster.Client.ListAgentsAsync()).FirstOrDefault(x => x.Hostname == "joiner-good" && x.Status == "active"),
                x => x is not null || joiner.HasExited, StateTimeout, "the agent with a good token to register",
                retryOn: e => e is HttpRequestException);
            Assert.False(joiner.HasExited, joiner.Tail());
            Assert.DoesNotContain(joined!.Id, existing);
            var certificateFile = Path.Combine(cluster.Root, "joiner-good", "tls", "agent.pem");
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(certificateFile));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(certificateFile)!));
            using var issued = PemCertificates.Load(await File.ReadAllTextAsync(certificateFile)).Value!;
            Assert.Equal(SpiffeId.Agent(joined.Id), SpiffeId.FromCertificate(issued));
            Assert.Equal(joined.Id, (await File.ReadAllTextAsync(Path.Combine(cluster.Root, "joiner-good", "agent-id"))).Trim());
        });
    }

    [MultiHostFact]
    public async Task AgentCertificate_ShortLifetime_IsRenewedBeforeItExpiresAndTheAgentKeepsWorking()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 1, AgentCertificateLifetime = TimeSpan.FromSeconds(30) });
        await WithDiagnostics(cluster, async () =>
        {
            using var first = cluster.CredentialsOf(1)!;
            var original = first.Certificate; // with its key, which the renewal replaces on disk
            var agentId = first.AgentId;

            // Renewed well before expiry (two thirds in), under the same id.
            var renewed = await Wait.UntilAsync(
                () => Task.FromResult(cluster.CredentialsOf(1)),
                c => c is not null && c.Certificate.SerialNumber != original.SerialNumber,
                TimeSpan.FromSeconds(60), "agent 1 to renew its certificate");
            using (renewed)
            {
                Assert.Equal(agentId, renewed!.AgentId);
                Assert.True(DateTime.UtcNow < original.NotAfter.ToUniversalTime(), $"renewed only at {DateTime.UtcNow:u}, the certificate expired at {original.NotAfter.ToUniversalTime():u}");
                Assert.True(renewed.Certificate.NotAfter > original.NotAfter);
            }

            // Past the first certificate's expiry the agent still heartbeats and runs tasks, whose output the
            // master reads from it over mutual TLS with the renewed certificates.
            var expired = new DateTimeOffset(original.NotAfter.ToUniversalTime(), TimeSpan.Zero);
            await Wait.UntilAsync(
                async () => (await cluster.FindAgentAsync(1))!,
                a => a.Status == "active" && a.LastHeartbeatAt > expired.AddSeconds(2),
                TimeSpan.FromSeconds(60), "a heartbeat after the first certificate expired", retryOn: e => e is HttpRequestException);
            var task = await cluster.SubmitAsync("after-renewal", "echo still-here", 0.1m, 16);
            await cluster.WaitForStateAsync(task.Id, TaskState.Finished);
            var chunk = await cluster.Client.ReadFileAsync(task.Id, "stdout", 0);
            Assert.Equal("still-here\n", chunk.Data);

            // The expired certificate itself no longer gets in.
            using var withExpired = cluster.CreateHttpClient(original);
            var refused = false;
            try
            {
                using var heartbeat = await withExpired.PostAsJsonAsync(new Uri(cluster.MasterUrl, $"internal/v1/agents/{agentId}/heartbeat"), new AgentHeartbeat(), DroverJsonContext.Default.AgentHeartbeat);
                refused = heartbeat.StatusCode == HttpStatusCode.Unauthorized;
            }
            catch (HttpRequestException)
            {
                refused = true; // refused in the TLS handshake
            }

            Assert.True(refused, "a heartbeat with the expired certificate was accepted");
        });
    }

    [MultiHostFact]
    public async Task SandboxRead_FromAnEndpointPresentingAnotherAgentsCertificate_Fails()
    {
        await using var cluster = await MultiHostCluster.StartAsync(new MultiHostOptions { AgentCount = 2, LastAgentListensOnWildcard = false });
        await WithDiagnostics(cluster, async () =>
        {
            var task = await cluster.SubmitAsync("logs", "echo the-real-output; exec sleep 600", 0.1m, 16, "hostname:IS:host1");
            await cluster.WaitForStateAsync(task.Id, TaskState.Running);
            Assert.Equal("the-real-output\n", (await Wait.UntilAsync(() => cluster.Client.ReadFileAsync(task.Id, "stdout", 0), c => c.Data.Length > 0, StateTimeout, "the task's output")).Data);

            // Agent 1's process goes; on its address and port an impostor serves agent 2's valid certificate of the cluster CA.
            await cluster.KillAgentAsync(1);
            var agent2Pem = Path.Combine(cluster.WorkDirOf(2), "tls", "agent.pem");
            var host1 = cluster.HostOf(1);
            using var impostor = Process.Start(new ProcessStartInfo("nsenter",
                [$"--net=/run/netns/{host1.Name}", "--", "openssl", "s_server", "-quiet", "-accept", $"{host1.Address}:5051", "-cert", agent2Pem, "-key", agent2Pem, "-www"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            })!;
            cluster.Network.TrackProcess(impostor.Id);
            try
            {
                await Wait.UntilAsync(async () =>
                {
                    var probe = await ProcessRunner.RunAsync("nsenter", [$"--net=/run/netns/{host1.Name}", "--", "bash", "-c", $"exec 3<>/dev/tcp/{host1.Address}/5051"]);
                    return probe.Succeeded || impostor.HasExited;
                }, TimeSpan.FromSeconds(20), "the impostor to listen");
                Assert.False(impostor.HasExited, impostor.HasExited ? await impostor.StandardError.ReadToEndAsync() : "");

                using var response = await cluster.Http.GetAsync(new Uri(cluster.MasterUrl, $"drover/v1/tasks/{task.Id}/files/read?path=stdout&offset=0"));
                var body = await response.Content.ReadAsStringAsync();
                Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
                Assert.DoesNotContain("s_server", body, StringComparison.Ordinal);
            }
            finally
            {
                impostor.Kill();
                await impostor.WaitForExitAsync();
            }

            // The real agent back on that address: the same read works again, so the failure was the identity.
            await cluster.RestartAgentAsync(1);
            Assert.Equal("the-real-output\n", (await Wait.UntilAsync(() => cluster.Client.ReadFileAsync(task.Id, "stdout", 0), c => c.Data.Length > 0, StateTimeout, "the task's output again",
                retryOn: e => e is Drover.Client.DroverApiException)).Data);
            await cluster.Client.KillTaskAsync(task.Id);
        });
    }
}
