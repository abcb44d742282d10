using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Drover.Bench;

/// <summary>
/// Helpers for benchmarks that run <c>drover</c> as separate processes (<c>dotnet drover.dll …</c>):
/// start with output to a log, stop or SIGKILL, free loopback ports, polling with a deadline, medians.
/// </summary>
internal static class BenchProcesses
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);

    /// <summary>The 1-minute load average: on a shared 2-core machine, whether the figures were taken on a quiet one.</summary>
    public static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    /// <summary>"median 812 ms (runs: 790, 812, 845)".</summary>
    public static string Ms(List<double> seconds)
    {
        var sorted = seconds.Order().ToList();
        var median = sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
        return string.Create(CultureInfo.InvariantCulture, $"median {median * 1000:F0} ms (runs: {string.Join(", ", seconds.Select(s => (s * 1000).ToString("F0", CultureInfo.InvariantCulture)))})");
    }

    public static async Task<bool> PingAsync(HttpClient http, Uri master)
    {
        using var response = await http.GetAsync(new Uri(master, "ping"));
        return response.StatusCode == HttpStatusCode.OK;
    }

    public static Task UntilAsync(Func<Task<bool>> probe, TimeSpan timeout, string what, Process watched) =>
        UntilAsync(probe, ok => ok, timeout, what, watched);

    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string what, Process watched,
        TimeSpan? interval = null, Func<T, string>? describe = null)
    {
        var deadline = Stopwatch.StartNew();
        var last = "nothing yet";
        while (true)
        {
            if (watched.HasExited)
            {
                throw new InvalidOperationException($"bench: the process waited on exited with {watched.ExitCode} while waiting for {what}");
            }

            try
            {
                var value = await probe();
                if (done(value))
                {
                    return value;
                }

                last = describe?.Invoke(value) ?? value?.ToString() ?? "null";
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"bench: timed out waiting for {what}; last seen: {last}");
            }

            await Task.Delay(interval ?? Poll);
        }
    }

    public static Process Start(string droverDll, string[] args, string log, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(droverDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
        }

        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet");
        var writer = new StreamWriter(log, append: true) { AutoFlush = true };
        var gate = new Lock();
        p.OutputDataReceived += (_, e) => Append(writer, gate, e.Data);
        p.ErrorDataReceived += (_, e) => Append(writer, gate, e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.Exited += (_, _) =>
        {
            lock (gate)
            {
                writer.Dispose();
            }
        };
        p.EnableRaisingEvents = true;
        return p;
    }

    private static void Append(StreamWriter writer, Lock gate, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (gate)
        {
            try
            {
                writer.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    public static async Task StopAsync(Process p, bool kill)
    {
        if (!p.HasExited)
        {
            if (kill)
            {
                p.Kill();
            }
            else
            {
                _ = SysKill(p.Id, 15);
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }
        }

        p.Dispose();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
