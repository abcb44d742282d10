using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Drover.Agent.Security;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;
using Drover.Master.Security.Pki;
using Drover.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Security.Pki;

/// <summary>
/// A master serving HTTPS and an agent that joined with a token, in this process (<see cref="InProcessCluster"/>
/// with <c>tls: true</c>); real tasks in cgroups. The multi-host tests do the same with separate processes in
/// network namespaces (tests/Drover.Integration.Tests/FaultInjection/AgentIdentityTests.cs).
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class TlsClusterTests
{
    [Fact]
    public async Task Join_WithAToken_AgentRunsTasksAndTheMasterReadsTheirOutputOverMutualTls()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(tls: true);
        var agent = await cluster.AddAgentAsync("tls-1");

        Assert.Equal(Uri.UriSchemeHttps, cluster.Master.Url.Scheme);
        var view = Assert.Single(await cluster.Client.ListAgentsAsync());
        Assert.Equal(agent.Agent!.AgentId, view.Id);
        Assert.StartsWith("https://", view.Address, StringComparison.Ordinal);
        var task = await cluster.Client.SubmitTaskAsync(new TaskSubmission { Name = "hello", Cmd = "echo over-mtls", Mem = JsonSerializer.SerializeToElement(16) });
        await Wait.UntilAsync(() => cluster.Client.GetTaskAsync(task.Id), t => t.State == TaskState.Finished, TimeSpan.FromSeconds(30), "the task to finish");
        Assert.Equal("over-mtls\n", (await cluster.Client.ReadFileAsync(task.Id, "stdout", 0)).Data);
    }

    [Fact]
    public async Task AgentEndpoint_AnswersOnlyTheMastersCertificate_AndPlainHttpOnlyForExecutors()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(tls: true);
        var agent = await cluster.AddAgentAsync("tls-2");
        var agentUrl = new Uri((await cluster.Client.ListAgentsAsync()).Single().Address);
        var files = new Uri(agentUrl, "agent/v1/tasks/x/files/stdout");
        var roots = cluster.CaRoots!;

        // TLS without a certificate, and TLS with the agent's own (not a master's): refused.
        using (var anonymous = new HttpClient(Agent(roots, null)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(files)).StatusCode);
        }

        using var own = AgentCredentials.Load(Path.Combine(cluster.Root, "tls-2"), TimeProvider.System)!;
        using (var asAgent = new HttpClient(Agent(roots, own.Certificate)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await asAgent.GetAsync(files)).StatusCode);
        }

        // The master's certificate gets in (a 404: there is no task x).
        var master = cluster.Master.Services.GetRequiredService<MasterCredentials>();
        using (var asMaster = new HttpClient(Agent(roots, master.ClientCertificate)))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await asMaster.GetAsync(files)).StatusCode);
        }

        // Plain HTTP on the same port: the file routes are HTTPS only; the executor API answers (and asks for its token).
        var plain = new UriBuilder(agentUrl) { Scheme = "http" }.Uri;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        Assert.Equal(HttpStatusCode.Forbidden, (await http.GetAsync(new Uri(plain, "agent/v1/tasks/x/files/stdout"))).StatusCode);
        using var executorCall = await http.PostAsync(new Uri(plain, "api/v1/executor"), new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, executorCall.StatusCode);
        Assert.Contains(executorCall.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
    }

    [Fact]
    public async Task Renewal_ForTheCallersOwnId_IssuesANewCertificateForThatIdOnly()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(tls: true);
        await cluster.AddAgentAsync("tls-3");
        using var credentials = AgentCredentials.Load(Path.Combine(cluster.Root, "tls-3"), TimeProvider.System)!;
        var before = credentials.Certificate.SerialNumber;

        await credentials.RenewAsync(cluster.Master.Url, CancellationToken.None);

        Assert.NotEqual(before, credentials.Certificate.SerialNumber);
        Assert.Equal(SpiffeId.Agent(credentials.AgentId), SpiffeId.FromCertificate(credentials.Certificate));
        using var reloaded = AgentCredentials.Load(Path.Combine(cluster.Root, "tls-3"), TimeProvider.System)!;
        Assert.Equal(credentials.Certificate.SerialNumber, reloaded.Certificate.SerialNumber);
        Assert.True(reloaded.Certificate.HasPrivateKey);

        // A CSR with a weak key is refused, naming the field.
        using var rsa = System.Security.Cryptography.RSA.Create(1024);
        var weak = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=x", rsa, System.Security.Cryptography.HashAlgorithmName.SHA256,
            System.Security.Cryptography.RSASignaturePadding.Pkcs1).CreateSigningRequestPem();
        using var refused = await credentials.Client.PostAsJsonAsync(new Uri(cluster.Master.Url, $"internal/v1/agents/{credentials.AgentId}/certificate"),
            new CertificateRenewal { Csr = weak }, DroverJsonContext.Default.CertificateRenewal);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var error = await refused.Content.ReadFromJsonAsync(DroverJsonContext.Default.ApiError);
        Assert.Equal("csr", Assert.Single(error!.Details).Field);
    }

    [Fact]
    public async Task Join_TokenForAnotherCa_AgentRefusesBeforeSendingIt()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync(tls: true);
        var good = JoinToken.Parse(await cluster.CreateJoinTokenAsync()).Token!;
        var elsewhere = good with { CaHash = "sha256:" + new string('1', 64) };
        var dir = Path.Combine(cluster.Root, "not-joined");

        var refused = await Assert.ThrowsAsync<JoinRefusedException>(() => AgentCredentials.JoinAsync([cluster.Master.Url], elsewhere.Text, dir, "x",
            TimeProvider.System, NullLogger.Instance, CancellationToken.None));

        Assert.Contains("refusing to send the token", refused.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "tls")));
    }

    private static SocketsHttpHandler Agent(System.Security.Cryptography.X509Certificates.X509Certificate2Collection roots, System.Security.Cryptography.X509Certificates.X509Certificate2? client)
    {
        // The agent's certificate names no host: trust the chain and check the identity is an agent's, as the master does.
        var handler = new SocketsHttpHandler { UseProxy = false };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 c
            && CertificateVerifier.VerifyIdentity(c, roots, DateTimeOffset.UtcNow, CertificateUse.Server).Identity is { Kind: IdentityKind.Agent };
        if (client is not null)
        {
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => client;
        }

        return handler;
    }
}
