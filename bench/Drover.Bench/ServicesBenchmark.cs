using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Drover.Bench;

/// <summary>
/// One Marathon app with N instances of a tiny command and a COMMAND health check, POSTed through
/// <c>/v2/apps</c>; measures POST → all TASK_RUNNING and POST → all healthy, polling the app. Deletes
/// the app afterwards. Fails if the instances do not all get there before the timeout.
/// </summary>
internal static class ServicesBenchmark
{
    public static async Task<int> RunAsync(Uri master, int instances, TimeSpan timeout)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = master };
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

            await Task.Delay(100);
        }

        using (await http.DeleteAsync($"/v2/apps{id}?force=true"))
        {
        }

        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}"));
        Console.WriteLine(string.Create(inv, $"app: {instances} instances of [sleep 600], 0.01 cpu / 8 MiB each, COMMAND health check `true`"));
        Console.WriteLine(string.Create(inv, $"POST answered in {postSeconds * 1000:F0} ms"));
        if (allRunning is null || allHealthy is null)
        {
            Console.Error.WriteLine($"bench: timed out with {running} running and {healthy} healthy of {instances}");
            return 1;
        }

        Console.WriteLine(string.Create(inv, $"POST -> all {instances} TASK_RUNNING: {allRunning:F2} s ({instances / allRunning.Value:F0} instances/s)"));
        Console.WriteLine(string.Create(inv, $"POST -> all {instances} healthy: {allHealthy:F2} s ({instances / allHealthy.Value:F0} instances/s)"));
        return 0;
    }
}
