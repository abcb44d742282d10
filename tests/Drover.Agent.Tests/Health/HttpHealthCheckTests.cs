using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Drover.Agent.Tests.Execution;
using Drover.Core;
using Drover.Core.Health;
using static Drover.Agent.Tests.Health.HealthTestSupport;

namespace Drover.Agent.Tests.Health;

/// <summary>HTTP(S) health checks against real task processes (python3 http.server serving the sandbox).</summary>
public sealed class HttpHealthCheckTests : IAsyncLifetime
{
    private readonly ExecutorHarness _h = new("health-http");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task HttpCheck_ServerAnswers200_ReportsHealthyRunningUpdate()
    {
        // Failures while python starts fall in the grace period and are ignored.
        var check = Quick(HealthCheckProtocol.Http) with { GracePeriod = TimeSpan.FromSeconds(20) };
        var spec = _h.Launch(Checked(HttpServer, check), FreePort());

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.Equal(TaskState.Running, update.State);
        Assert.True(update.Healthy);
        Assert.Equal(TaskReasons.TaskHealthCheckStatusUpdated, update.Reason);
        Assert.Equal(TaskSources.Executor, update.Source);
        Assert.Equal("Health check passed: HTTP 200", update.Message);
        Assert.False(string.IsNullOrEmpty(update.Uuid));
        Assert.Equal([TaskState.Starting, TaskState.Running, TaskState.Running], _h.StatesFor(spec.Id));
    }

    [Fact]
    public async Task HttpCheck_PathTurns404AndBack_ReportsExactlyOneUpdatePerChange()
    {
        // python serves the sandbox: /ready answers 200 while the file exists and 404 once it is gone.
        var check = Quick(HealthCheckProtocol.Http) with { Path = "/ready", GracePeriod = TimeSpan.FromSeconds(20) };
        var spec = _h.Launch(Checked("touch ready; " + HttpServer, check), FreePort());
        var ready = Path.Combine(_h.WorkDir, "sandboxes", spec.Id, "ready");

        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id, 1)).Healthy);
        var checks = _h.Executor.Health.ChecksPerformed;
        await _h.WaitForChecksAsync(checks, 3);
        Assert.Single(_h.HealthUpdates(spec.Id));

        File.Delete(ready);
        var unhealthy = await _h.WaitForHealthUpdateAsync(spec.Id, 2);
        Assert.False(unhealthy.Healthy);
        Assert.Equal("Health check failed: HTTP 404", unhealthy.Message);
        Assert.Equal(TaskReasons.TaskHealthCheckStatusUpdated, unhealthy.Reason);
        checks = _h.Executor.Health.ChecksPerformed;
        await _h.WaitForChecksAsync(checks, 3);
        Assert.Equal(2, _h.HealthUpdates(spec.Id).Length);

        await File.WriteAllTextAsync(ready, "");
        Assert.True((await _h.WaitForHealthUpdateAsync(spec.Id, 3)).Healthy);
        checks = _h.Executor.Health.ChecksPerformed;
        await _h.WaitForChecksAsync(checks, 3);

        Assert.Equal([true, false, true], _h.HealthUpdates(spec.Id).Select(u => u.Healthy!.Value));
        Assert.Equal(TaskState.Running, _h.UpdatesFor(spec.Id)[^1].State);
    }

    [Fact]
    public async Task HttpCheck_NothingListening_ReportsConnectionRefused()
    {
        var spec = _h.Launch(Checked("sleep 1000", Quick(HealthCheckProtocol.Http)), FreePort());

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.False(update.Healthy);
        Assert.StartsWith("Health check failed: GET http://127.0.0.1:", update.Message, StringComparison.Ordinal);
        Assert.EndsWith("connection refused", update.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HttpsCheck_SelfSignedCertificate_ReportsHealthy()
    {
        var spec = Checked(
            """
            exec python3 -c '
            import http.server, os, ssl
            server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT0"])), http.server.SimpleHTTPRequestHandler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain("cert.pem", "key.pem")
            server.socket = context.wrap_socket(server.socket, server_side=True)
            server.serve_forever()'
            """,
            Quick(HealthCheckProtocol.Https) with { GracePeriod = TimeSpan.FromSeconds(20) });
        WriteSelfSignedCertificate(Path.Combine(_h.WorkDir, "sandboxes", spec.Id));
        _h.Launch(spec, FreePort());

        var update = await _h.WaitForHealthUpdateAsync(spec.Id);

        Assert.True(update.Healthy, update.Message);
        Assert.Equal("Health check passed: HTTP 200", update.Message);
    }

    [Theory]
    [InlineData(200, false, ProbeOutcomeName.Healthy)]
    [InlineData(302, false, ProbeOutcomeName.Healthy)]
    [InlineData(399, false, ProbeOutcomeName.Healthy)]
    [InlineData(400, false, ProbeOutcomeName.Unhealthy)]
    [InlineData(404, true, ProbeOutcomeName.Unhealthy)]
    [InlineData(500, false, ProbeOutcomeName.Unhealthy)]
    [InlineData(101, false, ProbeOutcomeName.Unhealthy)]
    [InlineData(101, true, ProbeOutcomeName.Ignored)]
    [InlineData(199, true, ProbeOutcomeName.Ignored)]
    public void ClassifyHttp_StatusCode_HealthyOnlyFrom200To399AndIgnores1xxWhenAsked(int status, bool ignore1xx, ProbeOutcomeName expected)
    {
        var result = Agent.Health.HealthProbes.ClassifyHttp(status, ignore1xx);

        Assert.Equal(expected.ToString(), result.Outcome.ToString());
        Assert.Equal($"HTTP {status}", result.Detail);
    }

    /// <summary>Mirror of the internal ProbeOutcome, so the theory's parameters can be public.</summary>
    public enum ProbeOutcomeName
    {
        Healthy,
        Unhealthy,
        Ignored,
    }

    private static void WriteSelfSignedCertificate(string directory)
    {
        Directory.CreateDirectory(directory);
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=some-service.example", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(Path.Combine(directory, "cert.pem"), cert.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, "key.pem"), key.ExportPkcs8PrivateKeyPem());
    }
}
