using System.CommandLine;
using Drover.Core;
using Drover.Core.Api;
using Spectre.Console;

namespace Drover.Cli.Commands;

/// <summary><c>drover task ls|show|logs|kill</c>.</summary>
internal static class TaskCommands
{
    public static Command Create()
    {
        var task = new Command("task", "Inspect and control tasks");
        task.Subcommands.Add(List());
        task.Subcommands.Add(Show());
        task.Subcommands.Add(Logs());
        task.Subcommands.Add(Kill());
        return task;
    }

    private static Command List()
    {
        var all = new Option<bool>("--all", "-a") { Description = "Include ended tasks" };
        var state = new Option<string?>("--state") { Description = "Only tasks in this state (e.g. TASK_RUNNING)" };
        var cmd = new Command("ls", "List tasks") { all, state };
        cmd.SetAction(async (pr, ct) =>
        {
            TaskState? filter = null;
            if (pr.GetValue(state) is { } s)
            {
                filter = TaskStates.TryParse(s, out var parsed) ? parsed : throw new CliException($"--state: '{s}' is not a task state", 2);
            }

            using var client = CliContext.Client(pr);
            var tasks = (await client.ListTasksAsync(filter, ct))
                .Where(t => pr.GetValue(all) || filter is not null || !t.State.IsTerminal()).ToList();
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(new TaskList { Tasks = [.. tasks] });
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "STATE", "HOST", "CPUS", "MEM", "PORTS", "EXIT", "AGE");
            foreach (var t in tasks)
            {
                table.AddRow(
                    Markup.Escape(t.Id),
                    StateMarkup(t.State),
                    Markup.Escape(t.Hostname ?? "-"),
                    t.Cpus.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture),
                    $"{t.Mem} MiB",
                    t.Ports.IsEmpty ? "-" : string.Join(',', t.Ports),
                    t.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                    Age(t.SubmittedAt));
            }

            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    private static Command Show()
    {
        var id = new Argument<string>("id") { Description = "Task id" };
        var cmd = new Command("show", "Show one task, and why it waits if it does") { id };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var t = await client.GetTaskAsync(pr.GetValue(id)!, ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(t);
                return 0;
            }

            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
            void Row(string k, string? v) => grid.AddRow(new Markup($"[grey]{k}[/]"), new Text(v ?? "-"));
            Row("id", t.Id);
            Row("name", t.Name);
            grid.AddRow(new Markup("[grey]state[/]"), new Markup(StateMarkup(t.State)));
            if (t.WaitingReason is not null)
            {
                Row("waiting", t.WaitingReason);
            }

            Row("command", t.Cmd ?? string.Join(' ', t.Args.Select(Quote)));
            Row("resources", $"cpus {t.Cpus.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}, mem {t.Mem} MiB, disk {t.Disk} MiB" + (t.Gpus > 0 ? $", gpus {t.Gpus}" : ""));
            Row("ports", t.Ports.IsEmpty ? null : string.Join(", ", t.Ports));
            Row("constraints", t.Constraints.IsEmpty ? null : string.Join(", ", t.Constraints));
            Row("agent", t.AgentId is null ? null : $"{t.AgentId} ({t.Hostname})");
            Row("exit code", t.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Row("reason", t.Reason);
            Row("message", t.Message);
            Row("submitted", t.SubmittedAt.ToString("u", System.Globalization.CultureInfo.InvariantCulture));
            if (t.Owner is not null)
            {
                Row("owner", t.Owner); // who submitted a one-off task (only they, or drover:admin:tasks, may act on it)
            }

            AnsiConsole.Write(grid);

            if (!t.Statuses.IsEmpty)
            {
                var table = new Table().Border(TableBorder.Simple).AddColumns("TIME", "STATE", "SOURCE", "MESSAGE");
                foreach (var s in t.Statuses)
                {
                    table.AddRow(
                        DateTimeOffset.FromUnixTimeMilliseconds((long)(s.Timestamp * 1000)).ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture),
                        StateMarkup(s.State),
                        s.Source,
                        Markup.Escape(s.Message ?? s.Reason ?? ""));
                }

                AnsiConsole.Write(table);
            }

            return 0;
        });
        return cmd;
    }

    private static Command Logs()
    {
        var id = new Argument<string>("id") { Description = "Task id" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing until the task ends" };
        var stderr = new Option<bool>("--stderr") { Description = "Show stderr instead of stdout" };
        var cmd = new Command("logs", "Print a task's stdout (or stderr)") { id, follow, stderr };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var useStderr = pr.GetValue(stderr);
            await using var output = useStderr ? Console.OpenStandardError() : Console.OpenStandardOutput();
            await client.CopyLogsAsync(pr.GetValue(id)!, output, useStderr, pr.GetValue(follow), ct: ct);
            return 0;
        });
        return cmd;
    }

    private static Command Kill()
    {
        var id = new Argument<string>("id") { Description = "Task id" };
        var cmd = new Command("kill", "Kill a task (SIGTERM, then SIGKILL after its grace period)") { id };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var t = await client.KillTaskAsync(pr.GetValue(id)!, ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(t);
            }
            else
            {
                Console.Out.WriteLine($"{t.Id} {t.State.WireName()}");
            }

            return 0;
        });
        return cmd;
    }

    internal static string StateMarkup(TaskState s) => s switch
    {
        TaskState.Running or TaskState.Finished => $"[green]{s.WireName()}[/]",
        TaskState.Pending or TaskState.Staging or TaskState.Starting or TaskState.Killing => $"[yellow]{s.WireName()}[/]",
        _ => $"[red]{s.WireName()}[/]",
    };

    internal static string Age(DateTimeOffset since)
    {
        var d = DateTimeOffset.UtcNow - since;
        return d.TotalSeconds < 60 ? $"{(int)d.TotalSeconds}s" : d.TotalMinutes < 60 ? $"{(int)d.TotalMinutes}m" : d.TotalHours < 48 ? $"{(int)d.TotalHours}h" : $"{(int)d.TotalDays}d";
    }

    private static string Quote(string arg) => arg.Any(char.IsWhiteSpace) || arg.Length == 0 ? $"'{arg.Replace("'", "'\\''", StringComparison.Ordinal)}'" : arg;
}
