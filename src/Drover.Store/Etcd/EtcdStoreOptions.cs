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

    /// <summary>Keys fetched per request by <see cref="IStateStore.ListAsync"/> (pages share one revision).</summary>
    public int ListPageSize { get; init; } = 1000;

    /// <summary>
    /// Creates the HTTP handler the store sends through (it disposes it). Null: a
    /// <see cref="SocketsHttpHandler"/> with TCP keep-alive, short connect timeout and no proxy.
    /// </summary>
    public Func<HttpMessageHandler>? CreateHandler { get; init; }
}
