using Drover.Core.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Drover.Master.Security;

/// <summary>How endpoints declare their access rule and body size limit when they are mapped.</summary>
public static class RouteSecurity
{
    /// <summary>The default limit on a request body (Kubernetes caps requests at 3 MiB); routes with bigger needs say so.</summary>
    public const long DefaultMaxBody = 3 * 1024 * 1024;

    /// <summary>Declares who may call the endpoint (see <see cref="RouteAccess"/>); every endpoint must.</summary>
    public static TBuilder Access<TBuilder>(this TBuilder builder, RouteAccess access) where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(access);
        return builder.WithMetadata(access);
    }

    /// <summary>Caps the request body: a larger one is refused with 413 before the handler reads it.</summary>
    public static TBuilder MaxBody<TBuilder>(this TBuilder builder, long bytes) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new RequestSizeLimitAttribute(bytes));
}
