using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Master.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Http;

/// <summary>The agent-facing protocol (see Drover.Core.Protocol.AgentProtocol for the sequence).</summary>
internal static class AgentProtocolEndpoints
{
    /// <summary>With nothing to send, the stream carries a ping this often so both ends notice a dead connection.</summary>
    private static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(5);

    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public static void Map(IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/internal/v1/agents");

        g.MapPost("/register", async (HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.AgentRegistration, ct);
            if (error is not null)
            {
                return error;
            }

            if (string.IsNullOrWhiteSpace(body!.Hostname) || string.IsNullOrWhiteSpace(body.Address))
            {
                return ApiResults.Validation([new FieldError("hostname", "hostname and address are required")]);
            }

            return ApiResults.Json(state.Register(body), DroverJsonContext.Default.AgentRegistered);
        });

        g.MapPost("/{id}/heartbeat", async (string id, HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.AgentHeartbeat, ct);
            if (error is not null)
            {
                return error;
            }

            return state.Heartbeat(id, body!) ? Results.Ok() : ApiResults.NotFound($"agent '{id}' is not registered; register again");
        });

        g.MapPost("/{id}/updates", async (string id, HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.StatusUpdateBatch, ct);
            if (error is not null)
            {
                return error;
            }

            if (state.FindAgent(id) is null)
            {
                return ApiResults.NotFound($"agent '{id}' is not registered; register again");
            }

            var acks = state.ApplyUpdates(id, body!);
            return ApiResults.Json(new StatusUpdateAck { Acknowledged = acks }, DroverJsonContext.Default.StatusUpdateAck);
        });

        g.MapGet("/{id}/commands", async (string id, HttpContext http, ClusterState state, TimeProvider time) =>
        {
            var agent = state.FindAgent(id);
            if (agent is null)
            {
                await ApiResults.NotFound($"agent '{id}' is not registered; register again").ExecuteAsync(http);
                return;
            }

            using var stream = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            Interlocked.Exchange(ref agent.CurrentStream, stream)?.Cancel();
            var ct = stream.Token;
            http.Response.ContentType = "application/x-ndjson";
            http.Response.Headers.CacheControl = "no-store";
            var body = http.Response.Body;
            var reader = agent.Commands.Reader;
            try
            {
                await http.Response.StartAsync(ct);
                await WriteAsync(body, new AgentCommand { Type = AgentCommandType.Ping }, ct);
                while (!ct.IsCancellationRequested)
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(PingInterval);
                    AgentCommand? command = null;
                    try
                    {
                        if (await reader.WaitToReadAsync(wait.Token))
                        {
                            reader.TryRead(out command);
                        }
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                    }

                    await WriteAsync(body, command ?? new AgentCommand { Type = AgentCommandType.Ping }, ct);

                    // Drain whatever else is queued before flushing once more (launch bursts).
                    while (reader.TryRead(out var more))
                    {
                        await WriteAsync(body, more, ct);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (IOException)
            {
            }
            finally
            {
                Interlocked.CompareExchange(ref agent.CurrentStream, null, stream);
            }
        });
    }

    private static async Task WriteAsync(Stream body, AgentCommand command, CancellationToken ct)
    {
        await JsonSerializer.SerializeAsync(body, command, DroverJsonContext.Default.AgentCommand, ct);
        await body.WriteAsync(NewLine, ct);
        await body.FlushAsync(ct);
    }
}
