using Drover.Store.Etcd;

namespace Drover.Bench;

/// <summary>
/// TLS to the benchmark's etcd when bench/etcd.sh started it with <c>BENCH_ETCD_TLS=1</c>: the files
/// it exports as <c>BENCH_ETCD_CA</c>, <c>BENCH_ETCD_CERT</c>, <c>BENCH_ETCD_KEY</c>.
/// </summary>
internal static class BenchEtcdTls
{
    private static string? Ca => Environment.GetEnvironmentVariable("BENCH_ETCD_CA");

    private static string? Certificate => Environment.GetEnvironmentVariable("BENCH_ETCD_CERT");

    private static string? Key => Environment.GetEnvironmentVariable("BENCH_ETCD_KEY");

    /// <summary><c>drover master</c>'s <c>--store-ca/--store-cert/--store-key</c>, or nothing without TLS.</summary>
    public static string[] MasterFlags() => Ca is { } ca
        ? ["--store-ca", ca, .. Certificate is { } c ? new[] { "--store-cert", c, "--store-key", Key! } : []]
        : [];

    /// <summary>The in-process store's TLS settings and https endpoints, or the endpoints as they are without TLS.</summary>
    public static (EtcdEndpoints Endpoints, EtcdTlsOptions? Tls) Apply(EtcdEndpoints endpoints)
    {
        if (Ca is not { } ca)
        {
            return (endpoints, null);
        }

        return EtcdTlsFiles.TryLoad(ca, Certificate, Key, out var tls, out var error)
            ? (endpoints.WithTls(), tls)
            : throw new ArgumentException($"BENCH_ETCD_*: {error!.File}: {error.Reason}");
    }
}
