using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Spectre.Console;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover app deploy|ls|show|scale|restart|rm|versions</c>: long-running services, as Marathon apps
/// through the master's <c>/v2</c> API.
/// </summary>
internal static class AppCommands
{
    public static Command Create()
    {
        var app = new Command("app", "Deploy and manage services (Marathon apps)");
        app.Options.Add(CliContext.Json);
        app.Subcommands.Add(Deploy());
        app.Subcommands.Add(List());
        app.Subcommands.Add(Show());
        app.Subcommands.Add(Scale());
        app.Subcommands.Add(Restart());
        app.Subcommands.Add(Remove());
        app.Subcommands.Add(Versions());
        return app;
    }

    private static Command Deploy()
    {
        var file = new Argument<string>("file") { Description = "App definition: .json, .yaml/.yml, or - for stdin (JSON or YAML)" };
        var force = new Option<bool>("--force") { Description = "Override a deployment in progress for this app" };
        var detach = new Option<bool>("--detach", "-d") { Description = "Do not wait: print the deployment id and exit" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("deploy", "Create or update an app from a definition file, then follow the deployment until it finishes")
        {
            file, force, detach, timeout,
        };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var path = pr.GetValue(file)!;
            var wait = MarathonCli.Timeout(pr, timeout);
            var definition = await DefinitionFile.ReadAsync(path, ct);
            var appId = definition["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var rawId)
                ? MarathonCli.AppId(rawId)
                : throw new CliException($"{path}: the app definition needs an \"id\" (e.g. /web)", 2);
            var json = pr.GetValue(CliContext.Json);

            var exists = await client.FindAppAsync(appId, [], ct) is not null;
            var result = exists
                ? await client.PutAppAsync(appId, definition, pr.GetValue(force), partialUpdate: false, ct)
                : await client.CreateAppAsync(definition, ct: ct);
            if (json)
            {
                MarathonCli.PrintJson(result.ToJson());
            }
            else
            {
                Console.Out.WriteLine($"{(exists ? "updating" : "creating")} {appId}: deployment {result.DeploymentId} (version {result.Version})");
            }

            return pr.GetValue(detach) || result.DeploymentId is null
                ? 0
                : await DeploymentWatch.RunAsync(client, new WatchTarget(appId, result.DeploymentId, result.Version, Removing: false), wait, json, ct);
        }));
        return cmd;
    }

    private static Command List()
    {
        var cmd = new Command("ls", "List apps: instances running/wanted, health, resources, version, deployment");
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var apps = await client.ListAppsAsync(ct: ct);
            if (pr.GetValue(CliContext.Json))
            {
                MarathonCli.PrintJson(new JsonObject { ["apps"] = apps.DeepClone() });
                return 0;
            }

            var deployments = (await client.ListDeploymentsAsync(ct)).OfType<JsonObject>()
                .ToDictionary(d => MarathonCli.Str(d, "id") ?? "", d => d, StringComparer.Ordinal);
            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "INSTANCES", "HEALTHY", "CPUS", "MEM", "VERSION", "DEPLOYMENT");
            foreach (var a in apps.OfType<JsonObject>())
            {
                var wanted = MarathonCli.Int(a, "instances");
                var running = MarathonCli.Int(a, "tasksRunning");
                var healthy = MarathonCli.Int(a, "tasksHealthy");
                var hasChecks = a["healthChecks"] is JsonArray { Count: > 0 };
                var deploying = MarathonCli.Strings(a["deployments"], "id")
                    .Select(id => deployments.TryGetValue(id, out var d) && MarathonCli.ActionOf(d) is { } action ? $"{id} ({ShortAction(action)})" : id)
                    .ToList();
                table.AddRow(
                    Markup.Escape(MarathonCli.Str(a, "id") ?? "?"),
                    Colour($"{running}/{wanted}", running >= wanted),
                    hasChecks ? Colour($"{healthy}/{wanted}", healthy >= wanted) : "-",
                    MarathonCli.Number(MarathonCli.Dec(a, "cpus")),
                    MarathonCli.Number(MarathonCli.Dec(a, "mem")),
                    Markup.Escape(MarathonCli.Str(a, "version") ?? "-"),
                    deploying.Count == 0 ? "-" : $"[yellow]{Markup.Escape(string.Join(", ", deploying))}[/]");
            }

            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }

    private static Command Show()
    {
        var id = new Argument<string>("id") { Description = "App id (web, /web or /prod/web)" };
        var cmd = new Command("show", "Show an app's definition and its instances") { id };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var a = await client.GetAppAsync(MarathonCli.AppId(pr.GetValue(id)!), ct: ct);
            if (pr.GetValue(CliContext.Json))
            {
                MarathonCli.PrintJson(a);
                return 0;
            }

            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
            void Row(string k, string? v) => grid.AddRow(new Markup($"[grey]{k}[/]"), new Text(v ?? "-"));
            var wanted = MarathonCli.Int(a, "instances");
            var hasChecks = a["healthChecks"] is JsonArray { Count: > 0 };
            Row("id", MarathonCli.Str(a, "id"));
            Row("command", MarathonCli.Str(a, "cmd") ?? string.Join(' ', MarathonCli.Strings(a["args"])));
            Row("instances", $"{MarathonCli.Int(a, "tasksRunning")}/{wanted} running"
                + (hasChecks ? $", {MarathonCli.Int(a, "tasksHealthy")}/{wanted} healthy" : "")
                + (MarathonCli.Int(a, "tasksStaged") is > 0 and var staged ? $", {staged} starting" : ""));
            var gpus = MarathonCli.Dec(a, "gpus") is > 0 and var g ? $", gpus {MarathonCli.Number(g)}" : "";
            Row("resources", $"cpus {MarathonCli.Number(MarathonCli.Dec(a, "cpus"))}, mem {MarathonCli.Number(MarathonCli.Dec(a, "mem"))} MiB, disk {MarathonCli.Number(MarathonCli.Dec(a, "disk"))} MiB{gpus}");
            Row("ports", a["portDefinitions"] is JsonArray { Count: > 0 } ports
                ? string.Join(", ", ports.Select(p => $"{MarathonCli.Str(p, "name") ?? "-"}:{MarathonCli.Int(p, "port")}/{MarathonCli.Str(p, "protocol") ?? "tcp"}"))
                : null);
            Row("health check", a["healthChecks"] is JsonArray { Count: > 0 } checks ? HealthCheck(checks[0]!) : null);
            Row("constraints", a["constraints"] is JsonArray { Count: > 0 } cs ? string.Join(", ", cs.Select(c => string.Join(':', MarathonCli.Strings(c)))) : null);
            Row("labels", a["labels"] is JsonObject { Count: > 0 } labels ? string.Join(", ", labels.Select(kv => $"{kv.Key}={kv.Value}")) : null);
            Row("env", a["env"] is JsonObject { Count: > 0 } env ? string.Join(", ", env.Select(kv => kv.Key)) : null);
            if (a["upgradeStrategy"] is JsonObject up)
            {
                Row("upgrade", $"minimumHealthCapacity {MarathonCli.Number(MarathonCli.Dec(up, "minimumHealthCapacity"))}, maximumOverCapacity {MarathonCli.Number(MarathonCli.Dec(up, "maximumOverCapacity"))}");
            }

            Row("version", MarathonCli.Str(a, "version"));
            Row("deployments", a["deployments"] is JsonArray { Count: > 0 } deps ? string.Join(", ", MarathonCli.Strings(deps, "id")) : null);
            if (a["lastTaskFailure"] is JsonObject f)
            {
                Row("last failure", $"{MarathonCli.Str(f, "timestamp")} {MarathonCli.Str(f, "taskId")} {MarathonCli.Str(f, "state")} on {MarathonCli.Str(f, "host")}: {MarathonCli.Str(f, "message")}");
            }

            AnsiConsole.Write(grid);

            var tasks = a["tasks"] is JsonArray ts ? ts.OfType<JsonObject>().ToList() : [];
            if (tasks.Count > 0)
            {
                var current = MarathonCli.Str(a, "version");
                var table = new Table().Border(TableBorder.Simple).AddColumns("TASK ID", "HOST", "PORTS", "STATE", "HEALTHY", "VERSION");
                foreach (var t in tasks.OrderBy(t => MarathonCli.Str(t, "version") == current ? 0 : 1).ThenBy(t => MarathonCli.Str(t, "id"), StringComparer.Ordinal))
                {
                    var state = MarathonCli.Str(t, "state") ?? "?";
                    var version = MarathonCli.Str(t, "version") ?? "-";
                    table.AddRow(
                        Markup.Escape(MarathonCli.Str(t, "id") ?? "?"),
                        Markup.Escape(MarathonCli.Str(t, "host") ?? "-"),
                        t["ports"] is JsonArray { Count: > 0 } p ? string.Join(',', MarathonCli.Strings(p)) : "-",
                        state == "TASK_RUNNING" ? $"[green]{state}[/]" : $"[yellow]{Markup.Escape(state)}[/]",
                        !hasChecks ? "-" : DeploymentProgress.Health(t) switch { true => "[green]yes[/]", false => "[red]no[/]", null => "[yellow]?[/]" },
                        Markup.Escape(version) + (version == current ? "" : " [grey](old)[/]"));
                }

                AnsiConsole.Write(table);
            }

            return 0;
        }));
        return cmd;
    }

    private static Command Scale()
    {
        var id = new Argument<string>("id") { Description = "App id" };
        var count = new Argument<string>("instances") { Description = "The number of instances wanted" };
        var force = new Option<bool>("--force") { Description = "Override a deployment in progress for this app" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the deployment until it finishes" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("scale", "Set an app's instance count (the version stays)") { id, count, force, wait, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var appId = MarathonCli.AppId(pr.GetValue(id)!);
            var text = pr.GetValue(count)!;
            var n = int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw new CliException($"instances: '{text}' is not a whole number of instances (0 or more)", 2);
            var timeLimit = MarathonCli.Timeout(pr, timeout);
            _ = await client.GetAppAsync(appId, [], ct); // a PUT to a missing app would try to create it
            var result = await client.ScaleAppAsync(appId, n, pr.GetValue(force), ct);
            return await AfterChangeAsync(pr, client, appId, result, $"scaling {appId} to {n}", pr.GetValue(wait), timeLimit, removing: false, ct);
        }));
        return cmd;
    }

    private static Command Restart()
    {
        var id = new Argument<string>("id") { Description = "App id" };
        var force = new Option<bool>("--force") { Description = "Override a deployment in progress for this app" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the deployment until it finishes" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("restart", "Replace every instance with a new one (rolling, as an upgrade)") { id, force, wait, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var appId = MarathonCli.AppId(pr.GetValue(id)!);
            var timeLimit = MarathonCli.Timeout(pr, timeout);
            var result = await client.RestartAppAsync(appId, pr.GetValue(force), ct);
            return await AfterChangeAsync(pr, client, appId, result, $"restarting {appId}", pr.GetValue(wait), timeLimit, removing: false, ct);
        }));
        return cmd;
    }

    private static Command Remove()
    {
        var id = new Argument<string>("id") { Description = "App id" };
        var force = new Option<bool>("--force") { Description = "Override a deployment in progress for this app" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until the instances are stopped and the app is gone" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("rm", "Delete an app: stop its instances, then remove it") { id, force, wait, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var appId = MarathonCli.AppId(pr.GetValue(id)!);
            var timeLimit = MarathonCli.Timeout(pr, timeout);
            var result = await client.DeleteAppAsync(appId, pr.GetValue(force), ct);
            return await AfterChangeAsync(pr, client, appId, result, $"removing {appId}", pr.GetValue(wait), timeLimit, removing: true, ct);
        }));
        return cmd;
    }

    private static Command Versions()
    {
        var id = new Argument<string>("id") { Description = "App id" };
        var cmd = new Command("versions", "List an app's versions, newest first") { id };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var appId = MarathonCli.AppId(pr.GetValue(id)!);
            var versions = await client.ListVersionsAsync(appId, ct);
            if (pr.GetValue(CliContext.Json))
            {
                MarathonCli.PrintJson(new JsonObject { ["versions"] = new JsonArray([.. versions.Select(v => (JsonNode)JsonValue.Create(v))]) });
                return 0;
            }

            var current = MarathonCli.Str(await client.GetAppAsync(appId, [], ct), "version");
            foreach (var v in versions.Distinct(StringComparer.Ordinal))
            {
                Console.Out.WriteLine(v == current ? $"{v}  (current)" : v);
            }

            return 0;
        }));
        return cmd;
    }

    private static async Task<int> AfterChangeAsync(ParseResult pr, MarathonClient client, string appId, DeploymentRef result, string what,
        bool wait, TimeSpan timeout, bool removing, CancellationToken ct)
    {
        var json = pr.GetValue(CliContext.Json);
        if (json)
        {
            MarathonCli.PrintJson(result.ToJson());
        }
        else
        {
            Console.Out.WriteLine($"{what}: deployment {result.DeploymentId} (version {result.Version})");
        }

        return !wait || result.DeploymentId is null
            ? 0
            : await DeploymentWatch.RunAsync(client, new WatchTarget(appId, result.DeploymentId, removing ? null : result.Version, removing), timeout, json, ct);
    }

    private static string HealthCheck(JsonNode hc)
    {
        var protocol = MarathonCli.Str(hc, "protocol") ?? "HTTP";
        var target = protocol.Contains("COMMAND", StringComparison.Ordinal)
            ? MarathonCli.Str(hc["command"], "value") ?? ""
            : (protocol.Contains("HTTP", StringComparison.Ordinal) ? (MarathonCli.Str(hc, "path") ?? "/") + " " : "")
                + (hc["port"] is JsonValue ? $"port {MarathonCli.Int(hc, "port")}" : $"port index {MarathonCli.Int(hc, "portIndex")}");
        return string.Create(CultureInfo.InvariantCulture,
            $"{protocol} {target}, every {MarathonCli.Int(hc, "intervalSeconds")}s, timeout {MarathonCli.Int(hc, "timeoutSeconds")}s, grace {MarathonCli.Int(hc, "gracePeriodSeconds")}s, {MarathonCli.Int(hc, "maxConsecutiveFailures")} failures to kill");
    }

    private static string ShortAction(string action) => action switch
    {
        "StartApplication" => "start",
        "ScaleApplication" => "scale",
        "RestartApplication" => "restart",
        "StopApplication" => "stop",
        _ => action,
    };

    private static string Colour(string text, bool ok) => ok ? $"[green]{text}[/]" : $"[yellow]{text}[/]";
}

/// <summary>Reads an app definition: JSON, or YAML converted to the same JSON (YAML 1.2 core schema scalars).</summary>
internal static class DefinitionFile
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
        var node = isJson ? ParseJson(text, path) : ParseYaml(text, path);
        return node as JsonObject ?? throw new CliException($"{path}: an app definition must be an object", 2);
    }

    private static JsonNode? ParseJson(string text, string path)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: not valid JSON: {e.Message}", 2);
        }
    }

    public static JsonNode? ParseYaml(string text, string path)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new CliException($"{path}: not valid YAML (line {e.Start.Line}, column {e.Start.Column}): {e.InnerException?.Message ?? e.Message}", 2);
        }

        return stream.Documents.Count switch
        {
            0 => throw new CliException($"{path}: empty", 2),
            1 => Convert(stream.Documents[0].RootNode, path),
            _ => throw new CliException($"{path}: holds {stream.Documents.Count} YAML documents; give one app per file", 2),
        };
    }

    private static JsonNode? Convert(YamlNode node, string path)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (key, value) in map.Children)
                {
                    if (key is not YamlScalarNode { Value: { } name })
                    {
                        throw new CliException($"{path}: line {key.Start.Line}: keys must be plain strings", 2);
                    }

                    if (obj.ContainsKey(name))
                    {
                        throw new CliException($"{path}: line {key.Start.Line}: duplicate key '{name}'", 2);
                    }

                    obj[name] = Convert(value, path);
                }

                return obj;
            case YamlSequenceNode seq:
                return new JsonArray([.. seq.Children.Select(c => Convert(c, path))]);
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                throw new CliException($"{path}: line {node.Start.Line}: unsupported YAML node", 2);
        }
    }

    /// <summary>Quoted or <c>!!str</c> scalars are strings; plain ones are null, booleans and numbers when they read as such.</summary>
    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var text = s.Value ?? "";
        var tag = s.Tag.IsEmpty ? null : s.Tag.Value;
        if (tag == "tag:yaml.org,2002:str" || s.Style is not (ScalarStyle.Plain or ScalarStyle.Any))
        {
            return JsonValue.Create(text);
        }

        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        if (LooksNumeric(text))
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                return JsonValue.Create(l);
            }

            if (decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            {
                return JsonValue.Create(d);
            }

            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f))
            {
                return JsonValue.Create(f);
            }
        }

        return JsonValue.Create(text);
    }

    /// <summary>YAML 1.2 core schema decimal ints and floats: <c>[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?</c>.</summary>
    private static bool LooksNumeric(string text)
    {
        var i = 0;
        if (i < text.Length && text[i] is '-' or '+')
        {
            i++;
        }

        var digits = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            i++;
            digits++;
        }

        if (i < text.Length && text[i] == '.')
        {
            i++;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
                digits++;
            }
        }

        if (digits == 0)
        {
            return false;
        }

        if (i < text.Length && text[i] is 'e' or 'E')
        {
            i++;
            if (i < text.Length && text[i] is '-' or '+')
            {
                i++;
            }

            var exp = 0;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
                exp++;
            }

            if (exp == 0)
            {
                return false;
            }
        }

        return i == text.Length;
    }
}
