using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Drover.Client.Marathon;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Drover.Cli.Commands;

/// <summary><c>drover deployment ls|watch|rollback</c>: the service deployments in progress.</summary>
internal static class DeploymentCommands
{
    public static Command Create()
    {
        var deployment = new Command("deployment", "Inspect, watch and roll back service deployments");
        deployment.Options.Add(CliContext.Json);
        deployment.Subcommands.Add(List());
        deployment.Subcommands.Add(Watch());
        deployment.Subcommands.Add(Rollback());
        return deployment;
    }

    private static Command List()
    {
        var cmd = new Command("ls", "List the deployments in progress");
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var deployments = await client.ListDeploymentsAsync(ct);
            if (pr.GetValue(CliContext.Json))
            {
                MarathonCli.PrintJson(deployments);
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "APPS", "ACTION", "STEP", "VERSION");
            foreach (var d in deployments.OfType<JsonObject>())
            {
                table.AddRow(
                    Markup.Escape(MarathonCli.Str(d, "id") ?? "-"),
                    Markup.Escape(string.Join(", ", MarathonCli.Strings(d["affectedApps"]))),
                    Markup.Escape(MarathonCli.ActionOf(d) ?? "-"),
                    $"{MarathonCli.Int(d, "currentStep")}/{MarathonCli.Int(d, "totalSteps")}",
                    Markup.Escape(MarathonCli.Str(d, "version") ?? "-"));
            }

            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }

    private static Command Watch()
    {
        var id = new Argument<string>("id") { Description = "Deployment id" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("watch", "Follow a deployment live until it finishes") { id, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var deploymentId = pr.GetValue(id)!;
            var dep = await FindAsync(client, deploymentId, ct);
            var removing = MarathonCli.ActionOf(dep) == "StopApplication";
            var target = new WatchTarget(MarathonCli.Strings(dep["affectedApps"]).FirstOrDefault() ?? "", deploymentId,
                removing ? null : MarathonCli.Str(dep, "version"), removing);
            return await DeploymentWatch.RunAsync(client, target, MarathonCli.Timeout(pr, timeout), pr.GetValue(CliContext.Json), ct);
        }));
        return cmd;
    }

    private static Command Rollback()
    {
        var id = new Argument<string>("id") { Description = "Deployment id" };
        var force = new Option<bool>("--force") { Description = "Only stop the deployment, leaving the instances as they are (no rollback)" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the rollback until it finishes" };
        var timeout = MarathonCli.TimeoutOption();
        var cmd = new Command("rollback", "Roll a deployment back to the app's previous definition (or stop it with --force)") { id, force, wait, timeout };
        cmd.SetAction(MarathonCli.Action(async (pr, client, ct) =>
        {
            var deploymentId = pr.GetValue(id)!;
            var json = pr.GetValue(CliContext.Json);
            var dep = await FindAsync(client, deploymentId, ct);
            var appId = MarathonCli.Strings(dep["affectedApps"]).FirstOrDefault() ?? "";
            var rollback = await client.CancelDeploymentAsync(deploymentId, pr.GetValue(force), ct);
            if (rollback is null)
            {
                if (json)
                {
                    MarathonCli.PrintJson(new JsonObject());
                }
                else
                {
                    Console.Out.WriteLine($"deployment {deploymentId} of {appId} stopped; its instances are left as they are");
                }

                return 0;
            }

            // Rolling back the creation of an app deletes it.
            var rb = (await client.ListDeploymentsAsync(ct)).OfType<JsonObject>().FirstOrDefault(d => MarathonCli.Str(d, "id") == rollback.DeploymentId);
            var removing = rb is not null ? MarathonCli.ActionOf(rb) == "StopApplication" : await client.FindAppAsync(appId, [], ct) is null;
            if (json)
            {
                MarathonCli.PrintJson(rollback.ToJson());
            }
            else if (removing)
            {
                Console.Out.WriteLine($"rolling back the creation of {appId}: deployment {rollback.DeploymentId} removes it (replaces {deploymentId})");
            }
            else
            {
                Console.Out.WriteLine($"rolling back {appId}: deployment {rollback.DeploymentId} restores the previous definition as version {rollback.Version} (replaces {deploymentId})");
            }

            if (!pr.GetValue(wait))
            {
                return 0;
            }

            return await DeploymentWatch.RunAsync(client, new WatchTarget(appId, rollback.DeploymentId!, removing ? null : rollback.Version, removing),
                MarathonCli.Timeout(pr, timeout), json, ct);
        }));
        return cmd;
    }

    private static async Task<JsonObject> FindAsync(MarathonClient client, string deploymentId, CancellationToken ct) =>
        (await client.ListDeploymentsAsync(ct)).OfType<JsonObject>().FirstOrDefault(d => MarathonCli.Str(d, "id") == deploymentId)
        ?? throw new CliException($"no deployment {deploymentId} in progress (it may have finished; see `drover deployment ls`)", 2);
}

/// <summary>Shared plumbing of the service commands: client, errors, JSON, options.</summary>
internal static class MarathonCli
{
    public const string DefaultTimeout = "10m";

    private static readonly JsonWriterOptions Indented = new() { Indented = true };

    public static MarathonClient Client(ParseResult pr) => new(CliContext.MasterUrl(pr), CliContext.Handler(pr));

    /// <summary>An action with a Marathon client whose API errors print as <c>path: error</c> lines (exit 2 for 4xx, else 1).</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Action(Func<ParseResult, MarathonClient, CancellationToken, Task<int>> body) =>
        async (pr, ct) =>
        {
            using var client = Client(pr);
            try
            {
                return await body(pr, client, ct);
            }
            catch (MarathonApiException e)
            {
                await PrintErrorAsync(e);
                return e.StatusCode is >= 400 and < 500 ? 2 : 1;
            }
        };

    private static async Task PrintErrorAsync(MarathonApiException e)
    {
        var err = Console.Error;
        if (e.StatusCode == 409 && e.LockingDeployments is { Count: > 0 } locks)
        {
            var ids = string.Join(", ", locks);
            await err.WriteLineAsync($"drover: the app is locked by deployment {ids}; rerun with --force to override it, or roll it back with `drover deployment rollback {locks[0]}`");
            return;
        }

        await err.WriteLineAsync($"drover: {e.ApiMessage}");
        foreach (var d in e.Details)
        {
            foreach (var error in d.Errors.DefaultIfEmpty("invalid"))
            {
                await err.WriteLineAsync($"  {d.Path}: {error}");
            }
        }
    }

    /// <summary><c>web</c>, <c>/web</c>, <c>/prod/web</c> → the absolute id, or exit 2.</summary>
    public static string AppId(string text)
    {
        try
        {
            return MarathonClient.NormalizeAppId(text);
        }
        catch (ArgumentException)
        {
            throw new CliException($"'{text}' is not an app id (e.g. web or /prod/web)", 2);
        }
    }

    public static Option<string> TimeoutOption() => new("--timeout")
    {
        Description = "How long to wait for the deployment, e.g. 90s, 5m, 1h",
        DefaultValueFactory = _ => DefaultTimeout,
    };

    public static TimeSpan Timeout(ParseResult pr, Option<string> option) => ParseDuration(pr.GetValue(option) ?? DefaultTimeout, option.Name);

    /// <summary><c>90</c> (seconds), <c>90s</c>, <c>1.5m</c>, <c>1h30m</c>, <c>500ms</c> or <c>00:10:00</c>.</summary>
    public static TimeSpan ParseDuration(string text, string option)
    {
        text = text.Trim();
        if (text.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero)
        {
            return span;
        }

        var total = TimeSpan.Zero;
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }

            if (start == unitStart || !double.TryParse(text[start..unitStart], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n))
            {
                throw new CliException($"{option}: '{text}' is not a duration (e.g. 90s, 5m, 1h)", 2);
            }

            total += text[unitStart..i].ToLowerInvariant() switch
            {
                "" or "s" => TimeSpan.FromSeconds(n),
                "ms" => TimeSpan.FromMilliseconds(n),
                "m" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                _ => throw new CliException($"{option}: '{text}' is not a duration (units: ms, s, m, h)", 2),
            };
        }

        return total > TimeSpan.Zero ? total : throw new CliException($"{option}: must be more than 0", 2);
    }

    public static void PrintJson(JsonNode? node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, Indented))
        {
            if (node is null)
            {
                writer.WriteNullValue();
            }
            else
            {
                node.WriteTo(writer);
            }
        }

        Console.Out.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }

    public static string? Str(JsonNode? node, string name) =>
        node?[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public static int Int(JsonNode? node, string name) =>
        node?[name] is JsonValue v && v.TryGetValue<decimal>(out var d) ? (int)d : 0;

    public static decimal? Dec(JsonNode? node, string name) =>
        node?[name] is JsonValue v && v.TryGetValue<decimal>(out var d) ? d : null;

    /// <summary>The strings of an array (or of one property of each of its objects).</summary>
    public static IEnumerable<string> Strings(JsonNode? array, string? property = null) =>
        array is not JsonArray a ? [] : a.Select(e => property is null ? e : e?[property]).OfType<JsonValue>()
            .Select(v => v.TryGetValue<string>(out var s) ? s : v.ToJsonString());

    /// <summary>A deployment's current action (<c>RestartApplication</c>…).</summary>
    public static string? ActionOf(JsonNode? deployment) =>
        deployment?["currentActions"] is JsonArray { Count: > 0 } actions ? Str(actions[0], "action") : null;

    public static string Number(decimal? d) => d?.ToString("0.###", CultureInfo.InvariantCulture) ?? "-";

    public static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s";
}

/// <summary>What to follow: one deployment of one app, and the app version it should leave running.</summary>
/// <param name="Version">The version the app should be at afterwards; null to not check.</param>
/// <param name="Removing">The deployment deletes the app: the app being gone is success.</param>
internal sealed record WatchTarget(string AppId, string DeploymentId, string? Version, bool Removing);

/// <summary>One instance version's counts in the progress view.</summary>
internal sealed record VersionCount(string Version, bool Target, int Instances, int Running, int Healthy, int Unhealthy);

/// <summary>One poll of a deployment's progress.</summary>
internal sealed record DeploymentProgress(WatchTarget Target, JsonObject? App, JsonObject? Deployment, JsonObject? Queued, TimeSpan Elapsed)
{
    public bool Finished => Deployment is null;

    public bool HasHealthChecks => App?["healthChecks"] is JsonArray { Count: > 0 };

    public int Wanted => Target.Removing ? 0 : MarathonCli.Int(App, "instances");

    public IReadOnlyList<JsonObject> Tasks => App?["tasks"] is JsonArray tasks ? [.. tasks.OfType<JsonObject>()] : [];

    /// <summary>The instances that count towards the deployment: those of the app's (target) version, or all when removing.</summary>
    public IReadOnlyList<JsonObject> TargetTasks => Target.Removing ? Tasks : [.. Tasks.Where(t => MarathonCli.Str(t, "version") == MarathonCli.Str(App, "version"))];

    /// <summary>e.g. <c>1/2 running, 0/2 healthy</c> for the target version.</summary>
    public string Counts(bool markup = false)
    {
        var (b, e) = markup ? ("[bold]", "[/]") : ("", "");
        var text = $"{b}{TargetTasks.Count(Running)}/{Wanted}{e} running";
        return HasHealthChecks ? text + $", {b}{TargetTasks.Count(t => Running(t) && Health(t) == true)}/{Wanted}{e} healthy" : text;
    }

    public IReadOnlyList<VersionCount> Versions =>
        [.. Tasks.GroupBy(t => MarathonCli.Str(t, "version") ?? "?")
            .Select(g => new VersionCount(g.Key, g.Key == MarathonCli.Str(App, "version"), g.Count(), g.Count(Running), g.Count(t => Health(t) == true), g.Count(t => Health(t) == false)))
            .OrderByDescending(v => v.Target).ThenByDescending(v => v.Version, StringComparer.Ordinal)];

    /// <summary>Why instances wait to launch, as the queue says (placement reasons, launch delay).</summary>
    public IReadOnlyList<string> Waiting
    {
        get
        {
            if (Queued is null)
            {
                return [];
            }

            var reasons = MarathonCli.Strings(Queued["lastUnusedOfferReasons"]).Where(r => !r.StartsWith("waiting for the next", StringComparison.Ordinal))
                .Select(r => $"{MarathonCli.Int(Queued, "count")} waiting to launch: {r}").ToList();
            if (MarathonCli.Int(Queued["delay"], "timeLeftSeconds") is > 0 and var delay)
            {
                reasons.Add($"launch delayed {delay}s after failed instances (backoff)");
            }

            return reasons;
        }
    }

    public static bool Running(JsonObject task) => MarathonCli.Str(task, "state") == "TASK_RUNNING";

    /// <summary>true/false from the task's health check results; null when it has none yet (or no check).</summary>
    public static bool? Health(JsonObject task) =>
        task["healthCheckResults"] is JsonArray { Count: > 0 } results
            ? results.All(r => r?["alive"] is JsonValue v && v.TryGetValue<bool>(out var alive) && alive)
            : null;

    /// <summary>One line without the time, e.g. <c>1/2 running, 0/2 healthy at V2; old V1: 2 (2 running, 2 healthy)</c>.</summary>
    public string Summary(bool waiting = true)
    {
        if (App is null)
        {
            return "app removed";
        }

        var text = new StringBuilder(Counts());
        if (!Target.Removing)
        {
            text.Append(" at ").Append(MarathonCli.Str(App, "version"));
        }

        foreach (var v in Versions.Where(v => !v.Target && !Target.Removing))
        {
            text.Append(CultureInfo.InvariantCulture, $"; old {v.Version}: {v.Instances} ({v.Running} running");
            text.Append(HasHealthChecks ? $", {v.Healthy} healthy)" : ")");
        }

        foreach (var w in waiting ? Waiting : [])
        {
            text.Append("; ").Append(w);
        }

        return text.ToString();
    }

    public IRenderable Render()
    {
        var action = MarathonCli.ActionOf(Deployment);
        var header = new Markup($"[bold]{Markup.Escape(Target.AppId)}[/]  deployment [blue]{Markup.Escape(Target.DeploymentId)}[/]"
            + (action is not null ? $" ({Markup.Escape(action)})" : Finished ? " [green]finished[/]" : "") + $"  [grey]{MarathonCli.Seconds(Elapsed)}[/]");
        if (App is null)
        {
            return new Rows(header, new Markup("app removed"));
        }

        var counts = "instances: " + Counts(markup: true);
        var table = new Table().Border(TableBorder.Rounded).AddColumns("VERSION", "INSTANCES", "RUNNING", "HEALTHY");
        foreach (var v in Versions)
        {
            table.AddRow(
                Markup.Escape(v.Version) + (v.Target ? " [green](target)[/]" : " [grey](old)[/]"),
                v.Instances.ToString(CultureInfo.InvariantCulture),
                v.Running.ToString(CultureInfo.InvariantCulture),
                !HasHealthChecks ? "-" : v.Unhealthy > 0 ? $"{v.Healthy} [red]({v.Unhealthy} failing)[/]" : v.Healthy.ToString(CultureInfo.InvariantCulture));
        }

        var rows = new List<IRenderable> { header, new Markup(counts) };
        if (Versions.Count > 0)
        {
            rows.Add(table);
        }

        rows.AddRange(Waiting.Select(w => new Markup($"[yellow]{Markup.Escape(w)}[/]")));
        return new Rows(rows);
    }
}

/// <summary>
/// Follows a deployment until it is gone from <c>/v2/deployments</c> (it finished, or was replaced),
/// showing instances running/healthy against wanted and the versions in flight: a live view on a
/// terminal, a line per change otherwise, nothing with <c>--json</c>. On timeout, says what is stuck.
/// Exit codes: 0 finished, 1 timed out, replaced by another deployment, or the app vanished.
/// </summary>
internal static class DeploymentWatch
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);

    public static async Task<int> RunAsync(MarathonClient client, WatchTarget target, TimeSpan timeout, bool quiet, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var startedAt = DateTimeOffset.UtcNow;
        DeploymentProgress progress;
        if (!quiet && !Console.IsOutputRedirected)
        {
            progress = await PollAsync(client, target, clock, ct);
            var last = progress;
            await AnsiConsole.Live(progress.Render()).AutoClear(false).StartAsync(async ctx =>
            {
                while (!last.Finished && clock.Elapsed < timeout)
                {
                    await Task.Delay(Poll, ct);
                    last = await PollAsync(client, target, clock, ct);
                    ctx.UpdateTarget(last.Render());
                }
            });
            progress = last;
        }
        else
        {
            string? lastLine = null;
            while (true)
            {
                progress = await PollAsync(client, target, clock, ct);
                var line = progress.Summary();
                if (!quiet && line != lastLine && !progress.Finished)
                {
                    Console.Out.WriteLine($"[{MarathonCli.Seconds(progress.Elapsed),6}] {target.AppId}: {line}");
                    lastLine = line;
                }

                if (progress.Finished || clock.Elapsed >= timeout)
                {
                    break;
                }

                await Task.Delay(Poll, ct);
            }
        }

        return progress.Finished ? Finish(progress, quiet) : await StuckAsync(client, progress, timeout, startedAt, ct);
    }

    private static async Task<DeploymentProgress> PollAsync(MarathonClient client, WatchTarget target, Stopwatch clock, CancellationToken ct)
    {
        // Deployments first: when ours is gone, the app read after it shows the state it left.
        var deployments = await client.ListDeploymentsAsync(ct);
        var deployment = deployments.OfType<JsonObject>().FirstOrDefault(d => MarathonCli.Str(d, "id") == target.DeploymentId);
        var app = await client.FindAppAsync(target.AppId, ct: ct);
        var queue = await client.GetQueueAsync(ct);
        var queued = queue.OfType<JsonObject>().FirstOrDefault(q => MarathonCli.Str(q["app"], "id") == target.AppId);
        return new DeploymentProgress(target, app, deployment, queued, clock.Elapsed);
    }

    private static int Finish(DeploymentProgress p, bool quiet)
    {
        var t = p.Target;
        if (p.App is null)
        {
            if (t.Removing)
            {
                if (!quiet)
                {
                    Console.Out.WriteLine($"{t.AppId} removed (deployment {t.DeploymentId}, {MarathonCli.Seconds(p.Elapsed)})");
                }

                return 0;
            }

            Console.Error.WriteLine($"drover: {t.AppId} was removed while deployment {t.DeploymentId} ran (rolled back or deleted)");
            return 1;
        }

        var others = MarathonCli.Strings(p.App["deployments"], "id").Where(id => id != t.DeploymentId).ToList();
        var version = MarathonCli.Str(p.App, "version");
        if (others.Count > 0 || (t.Version is not null && version != t.Version) || t.Removing)
        {
            var by = others.Count > 0 ? $" by deployment {string.Join(", ", others)}" : "";
            Console.Error.WriteLine($"drover: deployment {t.DeploymentId} of {t.AppId} was replaced{by} (rolled back or overridden); the app is at version {version}");
            return 1;
        }

        if (!quiet)
        {
            Console.Out.WriteLine($"{t.AppId}: deployment {t.DeploymentId} finished in {MarathonCli.Seconds(p.Elapsed)}: {p.Summary()}");
        }

        return 0;
    }

    private static async Task<int> StuckAsync(MarathonClient client, DeploymentProgress p, TimeSpan timeout, DateTimeOffset startedAt, CancellationToken ct)
    {
        var t = p.Target;
        var err = Console.Error;
        await err.WriteLineAsync($"drover: deployment {t.DeploymentId} of {t.AppId} did not finish within {MarathonCli.Seconds(timeout)}");
        await err.WriteLineAsync($"  now: {p.Summary(waiting: false)}");
        foreach (var w in p.Waiting)
        {
            await err.WriteLineAsync($"  {w}");
        }

        var target = MarathonCli.Str(p.App, "version");
        foreach (var task in p.Tasks)
        {
            var id = MarathonCli.Str(task, "id");
            var where = $"instance {id}{(MarathonCli.Str(task, "host") is { } host ? " on " + host : "")} (version {MarathonCli.Str(task, "version")})";
            var state = MarathonCli.Str(task, "state");
            if (state != "TASK_RUNNING")
            {
                await err.WriteLineAsync($"  {where} is {state}");
            }
            else if (p.HasHealthChecks && DeploymentProgress.Health(task) is not true && MarathonCli.Str(task, "version") == target)
            {
                await err.WriteLineAsync(DeploymentProgress.Health(task) is false
                    ? $"  {where} is failing its health check"
                    : $"  {where} has no passing health check yet (grace period, or the check never succeeded)");
            }
        }

        var old = p.Tasks.Count(task => MarathonCli.Str(task, "version") != target);
        if (old > 0 && !t.Removing)
        {
            await err.WriteLineAsync($"  {old} instance(s) of older versions still run until the new ones are healthy");
        }

        // The last failure since the watch started, if the app records one.
        var failure = p.App?["lastTaskFailure"] as JsonObject ?? (await client.FindAppAsync(t.AppId, ["app.lastTaskFailure"], ct))?["lastTaskFailure"] as JsonObject;
        if (failure is not null && DateTimeOffset.TryParse(MarathonCli.Str(failure, "timestamp"), CultureInfo.InvariantCulture, out var at) && at >= startedAt.AddSeconds(-1))
        {
            await err.WriteLineAsync($"  last failure: {MarathonCli.Str(failure, "taskId")} {MarathonCli.Str(failure, "state")} on {MarathonCli.Str(failure, "host")}: {MarathonCli.Str(failure, "message")}");
        }

        await err.WriteLineAsync($"  it goes on; roll it back with `drover deployment rollback {t.DeploymentId}`, or follow it with `drover deployment watch {t.DeploymentId}`");
        return 1;
    }
}
