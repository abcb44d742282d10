using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Drover.Core.Marathon;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover group deploy|ls|rm</c>: trees of services deployed together, as Marathon groups through the
/// master's <c>/v2/groups</c> API. A group change is one deployment plan over every affected app.
/// </summary>
internal static class GroupCommands
{
    public static Command Create()
    {
        var group = new Command("group", "Deploy and manage groups of services (Marathon groups)");
        group.Options.Add(CliContext.Json);
        group.Subcommands.Add(Deploy());
        group.Subcommands.Add(List());
        group.Subcommands.Add(Remove());
        return group;
    }

    private static Command Deploy()
    {
        var file = new Argument<string>("file") { Description = "Group definition: .json, .yaml/.yml, or - for stdin (JSON or YAML)" };
        var force = new Option<bool>("--force") { Description = "Override deployments in progress for the group's apps" };
        var detach = new Option<bool>("--detach", "-d") { Description = "Do not wait: print the deployment id and exit" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("deploy", "Create or update a group (its apps and subgroups) from a definition file, then follow the deployment until it finishes")
        {
            file, force, detach, timeout,
        };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var path = pr.GetValue(file)!;
            var wait = MarathonCli.Timeout(pr, timeout);
            var definition = await GroupFile.ReadAsync(path, ct);
            var groupId = definition["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var rawId)
                ? GroupId(rawId, $"{path}: /id")
                : throw new CliException($"{path}: the group definition needs an \"id\" (e.g. /prod)", 2);
            definition["id"] = groupId;
            var layout = GroupLayout.Of(definition, groupId);
            if (layout.Errors.Count > 0)
            {
                await Console.Error.WriteLineAsync($"drover: {path}: not a valid group definition");
                foreach (var (at, error) in layout.Errors)
                {
                    await Console.Error.WriteLineAsync($"  {at}: {error}");
                }

                return 2;
            }

            var json = pr.GetValue(CliContext.Json);
            var before = await client.FindGroupAsync(groupId, ct);
            DeploymentRef result;
            try
            {
                result = before is not null
                    ? await client.PutGroupAsync(groupId, definition, pr.GetValue(force), ct)
                    : await client.CreateGroupAsync(definition, pr.GetValue(force), ct);
            }
            catch (MarathonApiException e) when (e.StatusCode == 422 && e.Details.Count > 0)
            {
                await Console.Error.WriteLineAsync($"drover: {path}: {e.ApiMessage}");
                foreach (var d in e.Details)
                {
                    var app = layout.AppAt(d.Path) is { } appId ? $" (app {appId})" : "";
                    foreach (var error in d.Errors.DefaultIfEmpty("invalid"))
                    {
                        await Console.Error.WriteLineAsync($"  {d.Path}: {error}{app}");
                    }
                }

                return 2;
            }

            // The apps the plan touches: those of the definition, and (on an update that lists apps or groups) the
            // group's apps it leaves out, which are removed. Others (e.g. a rollback to a version) come from the plan.
            var expected = layout.Apps.Distinct(StringComparer.Ordinal).ToDictionary(a => a, _ => false, StringComparer.Ordinal);
            var replaces = definition["apps"] is not null || definition["groups"] is not null;
            foreach (var old in before is null || !replaces ? [] : AppIds(before))
            {
                expected.TryAdd(old, true);
            }

            if (json)
            {
                MarathonCli.PrintJson(result.ToJson());
            }
            else
            {
                var removed = expected.Count(e => e.Value);
                Console.Out.WriteLine($"{(before is not null ? "updating" : "creating")} {groupId} ({Apps(expected.Count - removed)}"
                    + (removed > 0 ? $", removing {removed}" : "") + $"): deployment {result.DeploymentId ?? "-"} (version {result.Version ?? "-"})");
            }

            return pr.GetValue(detach) || result.DeploymentId is null
                ? 0
                : await GroupWatch.RunAsync(client, groupId, result.DeploymentId, expected, wait, json, ct);
        }));
        return cmd;
    }

    private static Command List()
    {
        var id = new Argument<string>("id") { Description = "Group id (default: /, every group)", DefaultValueFactory = _ => "/" };
        var cmd = new Command("ls", "Show a group as a tree of subgroups and apps, with instances running/healthy against wanted") { id };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var groupId = GroupId(pr.GetValue(id)!, "id");
            var group = await client.GetGroupAsync(groupId, ct);
            if (pr.GetValue(CliContext.Json))
            {
                MarathonCli.PrintJson(group);
                return 0;
            }

            var apps = (await client.ListAppsAsync(ct: ct)).OfType<JsonObject>()
                .Where(a => MarathonCli.Str(a, "id") is not null)
                .ToDictionary(a => MarathonCli.Str(a, "id")!, a => a, StringComparer.Ordinal);
            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "INSTANCES", "HEALTHY", "CPUS", "MEM", "DEPLOYMENT");
            GroupTree.AddRows(table, group, apps);
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }

    private static Command Remove()
    {
        var id = new Argument<string>("id") { Description = "Group id" };
        var force = new Option<bool>("--force") { Description = "Override deployments in progress for the group's apps" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until every instance is stopped and the group is gone" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("rm", "Delete a group: stop the instances of all its apps, then remove them") { id, force, wait, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var groupId = GroupId(pr.GetValue(id)!, "id");
            var timeLimit = MarathonCli.Timeout(pr, timeout);
            var json = pr.GetValue(CliContext.Json);
            var apps = AppIds(await client.GetGroupAsync(groupId, ct)).ToList();
            var result = await client.DeleteGroupAsync(groupId, pr.GetValue(force), ct);
            if (json)
            {
                MarathonCli.PrintJson(result.ToJson());
            }
            else
            {
                Console.Out.WriteLine($"removing {groupId} ({Apps(apps.Count)}): deployment {result.DeploymentId ?? "-"}");
            }

            if (!pr.GetValue(wait) || result.DeploymentId is null)
            {
                return 0;
            }

            var code = await GroupWatch.RunAsync(client, groupId, result.DeploymentId,
                apps.ToDictionary(a => a, _ => true, StringComparer.Ordinal), timeLimit, json, ct);
            if (code == 0 && await client.FindGroupAsync(groupId, ct) is not null)
            {
                await Console.Error.WriteLineAsync($"drover: {groupId} still exists: apps were added to it while it was removed (see `drover group ls {groupId}`)");
                return 1;
            }

            return code;
        }));
        return cmd;
    }

    /// <summary><c>prod</c>, <c>/prod/</c> → <c>/prod</c>; <c>/</c> is the root group. Exit 2 when it is no id.</summary>
    private static string GroupId(string text, string what)
    {
        var normalized = MarathonClient.NormalizeGroupId(text);
        return normalized == "/" || (AppId.TryParse(normalized, out var parsed, out _) && parsed.IsAbsolute)
            ? normalized
            : throw new CliException($"{what}: '{text}' is not a group id (e.g. prod or /prod/web)", 2);
    }

    /// <summary>The ids of every app in a group answer from <c>/v2/groups</c>, recursively.</summary>
    internal static IEnumerable<string> AppIds(JsonNode? group) =>
        (group?["apps"] is JsonArray apps ? MarathonCli.Strings(apps, "id") : [])
            .Concat(group?["groups"] is JsonArray groups ? groups.SelectMany(AppIds) : []);

    private static string Apps(int n) => n == 1 ? "1 app" : string.Create(CultureInfo.InvariantCulture, $"{n} apps");
}

/// <summary>Reads a group definition: JSON, or YAML converted to the same JSON (as <see cref="DefinitionFile"/>).</summary>
internal static class GroupFile
{
    public static async Task<JsonObject> ReadAsync(string path, CancellationToken ct)
    {
        string text;
        try
        {
            text = path == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{path}: {e.Message}", 2);
        }

        var ext = Path.GetExtension(path).ToLowerInvariant();
        var isJson = ext == ".json" || (ext is not (".yaml" or ".yml") && text.TrimStart().StartsWith('{'));
        JsonNode? node;
        if (isJson)
        {
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new CliException($"{path}: not valid JSON: {e.Message}", 2);
            }
        }
        else
        {
            node = DefinitionFile.ParseYaml(text, path);
        }

        return node as JsonObject ?? throw new CliException($"{path}: a group definition must be an object (id, apps, groups, dependencies)", 2);
    }
}

/// <summary>
/// The apps of a group definition with their absolute ids (resolved against their groups, as the master
/// does) and JSON paths (<c>/groups(0)/apps(1)</c>), and what in its shape the master could not read.
/// </summary>
internal sealed class GroupLayout
{
    private readonly Dictionary<string, string> _appByPath = new(StringComparer.Ordinal);

    public List<string> Apps { get; } = [];

    public List<(string Path, string Error)> Errors { get; } = [];

    public static GroupLayout Of(JsonObject definition, string groupId)
    {
        var layout = new GroupLayout();
        layout.Walk(definition, groupId, "");
        return layout;
    }

    /// <summary>The app an error path such as <c>/groups(0)/apps(1)/cpus</c> points into, if any.</summary>
    public string? AppAt(string path)
    {
        var end = path.LastIndexOf("/apps(", StringComparison.Ordinal);
        var close = end < 0 ? -1 : path.IndexOf(')', end);
        return close < 0 ? null : _appByPath.GetValueOrDefault(path[..(close + 1)]);
    }

    private void Walk(JsonObject group, string groupId, string path)
    {
        if (group["dependencies"] is { } deps && (deps is not JsonArray list || list.Any(d => d is not JsonValue v || !v.TryGetValue<string>(out _))))
        {
            Errors.Add(($"{path}/dependencies", "must be a list of app or group ids"));
        }

        foreach (var (i, app) in Items(group, "apps", path, "an app definition"))
        {
            if (app["id"] is JsonValue v && v.TryGetValue<string>(out var id) && Resolve(id, groupId) is { } appId)
            {
                Apps.Add(appId);
                _appByPath[Item(path, "apps", i)] = appId;
            }
        }

        foreach (var (i, child) in Items(group, "groups", path, "a group definition"))
        {
            var at = Item(path, "groups", i);
            if (child["id"] is not JsonValue v || !v.TryGetValue<string>(out var id) || id.Trim().Length == 0)
            {
                Errors.Add(($"{at}/id", "a subgroup needs an id (relative to its parent, e.g. db)"));
            }
            else if (Resolve(id, groupId) is not { } childId)
            {
                Errors.Add(($"{at}/id", $"'{id}' is not a group id"));
            }
            else
            {
                Walk(child, childId, at);
            }
        }
    }

    private IEnumerable<(int Index, JsonObject Item)> Items(JsonObject group, string name, string path, string what)
    {
        if (group[name] is null)
        {
            yield break;
        }

        if (group[name] is not JsonArray items)
        {
            Errors.Add(($"{path}/{name}", $"must be a list of {name}"));
            yield break;
        }

        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is JsonObject item)
            {
                yield return (i, item);
            }
            else
            {
                Errors.Add((Item(path, name, i), $"must be {what} (an object)"));
            }
        }
    }

    private static string Item(string path, string name, int i) => string.Create(CultureInfo.InvariantCulture, $"{path}/{name}({i})");

    /// <summary><c>db</c>, <c>../db</c>, <c>/prod/db</c> against the group <paramref name="baseGroup"/>; null when it is no id.</summary>
    private static string? Resolve(string id, string baseGroup) =>
        AppId.TryParse(id.Trim(), out var parsed, out _) ? parsed.Canonical(AppId.Parse(baseGroup)).ToString() : null;
}

/// <summary>The rows of <c>drover group ls</c>: the group, then its apps and subgroups, drawn as a tree.</summary>
internal static class GroupTree
{
    public static void AddRows(Table table, JsonObject group, IReadOnlyDictionary<string, JsonObject> apps) =>
        AddGroup(table, group, apps, "", "", unicode: AnsiConsole.Profile.Capabilities.Unicode);

    private static void AddGroup(Table table, JsonNode group, IReadOnlyDictionary<string, JsonObject> apps, string label, string indent, bool unicode)
    {
        var id = MarathonCli.Str(group, "id") ?? "?";
        var all = GroupCommands.AppIds(group).Select(a => apps.GetValueOrDefault(a)).OfType<JsonObject>().ToList();
        var checkedApps = all.Where(HasChecks).ToList();
        var wanted = all.Sum(a => MarathonCli.Int(a, "instances"));
        var running = all.Sum(a => MarathonCli.Int(a, "tasksRunning"));
        var checkedWanted = checkedApps.Sum(a => MarathonCli.Int(a, "instances"));
        var healthy = checkedApps.Sum(a => MarathonCli.Int(a, "tasksHealthy"));
        var deploying = all.SelectMany(a => MarathonCli.Strings(a["deployments"], "id")).Distinct(StringComparer.Ordinal).ToList();
        table.AddRow(
            $"{Markup.Escape(label)}[bold blue]{Markup.Escape(id)}[/]",
            Colour($"{running}/{wanted}", running >= wanted),
            checkedApps.Count == 0 ? "-" : Colour($"{healthy}/{checkedWanted}", healthy >= checkedWanted),
            "",
            "",
            deploying.Count == 0 ? "-" : $"[yellow]{Markup.Escape(string.Join(", ", deploying))}[/]");

        var children = (group["apps"] is JsonArray a ? a.OfType<JsonObject>().Select(x => (Node: (JsonNode)x, App: true)) : [])
            .Concat(group["groups"] is JsonArray g ? g.OfType<JsonObject>().Select(x => (Node: (JsonNode)x, App: false)) : [])
            .ToList();
        for (var i = 0; i < children.Count; i++)
        {
            var last = i == children.Count - 1;
            var branch = indent + (unicode ? (last ? "└─ " : "├─ ") : (last ? "`- " : "|- "));
            var childIndent = indent + (last ? "   " : unicode ? "│  " : "|  ");
            if (children[i].App)
            {
                var appId = MarathonCli.Str(children[i].Node, "id") ?? "?";
                AddApp(table, apps.GetValueOrDefault(appId) ?? (JsonObject)children[i].Node, branch);
            }
            else
            {
                AddGroup(table, children[i].Node, apps, branch, childIndent, unicode);
            }
        }
    }

    private static void AddApp(Table table, JsonObject app, string label)
    {
        var wanted = MarathonCli.Int(app, "instances");
        var running = MarathonCli.Int(app, "tasksRunning");
        var healthy = MarathonCli.Int(app, "tasksHealthy");
        var deploying = MarathonCli.Strings(app["deployments"], "id").ToList();
        table.AddRow(
            Markup.Escape(label + (MarathonCli.Str(app, "id") ?? "?")),
            Colour($"{running}/{wanted}", running >= wanted),
            HasChecks(app) ? Colour($"{healthy}/{wanted}", healthy >= wanted) : "-",
            MarathonCli.Number(MarathonCli.Dec(app, "cpus")),
            MarathonCli.Number(MarathonCli.Dec(app, "mem")),
            deploying.Count == 0 ? "-" : $"[yellow]{Markup.Escape(string.Join(", ", deploying))}[/]");
    }

    private static bool HasChecks(JsonObject app) => app["healthChecks"] is JsonArray { Count: > 0 };

    private static string Colour(string text, bool ok) => ok ? $"[green]{text}[/]" : $"[yellow]{text}[/]";
}

/// <summary>One poll of a group deployment: the plan (null once it is gone) and each affected app's progress.</summary>
internal sealed record GroupProgress(string GroupId, string DeploymentId, JsonObject? Deployment, IReadOnlyList<DeploymentProgress> Apps, TimeSpan Elapsed)
{
    public bool Finished => Deployment is null;

    /// <summary>Where one app stands in the plan: done, deploying, waiting (nothing launched yet), stopping, removed, replaced.</summary>
    public string Status(DeploymentProgress p)
    {
        if (p.App is null)
        {
            return p.Target.Removing ? "removed" : "missing";
        }

        var deployments = MarathonCli.Strings(p.App["deployments"], "id").ToList();
        if (deployments.Contains(DeploymentId, StringComparer.Ordinal))
        {
            return p.Target.Removing ? "stopping"
                : p.Tasks.Count == 0 && p.Queued is null && p.Wanted > 0 ? "waiting"
                : "deploying";
        }

        return deployments.Count > 0 ? "replaced" : p.Target.Removing ? "stopping" : "done";
    }

    /// <summary>One app's line without the time, e.g. <c>deploying: 1/2 running, 0/2 healthy at V2; …</c>.</summary>
    public string Line(DeploymentProgress p) => p.App is null ? Status(p) : $"{Status(p)}: {p.Summary()}";

    public IRenderable Render()
    {
        var header = new Markup($"[bold]{Markup.Escape(GroupId)}[/]  deployment [blue]{Markup.Escape(DeploymentId)}[/]"
            + (Finished ? " [green]finished[/]" : "") + $"  [grey]{MarathonCli.Seconds(Elapsed)}[/]");
        var actions = Deployment?["currentActions"] is JsonArray current
            ? current.OfType<JsonObject>().Where(a => MarathonCli.Str(a, "app") is not null)
                .GroupBy(a => MarathonCli.Str(a, "app")!, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => MarathonCli.Str(g.First(), "action") ?? "-", StringComparer.Ordinal)
            : new Dictionary<string, string>(StringComparer.Ordinal);
        var table = new Table().Border(TableBorder.Rounded).AddColumns("APP", "ACTION", "STATUS", "RUNNING", "HEALTHY", "VERSION", "OLD");
        foreach (var p in Apps)
        {
            var status = Status(p);
            var target = p.TargetTasks;
            var old = p.Target.Removing ? 0 : p.Tasks.Count - target.Count;
            table.AddRow(
                Markup.Escape(p.Target.AppId),
                Markup.Escape(actions.TryGetValue(p.Target.AppId, out var action) ? ShortAction(action) : "-"),
                status switch
                {
                    "done" or "removed" => $"[green]{status}[/]",
                    "missing" or "replaced" => $"[red]{status}[/]",
                    _ => $"[yellow]{status}[/]",
                },
                p.App is null ? "-" : $"{target.Count(DeploymentProgress.Running)}/{p.Wanted}",
                p.App is null || !p.HasHealthChecks || p.Target.Removing ? "-"
                    : $"{target.Count(t => DeploymentProgress.Running(t) && DeploymentProgress.Health(t) == true)}/{p.Wanted}",
                p.Target.Removing ? "-" : Markup.Escape(MarathonCli.Str(p.App, "version") ?? "-"),
                old > 0 ? old.ToString(CultureInfo.InvariantCulture) : "-");
        }

        var rows = new List<IRenderable> { header, table };
        rows.AddRange(Apps.SelectMany(p => p.Waiting.Select(w => new Markup($"[yellow]{Markup.Escape(p.Target.AppId)}: {Markup.Escape(w)}[/]"))));
        return new Rows(rows);
    }

    private static string ShortAction(string action) => action switch
    {
        "StartApplication" => "start",
        "ScaleApplication" => "scale",
        "RestartApplication" => "restart",
        "StopApplication" => "stop",
        _ => action,
    };
}

/// <summary>
/// Follows a group's deployment plan until it is gone from <c>/v2/deployments</c>, as
/// <see cref="DeploymentWatch"/> does for one app, summarising every affected app's instances: a live
/// view on a terminal, a line per change otherwise, nothing with <c>--json</c>. On timeout, says which
/// apps are stuck and why. Exit codes: 0 finished, 1 timed out, replaced, or an app vanished.
/// </summary>
internal static class GroupWatch
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);

    /// <param name="expected">The apps the plan should touch, each with whether the plan removes it; the plan's own list is added as it is seen.</param>
    public static async Task<int> RunAsync(MarathonClient client, string groupId, string deploymentId, IReadOnlyDictionary<string, bool> expected,
        TimeSpan timeout, bool quiet, CancellationToken ct)
    {
        var removing = new Dictionary<string, bool>(expected, StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        GroupProgress progress;
        if (!quiet && !Console.IsOutputRedirected)
        {
            progress = await PollAsync(client, groupId, deploymentId, removing, clock, ct);
            var last = progress;
            await AnsiConsole.Live(progress.Render()).AutoClear(false).StartAsync(async ctx =>
            {
                while (!last.Finished && clock.Elapsed < timeout)
                {
                    await Task.Delay(Poll, ct);
                    last = await PollAsync(client, groupId, deploymentId, removing, clock, ct);
                    ctx.UpdateTarget(last.Render());
                }
            });
            progress = last;
        }
        else
        {
            var lastLines = new Dictionary<string, string>(StringComparer.Ordinal);
            while (true)
            {
                progress = await PollAsync(client, groupId, deploymentId, removing, clock, ct);
                foreach (var p in progress.Finished || quiet ? [] : progress.Apps)
                {
                    var line = progress.Line(p);
                    if (lastLines.GetValueOrDefault(p.Target.AppId) != line)
                    {
                        Console.Out.WriteLine($"[{MarathonCli.Seconds(progress.Elapsed),6}] {p.Target.AppId}: {line}");
                        lastLines[p.Target.AppId] = line;
                    }
                }

                if (progress.Finished || clock.Elapsed >= timeout)
                {
                    break;
                }

                await Task.Delay(Poll, ct);
            }
        }

        return progress.Finished ? await FinishAsync(progress, quiet) : await StuckAsync(progress, timeout);
    }

    private static async Task<GroupProgress> PollAsync(MarathonClient client, string groupId, string deploymentId, Dictionary<string, bool> removing,
        Stopwatch clock, CancellationToken ct)
    {
        // Deployments first: when ours is gone, the apps read after it show the state it left.
        var deployment = (await client.ListDeploymentsAsync(ct)).OfType<JsonObject>().FirstOrDefault(d => MarathonCli.Str(d, "id") == deploymentId);
        if (deployment is not null)
        {
            foreach (var app in MarathonCli.Strings(deployment["affectedApps"]))
            {
                removing.TryAdd(app, false);
            }

            foreach (var action in deployment["currentActions"] as JsonArray ?? [])
            {
                if (MarathonCli.Str(action, "app") is { } app)
                {
                    removing[app] = MarathonCli.Str(action, "action") == "StopApplication";
                }
            }
        }

        var apps = (await client.ListAppsAsync(["apps.tasks", "apps.lastTaskFailure"], ct)).OfType<JsonObject>()
            .Where(a => MarathonCli.Str(a, "id") is { } id && removing.ContainsKey(id))
            .ToDictionary(a => MarathonCli.Str(a, "id")!, a => a, StringComparer.Ordinal);
        var queue = (await client.GetQueueAsync(ct)).OfType<JsonObject>()
            .Where(q => MarathonCli.Str(q["app"], "id") is { } id && removing.ContainsKey(id))
            .GroupBy(q => MarathonCli.Str(q["app"], "id")!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var elapsed = clock.Elapsed;
        var progress = removing.OrderBy(r => r.Key, StringComparer.Ordinal)
            .Select(r => new DeploymentProgress(new WatchTarget(r.Key, deploymentId, null, r.Value), apps.GetValueOrDefault(r.Key), deployment,
                queue.GetValueOrDefault(r.Key), elapsed))
            .ToList();
        return new GroupProgress(groupId, deploymentId, deployment, progress, elapsed);
    }

    private static async Task<int> FinishAsync(GroupProgress progress, bool quiet)
    {
        var failures = new List<string>();
        foreach (var p in progress.Apps)
        {
            var id = p.Target.AppId;
            var others = MarathonCli.Strings(p.App?["deployments"], "id").Where(d => d != progress.DeploymentId).ToList();
            if (others.Count > 0)
            {
                failures.Add($"{id}: replaced by deployment {string.Join(", ", others)} (rolled back or overridden); it is at version {MarathonCli.Str(p.App, "version")}");
            }
            else if (p.App is null && !p.Target.Removing)
            {
                failures.Add($"{id}: removed while the deployment ran (rolled back or deleted)");
            }
            else if (p.App is not null && p.Target.Removing)
            {
                failures.Add($"{id}: still there (the removal was rolled back or overridden)");
            }
        }

        if (failures.Count > 0)
        {
            await Console.Error.WriteLineAsync($"drover: deployment {progress.DeploymentId} of {progress.GroupId} did not go through:");
            foreach (var f in failures)
            {
                await Console.Error.WriteLineAsync($"  {f}");
            }

            return 1;
        }

        if (!quiet)
        {
            var verb = progress.Apps.Count > 0 && progress.Apps.All(p => p.Target.Removing) ? "removed" : "deployed";
            Console.Out.WriteLine($"{progress.GroupId} {verb}: deployment {progress.DeploymentId} finished in {MarathonCli.Seconds(progress.Elapsed)}");
            foreach (var p in progress.Apps)
            {
                Console.Out.WriteLine($"  {p.Target.AppId}: {(p.App is null ? "removed" : p.Summary())}");
            }
        }

        return 0;
    }

    private static async Task<int> StuckAsync(GroupProgress progress, TimeSpan timeout)
    {
        var err = Console.Error;
        await err.WriteLineAsync($"drover: deployment {progress.DeploymentId} of {progress.GroupId} did not finish within {MarathonCli.Seconds(timeout)}");
        foreach (var p in progress.Apps)
        {
            var status = progress.Status(p);
            await err.WriteLineAsync($"  {p.Target.AppId}: {(p.App is null ? status : $"{status}: {p.Summary(waiting: false)}")}");
            if (status is "done" or "removed")
            {
                continue;
            }

            if (status == "waiting")
            {
                await err.WriteLineAsync("    nothing launched yet: it waits for the apps and groups it depends on");
            }

            foreach (var w in p.Waiting)
            {
                await err.WriteLineAsync($"    {w}");
            }

            var target = MarathonCli.Str(p.App, "version");
            foreach (var task in p.Tasks)
            {
                var where = $"instance {MarathonCli.Str(task, "id")}{(MarathonCli.Str(task, "host") is { } host ? " on " + host : "")} (version {MarathonCli.Str(task, "version")})";
                var state = MarathonCli.Str(task, "state");
                if (state != "TASK_RUNNING")
                {
                    await err.WriteLineAsync($"    {where} is {state}");
                }
                else if (p.HasHealthChecks && !p.Target.Removing && DeploymentProgress.Health(task) is not true && MarathonCli.Str(task, "version") == target)
                {
                    await err.WriteLineAsync(DeploymentProgress.Health(task) is false
                        ? $"    {where} is failing its health check"
                        : $"    {where} has no passing health check yet (grace period, or the check never succeeded)");
                }
            }

            if (p.App?["lastTaskFailure"] is JsonObject f)
            {
                await err.WriteLineAsync($"    last failure: {MarathonCli.Str(f, "taskId")} {MarathonCli.Str(f, "state")} on {MarathonCli.Str(f, "host")}: {MarathonCli.Str(f, "message")}");
            }
        }

        await err.WriteLineAsync($"  it goes on; roll it back with `drover deployment rollback {progress.DeploymentId}`, or see where it stands with `drover group ls {progress.GroupId}`");
        return 1;
    }
}
