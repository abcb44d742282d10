using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Drover.Testing.Processes;

/// <summary>Signals a test may send to a <see cref="DroverProcess"/>.</summary>
public enum ProcessSignal
{
    Interrupt = 2,
    Kill = 9,
    Terminate = 15,
    Continue = 18,
    Stop = 19,
}

/// <summary>
/// The real <c>drover</c> CLI (<c>dotnet drover.dll …</c>, the build copies it next to the test
/// assembly) running as a separate OS process, optionally inside a network namespace. Its stdout and
/// stderr go to a log file (when given) and a ring buffer of the last lines, for failure messages.
/// Disposing terminates it gracefully (SIGTERM, then SIGKILL after 10 s) so an agent kills its tasks
/// and removes their cgroups.
/// </summary>
/// <remarks>
/// A namespace is entered with <c>nsenter --net=/run/netns/NAME</c>, not <c>ip netns exec</c>: the
/// latter also unshares the mount namespace and remounts <c>/sys</c>, which hides
/// <c>/sys/fs/cgroup</c> from the agent so it refuses to start. nsenter does not fork when only the
/// network namespace is entered, so <see cref="Pid"/> is the dotnet process itself and signals reach it.
/// </remarks>
public sealed class DroverProcess : IAsyncDisposable
{
    public static readonly TimeSpan DefaultStopTimeout = TimeSpan.FromSeconds(10);

    // Proxies would send the cluster's own traffic (agent → master, master → agent) elsewhere.
    private static readonly string[] ProxyVariables = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];

    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly int _tailLines;
    private readonly StreamWriter? _log;
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stdoutDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    private DroverProcess(string name, Process process, string commandLine, string? logFile, int tailLines)
    {
        Name = name;
        _process = process;
        CommandLine = commandLine;
        LogFile = logFile;
        _tailLines = tailLines;
        if (logFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFile))!);
            _log = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite), new UTF8Encoding(false)) { AutoFlush = true };
        }
    }

    /// <summary>A label for messages, e.g. <c>agent2</c>.</summary>
    public string Name { get; }

    public string CommandLine { get; }

    public string? LogFile { get; }

    public int Pid { get; private set; }

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>The exit code once it has exited (128 + n when killed by signal n), else null.</summary>
    public int? ExitCode => HasExited ? _process.ExitCode : null;

    /// <summary>Completes when the process has exited.</summary>
    public Task Exited => _exited.Task;

    /// <summary>Where <c>drover.dll</c> is: next to the test assembly.</summary>
    public static string DroverDll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "drover.dll");
            if (!File.Exists(dll))
            {
                throw new FileNotFoundException(
                    $"drover.dll is not next to the test assembly in {AppContext.BaseDirectory}; the test project must reference src/Drover.Cli", dll);
            }

            if (!File.Exists(Path.ChangeExtension(dll, ".runtimeconfig.json")))
            {
                throw new FileNotFoundException(
                    $"drover.runtimeconfig.json is missing in {AppContext.BaseDirectory}: 'dotnet drover.dll' cannot start without it "
                    + "(the SDK copies it for a referenced Exe project; check the project reference to src/Drover.Cli)", dll);
            }

            return dll;
        }
    }

    /// <summary>The <c>dotnet</c> host running these tests (falls back to the one on PATH).</summary>
    public static string DotnetHost
    {
        get
        {
            if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
            {
                return hostPath;
            }

            if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                return self;
            }

            if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && File.Exists(Path.Combine(root, "dotnet")))
            {
                return Path.Combine(root, "dotnet");
            }

            return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(dir => Path.Combine(dir, "dotnet")).FirstOrDefault(File.Exists) ?? "dotnet";
        }
    }

    /// <summary>
    /// Starts <c>dotnet drover.dll <paramref name="args"/></c>, inside network namespace
    /// <paramref name="netns"/> (a name from <c>ip netns list</c>) when given.
    /// </summary>
    public static DroverProcess Start(string name, IEnumerable<string> args, string? netns = null, string? logFile = null, int tailLines = 400)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(args);
        var argv = new List<string>();
        string fileName;
        if (netns is not null)
        {
            var path = Path.Combine("/run/netns", netns);
            if (!File.Exists(path))
            {
                throw new ArgumentException($"network namespace '{netns}' does not exist ({path})", nameof(netns));
            }

            fileName = "nsenter";
            argv.AddRange([$"--net={path}", "--", DotnetHost]);
        }
        else
        {
            fileName = DotnetHost;
        }

        argv.Add(DroverDll);
        argv.AddRange(args);

        var psi = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var arg in argv)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var variable in ProxyVariables)
        {
            psi.Environment.Remove(variable);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var drover = new DroverProcess(name, process, ProcessRunner.Describe(fileName, argv), logFile, tailLines);
        process.OutputDataReceived += (_, e) => drover.OnLine(e.Data, stderr: false);
        process.ErrorDataReceived += (_, e) => drover.OnLine(e.Data, stderr: true);
        process.Exited += (_, _) => drover._exited.TrySetResult();
        try
        {
            process.Start();
        }
        catch
        {
            process.Dispose();
            drover._log?.Dispose();
            throw;
        }

        drover.Pid = process.Id;
        drover.Append($"--- started pid {drover.Pid}: {drover.CommandLine}");
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return drover;
    }

    /// <summary>The last lines it printed (stderr lines are prefixed with <c>!</c>), with its state.</summary>
    public string Tail()
    {
        lock (_gate)
        {
            var state = HasExited ? $"exited with {_process.ExitCode}" : "running";
            return $"==== {Name} (pid {Pid}, {state}) — last {_tail.Count} lines ====\n{string.Join('\n', _tail)}";
        }
    }

    /// <summary>Sends <paramref name="signal"/> without waiting. False when the process is gone.</summary>
    public bool Signal(ProcessSignal signal)
    {
        if (HasExited || Pid <= 1)
        {
            return false;
        }

        if (signal != ProcessSignal.Continue)
        {
            Append($"--- sending SIG{signal.ToString().ToUpperInvariant()}");
        }

        return SysKill(Pid, (int)signal) == 0;
    }

    /// <summary>
    /// Sends SIGTERM, SIGINT or SIGKILL and waits for the process to exit.
    /// </summary>
    /// <exception cref="TimeoutException">It was still running after <paramref name="timeout"/> (default 10 s).</exception>
    public async Task KillAsync(ProcessSignal signal = ProcessSignal.Kill, TimeSpan? timeout = null)
    {
        if (signal is not (ProcessSignal.Kill or ProcessSignal.Terminate or ProcessSignal.Interrupt))
        {
            throw new ArgumentException($"{signal} does not end a process; use Signal()", nameof(signal));
        }

        if (signal != ProcessSignal.Kill)
        {
            Signal(ProcessSignal.Continue); // a stopped process cannot handle SIGTERM
        }

        Signal(signal);
        if (!await WaitForExitAsync(timeout ?? DefaultStopTimeout).ConfigureAwait(false))
        {
            throw new TimeoutException($"{Name} (pid {Pid}) did not exit within {(timeout ?? DefaultStopTimeout).TotalSeconds:0.#} s of {signal}\n{Tail()}");
        }
    }

    /// <summary>Waits for it to exit (and its output to be read); false on timeout.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        var exited = _exited.Task;
        if (await Task.WhenAny(exited, Task.Delay(timeout)).ConfigureAwait(false) != exited)
        {
            return false;
        }

        // The pipes close when the process exits unless a child kept them: don't wait long for that.
        var output = Task.WhenAll(_stdoutDone.Task, _stderrDone.Task);
        await Task.WhenAny(output, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        return true;
    }

    /// <summary>Stops it if still running: SIGTERM, up to 10 s to exit, then SIGKILL.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            if (!HasExited)
            {
                Signal(ProcessSignal.Continue);
                Signal(ProcessSignal.Terminate);
                if (!await WaitForExitAsync(DefaultStopTimeout).ConfigureAwait(false))
                {
                    Append($"--- still running {DefaultStopTimeout.TotalSeconds:0} s after SIGTERM: SIGKILL");
                    Signal(ProcessSignal.Kill);
                    await WaitForExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                }
            }

            if (HasExited)
            {
                Append($"--- exited with {_process.ExitCode}");
            }
        }
        finally
        {
            _process.Dispose();
            lock (_gate)
            {
                _log?.Dispose();
            }
        }
    }

    public override string ToString() => $"{Name} (pid {Pid})";

    private void OnLine(string? line, bool stderr)
    {
        if (line is null)
        {
            (stderr ? _stderrDone : _stdoutDone).TrySetResult();
            return;
        }

        Append(stderr ? "! " + line : line);
    }

    private void Append(string line)
    {
        lock (_gate)
        {
            _tail.Enqueue(line);
            while (_tail.Count > _tailLines)
            {
                _tail.Dequeue();
            }

            try
            {
                _log?.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // Output that arrives after disposal stays in the tail only.
            }
        }
    }

    // DllImport, not LibraryImport: the generated marshalling would need AllowUnsafeBlocks in this project.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
