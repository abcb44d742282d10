using Drover.Master.Security;
using Drover.Core.Security;
using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Master.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Drover.Master.Http;

/// <summary>
/// Drover's own API for one-off tasks and nodes, used by the CLI:
/// <code>
/// POST   /drover/v1/tasks                        submit (TaskSubmission → 201 TaskView)
/// GET    /drover/v1/tasks[?state=TASK_RUNNING]   list
/// GET    /drover/v1/tasks/{id}                   one task, with why it waits
/// POST   /drover/v1/tasks/{id}/kill              kill (202); DELETE /drover/v1/tasks/{id} does the same
/// GET    /drover/v1/tasks/{id}/logs?stream=stdout|stderr&amp;offset=N[&amp;follow=true]   raw bytes
/// GET    /drover/v1/tasks/{id}/files/read?path=stdout&amp;offset=N&amp;length=M           Mesos-style JSON chunk
/// GET    /drover/v1/agents, /drover/v1/agents/{id}
/// POST   /drover/v1/agents/{id}/drain            [{"deadlineSeconds": N}] → 200 AgentView; default 1 h
/// POST   /drover/v1/agents/{id}/undrain          → 200 AgentView
/// </code>
/// </summary>
internal static class DroverApiEndpoints
{
    private static readonly TimeSpan FollowPoll = TimeSpan.FromMilliseconds(150);

    /// <summary>Tasks on a page of <c>GET /drover/v1/tasks</c> given <c>after</c> without <c>limit</c>.</summary>
    internal const int DefaultTaskPage = 500;

    /// <summary>The largest <c>limit</c> of <c>GET /drover/v1/tasks</c>.</summary>
    internal const int MaxTaskPage = 5000;

    public static void Map(IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/drover/v1");
        // Tasks: the drover:tasks action at the gate; an app's instance also needs the app's permission, a
        // framework's task Mesos operator access, another's one-off task drover:admin:tasks, a named user the
        // run-as permission (TaskAccess, in the handlers).
        var readTasks = RouteAccess.PermissionThenObjects(Rids.Tasks, PermissionAction.Read);

        g.MapPost("/tasks", async (HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var http = req.HttpContext;
            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.TaskSubmission, ct);
            if (error is not null)
            {
                return error;
            }

            var (validated, errors) = TaskSubmissionValidator.Validate(body!);
            if (validated is null)
            {
                return ApiResults.Validation(errors);
            }

            // The task is the caller's (TaskAccess): recorded in its spec, so it survives restarts.
            var spec = validated with { Owner = http.Caller().Id };

            if (TaskAccess.CheckSubmit(http, spec) is { } denied)
            {
                return denied;
            }

            var (view, durable) = state.Submit(spec);
            await durable; // answer only once the task survives a master crash
            return Results.Json(view, DroverJsonContext.Default.TaskView, statusCode: StatusCodes.Status201Created);
        }).Access(RouteAccess.PermissionThenObjects(Rids.Tasks, PermissionAction.Create));

        g.MapGet("/tasks", (string? state, int? limit, string? after, HttpContext http, ClusterState cluster) =>
        {
            if (limit is { } l && l is < 1 or > MaxTaskPage)
            {
                return ApiResults.Validation([new FieldError("limit", $"must be between 1 and {MaxTaskPage}")]);
            }

            TaskState? filter = null;
            if (state is not null)
            {
                if (!TaskStates.TryParse(state, out var parsed))
                {
                    return ApiResults.Validation([new FieldError("state", $"'{state}' is not a task state (e.g. TASK_RUNNING)")]);
                }

                filter = parsed;
            }

            var visible = TaskAccess.Visible(http, cluster.ListTasks(filter));
            if (limit is null && after is null)
            {
                // No paging asked for: the whole list, as before paging existed, streamed task by task.
                return StreamedJson.Of("tasks", visible, DroverJsonContext.Default.TaskView);
            }

            // A page: tasks in order of id after the cursor, so no task shows on two pages, and every task that exists throughout the walk shows on one.
            var page = visible.Where(t => after is null || string.CompareOrdinal(t.Id, after) > 0)
                .OrderBy(t => t.Id, StringComparer.Ordinal)
                .Take((limit ?? DefaultTaskPage) + 1)
                .ToList();
            var more = page.Count > (limit ?? DefaultTaskPage);
            if (more)
            {
                page.RemoveAt(page.Count - 1);
            }

            return ApiResults.Json(new TaskList { Tasks = [.. page], Next = more ? page[^1].Id : null }, DroverJsonContext.Default.TaskList);
        }).Access(readTasks);

        g.MapGet("/tasks/{id}", (string id, HttpContext http, ClusterState state) =>
            state.GetTask(id) is not { } view ? ApiResults.NotFound($"no task with id '{id}'")
            : TaskAccess.Check(http, view, TaskOperation.Read) ?? ApiResults.Json(view, DroverJsonContext.Default.TaskView))
            .Access(readTasks);

        var killTasks = RouteAccess.PermissionThenObjects(Rids.Tasks, PermissionAction.Delete);
        g.MapPost("/tasks/{id}/kill", (string id, HttpContext http, ClusterState state) => KillTask(http, id, state)).Access(killTasks);
        g.MapDelete("/tasks/{id}", (string id, HttpContext http, ClusterState state) => KillTask(http, id, state)).Access(killTasks);

        g.MapGet("/tasks/{id}/files/read", async (string id, string? path, long? offset, int? length, HttpContext http, ClusterState state, SandboxReader reader, CancellationToken ct) =>
        {
            var file = path ?? "stdout";
            if (ValidateFileQuery(file, offset ?? 0, length) is { } bad)
            {
                return bad;
            }

            if (state.GetTask(id) is not { } task)
            {
                return ApiResults.NotFound($"no task with id '{id}'");
            }

            if (TaskAccess.Check(http, task, TaskOperation.Sandbox) is { } denied)
            {
                return denied;
            }

            if (state.AgentOfTask(id) is not { } agent)
            {
                return ApiResults.Error(StatusCodes.Status409Conflict, ErrorCodes.Conflict, $"task '{id}' has not been placed on an agent yet");
            }

            try
            {
                var chunk = await reader.ReadAsync(agent.AgentId, agent.Address, id, file, offset ?? 0, length ?? SandboxReader.MaxChunk, ct);
                return chunk is { } c
                    ? ApiResults.Json(new FileChunk { Data = System.Text.Encoding.UTF8.GetString(c.Data), Offset = offset ?? 0, Size = c.Size }, DroverJsonContext.Default.FileChunk)
                    : ApiResults.NotFound($"task '{id}' has no file '{file}' on agent {agent.AgentId}");
            }
            catch (HttpRequestException e)
            {
                return ApiResults.Error(StatusCodes.Status502BadGateway, ErrorCodes.AgentUnreachable, $"agent {agent.AgentId} at {agent.Address} did not answer: {e.Message}");
            }
        }).Access(readTasks);

        g.MapGet("/tasks/{id}/logs", async (string id, string? stream, long? offset, bool? follow, HttpContext http, ClusterState state, SandboxReader reader) =>
        {
            var file = stream ?? "stdout";
            if (ValidateFileQuery(file, offset ?? 0, null) is { } bad)
            {
                await bad.ExecuteAsync(http);
                return;
            }

            if (state.GetTask(id) is not { } task)
            {
                await ApiResults.NotFound($"no task with id '{id}'").ExecuteAsync(http);
                return;
            }

            if (TaskAccess.Check(http, task, TaskOperation.Sandbox) is { } denied)
            {
                await denied.ExecuteAsync(http);
                return;
            }

            await StreamLogsAsync(http, id, file, offset ?? 0, follow ?? false, state, reader);
        }).Access(readTasks);

        var readAgents = RouteAccess.Permission(Rids.MesosOps, PermissionAction.Read);
        g.MapGet("/agents", (ClusterState state) => ApiResults.Json(new AgentList { Agents = state.ListAgents() }, DroverJsonContext.Default.AgentList))
            .Access(readAgents);

        g.MapGet("/agents/{id}", (string id, ClusterState state) =>
            state.GetAgent(id) is { } a ? ApiResults.Json(a, DroverJsonContext.Default.AgentView) : ApiResults.NotFound($"no agent with id '{id}'"))
            .Access(readAgents);

        g.MapPost("/agents/{id}/drain", async (string id, HttpRequest req, ClusterState state, CancellationToken ct) =>
        {
            var seconds = DrainRequest.DefaultDeadlineSeconds;
            if (HasBody(req))
            {
                var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.DrainRequest, ct);
                if (error is not null)
                {
                    return error;
                }

                seconds = body!.DeadlineSeconds ?? seconds;
                if (!double.IsFinite(seconds) || seconds is < 0 or > DrainRequest.MaxDeadlineSeconds)
                {
                    return ApiResults.Validation([new FieldError("deadlineSeconds", $"must be between 0 and {DrainRequest.MaxDeadlineSeconds:0} (seconds)")]);
                }
            }

            return await AgentChange(id, state.Drain(id, TimeSpan.FromSeconds(seconds)), "drained");
        }).Access(RouteAccess.Permission(Rids.Agents, PermissionAction.Delete)).MaxBody(64 * 1024);

        g.MapPost("/agents/{id}/undrain", (string id, ClusterState state) => AgentChange(id, state.Undrain(id), "undrained"))
            .Access(RouteAccess.Permission(Rids.Agents, PermissionAction.Update));
    }

    /// <summary>A drain body is optional: no body (or an empty one) means the defaults.</summary>
    internal static bool HasBody(HttpRequest req) =>
        req.ContentLength is > 0 || (req.ContentLength is null && req.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);

    private static async Task<IResult> AgentChange(string id, (AgentChangeResult Result, AgentView? View, Task Durable) change, string verb)
    {
        switch (change.Result)
        {
            case AgentChangeResult.NotFound:
                return ApiResults.NotFound($"no agent with id '{id}'");
            case AgentChangeResult.Removed:
                return ApiResults.Error(StatusCodes.Status409Conflict, ErrorCodes.Conflict, $"agent '{id}' was removed (unreachable too long) and cannot be {verb}");
            default:
                await change.Durable; // answer only once the change survives a master crash
                return ApiResults.Json(change.View!, DroverJsonContext.Default.AgentView);
        }
    }

    private static async Task<IResult> KillTask(HttpContext http, string id, ClusterState state)
    {
        if (state.GetTask(id) is { } task && TaskAccess.Check(http, task, TaskOperation.Kill) is { } denied)
        {
            return denied;
        }

        var (result, durable) = state.Kill(id);
        if (result == KillResult.NotFound)
        {
            return ApiResults.NotFound($"no task with id '{id}'");
        }

        await durable;
        return ApiResults.Json(state.GetTask(id)!, DroverJsonContext.Default.TaskView, StatusCodes.Status202Accepted);
    }

    private static IResult? ValidateFileQuery(string file, long offset, int? length)
    {
        if (file is not ("stdout" or "stderr"))
        {
            return ApiResults.Validation([new FieldError("stream", "must be 'stdout' or 'stderr'")]);
        }

        if (offset < 0)
        {
            return ApiResults.Validation([new FieldError("offset", "must not be negative")]);
        }

        if (length is < 0 or > SandboxReader.MaxChunk)
        {
            return ApiResults.Validation([new FieldError("length", $"must be between 0 and {SandboxReader.MaxChunk}")]);
        }

        return null;
    }

    /// <summary>
    /// Copies a sandbox file to the response from <paramref name="offset"/>. When following, keeps
    /// polling the agent until the task has ended and a read after that returns nothing more, so the
    /// last lines a task wrote are never cut off — or until the caller's login ends (<see cref="CredentialLease"/>:
    /// the token expired, the account's credentials changed or it was removed), checked before every write.
    /// </summary>
    private static async Task StreamLogsAsync(HttpContext http, string id, string file, long offset, bool follow, ClusterState state, SandboxReader reader)
    {
        var lifetime = (Microsoft.Extensions.Hosting.IHostApplicationLifetime)http.RequestServices.GetService(typeof(Microsoft.Extensions.Hosting.IHostApplicationLifetime))!;
        using var lease = CredentialLease.For(http);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping, lease.Expired);
        var ct = linked.Token; // followers end when the master stops, so shutdown is not held up
        var time = http.RequestServices.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System;
        http.Response.ContentType = "text/plain; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        var started = false;
        var cursor = new LogCursor(offset, follow);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var endedBeforeRead = state.GetTask(id)?.State.IsTerminal() ?? true;
                var agent = state.AgentOfTask(id);
                (byte[] Data, long Size)? chunk = null;
                if (agent is { } a)
                {
                    try
                    {
                        chunk = await reader.ReadAsync(a.AgentId, a.Address, id, file, cursor.Offset, cursor.NextLength, ct);
                    }
                    catch (HttpRequestException e) when (!started)
                    {
                        await ApiResults.Error(StatusCodes.Status502BadGateway, ErrorCodes.AgentUnreachable,
                            $"agent {a.AgentId} at {a.Address} did not answer: {e.Message}").ExecuteAsync(http);
                        return;
                    }
                    catch (HttpRequestException)
                    {
                        // Agent briefly unreachable while following: keep trying until the task ends.
                    }
                }

                if (!lease.IsCurrent())
                {
                    if (!started)
                    {
                        await Denials.WriteAsync(http, StatusCodes.Status401Unauthorized, lease.Reason);
                    }

                    return;
                }

                if (!started)
                {
                    await http.Response.StartAsync(ct);
                    await http.Response.Body.FlushAsync(ct); // the headers now: a follower of a quiet task is not left waiting for them
                    started = true;
                }

                var data = chunk?.Data ?? [];
                var step = cursor.Advance(data.Length, chunk?.Size ?? cursor.Offset, endedBeforeRead);
                if (cursor.Offset > offset) // the chunk was taken
                {
                    await http.Response.Body.WriteAsync(data, ct);
                    await http.Response.Body.FlushAsync(ct);
                    offset = cursor.Offset;
                }

                if (step == LogStep.Stop)
                {
                    return;
                }

                if (step == LogStep.Wait)
                {
                    await Task.Delay(FollowPoll, time, ct);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
