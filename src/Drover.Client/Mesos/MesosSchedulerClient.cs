using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Drover.Core.Mesos;

namespace Drover.Client.Mesos;

/// <summary>A scheduler call the master did not accept (not 202): the HTTP status and the master's reason.</summary>
public sealed class MesosCallException(string call, int statusCode, string body)
    : Exception($"{call} was refused with HTTP {statusCode}: {body}")
{
    public int StatusCode { get; } = statusCode;

    public string Body { get; } = body;
}

/// <summary>
/// A framework's principal and secret for HTTP Basic authentication (Mesos' <c>--authenticate_http_frameworks</c>
/// with the basic authenticator; on Drover, a user or service account of the IAM store with a password).
/// <see cref="ToString"/> leaves the secret out, so logging a credential does not leak it.
/// </summary>
public sealed record MesosCredential(string Principal, string Secret)
{
    /// <summary>The <c>Authorization</c> header value: <c>Basic base64(principal:secret)</c>, UTF-8.</summary>
    public AuthenticationHeaderValue ToHeader() =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(Principal + ":" + Secret)));

    public override string ToString() => $"MesosCredential {{ Principal = {Principal} }}";
}

/// <summary>
/// A typed client for the Mesos v1 scheduler API (<c>POST /api/v1/scheduler</c>, JSON) of a Drover master, or
/// any Mesos master. <see cref="SubscribeAsync"/> opens the event stream on a connection of its own (as the Mesos
/// docs ask) and yields its events; the other calls go on separate connections and carry the framework id and
/// <c>Mesos-Stream-Id</c> of the current subscription. Calls are thread-safe; one subscription at a time.
/// With a <see cref="MesosCredential"/>, every request (the subscription and each call) carries it as HTTP Basic;
/// without one, none is sent (a dev cluster without logins, a Mesos master without framework authentication).
/// </summary>
public sealed class MesosSchedulerClient : IDisposable
{
    private readonly HttpClient _calls;
    private readonly Uri _endpoint;
    private readonly AuthenticationHeaderValue? _authorization;
    private readonly MasterTrust? _trust;

    /// <param name="trust">What to trust for an https:// master's certificate (its cluster CA); null: the machine's store.</param>
    public MesosSchedulerClient(Uri master, MesosCredential? credential = null, MasterTrust? trust = null)
    {
        ArgumentNullException.ThrowIfNull(master);
        _endpoint = new Uri(master, "/api/v1/scheduler");
        _authorization = credential?.ToHeader();
        _trust = trust;
        _calls = new HttpClient(MasterTls.CreateHandler(trust?.Roots, trust?.OnUntrusted)) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Assigned by the master on the first SUBSCRIBED; reused by later subscriptions (failover).</summary>
    public string? FrameworkId { get; private set; }

    public string? StreamId { get; private set; }

    /// <summary>
    /// Subscribes (or re-subscribes with <see cref="FrameworkId"/> once known) and yields every event, starting
    /// with SUBSCRIBED, until the stream ends or <paramref name="ct"/> is cancelled. HEARTBEATs are yielded too.
    /// </summary>
    public async IAsyncEnumerable<MEvent> SubscribeAsync(MFrameworkInfo info, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(info);
        var id = FrameworkId is { } known ? new MId(known) : info.Id;
        var call = new MCall { Type = "SUBSCRIBE", FrameworkId = id, Subscribe = new MSubscribe(info with { Id = id }, null) };
        using var http = new HttpClient(MasterTls.CreateHandler(_trust?.Roots, _trust?.OnUntrusted)) { Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = Json(call) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Headers.Authorization = _authorization;
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new MesosCallException("SUBSCRIBE", (int)response.StatusCode, await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        }

        StreamId = response.Headers.TryGetValues("Mesos-Stream-Id", out var ids) ? ids.FirstOrDefault() : null;
        var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await foreach (var record in RecordIo.ReadAsync(body, ct).ConfigureAwait(false))
        {
            var e = JsonSerializer.Deserialize(record, MesosSchedulerJsonContext.Default.MEvent)
                ?? throw new InvalidDataException("the master sent a null event");
            if (e.Type == "SUBSCRIBED" && e.Subscribed is { } s)
            {
                FrameworkId = s.FrameworkId.Value;
            }

            yield return e;
        }
    }

    public Task AcceptAsync(IReadOnlyList<MId> offerIds, IReadOnlyList<MOperation> operations, double? refuseSeconds = null, CancellationToken ct = default) =>
        CallAsync(new MCall { Type = "ACCEPT", Accept = new MAccept(offerIds, operations, refuseSeconds is { } r ? new MFilters(r) : null) }, ct);

    /// <summary>Launches command tasks on one offer (a LAUNCH operation).</summary>
    public Task LaunchAsync(MOffer offer, IReadOnlyList<MTaskInfo> tasks, double? refuseSeconds = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(offer);
        return AcceptAsync([offer.Id], [new MOperation { Type = "LAUNCH", Launch = new MLaunch(tasks) }], refuseSeconds, ct);
    }

    public Task DeclineAsync(IReadOnlyList<MId> offerIds, double? refuseSeconds = null, CancellationToken ct = default) =>
        CallAsync(new MCall { Type = "DECLINE", Decline = new MDecline(offerIds, refuseSeconds is { } r ? new MFilters(r) : null) }, ct);

    /// <summary>Acknowledges an update; updates without a uuid (reconciliation answers) need none, and are ignored.</summary>
    public Task AcknowledgeAsync(MTaskStatus status, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(status);
        return status.Uuid is null || status.AgentId is null
            ? Task.CompletedTask
            : CallAsync(new MCall { Type = "ACKNOWLEDGE", Acknowledge = new MAcknowledge(status.AgentId, status.TaskId, status.Uuid) }, ct);
    }

    public Task KillAsync(string taskId, CancellationToken ct = default) =>
        CallAsync(new MCall { Type = "KILL", Kill = new MKill(new MId(taskId), null, null) }, ct);

    /// <summary>Explicit reconciliation of <paramref name="taskIds"/>, or implicit (every live task) when empty.</summary>
    public Task ReconcileAsync(IReadOnlyList<string> taskIds, CancellationToken ct = default) =>
        CallAsync(new MCall { Type = "RECONCILE", Reconcile = new MReconcile([.. taskIds.Select(t => new MReconcileTask(new MId(t), null))]) }, ct);

    public Task ReviveAsync(CancellationToken ct = default) => CallAsync(new MCall { Type = "REVIVE" }, ct);

    public Task SuppressAsync(CancellationToken ct = default) => CallAsync(new MCall { Type = "SUPPRESS" }, ct);

    public Task MessageAsync(string agentId, string executorId, byte[] data, CancellationToken ct = default) =>
        CallAsync(new MCall { Type = "MESSAGE", Message = new MMessage(new MId(agentId), new MId(executorId), Convert.ToBase64String(data)) }, ct);

    public Task TeardownAsync(CancellationToken ct = default) => CallAsync(new MCall { Type = "TEARDOWN" }, ct);

    private async Task CallAsync(MCall call, CancellationToken ct)
    {
        if (FrameworkId is null || StreamId is null)
        {
            throw new InvalidOperationException($"{call.Type}: subscribe first (no framework id or stream id yet)");
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = Json(call with { FrameworkId = new MId(FrameworkId) }) };
        request.Headers.Add("Mesos-Stream-Id", StreamId);
        request.Headers.Authorization = _authorization;
        using var response = await _calls.SendAsync(request, ct).ConfigureAwait(false);
        if ((int)response.StatusCode != 202)
        {
            throw new MesosCallException(call.Type ?? "call", (int)response.StatusCode, await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        }
    }

    private static StringContent Json(MCall call) =>
        new(JsonSerializer.Serialize(call, MesosSchedulerJsonContext.Default.MCall), Encoding.UTF8, "application/json");

    public void Dispose() => _calls.Dispose();
}

/// <summary>Mesos' RecordIO framing: each record is its length in bytes (decimal), a newline, and the record.</summary>
public static class RecordIo
{
    /// <summary>The records of <paramref name="stream"/> until it ends. A truncated last record throws <see cref="EndOfStreamException"/>.</summary>
    public static async IAsyncEnumerable<byte[]> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var buffered = new BufferedStream(stream, 64 * 1024);
        var header = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            header.Clear();
            while (true)
            {
                if (await buffered.ReadAsync(one, ct).ConfigureAwait(false) == 0)
                {
                    if (header.Length > 0)
                    {
                        throw new EndOfStreamException("the stream ended inside a RecordIO length");
                    }

                    yield break;
                }

                if (one[0] == (byte)'\n')
                {
                    break;
                }

                header.Append((char)one[0]);
            }

            if (!int.TryParse(header.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length < 0)
            {
                throw new InvalidDataException($"'{header}' is not a RecordIO length");
            }

            var record = new byte[length];
            await buffered.ReadExactlyAsync(record, ct).ConfigureAwait(false);
            yield return record;
        }
    }
}
