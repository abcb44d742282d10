using System.Globalization;
using Drover.Agent.Execution;
using Drover.Core.Security.Pki;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Agent.Host;

/// <summary>
/// The agent's own HTTP endpoint. The master reads sandbox files through it:
/// <c>GET /agent/v1/tasks/{id}/files/{stdout|stderr}?offset=N&amp;length=M</c> returns raw bytes and
/// the file's size in <c>X-Drover-File-Size</c>. In <c>drover dev</c> these share the master's port.
/// With TLS (<paramref name="credentials"/> given to <see cref="Map"/>) the file routes answer only a caller
/// presenting a master's certificate of the cluster CA (<c>spiffe://drover/master/…</c>); anyone else gets a
/// 401 or 403. The executor API (<c>/api/v1/executor</c>) is not among these routes.
/// </summary>
public static class AgentEndpoints
{
    public const string SizeHeader = "X-Drover-File-Size";
    private const int MaxLength = 1 << 20;

    public static void Map(IEndpointRouteBuilder app, ITaskExecutor executor, Security.AgentCredentials? credentials = null)
    {
        app.MapGet("/agent/v1/health", () => Results.Text("ok\n"));
        var files = app.MapGroup("/agent/v1/tasks");
        if (credentials is not null)
        {
            files.AddEndpointFilter(async (context, next) =>
            {
                var http = context.HttpContext;
                var time = http.RequestServices.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System;
                var (identity, error) = PeerIdentity.Of(http.Connection.ClientCertificate, credentials.ClusterRoots, time.GetUtcNow());
                if (identity is null)
                {
                    return Results.Text($"this agent answers only its master (mutual TLS): {error}\n", statusCode: StatusCodes.Status401Unauthorized);
                }

                return identity.Kind == IdentityKind.Master
                    ? await next(context)
                    : Results.Text($"this agent answers only its master, not {identity.Uri}\n", statusCode: StatusCodes.Status403Forbidden);
            });
        }

        files.MapGet("/{id}/files/{name}", async (string id, string name, long? offset, int? length, HttpContext http) =>
        {
            if (name is not ("stdout" or "stderr"))
            {
                return Results.NotFound();
            }

            var sandbox = executor.SandboxPath(id);
            var path = sandbox is null ? null : Path.Combine(sandbox, name);
            if (path is null || !File.Exists(path))
            {
                return Results.NotFound();
            }

            await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.Asynchronous);
            var size = file.Length;
            var from = Math.Clamp(offset ?? 0, 0, size);
            var count = (int)Math.Min(Math.Clamp(length ?? MaxLength, 0, MaxLength), size - from);
            var buffer = new byte[count];
            file.Position = from;
            var read = await file.ReadAtLeastAsync(buffer, count, throwOnEndOfStream: false, http.RequestAborted);
            http.Response.Headers[SizeHeader] = size.ToString(CultureInfo.InvariantCulture);
            return Results.Bytes(buffer.AsMemory(0, read), "application/octet-stream");
        });
    }
}
