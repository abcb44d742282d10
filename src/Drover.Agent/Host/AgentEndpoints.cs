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
        }).WithMetadata(RouteAccess.Master);
    }
}
