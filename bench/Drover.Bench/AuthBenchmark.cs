using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Drover.Bench;

/// <summary>
/// What logins cost a client: <c>POST /acs/api/v1/auth/login</c> latency (PBKDF2 by design), and the latency of an
/// authenticated read (<c>GET /v2/leader</c>: the gate checks the token, the handler does almost nothing) on one
/// keep-alive connection. Run against <c>drover dev --auth</c> (<c>BENCH_AUTH=1</c>, <c>BENCH_ADMIN_PASSWORD</c>
/// set) and against <c>drover dev</c> (no logins: only the read is measured) in the same session to compare.
/// </summary>
internal static class AuthBenchmark
{
    public static async Task<int> RunAsync(Uri master, int requests, CancellationToken ct = default)
    {
        using var http = BenchHttp.Create(master, TimeSpan.FromSeconds(30));
        if (Environment.GetEnvironmentVariable("BENCH_ADMIN_PASSWORD") is { Length: > 0 } password)
        {
            var logins = new List<double>();
            using var anonymous = BenchHttp.Create(master, TimeSpan.FromSeconds(30));
            anonymous.DefaultRequestHeaders.Remove("Authorization");
            for (var i = 0; i < 21; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await anonymous.PostAsJsonAsync("/acs/api/v1/auth/login", new { uid = "admin", password }, ct);
                response.EnsureSuccessStatusCode();
                _ = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!["token"]!.GetValue<string>();
                if (i > 0)
                {
                    logins.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds); // the first pays for the connection and JIT
                }
            }

            Print("login (POST /acs/api/v1/auth/login)", logins, "ms");
        }

        for (var i = 0; i < 200; i++)
        {
            (await http.GetAsync("/v2/leader", ct)).EnsureSuccessStatusCode();
        }

        var reads = new List<double>(requests);
        for (var i = 0; i < requests; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await http.GetAsync("/v2/leader", ct);
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync(ct);
            reads.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        }

        Print(http.DefaultRequestHeaders.Contains("Authorization") ? "GET /v2/leader with a token" : "GET /v2/leader without logins", reads, "µs");
        return 0;
    }

    private static void Print(string what, List<double> samples, string unit)
    {
        samples.Sort();
        double At(double q) => samples[(int)Math.Min(samples.Count - 1, Math.Round(q * (samples.Count - 1)))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: n={samples.Count} median={At(0.5):0.0} {unit} p90={At(0.9):0.0} {unit} p99={At(0.99):0.0} {unit}"));
    }
}
