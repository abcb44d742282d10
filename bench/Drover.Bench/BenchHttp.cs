using System.Security.Cryptography.X509Certificates;
using Drover.Client;

namespace Drover.Bench;

/// <summary>
/// The bench's HTTP client for a master: plain, or — when <c>DROVER_CA_CERT</c> and <c>DROVER_TOKEN</c> are set (what
/// <c>BENCH_AUTH=1 bench/launch.sh</c> exports for <c>drover dev --auth</c>) — trusting the cluster CA and sending the
/// login token with every call, as a real client of a secure cluster does.
/// </summary>
internal static class BenchHttp
{
    public static HttpClient Create(Uri master, TimeSpan? timeout = null)
    {
        var ca = Environment.GetEnvironmentVariable("DROVER_CA_CERT");
        var handler = ca is { Length: > 0 } ? MasterTls.CreateHandler(new X509Certificate2Collection(X509Certificate2.CreateFromPem(File.ReadAllText(ca)))) : new SocketsHttpHandler();
        handler.UseProxy = false;
        var http = new HttpClient(handler) { BaseAddress = master };
        if (timeout is { } t)
        {
            http.Timeout = t;
        }

        if (Environment.GetEnvironmentVariable("DROVER_TOKEN") is { Length: > 0 } token)
        {
            http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "token=" + token);
        }

        return http;
    }
}
