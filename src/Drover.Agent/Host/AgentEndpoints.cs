using System.Globalization;
using Drover.Agent.Execution;
using Drover.Core.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Agent.Host;

/// <summary>
/// The agent's own HTTP endpoint. The master reads sandbox files through it:
/// <c>GET /agent/v1/tasks/{id}/files/{stdout|stderr}?offset=N&amp;length=M</c> returns raw bytes and
/// the file's size in <c>X-Drover-File-Size</c>. In <c>drover dev</c> these share the master's port.
/// </summary>
/// <remarks>
/// The sandbox belongs to the task, which may have replaced its <c>stdout</c> with a link to any file the agent (root)
/// can read. So the file is opened beneath the sandbox without following any link (<c>openat2</c>, see
/// <see cref="Native.OpenBeneath"/>), and only a regular file is served: a link, a FIFO or a device is answered 404.
/// </remarks>
public static class AgentEndpoints
{
    public const string SizeHeader = "X-Drover-File-Size";
    private const int MaxLength = 1 << 20;

    public static void Map(IEndpointRouteBuilder app, ITaskExecutor executor)
    {
        app.MapGet("/agent/v1/health", () => Results.Text("ok\n")).WithMetadata(RouteAccess.Anonymous);
        // Sandbox files: the master only (by its certificate), which checked the user's permission first.
        app.MapGet("/agent/v1/tasks/{id}/files/{name}", async (string id, string name, long? offset, int? length, HttpContext http) =>
        {
            if (name is not ("stdout" or "stderr"))
            {
                return Results.NotFound();
            }

            using var file = executor.SandboxPath(id) is { } sandbox ? Native.OpenBeneath(sandbox, name) : null;
            if (file is null)
            {
                return Results.NotFound();
            }

            var size = RandomAccess.GetLength(file);
            var from = Math.Clamp(offset ?? 0, 0, size);
            var count = (int)Math.Min(Math.Clamp(length ?? MaxLength, 0, MaxLength), size - from);
            var buffer = new byte[count];
            var read = 0;
            while (read < count)
            {
                var n = await RandomAccess.ReadAsync(file, buffer.AsMemory(read), from + read, http.RequestAborted);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            http.Response.Headers[SizeHeader] = size.ToString(CultureInfo.InvariantCulture);
            return Results.Bytes(buffer.AsMemory(0, read), "application/octet-stream");
        }).WithMetadata(RouteAccess.Master);
    }
}
