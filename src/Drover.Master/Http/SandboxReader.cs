using System.Globalization;
using System.Net;

namespace Drover.Master.Http;

/// <summary>
/// Reads task sandbox files from the agent that ran the task (<c>GET {agent}/agent/v1/tasks/{id}/files/{name}</c>).
/// With TLS the call is mutual TLS: the master presents its certificate and accepts only the agent's own
/// (<see cref="Security.Pki.AgentHttpClients"/>). Thread-safe.
/// </summary>
internal sealed class SandboxReader(Security.Pki.AgentHttpClients clients)
{
    public const int MaxChunk = 1 << 20;

    /// <summary>Bytes of the file from <paramref name="offset"/>, at most <paramref name="length"/>; null when the agent has no such file.</summary>
    public async Task<(byte[] Data, long Size)?> ReadAsync(string agentId, string agentAddress, string taskId, string file, long offset, int length, CancellationToken ct)
    {
        var http = clients.For(agentId);
        var url = string.Create(CultureInfo.InvariantCulture,
            $"{agentAddress.TrimEnd('/')}/agent/v1/tasks/{Uri.EscapeDataString(taskId)}/files/{file}?offset={offset}&length={length}");
        using var response = await http.GetAsync(url, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        var data = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        var size = response.Headers.TryGetValues(SizeHeader, out var values)
            && long.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : offset + data.Length;
        return (data, size);
    }

    public const string SizeHeader = "X-Drover-File-Size";
}
