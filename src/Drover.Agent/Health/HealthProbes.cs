using System.ComponentModel;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Drover.Agent.Execution;
using Drover.Agent.Execution.Cgroups;
using Drover.Agent.Execution.Spawn;
using Drover.Core.Health;

namespace Drover.Agent.Health;

internal enum ProbeOutcome
{
    Healthy,
    Unhealthy,

    /// <summary>A 1xx answer with <see cref="HealthCheck.IgnoreHttp1xx"/>: the result is discarded.</summary>
    Ignored,
}

/// <summary>The result of one health check: the outcome and what was seen, in words (e.g. <c>HTTP 500</c>).</summary>
internal readonly record struct ProbeResult(ProbeOutcome Outcome, string Detail)
{
    public static ProbeResult Healthy(string detail) => new(ProbeOutcome.Healthy, detail);

    public static ProbeResult Unhealthy(string detail) => new(ProbeOutcome.Unhealthy, detail);
}

/// <summary>
/// Performs single HTTP(S), TCP and COMMAND health checks and HTTP(S) readiness checks against tasks on this
/// machine. Thread-safe; shared <see cref="HttpClient"/>s (no proxy, no cookies, certificates not verified,
/// redirects followed for health checks as Mesos' <c>curl -L -k</c>), a fresh connection per check.
/// </summary>
internal sealed class HealthProbes : IDisposable
{
    /// <summary>
    /// $1 = the command. Like the task shim: user text only ever travels as arguments. It waits on descriptor 3 until the
    /// agent has moved it into the task's cgroup (<c>go</c>); exit status 125 = it could not be. The check's stdout and
    /// stderr are appended to the task's sandbox <c>stderr</c>, as Mesos' checker sends them to the executor's stderr (no
    /// file of its own: a file created per task is a cost at launch rate, docs/benchmarks.md); it opens the file as the
    /// task's user, so a link the task put there gets it nothing it could not write itself.
    /// </summary>
    internal const string CommandShim = """
        exec </dev/null >>stderr 2>&1
        read -r go <&3 && [ "$go" = go ] || exit 125
        exec 3<&-
        eval "$1"
        """;

    private const string Shell = "/bin/sh";
    private static readonly TimeSpan ReapTimeout = TimeSpan.FromSeconds(10);

    private readonly TimeProvider _time;
    private readonly HttpClient _http;

    /// <summary>For readiness checks: redirects are answers, as in Marathon (whose readiness client does not follow them).</summary>
    private readonly HttpClient _readinessHttp;

    /// <param name="time">Clock for check timeouts.</param>
    public HealthProbes(TimeProvider time)
    {
        _time = time;
        _http = CreateClient(followRedirects: true);
        _readinessHttp = CreateClient(followRedirects: false);
    }

    /// <summary>
    /// Runs one check, bounded by its timeout (a timeout is a failure). Throws <see cref="OperationCanceledException"/>
    /// only when <paramref name="cancel"/> fires; a COMMAND check is killed either way.
    /// </summary>
    public async Task<ProbeResult> ProbeAsync(HealthCheckTarget target, HealthCheck check, int? port, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(check);
        using var timeout = new CancellationTokenSource(check.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, timeout.Token);
        try
        {
            return check.Protocol switch
            {
                HealthCheckProtocol.Http or HealthCheckProtocol.Https => await HttpAsync(check, port, linked.Token).ConfigureAwait(false),
                HealthCheckProtocol.Tcp => await TcpAsync(port, linked.Token).ConfigureAwait(false),
                HealthCheckProtocol.Command => await CommandAsync(target, check, linked.Token).ConfigureAwait(false),
                _ => ProbeResult.Unhealthy($"unknown health check protocol {check.Protocol}"),
            };
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancel.IsCancellationRequested)
        {
            var seconds = check.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            return ProbeResult.Unhealthy(check.Protocol switch
            {
                HealthCheckProtocol.Command => $"command did not exit within {seconds} s and was killed",
                HealthCheckProtocol.Tcp => $"TCP {Endpoint(port)}: no connection within {seconds} s",
                _ => $"GET {Url(check.Protocol, port, check.Path)}: no answer within {seconds} s",
            });
        }
    }

    /// <summary>Mesos and Marathon: 200–399 is healthy; Marathon's ignoreHttp1xx discards 1xx instead of failing.</summary>
    internal static ProbeResult ClassifyHttp(int statusCode, bool ignoreHttp1xx)
    {
        var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {statusCode}");
        return statusCode switch
        {
            >= 200 and < 400 => ProbeResult.Healthy(detail),
            >= 100 and < 200 when ignoreHttp1xx => new ProbeResult(ProbeOutcome.Ignored, detail),
            _ => ProbeResult.Unhealthy(detail),
        };
    }

    /// <summary>
    /// Runs one readiness check, bounded by its timeout: <see cref="ProbeOutcome.Healthy"/> means ready (the
    /// status code is one of <see cref="TaskReadinessCheck.HttpStatusCodesForReady"/>). Redirects are not
    /// followed, so a 3xx can itself mean ready. Throws <see cref="OperationCanceledException"/> only when
    /// <paramref name="cancel"/> fires.
    /// </summary>
    public async Task<ProbeResult> ReadinessAsync(TaskReadinessCheck check, int? port, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (port is null)
        {
            return ProbeResult.Unhealthy("the task has no port to check");
        }

        var url = Url(check.Protocol, port, check.Path);
        using var timeout = new CancellationTokenSource(check.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, timeout.Token);
        try
        {
            var status = await GetStatusAsync(_readinessHttp, url, linked.Token).ConfigureAwait(false);
            var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {status}");
            return check.IsReady(status) ? ProbeResult.Healthy(detail) : ProbeResult.Unhealthy(detail);
        }
        catch (HttpRequestException ex) when (!linked.IsCancellationRequested)
        {
            return ProbeResult.Unhealthy($"GET {url}: {Describe(ex)}");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancel.IsCancellationRequested)
        {
            return ProbeResult.Unhealthy(string.Create(CultureInfo.InvariantCulture, $"GET {url}: no answer within {check.Timeout.TotalSeconds:0.###} s"));
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        _readinessHttp.Dispose();
    }

    private static HttpClient CreateClient(bool followRedirects)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = followRedirects,
            MaxAutomaticRedirections = 10,
            AutomaticDecompression = DecompressionMethods.None,
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = AcceptAnyCertificate },
        };
        return new HttpClient(handler, disposeHandler: true) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    private static async Task<int> GetStatusAsync(HttpClient client, string url, CancellationToken cancel)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.ConnectionClose = true; // a new connection each time, as curl: a stuck listener must fail
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Drover-HealthCheck", "1"));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel).ConfigureAwait(false);
        return (int)response.StatusCode;
    }

    private async Task<ProbeResult> HttpAsync(HealthCheck check, int? port, CancellationToken cancel)
    {
        if (port is null)
        {
            return ProbeResult.Unhealthy("the task has no port to check");
        }

        var url = Url(check.Protocol, port, check.Path);
        try
        {
            return ClassifyHttp(await GetStatusAsync(_http, url, cancel).ConfigureAwait(false), check.IgnoreHttp1xx);
        }
        catch (HttpRequestException ex) when (!cancel.IsCancellationRequested)
        {
            return ProbeResult.Unhealthy($"GET {url}: {Describe(ex)}");
        }
    }

    private static async Task<ProbeResult> TcpAsync(int? target, CancellationToken cancel)
    {
        if (target is not { } port)
        {
            return ProbeResult.Unhealthy("the task has no port to check");
        }

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancel).ConfigureAwait(false);
            return ProbeResult.Healthy($"TCP {Endpoint(port)}: connected");
        }
        catch (SocketException ex)
        {
            return ProbeResult.Unhealthy($"TCP {Endpoint(port)}: {Describe(ex)}");
        }
    }

    private async Task<ProbeResult> CommandAsync(HealthCheckTarget target, HealthCheck check, CancellationToken cancel)
    {
        // Spawned and reaped outside System.Diagnostics.Process (see ChildProcess): a check runs
        // every interval for every task, and Process's per-child bookkeeping does not scale to that.
        ChildProcess process;
        var (wait, release) = Native.Pipe();
        try
        {
            var argv = BuildArgv(check);
            using var request = new SpawnRequest(argv[0], argv, target.Environment, target.WorkingDirectory, newSession: true, [(wait, 3)]);
            process = target.NamespacePid is not null || target.RunAs is not null
                ? NamespaceSpawner.Instance.SpawnAs(target.NamespacePid, target.RunAs, request)
                : request.Spawn();
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException or IOException)
        {
            Native.Close(release);
            return ProbeResult.Unhealthy($"the command could not start: {ex.Message}");
        }
        finally
        {
            Native.Close(wait);
        }

        var pid = process.Pid;
        Place(target, pid, release);
        int code;
        try
        {
            code = await process.Exited.WaitAsync(cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillCheck(pid);
            await ReapAsync(process).ConfigureAwait(false);
            throw;
        }

        // Whatever the check left running in its process group goes with it.
        Native.KillGroup(pid, Native.SigKill);

        var signal = code is > 128 and <= 128 + 64 ? code - 128 : 0;
        return code switch
        {
            0 => ProbeResult.Healthy("command exited with status 0"),
            _ when signal > 0 => ProbeResult.Unhealthy($"command terminated by signal {Native.SignalName(signal)}"),
            _ => ProbeResult.Unhealthy(string.Create(CultureInfo.InvariantCulture, $"command exited with status {code}")),
        };
    }

    /// <summary>
    /// <c>/bin/sh -c SHIM drover-health command</c>. It is spawned as the task's user with the task's privileges when it
    /// has one (<see cref="NamespaceSpawner.SpawnAs"/>: no setpriv process). No setsid step: the check is spawned in a new
    /// session (one exec fewer per check), so it leads its own process group and a timeout kills everything it started.
    /// The shim evaluates the command itself (no second shell).
    /// </summary>
    private static string[] BuildArgv(HealthCheck check) => [Shell, "-c", CommandShim, "drover-health", check.Command ?? ""];

    /// <summary>Moves the check into the task's cgroup(s), then lets it run; if it cannot be moved, it gives up (status 125).</summary>
    private static void Place(HealthCheckTarget target, int pid, int release)
    {
        try
        {
            var text = pid.ToString(CultureInfo.InvariantCulture);
            foreach (var procs in target.CgroupProcsFiles)
            {
                CgroupDriver.WriteFile(procs, text);
            }

            Native.Write(release, "go\n"u8);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not released: the check ends with status 125, reported as a failed check.
        }
        finally
        {
            Native.Close(release);
        }
    }

    /// <summary>SIGKILLs the check's process group (it leads one: it is spawned in a new session).</summary>
    private void KillCheck(int pid)
    {
        if (!Native.KillGroup(pid, Native.SigKill))
        {
            Native.Kill(pid, Native.SigKill);
        }
    }

    private async Task ReapAsync(ChildProcess process)
    {
        try
        {
            await process.Exited.WaitAsync(ReapTimeout, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Unkillable (D state): nothing more to do; the task's cgroup cleanup gets it eventually.
        }
    }

    private static string Url(HealthCheckProtocol protocol, int? port, string path) => string.Create(CultureInfo.InvariantCulture,
        $"{(protocol == HealthCheckProtocol.Https ? "https" : "http")}://127.0.0.1:{port}{path}");

    private static string Endpoint(int? port) => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{port}");

    private static string Describe(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.ConnectionReset => "connection reset",
                    SocketError.TimedOut => "connection timed out",
                    _ => socket.Message,
                };
            }
        }

        return ex.Message;
    }

    // As Mesos (curl -k): the check targets 127.0.0.1, which the task's certificate does not name, and
    // the point is whether the task answers, not who it is.
#pragma warning disable CA5359 // Do not disable certificate validation
    private static bool AcceptAnyCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) => true;
#pragma warning restore CA5359
}
