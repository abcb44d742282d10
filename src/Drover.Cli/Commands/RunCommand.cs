using System.Collections.Immutable;
using System.CommandLine;
using System.Text.Json;
using Drover.Client;
using Drover.Core;
using Drover.Core.Api;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover run [flags] -- CMD ARGS…</c>: submits a one-off task. With <c>--wait</c> it streams the
/// task's stdout/stderr and exits with the task's exit code, like <c>docker run</c>; Ctrl-C kills the task.
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var cpus = new Option<string?>("--cpus") { Description = "CPUs (default 0.1)" };
        var mem = new Option<string?>("--mem") { Description = "Memory in MiB (default 32)" };
        var disk = new Option<string?>("--disk") { Description = "Disk in MiB (default 0)" };
        var gpus = new Option<string?>("--gpus") { Description = "GPUs (default 0)" };
        var ports = new Option<string?>("--ports") { Description = "Number of host ports to assign (PORT0…)" };
        var name = new Option<string?>("--name") { Description = "Task name" };
        var env = new Option<string[]>("--env", "-e") { Description = "Environment variable K=V (repeatable)", AllowMultipleArgumentsPerToken = false };
        var constraint = new Option<string[]>("--constraint") { Description = "Placement constraint field:OP[:value] (repeatable)" };
        var grace = new Option<string?>("--kill-grace") { Description = "Seconds between SIGTERM and SIGKILL (default 3)" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Stream output and exit with the task's exit code" };
        var command = new Argument<string[]>("command") { Description = "The command and its arguments (after --)", Arity = ArgumentArity.OneOrMore };

        var cmd = new Command("run", "Run a one-off task") { cpus, mem, disk, gpus, ports, name, env, constraint, grace, wait, command };
        cmd.SetAction(async (pr, ct) =>
        {
            var envMap = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
            foreach (var kv in pr.GetValue(env) ?? [])
            {
                var eq = kv.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new CliException($"--env: '{kv}' is not K=V", 2);
                }

                envMap[kv[..eq]] = kv[(eq + 1)..];
            }

            var submission = new TaskSubmission
            {
                Name = pr.GetValue(name),
                Args = [.. pr.GetValue(command)!],
                Env = envMap.ToImmutable(),
                Cpus = Number(pr.GetValue(cpus), "--cpus"),
                Mem = Number(pr.GetValue(mem), "--mem"),
                Disk = Number(pr.GetValue(disk), "--disk"),
                Gpus = Number(pr.GetValue(gpus), "--gpus"),
                Ports = Number(pr.GetValue(ports), "--ports"),
                KillGracePeriodSeconds = Number(pr.GetValue(grace), "--kill-grace"),
                Constraints = [.. (pr.GetValue(constraint) ?? []).Select(JsonString)],
            };

            using var client = CliContext.Client(pr);
            var task = await client.SubmitTaskAsync(submission, ct);
            if (!pr.GetValue(wait))
            {
                if (pr.GetValue(CliContext.Json))
                {
                    CliContext.PrintJson(task);
                }
                else
                {
                    Console.Out.WriteLine(task.Id);
                }

                return 0;
            }

            return await WaitAsync(client, task, pr.GetValue(CliContext.Json), ct);
        });
        return cmd;
    }

    private static JsonElement JsonString(string text)
    {
        using var doc = JsonDocument.Parse("\"" + JsonEncodedText.Encode(text) + "\"");
        return doc.RootElement.Clone();
    }

    /// <summary>Raw JSON for numbers so the master validates them and names the field in its answer.</summary>
    private static JsonElement? Number(string? text, string flag)
    {
        if (text is null)
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Number)
            {
                throw new CliException($"{flag}: '{text}' is not a number", 2);
            }

            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new CliException($"{flag}: '{text}' is not a number", 2);
        }
    }

    private static async Task<int> WaitAsync(DroverClient client, TaskView task, bool json, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var killed = false;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            if (!killed)
            {
                killed = true;
                Console.Error.WriteLine($"drover: killing task {task.Id}…");
                _ = client.KillTaskAsync(task.Id, CancellationToken.None);
            }
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            // Say why a task waits, once per distinct reason, until it is placed.
            string? lastReason = null;
            while (true)
            {
                var current = await client.GetTaskAsync(task.Id, ct);
                if (current.State != TaskState.Pending)
                {
                    break;
                }

                if (current.WaitingReason is { } reason && reason != lastReason && !reason.StartsWith("waiting for the next", StringComparison.Ordinal))
                {
                    Console.Error.WriteLine($"drover: task {task.Id} is waiting: {reason}");
                    lastReason = reason;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(lastReason is null ? 20 : 500), ct);
            }

            await using var stdout = Console.OpenStandardOutput();
            await using var stderr = Console.OpenStandardError();
            await Task.WhenAll(
                client.CopyLogsAsync(task.Id, json ? Stream.Null : stdout, stderr: false, follow: true, ct: ct),
                client.CopyLogsAsync(task.Id, json ? Stream.Null : stderr, stderr: true, follow: true, ct: ct));

            var final = await client.WaitForTaskAsync(task.Id, ct: ct);
            if (json)
            {
                CliContext.PrintJson(final);
            }
            else if (final.State != TaskState.Finished && !(final.State == TaskState.Failed && final.ExitCode is not null && final.Reason is null))
            {
                Console.Error.WriteLine($"drover: task {final.Id} ended {final.State.WireName()}{(final.Reason is null ? "" : $" ({final.Reason})")}: {final.Message}");
            }

            return ExitCodeOf(final);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The task's own exit code; 137 for a kill or the memory limit (as docker does), 1 for other failures.</summary>
    public static int ExitCodeOf(TaskView t) => t.State switch
    {
        TaskState.Finished => 0,
        TaskState.Failed when t.Reason == TaskReasons.ContainerLimitationMemory => 137,
        TaskState.Failed when t.ExitCode is { } code => code,
        TaskState.Killed => 137,
        _ => 1,
    };
}
