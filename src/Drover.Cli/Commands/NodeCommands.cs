using System.CommandLine;
using System.Globalization;
using Drover.Core.Api;
using Spectre.Console;

namespace Drover.Cli.Commands;

/// <summary><c>drover node ls|show|drain|undrain</c>: the agents, their resources, and maintenance.</summary>
internal static class NodeCommands
{
    public static Command Create()
    {
        var node = new Command("node", "Inspect the machines (agents)");
        node.Subcommands.Add(List());
        node.Subcommands.Add(Show());
        node.Subcommands.Add(Drain());
        node.Subcommands.Add(Undrain());
        node.Subcommands.Add(SecurityCommands.NodeToken());
        return node;
    }

    private static Command List()
    {
        var cmd = new Command("ls", "List agents with used/total resources");
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var agents = await client.ListAgentsAsync(ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(new AgentList { Agents = agents });
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "HOSTNAME", "STATUS", "CPUS used/total", "MEM MiB used/total", "DISK MiB used/total", "TASKS", "DOMAIN", "ATTRIBUTES");
            foreach (var a in agents)
            {
                table.AddRow(
                    Markup.Escape(a.Id),
                    Markup.Escape(a.Hostname),
                    StatusMarkup(a.Status),
                    $"{Cpus(a.Used.Cpus)} / {Cpus(a.Total.Cpus)}",
                    $"{a.Used.Mem} / {a.Total.Mem}",
                    $"{a.Used.Disk} / {a.Total.Disk}",
                    a.ActiveTasks.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(a.Region is null ? "-" : $"{a.Region}/{a.Zone}"),
                    Markup.Escape(a.Attributes.Count == 0 ? "-" : string.Join(';', a.Attributes.Select(kv => $"{kv.Key}:{kv.Value}"))));
            }

            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    private static Command Show()
    {
        var id = new Argument<string>("id") { Description = "Agent id" };
        var cmd = new Command("show", "Show one agent") { id };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var a = await client.GetAgentAsync(pr.GetValue(id)!, ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(a);
                return 0;
            }

            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
            void Row(string k, string v) => grid.AddRow(new Markup($"[grey]{k}[/]"), new Text(v));
            Row("id", a.Id);
            Row("hostname", a.Hostname);
            Row("address", a.Address);
            Row("status", a.Status);
            if (a.DrainDeadline is { } deadline)
            {
                Row("drain", $"since {a.DrainStartedAt?.ToString("u", CultureInfo.InvariantCulture)}; what is left is killed at {deadline.ToString("u", CultureInfo.InvariantCulture)}");
            }

            Row("cpus", $"{Cpus(a.Used.Cpus)} used of {Cpus(a.Total.Cpus)} ({Cpus(a.Free.Cpus)} free)");
            Row("mem", $"{a.Used.Mem} MiB used of {a.Total.Mem} MiB ({a.Free.Mem} free)");
            Row("disk", $"{a.Used.Disk} MiB used of {a.Total.Disk} MiB ({a.Free.Disk} free)");
            Row("gpus", $"{a.Used.Gpus} used of {a.Total.Gpus}");
            Row("ports", $"free {a.Free.Ports} of {a.Total.Ports}");
            Row("tasks", a.ActiveTasks.ToString(CultureInfo.InvariantCulture));
            Row("domain", a.Region is null ? "-" : $"region {a.Region}, zone {a.Zone}");
            Row("attributes", a.Attributes.Count == 0 ? "-" : string.Join("; ", a.Attributes.Select(kv => $"{kv.Key}:{kv.Value}")));
            Row("registered", a.RegisteredAt.ToString("u", CultureInfo.InvariantCulture));
            Row("last heartbeat", a.LastHeartbeatAt.ToString("u", CultureInfo.InvariantCulture));
            AnsiConsole.Write(grid);
            return 0;
        });
        return cmd;
    }

    private static Command Drain()
    {
        var id = new Argument<string>("id") { Description = "Agent id" };
        var deadline = new Option<string>("--deadline")
        {
            Description = "How long app instances have to move and tasks to finish before whatever is left is killed, e.g. 30s, 10m, 1h (default 1h)",
        };
        var cmd = new Command("drain", "Drain an agent: no new work, app instances move elsewhere, the rest is killed at the deadline") { id, deadline };
        cmd.SetAction(async (pr, ct) =>
        {
            // Parse before calling the master, so a bad flag is an error naming it and nothing changes.
            var span = pr.GetValue(deadline) is { } text ? MarathonCli.ParseDuration(text, deadline.Name) : (TimeSpan?)null;
            using var client = CliContext.Client(pr);
            var a = await client.DrainAgentAsync(pr.GetValue(id)!, span, ct);
            return PrintChanged(pr, a);
        });
        return cmd;
    }

    private static Command Undrain()
    {
        var id = new Argument<string>("id") { Description = "Agent id" };
        var cmd = new Command("undrain", "End an agent's drain: it takes new work again") { id };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var a = await client.UndrainAgentAsync(pr.GetValue(id)!, ct);
            return PrintChanged(pr, a);
        });
        return cmd;
    }

    private static int PrintChanged(ParseResult pr, AgentView a)
    {
        if (pr.GetValue(CliContext.Json))
        {
            CliContext.PrintJson(a);
            return 0;
        }

        var deadline = a.DrainDeadline is { } d ? $"; what is left is killed at {d.ToString("u", CultureInfo.InvariantCulture)}" : "";
        Console.Out.WriteLine($"{a.Id} ({a.Hostname}): {a.Status}{deadline}");
        return 0;
    }

    private static string StatusMarkup(string status) => status switch
    {
        "active" => "[green]active[/]",
        "draining" or "drained" => $"[yellow]{status}[/]",
        _ => $"[red]{Markup.Escape(status)}[/]",
    };

    private static string Cpus(decimal c) => c.ToString("0.###", CultureInfo.InvariantCulture);
}
