using System.Net;
using System.Net.Sockets;

namespace Drover.Testing;

/// <summary>
/// Port ranges for test agents. Tasks bind their assigned ports on the real host, so two clusters
/// handing out the same range at the same time (test classes in parallel, a developer's `drover dev`)
/// collide with "address already in use". Each call returns a different range between 20000 and
/// 30000 (below the kernel's ephemeral ports) whose ports were all free when checked.
/// </summary>
public static class TestPorts
{
    private const int Low = 20_000;
    private const int High = 30_000;
    private static int _next = Low + (Random.Shared.Next((High - Low) / 200) * 200);

    /// <summary>A free range of <paramref name="size"/> ports in Mesos text form, e.g. <c>[24200-24299]</c>.</summary>
    public static string Range(int size = 100)
    {
        var begin = Block(size);
        return $"[{begin}-{begin + size - 1}]";
    }

    /// <summary>The first of <paramref name="size"/> consecutive ports that were all free (blocks are 200 apart), for servers a test starts.</summary>
    public static int Block(int size)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var begin = Interlocked.Add(ref _next, 200) - 200;
            if (begin + size > High)
            {
                Interlocked.Exchange(ref _next, Low);
                continue;
            }

            if (AllFree(begin, size))
            {
                return begin;
            }
        }

        throw new InvalidOperationException("no free port range found between 20000 and 30000");
    }

    /// <summary>Agent resources with a fresh port range.</summary>
    public static string Resources(string scalars = "cpus:2;mem:1024;disk:1024", int size = 100) => $"{scalars};ports:{Range(size)}";

    private static bool AllFree(int begin, int size)
    {
        for (var p = begin; p < begin + size; p++)
        {
            try
            {
                using var l = new TcpListener(IPAddress.Any, p);
                l.Start();
            }
            catch (SocketException)
            {
                return false;
            }
        }

        return true;
    }
}
