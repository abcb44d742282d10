using Drover.Master.Security;
using Drover.Core.Security;
using System.Text.Json;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Master.Secrets;
using Drover.Master.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Drover.Master.Http;

/// <summary>
/// The agent-facing protocol (see Drover.Core.Protocol.AgentProtocol for the sequence). With TLS every
/// call is mutual TLS and may only speak for the agent its certificate names: the <c>{id}</c> in the path
/// (the security gate checks it, <see cref="RouteAccess.Agent"/>), the <c>agentId</c> of a registration (checked here). What an agent reports is further
/// limited to its own tasks and executors by <see cref="ClusterState"/> (updates for a task placed
/// elsewhere change nothing and free nothing).
/// </summary>
internal static class AgentProtocolEndpoints
{
    /// <summary>With nothing to send, the stream carries a ping this often so both ends notice a dead connection.</summary>
    private static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(5);

    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public static void Map(IEndpointRouteBuilder app)
    {
        // Agents only, by their certificate; a route's {id} must be the certificate's agent id (the gate checks).
        var g = app.MapGroup("/internal/v1/agents").Access(RouteAccess.Agent);
        // Every answer names the cluster, so an agent of another cluster acts on none of it (a command stream above all).
        var clusterId = app.ServiceProvider.GetRequiredService<MasterOptions>().ClusterId;
        if (clusterId is not null)
        {
            g.AddEndpointFilter((context, next) =>
            {
                context.HttpContext.Response.Headers[AgentProtocolHeaders.ClusterId] = clusterId;
                return next(context);
            });
        }

        g.MapPost("/register", async (HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.AgentRegistration, ct);
            if (error is not null)
            {
                return error;
            }

            // An agent (by its certificate) registers only as itself: the id in the body, when given, must be the
            // certificate's, and is that when not. (Without TLS the caller is a dev cluster's anonymous one.)
            if (req.HttpContext.Caller() is { Kind: CallerKind.Agent } agent)
            {
                if (body!.AgentId is { } named && named != agent.Id)
                {
                    return ApiResults.Error(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, $"the certificate is agent '{agent.Id}''s; it cannot register as agent '{named}'");
                }

                body = body with { AgentId = agent.Id };
            }

            if (string.IsNullOrWhiteSpace(body!.Hostname) || string.IsNullOrWhiteSpace(body.Address))
            {
                return ApiResults.Validation([new FieldError("hostname", "hostname and address are required")]);
            }

            var (registered, durable) = state.Register(body);
            await durable;
            return ApiResults.Json(registered with { ClusterId = clusterId }, DroverJsonContext.Default.AgentRegistered);
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

            // Acknowledge only what is durable: an acknowledged update is never asked for again.
            var (acks, durable) = state.ApplyUpdates(id, body!);
            await durable;
            return ApiResults.Json(new StatusUpdateAck { Acknowledged = acks }, DroverJsonContext.Default.StatusUpdateAck);
        });

        g.MapPost("/{id}/messages", async (string id, HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.FrameworkMessage, ct);
            if (error is not null)
            {
                return error;
            }

            if (state.FindAgent(id) is null)
            {
                return ApiResults.NotFound($"agent '{id}' is not registered; register again");
            }

            state.ReceiveFrameworkMessage(id, body!);
            return Results.Accepted();
        });

        g.MapGet("/{id}/commands", async (string id, HttpContext http, ClusterState state, SecretStore secrets, IHostApplicationLifetime lifetime, TimeProvider time) =>
        {
            // A stream outlives neither the certificate it was opened with: the agent reconnects with its renewed one.
            var certificateExpires = http.Connection.ClientCertificate?.NotAfter.ToUniversalTime() is { } notAfter ? new DateTimeOffset(notAfter, TimeSpan.Zero) : DateTimeOffset.MaxValue;
            var agent = state.FindAgent(id);
            if (agent is null)
            {
                await ApiResults.NotFound($"agent '{id}' is not registered; register again").ExecuteAsync(http);
                return;
            }

            // Ends with the client, with a newer stream from the same agent, or when the master stops
            // (a long-lived request would otherwise hold up a graceful shutdown).
            using var stream = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
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
                // An agent removed and registered again under the same id has a new record, whose
                // commands (e.g. kills for the tasks that went with the removal) this stream would
                // never read: end it, and the agent reconnects to the new record at once.
                while (!ct.IsCancellationRequested && ReferenceEquals(state.FindAgent(id), agent) && time.GetUtcNow() < certificateExpires)
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(PingInterval);
                    PendingCommand? command = null;
                    try
                    {
                        if (await reader.WaitToReadAsync(wait.Token) && reader.TryRead(out var next))
                        {
                            command = next;
                        }
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                    }

                    if (command is not { } first)
                    {
                        await WriteAsync(body, new AgentCommand { Type = AgentCommandType.Ping }, ct);
                        continue;
                    }

                    await SendWhenDurableAsync(body, first, id, state, secrets, ct);

                    // Drain whatever else is queued (launch bursts).
                    while (reader.TryRead(out var more))
                    {
                        await SendWhenDurableAsync(body, more, id, state, secrets, ct);
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

    /// <summary>
    /// A command goes out only once the state change behind it is durable, so a master that crashes
    /// right after sending never finds, on restart, a task running that its records say was not placed;
    /// a command whose change could not be saved never goes out.
    /// A launch gets the values of its tasks' secrets here, on its way to this one agent (<see cref="LaunchSecrets"/>).
    /// </summary>
    private static async Task SendWhenDurableAsync(Stream body, PendingCommand command, string agentId, ClusterState state, SecretStore secrets, CancellationToken ct)
    {
        // A failed write (StateStoreUnavailableException, an IOException) ends this stream without sending: the
        // master stops on it (StoreFault), and the restarted one acts only on what its store holds.
        await command.Durable.WaitAsync(ct);

        if (LaunchSecrets.Resolve(command.Command, secrets, state, agentId) is not { } resolved)
        {
            return; // its tasks failed: a secret could not be resolved
        }

        try
        {
            await WriteAsync(body, resolved, ct);
        }
        finally
        {
            if (!ReferenceEquals(resolved, command.Command))
            {
                LaunchSecrets.Clear(resolved);
            }
        }
    }

    private static async Task WriteAsync(Stream body, AgentCommand command, CancellationToken ct)
    {
        await JsonSerializer.SerializeAsync(body, command, DroverJsonContext.Default.AgentCommand, ct);
        await body.WriteAsync(NewLine, ct);
        await body.FlushAsync(ct);
    }
}
