using Drover.Core.Api;
using Drover.Core.Security.Pki;
using Drover.Master.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Security.Pki;

/// <summary>
/// The agent protocol's rule (Kubernetes' NodeRestriction): with TLS, a call about agent X must come
/// with X's certificate. Without TLS (<c>drover dev</c>, <c>--insecure</c>) there are no identities and
/// nothing is checked.
/// </summary>
public static class AgentCaller
{
    /// <summary>Null when the caller may speak for <paramref name="agentId"/>; else the 401/403 to answer.</summary>
    public static IResult? Check(HttpContext http, string? agentId)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.RequestServices.GetService<MasterCredentials>() is not { } credentials)
        {
            return null;
        }

        var time = http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;
        var (identity, error) = PeerIdentity.Of(http.Connection.ClientCertificate, credentials.Ca.Roots, time.GetUtcNow());
        if (identity is null)
        {
            return ApiResults.Error(StatusCodes.Status401Unauthorized, ErrorCodes.Unauthorized, "agent calls need the agent's certificate: " + error);
        }

        if (PeerIdentity.AgentIdOf(identity) is not { } caller)
        {
            return ApiResults.Error(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, $"the certificate is {identity.Uri}, not an agent's");
        }

        return caller == agentId
            ? null
            : ApiResults.Error(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, $"the certificate is agent {caller}'s; it cannot speak for agent {agentId ?? "(none named)"}");
    }

    /// <summary>The calling agent's id with TLS (null without TLS or without a valid agent certificate).</summary>
    public static string? CallerId(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.RequestServices.GetService<MasterCredentials>() is not { } credentials)
        {
            return null;
        }

        var time = http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;
        return PeerIdentity.AgentIdOf(PeerIdentity.Of(http.Connection.ClientCertificate, credentials.Ca.Roots, time.GetUtcNow()).Identity);
    }
}
