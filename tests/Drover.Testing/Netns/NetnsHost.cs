using System.Globalization;
using System.Net;
using Drover.Testing.Processes;

namespace Drover.Testing.Netns;

/// <summary>
/// One simulated machine of a <see cref="NetnsNetwork"/>: a network namespace whose <c>eth0</c> is a veth
/// whose other end is attached to the network's bridge in the root namespace.
/// </summary>
public sealed class NetnsHost
{
    internal NetnsHost(NetnsNetwork network, int index, string name, string rootVeth, IPAddress address)
    {
        Network = network;
        Index = index;
        Name = name;
        RootVeth = rootVeth;
        Address = address;
    }

    public NetnsNetwork Network { get; }

    /// <summary>1-based position in the network.</summary>
    public int Index { get; }

    /// <summary>The namespace's name (<c>ip netns list</c>), e.g. <c>drv-1a2b-h1</c>.</summary>
    public string Name { get; }

    /// <summary>The namespace's file, for <c>nsenter --net=</c>.</summary>
    public string NamespacePath => Path.Combine("/run/netns", Name);

    /// <summary>The root-namespace end of the host's veth pair, attached to the bridge.</summary>
    public string RootVeth { get; }

    /// <summary>The host's address on <c>eth0</c> (prefix /24).</summary>
    public IPAddress Address { get; }

    /// <summary>True between <see cref="CutOffAsync"/> and <see cref="HealAsync"/>.</summary>
    public bool IsCutOff { get; private set; }

    /// <summary>Runs a command inside the namespace (<c>ip netns exec</c>) and returns how it went; does not throw on failure.</summary>
    public Task<ProcessResult> ExecAsync(IEnumerable<string> args, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("ip", new[] { "netns", "exec", Name }.Concat(args), timeout);

    /// <summary>Runs a command inside the namespace (<c>ip netns exec</c>) and returns how it went; does not throw on failure.</summary>
    public Task<ProcessResult> ExecAsync(params string[] args) => ExecAsync((IEnumerable<string>)args);

    /// <summary>
    /// Disconnects the host from the network (its veth goes down on the bridge side): packets to and from
    /// it are dropped, as if its cable were pulled. Processes inside keep running.
    /// </summary>
    public async Task CutOffAsync()
    {
        await ProcessRunner.CheckedAsync("ip", "link", "set", RootVeth, "down").ConfigureAwait(false);
        IsCutOff = true;
    }

    /// <summary>Reconnects a host cut off by <see cref="CutOffAsync"/>.</summary>
    public async Task HealAsync()
    {
        await ProcessRunner.CheckedAsync("ip", "link", "set", RootVeth, "up").ConfigureAwait(false);
        IsCutOff = false;
    }

    /// <summary>Pids of every process in the namespace (<c>ip netns pids</c>).</summary>
    public async Task<IReadOnlyList<int>> PidsAsync()
    {
        var result = await ProcessRunner.RunAsync("ip", "netns", "pids", Name).ConfigureAwait(false);
        return result.Succeeded
            ? [.. result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture))]
            : [];
    }

    public override string ToString() => $"{Name} ({Address})";
}
