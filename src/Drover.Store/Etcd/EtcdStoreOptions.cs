namespace Drover.Store.Etcd;

public sealed record EtcdStoreOptions
{
    public const string DefaultPrefix = "/drover";

    /// <summary>
    /// Every key is stored in etcd as this prefix followed by the caller's key, so several Drover
    /// clusters can share one etcd; callers never see it. "" or "/" stores keys as they are. Two stores
    /// sharing an etcd need prefixes that are not path prefixes of each other (<c>/drover/a</c> and
    /// <c>/drover/b</c>, not <c>/drover</c> and <c>/drover/b</c>).
    /// </summary>
    public string Prefix { get; init; } = DefaultPrefix;

    /// <summary>Longest wait for one answer from one endpoint (longer than etcd's own request timeout of 5 s + 2 elections).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one call keeps trying (other endpoints, a new leader) before it fails with
    /// <see cref="StateStoreUnavailableException"/>. Watches never give up; they retry until cancelled.
    /// </summary>
    public TimeSpan RetryTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest pause between two attempts once every endpoint has failed.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Most transactions sent to etcd as one (nested) transaction, one Raft round for all of them.</summary>
    public int MaxBatch { get; init; } = 64;

    /// <summary>The cluster's <c>--max-txn-ops</c> (etcd's default 128): batches stay within it.</summary>
    public int MaxTxnOps { get; init; } = 128;

    /// <summary>Largest batch request (base64 JSON); etcd's <c>--max-request-bytes</c> defaults to 1.5 MiB.</summary>
    public int MaxBatchBytes { get; init; } = 1 << 20;

    /// <summary>Keys fetched per request by <see cref="IStateStore.ListAsync"/> (pages share one revision).</summary>
    public int ListPageSize { get; init; } = 1000;

    /// <summary>
    /// TLS to etcd (the endpoints must then be <c>https</c>); null speaks plain HTTP (the endpoints
    /// must be <c>http</c>).
    /// </summary>
    public EtcdTlsOptions? Tls { get; init; }

    /// <summary>
    /// Creates the HTTP handler the store sends through (it disposes it). Null: a
    /// <see cref="SocketsHttpHandler"/> with TCP keep-alive, short connect timeout, no proxy, and
    /// <see cref="Tls"/>. A handler given here is used as it is: <see cref="Tls"/> must be null.
    /// </summary>
    public Func<HttpMessageHandler>? CreateHandler { get; init; }
}
