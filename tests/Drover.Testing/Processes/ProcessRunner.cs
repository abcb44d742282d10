using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Drover.Testing.Processes;

/// <summary>What a finished short-lived command printed and how it exited.</summary>
public sealed record ProcessResult(int ExitCode, string StdOut, string StdErr)
{
    public bool Succeeded => ExitCode == 0;

    public override string ToString()
    {
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"exit {ExitCode}");
        if (StdOut.Length > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"; stdout: {StdOut.TrimEnd()}");
        }

        if (StdErr.Length > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"; stderr: {StdErr.TrimEnd()}");
        }

        return text.ToString();
    }
}

/// <summary>Runs short-lived helper commands (<c>ip</c>, <c>sysctl</c>…) with a deadline.</summary>
public static class ProcessRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs <paramref name="fileName"/> and returns its exit code and output; never throws on a non-zero exit.</summary>
    /// <param name="environment">Variables to set for it (a null value removes the variable); the rest are inherited.</param>
    /// <exception cref="TimeoutException">It ran longer than <paramref name="timeout"/> (it is killed).</exception>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> args, TimeSpan? timeout = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        ArgumentNullException.ThrowIfNull(args);
        var psi = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                psi.Environment.Remove(name);
            }
            else
            {
                psi.Environment[name] = value;
            }
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }

            throw new TimeoutException($"'{Describe(fileName, psi.ArgumentList)}' did not finish within {(timeout ?? DefaultTimeout).TotalSeconds:0.#} s");
        }

        return new ProcessResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    public static Task<ProcessResult> RunAsync(string fileName, params string[] args) => RunAsync(fileName, (IEnumerable<string>)args);

    /// <summary>Like <see cref="RunAsync(string, IEnumerable{string}, TimeSpan?)"/> but throws when the exit code is not 0.</summary>
    public static async Task<ProcessResult> CheckedAsync(string fileName, params string[] args)
    {
        var result = await RunAsync(fileName, (IEnumerable<string>)args).ConfigureAwait(false);
        return result.Succeeded
            ? result
            : throw new InvalidOperationException($"'{Describe(fileName, args)}' failed: {result}");
    }

    /// <summary>The command line for messages, arguments with spaces quoted.</summary>
    public static string Describe(string fileName, IEnumerable<string> args) =>
        string.Join(' ', new[] { fileName }.Concat(args).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a));
}
