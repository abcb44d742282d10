using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Drover.Bench;

/// <summary>
/// One Marathon app with N instances of a tiny command and a COMMAND health check, POSTed through
/// <c>/v2/apps</c>; measures POST → all TASK_RUNNING and POST → all healthy, polling the app. Deletes
/// the app afterwards. Fails if the instances do not all get there before the timeout. With
/// <c>BENCH_TIMELINE=1</c> it prints the running and healthy counts at every poll.
/// </summary>
internal static class ServicesBenchmark
{
    /// <summary>
    /// Round 1 runs on a master and agent that just started (their code paths not yet compiled by the
    /// JIT: what a fresh <c>drover dev</c> shows once); every later round on the same, now warm,
    /// processes (what a master that has been up for a while shows). Between rounds the app is
    /// deleted and its instances are waited out, so each round starts from an empty agent.
    /// </summary>
    public static async Task<int> RunAsync(Uri master, int instances, int rounds, TimeSpan timeout)
    {
        using var http = BenchHttp.Create(master);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}"));
        Console.WriteLine(string.Create(inv, $"app: {instances} instances of [sleep 600], 0.01 cpu / 8 MiB each, COMMAND health check `true`"));
        for (var round = 1; round <= rounds; round++)
        {
            Console.WriteLine(round == 1 ? "round 1 (master and agent just started):" : string.Create(inv, $"round {round} (warm):"));
            if (await RoundAsync(http, instances, timeout) != 0)
            {
                return 1;
            }
        }

        return 0;
    }

    private static async Task<int> RoundAsync(HttpClient http, int instances, TimeSpan timeout)
    {
        var id = "/bench-" + Guid.NewGuid().ToString("N")[..8];
        var body = $$"""
            {"id": "{{id}}", "cmd": "sleep 600", "cpus": 0.01, "mem": 8, "instances": {{instances}},
             "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
             "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}, "gracePeriodSeconds": 300,
                               "intervalSeconds": 10, "timeoutSeconds": 10, "delaySeconds": 0, "maxConsecutiveFailures": 3}]}
            """;

        var clock = Stopwatch.StartNew();
        using (var response = await http.PostAsync("/v2/apps", new StringContent(body, Encoding.UTF8, "application/json")))
        {
            if (!response.IsSuccessStatusCode)
            {
                Console.Error.WriteLine($"bench: POST /v2/apps failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                return 1;
            }
        }

        var postSeconds = clock.Elapsed.TotalSeconds;
        double? allRunning = null, allHealthy = null;
        var timeline = Environment.GetEnvironmentVariable("BENCH_TIMELINE") == "1";
        var deadline = DateTime.UtcNow + timeout;
        int running = 0, healthy = 0;
        while (DateTime.UtcNow < deadline && allHealthy is null)
        {
            var app = (await http.GetFromJsonAsync<JsonObject>($"/v2/apps{id}?embed=app.counts"))!["app"]!;
            running = app["tasksRunning"]!.GetValue<int>();
            healthy = app["tasksHealthy"]!.GetValue<int>();
            if (allRunning is null && running >= instances)
            {
                allRunning = clock.Elapsed.TotalSeconds;
            }

            if (healthy >= instances)
            {
                allHealthy = clock.Elapsed.TotalSeconds;
            }

            if (timeline)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  t={clock.Elapsed.TotalSeconds,6:F2} s  running={running,5}  healthy={healthy,5}"));
            }

            await Task.Delay(100);
        }

        using (await http.DeleteAsync($"/v2/apps{id}?force=true"))
        {
        }

        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"  POST answered in {postSeconds * 1000:F0} ms"));
        if (allRunning is null || allHealthy is null)
        {
            Console.Error.WriteLine($"bench: timed out with {running} running and {healthy} healthy of {instances}");
            return 1;
        }

        Console.WriteLine(string.Create(inv, $"  POST -> all {instances} TASK_RUNNING: {allRunning:F2} s ({instances / allRunning.Value:F0} instances/s)"));
        Console.WriteLine(string.Create(inv, $"  POST -> all {instances} healthy: {allHealthy:F2} s ({instances / allHealthy.Value:F0} instances/s)"));

        // The next round starts on an empty agent: every instance of this one has ended.
        var quiet = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < quiet)
        {
            var tasks = (await http.GetFromJsonAsync<JsonObject>("/v2/tasks"))!["tasks"]!.AsArray();
            if (tasks.Count == 0)
            {
                return 0;
            }

            await Task.Delay(200);
        }

        Console.Error.WriteLine($"bench: the instances of {id} did not all end after its deletion");
        return 1;
    }
}
