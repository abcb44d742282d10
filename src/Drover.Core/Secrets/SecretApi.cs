using System.Collections.Immutable;

namespace Drover.Core.Secrets;

/// <summary>
/// <c>PUT /drover/v1/secrets/{path}</c>: exactly one of <see cref="Value"/> (text) and <see cref="Data"/> (bytes,
/// base64 in JSON), at most <see cref="SecretPaths.MaxValueBytes"/> bytes.
/// </summary>
public sealed record SecretWrite
{
    public string? Value { get; init; }

    public byte[]? Data { get; init; }

    public string? Description { get; init; }
}

/// <summary>
/// A secret as the API shows it. <see cref="Value"/> (UTF-8 text) or <see cref="Data"/> (other bytes) only in the
/// answer to <c>GET /drover/v1/secrets/{path}</c>, for a caller holding the secret's read permission.
/// </summary>
public sealed record SecretView
{
    public required string Path { get; init; }

    public string? Value { get; init; }

    public byte[]? Data { get; init; }

    public string? Author { get; init; }

    public DateTimeOffset Created { get; init; }

    public DateTimeOffset Updated { get; init; }

    public string? Description { get; init; }
}

/// <summary><c>GET /drover/v1/secrets?prefix=P</c>: the paths under P, names only.</summary>
public sealed record SecretList
{
    public required ImmutableArray<string> Secrets { get; init; }
}
