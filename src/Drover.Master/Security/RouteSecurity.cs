using Drover.Core.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Drover.Master.Security;

/// <summary>How endpoints declare their access rule and body size limit when they are mapped.</summary>
public static class RouteSecurity
{
    /// <summary>The default limit on a request body (<see cref="RequestLimits.DefaultMaxBody"/>); routes with other needs say so.</summary>
    public const long DefaultMaxBody = RequestLimits.DefaultMaxBody;

    /// <summary>
    /// Applies the master's <see cref="MasterOptions.MaxRequestBodyBytes"/> (without master options: <see cref="DefaultMaxBody"/>)
    /// to a request whose endpoint declares no limit of its own.
    /// </summary>
    public static void ApplyDefaultBodyLimit(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata>() is null
            && http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = (http.RequestServices.GetService(typeof(MasterOptions)) as MasterOptions)?.MaxRequestBodyBytes ?? DefaultMaxBody;
        }
    }

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
