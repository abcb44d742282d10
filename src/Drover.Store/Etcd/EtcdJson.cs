using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Store.Etcd;

// etcd's v3 JSON gateway (grpc-gateway over etcdserverpb/rpc.proto): field names are the proto names
// (snake_case, except the lease messages' TTL/ID and a few camelCase status fields), bytes are
// base64, 64-bit integers travel as strings, and fields at their default value (0, false, empty) are
// left out of responses. Streaming calls (watch, lease keep-alive) answer one {"result": …} or
// {"error": …} object per line.

internal sealed record EtcdHeader
{
    public ulong ClusterId { get; init; }

    public ulong MemberId { get; init; }

    public long Revision { get; init; }

    public ulong RaftTerm { get; init; }
}

internal sealed record EtcdKeyValue
{
    public byte[] Key { get; init; } = [];

    public long CreateRevision { get; init; }

    public long ModRevision { get; init; }

    public long Version { get; init; }

    public byte[]? Value { get; init; }

    public long Lease { get; init; }
}

internal sealed record RangeRequest
{
    public required byte[] Key { get; init; }

    public byte[]? RangeEnd { get; init; }

    public long? Limit { get; init; }

    /// <summary>Read at this revision (a consistent snapshot across pages); null for the latest.</summary>
    public long? Revision { get; init; }
}

internal sealed record RangeResponse
{
    public EtcdHeader? Header { get; init; }

    public EtcdKeyValue[]? Kvs { get; init; }

    public bool More { get; init; }
}

internal sealed record TxnCompare
{
    /// <summary>EQUAL, GREATER, LESS, NOT_EQUAL.</summary>
    public string Result { get; init; } = "EQUAL";

    /// <summary>VERSION, CREATE, MOD, VALUE, LEASE.</summary>
    public required string Target { get; init; }

    public required byte[] Key { get; init; }

    public long? CreateRevision { get; init; }

    public long? ModRevision { get; init; }
}

internal sealed record PutRequest
{
    public required byte[] Key { get; init; }

    public required byte[] Value { get; init; }

    public long? Lease { get; init; }
}

internal sealed record DeleteRangeRequest
{
    public required byte[] Key { get; init; }
}

/// <summary>One operation of a transaction (a proto oneof: exactly one is set).</summary>
internal sealed record RequestOp
{
    public PutRequest? RequestPut { get; init; }

    public DeleteRangeRequest? RequestDeleteRange { get; init; }

    /// <summary>A nested transaction (etcd 3.3+): its compares are evaluated against the state before the outer one.</summary>
    public TxnRequest? RequestTxn { get; init; }
}

internal sealed record ResponseOp
{
    public TxnResponse? ResponseTxn { get; init; }
}

internal sealed record TxnRequest
{
    public TxnCompare[] Compare { get; init; } = [];

    public RequestOp[] Success { get; init; } = [];
}

internal sealed record TxnResponse
{
    public EtcdHeader? Header { get; init; }

    public bool Succeeded { get; init; }

    /// <summary>One per operation of the branch taken; only nested transactions' answers are read.</summary>
    public ResponseOp[]? Responses { get; init; }
}

internal sealed record LeaseGrantRequest
{
    [JsonPropertyName("TTL")]
    public long Ttl { get; init; }
}

internal sealed record LeaseGrantResponse
{
    public EtcdHeader? Header { get; init; }

    [JsonPropertyName("ID")]
    public long Id { get; init; }

    [JsonPropertyName("TTL")]
    public long Ttl { get; init; }

    public string? Error { get; init; }
}

/// <summary>The body of lease revoke and lease keep-alive: just the lease id.</summary>
internal sealed record LeaseIdRequest
{
    [JsonPropertyName("ID")]
    public long Id { get; init; }
}

internal sealed record LeaseRevokeResponse
{
    public EtcdHeader? Header { get; init; }
}

internal sealed record LeaseKeepAliveResponse
{
    public EtcdHeader? Header { get; init; }

    [JsonPropertyName("ID")]
    public long Id { get; init; }

    /// <summary>The lease's new TTL in seconds; 0 (absent) when the lease no longer exists.</summary>
    [JsonPropertyName("TTL")]
    public long Ttl { get; init; }
}

internal sealed record LeaseKeepAliveLine
{
    public LeaseKeepAliveResponse? Result { get; init; }

    public JsonElement? Error { get; init; }
}

internal sealed record StatusRequest;

internal sealed record StatusResponse
{
    public EtcdHeader? Header { get; init; }

    public string? Version { get; init; }

    /// <summary>The member id of the leader this member knows; 0 when it knows none.</summary>
    public ulong Leader { get; init; }
}

internal sealed record WatchCreateRequest
{
    public required byte[] Key { get; init; }

    public byte[]? RangeEnd { get; init; }

    public long StartRevision { get; init; }
}

internal sealed record WatchRequest
{
    public required WatchCreateRequest CreateRequest { get; init; }
}

internal sealed record WatchEventJson
{
    /// <summary>PUT (left out, the default) or DELETE.</summary>
    public string? Type { get; init; }

    public EtcdKeyValue? Kv { get; init; }
}

internal sealed record WatchResponse
{
    public EtcdHeader? Header { get; init; }

    public bool Created { get; init; }

    public bool Canceled { get; init; }

    /// <summary>Set on a watch cancelled because its start revision was compacted: the oldest revision still kept.</summary>
    public long CompactRevision { get; init; }

    public string? CancelReason { get; init; }

    public WatchEventJson[]? Events { get; init; }
}

internal sealed record WatchLine
{
    public WatchResponse? Result { get; init; }

    public JsonElement? Error { get; init; }
}

/// <summary>The gateway's body for a failed unary call: the gRPC status.</summary>
internal sealed record EtcdErrorBody
{
    public string? Error { get; init; }

    public string? Message { get; init; }

    public int Code { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.WriteAsString)]
[JsonSerializable(typeof(RangeRequest))]
[JsonSerializable(typeof(RangeResponse))]
[JsonSerializable(typeof(TxnRequest))]
[JsonSerializable(typeof(TxnResponse))]
[JsonSerializable(typeof(LeaseGrantRequest))]
[JsonSerializable(typeof(LeaseGrantResponse))]
[JsonSerializable(typeof(LeaseIdRequest))]
[JsonSerializable(typeof(LeaseRevokeResponse))]
[JsonSerializable(typeof(LeaseKeepAliveLine))]
[JsonSerializable(typeof(StatusRequest))]
[JsonSerializable(typeof(StatusResponse))]
[JsonSerializable(typeof(WatchRequest))]
[JsonSerializable(typeof(WatchLine))]
[JsonSerializable(typeof(EtcdErrorBody))]
internal sealed partial class EtcdJsonContext : JsonSerializerContext;
