using System.Net;
using System.Net.Sockets;

namespace Drover.Testing.Network;

/// <summary>
/// A loopback TCP forwarder that a test can cut and heal, to partition one process from a server
/// (e.g. one master from etcd) while everything else still reaches it. A cut is a black hole, as a
/// real partition is: connections stay open and new ones are accepted, but no byte moves in either
/// direction until <see cref="Heal"/>, so the client sees timeouts, not resets. Thread-safe.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _connections = [];
    private readonly Lock _lock = new();
    private readonly Task _acceptLoop;
    private TaskCompletionSource _open = NewOpenGate();

    private TcpProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _acceptLoop = AcceptAsync();
    }

    /// <summary>host:port clients connect to instead of the target.</summary>
    public string Authority => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public bool IsCut => !_open.Task.IsCompleted;

    /// <summary>Starts forwarding a fresh loopback port to <paramref name="target"/> (an IPv4 literal host).</summary>
    public static TcpProxy Start(Uri target) => new(new IPEndPoint(IPAddress.Parse(target.Host), target.Port));

    /// <summary>Stops every byte in both directions, on open and new connections, until <see cref="Heal"/>.</summary>
    public void Cut()
    {
        lock (_lock)
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Lets bytes flow again (what was held back flows first, as after a healed partition).</summary>
    public void Heal()
    {
        lock (_lock)
        {
            _open.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Heal();
        lock (_lock)
        {
            foreach (var c in _connections)
            {
                c.Dispose();
            }
        }

        try
        {
            await _acceptLoop;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource NewOpenGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }

    private Task WhenOpen(CancellationToken ct)
    {
        lock (_lock)
        {
            return _open.Task.WaitAsync(ct);
        }
    }

    private async Task AcceptAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            var inbound = await _listener.AcceptTcpClientAsync(ct);
            _ = Task.Run(() => ServeAsync(inbound, ct), ct);
        }
    }

    private async Task ServeAsync(TcpClient inbound, CancellationToken ct)
    {
        using var outbound = new TcpClient();
        lock (_lock)
        {
            _connections.Add(inbound);
            _connections.Add(outbound);
        }

        try
        {
            await WhenOpen(ct);
            await outbound.ConnectAsync(_target, ct);
            inbound.NoDelay = outbound.NoDelay = true;
            using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var up = PumpAsync(inbound.GetStream(), outbound.GetStream(), done.Token);
            var down = PumpAsync(outbound.GetStream(), inbound.GetStream(), done.Token);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(inbound);
                _connections.Remove(outbound);
            }

            inbound.Dispose();
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                await WhenOpen(ct);
                var n = await from.ReadAsync(buffer, ct);
                if (n == 0)
                {
                    return;
                }

                // Bytes read just before a cut are held too: a cut connection delivers nothing.
                await WhenOpen(ct);
                await to.WriteAsync(buffer.AsMemory(0, n), ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }
}
