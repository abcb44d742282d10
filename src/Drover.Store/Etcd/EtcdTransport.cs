using System.Collections.Immutable;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging;

namespace Drover.Store.Etcd;

/// <summary>Whether a call may be sent again when its first attempt's outcome is unknown.</summary>
internal enum CallKind
{
    /// <summary>Reads, keep-alives, revokes: sending twice does no harm.</summary>
    Idempotent,

    /// <summary>Transactions: sent again only when etcd surely did not apply them.</summary>
    Mutation,
}

/// <summary>An error etcd answered with that is the caller's to handle (lease not found, invalid argument…).</summary>
internal sealed class EtcdServerException(int code, string message) : InvalidOperationException(message)
{
    public int Code { get; } = code;
}

/// <summary>gRPC status codes, as the gateway reports them in <c>{"code": N}</c>.</summary>
internal static class GrpcCode
{
    public const int Unknown = 2;
    public const int InvalidArgument = 3;
    public const int DeadlineExceeded = 4;
    public const int NotFound = 5;
    public const int ResourceExhausted = 8;
    public const int FailedPrecondition = 9;
    public const int OutOfRange = 11;
    public const int Unavailable = 14;
}

/// <summary>
/// HTTP to etcd's v3 JSON gateway with fail-over between endpoints. All calls go to one current
/// endpoint; a connection error moves every caller to the next one. A call is retried (on the next
/// endpoint, with backoff once all have failed) until <see cref="EtcdStoreOptions.RetryTimeout"/>
/// when sending it again is safe: always for <see cref="CallKind.Idempotent"/> calls; for mutations
/// only when etcd cannot have applied it (the connection was never made, the member had no leader,
/// etcd refused it before proposing). A mutation sent without an answer fails with
/// <see cref="StateStoreUnavailableException.OutcomeUnknown"/> set. With <see cref="EtcdStoreOptions.Tls"/>
/// a refused TLS handshake counts as not sent; once every endpoint has refused one, the call fails at
/// once, naming what TLS refused.
/// </summary>
internal sealed partial class EtcdTransport : IDisposable
{
    // The gateway forwards Grpc-Metadata-* headers as gRPC metadata. "hasleader" makes a member that
    // has lost its leader refuse calls at once ("no leader") and cancel our watches, instead of
    // serving stale data or hanging: the caller moves on to another member.
    private const string RequireLeaderHeader = "Grpc-Metadata-hasleader";

    private readonly ImmutableArray<Uri> _endpoints;
    private readonly HttpClient _http;
    private readonly EtcdStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RangeRequest _probe;
    private int _current;
    private int _probeBeforeWrite;

    public EtcdTransport(ImmutableArray<Uri> endpoints, byte[] probeKey, EtcdStoreOptions options, TimeProvider time, ILogger logger)
    {
        _endpoints = endpoints;
        _options = options;
        _time = time;
        _logger = logger;
        _probe = new RangeRequest { Key = probeKey, Limit = 1 };

        // Over TLS the first write is preceded by a read too: a certificate etcd refuses is then
        // found by a call that is safe to repeat, never by a write whose outcome would look unknown.
        _probeBeforeWrite = options.Tls is null ? 0 : 1;
        _http = new HttpClient(options.CreateHandler?.Invoke() ?? CreateDefaultHandler(options.Tls), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Add(RequireLeaderHeader, "true");
    }

    public ImmutableArray<Uri> Endpoints => _endpoints;

    /// <summary>Index of the endpoint calls go to now.</summary>
    public int Current => Volatile.Read(ref _current);

    public async Task<TResponse> CallAsync<TRequest, TResponse>(
        string path, TRequest body, JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CallKind kind, CancellationToken ct)
    {
        var started = _time.GetTimestamp();
        var failures = 0;
        var tlsFailures = 0;
        Exception? last = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (failures > 0)
            {
                await BackoffAsync(failures, started, last, ct).ConfigureAwait(false);
            }

            if (kind == CallKind.Mutation && Volatile.Read(ref _probeBeforeWrite) == 1)
            {
                // After a fail-over the new member may still follow a leader that is dead: a write
                // sent now would wait out etcd's request timeout and end with an unknown outcome. A
                // linearizable read goes through only once the member reaches a live leader, and it
                // is safe to repeat.
                await CallAsync(EtcdStateStore.RangePath, _probe, EtcdJsonContext.Default.RangeRequest, EtcdJsonContext.Default.RangeResponse, CallKind.Idempotent, ct)
                    .ConfigureAwait(false);
                Volatile.Write(ref _probeBeforeWrite, 0);
            }

            var index = Current;
            var endpoint = _endpoints[index];
            using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            try
            {
                using var content = Serialize(body, requestType);
                using var response = await _http.PostAsync(new Uri(endpoint, path), content, linked.Token).ConfigureAwait(false);
                var bytes = await response.Content.ReadAsByteArrayAsync(linked.Token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return JsonSerializer.Deserialize(bytes, responseType)
                        ?? throw new InvalidDataException($"etcd at {endpoint} answered {path} with an empty body");
                }

                var (code, message) = ParseError(bytes, (int)response.StatusCode);
                if (IsRefusedBeforeApplying(code, message) || (kind == CallKind.Idempotent && IsTransient(code)))
                {
                    LogRetry(endpoint, path, code, message);
                    last = new EtcdServerException(code, $"{endpoint}: {message}");
                    failures++;
                    MoveOn(index, last);
                    continue;
                }

                if (IsTransient(code))
                {
                    throw new StateStoreUnavailableException(
                        $"etcd at {endpoint} failed {path} with '{message}'; the write may or may not have been applied", outcomeUnknown: true);
                }

                throw new EtcdServerException(code, message);
            }
            catch (HttpRequestException e) when (DescribeTlsFailure(e) is { } refused)
            {
                // etcd processed nothing (see DescribeTlsFailure), so even a write may go again, to
                // another member. Every endpoint refusing TLS is a configuration fault, not an outage
                // that waiting cures: fail at once with the reason instead of retrying for RetryTimeout.
                last = e;
                failures++;
                MoveOn(index, e);
                if (++tlsFailures >= _endpoints.Length)
                {
                    throw new StateStoreUnavailableException(
                        $"TLS with etcd failed at {(_endpoints.Length == 1 ? "" : "every endpoint, last at ")}{endpoint}: {refused}", outcomeUnknown: false, e);
                }
            }
            catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConnectionError || e.InnerException is SocketException)
            {
                // No connection: nothing was sent.
                last = e;
                failures++;
                MoveOn(index, e);
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                if (kind == CallKind.Mutation)
                {
                    MoveOn(index, e);
                    throw new StateStoreUnavailableException(
                        $"no answer from etcd at {endpoint} to {path} ({Describe(e)}); the write may or may not have been applied", outcomeUnknown: true, e);
                }

                last = e;
                failures++;
                MoveOn(index, e);
            }
        }
    }

    /// <summary>Opens a streaming call (watch) on the current endpoint; the caller reads the NDJSON body.</summary>
    public async Task<(int Index, HttpResponseMessage Response)> OpenStreamAsync<TRequest>(string path, TRequest body, JsonTypeInfo<TRequest> requestType, CancellationToken ct)
    {
        var index = Current;
        var endpoint = _endpoints[index];
        using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, path)) { Content = Serialize(body, requestType) };
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                var (_, message) = ParseError(await response.Content.ReadAsByteArrayAsync(linked.Token).ConfigureAwait(false), (int)response.StatusCode);
                throw new HttpRequestException($"etcd at {endpoint} refused {path}: {message}");
            }
        }

        return (index, response);
    }

    /// <summary>
    /// The body as bytes with a Content-Length, so a small request goes out in one write. Over TLS 1.3
    /// etcd refuses a client certificate only after the client has sent its request: sent in several
    /// writes (chunked), a later write would meet the connection reset and hide etcd's alert.
    /// </summary>
    private static ByteArrayContent Serialize<TRequest>(TRequest body, JsonTypeInfo<TRequest> requestType)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, requestType));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>Moves calls off endpoint <paramref name="failed"/> (no-op when another caller already has).</summary>
    public void MoveOn(int failed, Exception? why)
    {
        if (_endpoints.Length == 1)
        {
            Volatile.Write(ref _probeBeforeWrite, 1);
            return;
        }

        var next = (failed + 1) % _endpoints.Length;
        if (Interlocked.CompareExchange(ref _current, next, failed) == failed)
        {
            Volatile.Write(ref _probeBeforeWrite, 1);
            LogFailover(_endpoints[failed], _endpoints[next], why is null ? "" : Describe(why));
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>A failure in a sentence: what TLS refused, when it was TLS; else the exception and its cause.</summary>
    internal string Describe(Exception e) => DescribeTlsFailure(e) ?? (e.InnerException is { } inner && inner.Message != e.Message
        ? $"{e.GetType().Name}: {e.Message} ({inner.Message})"
        : $"{e.GetType().Name}: {e.Message}");

    /// <summary>
    /// Why TLS with etcd failed, in a sentence that says what to fix; null when <paramref name="e"/> is
    /// not a TLS failure. Either way etcd processed nothing: the handshake failed before the request
    /// went out (we refused etcd's certificate, or etcd refused ours during a TLS 1.2 handshake), or
    /// etcd answered the handshake's end with an alert (TLS 1.3 reports a refused client certificate
    /// only after the client has finished its side and written the request, which etcd then drops
    /// unread).
    /// </summary>
    internal string? DescribeTlsFailure(Exception e)
    {
        if (_options.Tls is null || e is not HttpRequestException request)
        {
            return null;
        }

        var causes = Causes(e).ToList();

        // etcd's alert about our certificate: OpenSSL's text after the handshake (TLS 1.3, e.g.
        // "sslv3 alert bad certificate", "tlsv13 alert certificate required"), SslStream's during it
        // (TLS 1.2, "… sent a TLS alert: 'BadCertificate'").
        var alert = causes.Where(c => c is System.Security.Cryptography.CryptographicException or AuthenticationException)
            .Select(c => c.Message)
            .FirstOrDefault(m => m.Contains("alert", StringComparison.OrdinalIgnoreCase) && CertificateAlerts.Any(a => m.Contains(a, StringComparison.OrdinalIgnoreCase)));
        if (alert is not null)
        {
            return _options.Tls.ClientCertificate is { } mine
                ? $"etcd refused the TLS connection ({alert}): it does not accept our client certificate {mine.Subject} (issued by {mine.Issuer}); etcd's --trusted-ca-file must hold the CA that signed it"
                : $"etcd refused the TLS connection ({alert}): it asks for a client certificate (--client-cert-auth); give one signed by a CA in etcd's --trusted-ca-file (--store-cert, --store-key)";
        }

        if (causes.OfType<EtcdServerCertificateException>().FirstOrDefault() is { } refused)
        {
            return refused.Message;
        }

        // A handshake cut by a reset connection (a member killed mid-handshake) is a connection fault, not TLS's.
        return request.HttpRequestError == HttpRequestError.SecureConnectionError && !causes.Any(c => c is SocketException)
            ? $"the TLS handshake with etcd failed ({string.Join("; ", causes.Skip(1).Select(c => c.Message).Distinct())}); is this endpoint serving TLS?"
            : null;
    }

    private static readonly string[] CertificateAlerts = ["certificate", "unknown ca", "unknownca", "access denied", "accessdenied"];

    private static IEnumerable<Exception> Causes(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            yield return x;
        }
    }

    private async Task BackoffAsync(int failures, long started, Exception? last, CancellationToken ct)
    {
        // One quick pass over every endpoint, then exponential backoff (with jitter) up to MaxBackoff.
        var delay = failures < _endpoints.Length
            ? TimeSpan.Zero
            : TimeSpan.FromMilliseconds(Math.Min(_options.MaxBackoff.TotalMilliseconds, 25 * Math.Pow(2, Math.Min(10, failures - _endpoints.Length))) * (0.5 + (Random.Shared.NextDouble() / 2)));
        if (_time.GetElapsedTime(started) + delay > _options.RetryTimeout)
        {
            throw new StateStoreUnavailableException(
                $"etcd did not answer within {_options.RetryTimeout.TotalSeconds:0.#} s (endpoints {string.Join(", ", _endpoints.Select(e => e.Authority))})"
                + (last is null ? "" : $"; last error: {Describe(last)}"),
                outcomeUnknown: false,
                last);
        }

        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Errors etcd returns before it proposes anything: safe to send again elsewhere.</summary>
    private static bool IsRefusedBeforeApplying(int code, string message) =>
        code == GrpcCode.ResourceExhausted // too many requests
        || (code == GrpcCode.Unavailable && (message.Contains("no leader", StringComparison.Ordinal) || message.Contains("unhealthy cluster", StringComparison.Ordinal)))
        || message.Contains("proposal dropped", StringComparison.Ordinal);

    /// <summary>Errors that say nothing about the request itself: retry a read, report a write as unknown.</summary>
    private static bool IsTransient(int code) => code is GrpcCode.Unavailable or GrpcCode.DeadlineExceeded or GrpcCode.Unknown or >= 500;

    private static (int Code, string Message) ParseError(byte[] body, int httpStatus)
    {
        try
        {
            var error = JsonSerializer.Deserialize(body, EtcdJsonContext.Default.EtcdErrorBody);
            if (error is not null && (error.Message ?? error.Error) is { Length: > 0 } message)
            {
                return (error.Code, message);
            }
        }
        catch (JsonException)
        {
            // not the gateway's error shape (a proxy, a crashing member): fall through
        }

        // Without a gRPC status, map the HTTP status to one that is retried (5xx) or not.
        var text = System.Text.Encoding.UTF8.GetString(body).Trim();
        return (httpStatus >= 500 ? httpStatus : GrpcCode.FailedPrecondition, $"HTTP {httpStatus}{(text.Length > 0 ? ": " + text : "")}");
    }

    private static SocketsHttpHandler CreateDefaultHandler(EtcdTlsOptions? tls) => new()
    {
        SslOptions = tls?.CreateSslOptions() ?? new SslClientAuthenticationOptions(),
        UseProxy = false, // etcd members are addressed directly; a proxy would hide which one failed
        ConnectTimeout = TimeSpan.FromSeconds(3),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        ConnectCallback = async (context, ct) =>
        {
            // TCP keep-alive so a member that vanished (host down, cable cut) breaks our idle watch
            // streams within seconds instead of the kernel's two hours.
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 5);
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 1);
                socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 5);
                await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "etcd at {Failed} failed ({Reason}); moving to {Next}")]
    private partial void LogFailover(Uri failed, Uri next, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "etcd at {Endpoint} refused {Path} (code {Code}: {Message}); retrying")]
    private partial void LogRetry(Uri endpoint, string path, int code, string message);
}
