using System.Net;

namespace Drover.Client.Auth;

/// <summary>
/// A master answered 401 to a call that needed a login: none was presented (<see cref="TokenSent"/> false), or the
/// token was refused (expired, revoked, issued before a password change).
/// </summary>
public sealed class MasterLoginRequiredException(Uri master, bool tokenSent)
    : Exception(tokenSent
        ? $"{master.GetLeftPart(UriPartial.Authority)} refused the login token (expired, or revoked by a password change or account removal): run `drover login` again"
        : $"not logged in to {master.GetLeftPart(UriPartial.Authority)}: run `drover login` (or set DROVER_TOKEN)")
{
    public Uri Master { get; } = master;

    public bool TokenSent { get; } = tokenSent;
}

/// <summary>
/// A master redirected a call that carries credentials (the login token, or a body such as a login's password) to
/// a host and port the user did not name, or from HTTPS to plain HTTP: the call is not followed there.
/// </summary>
public sealed class MasterRedirectRefusedException(Uri from, Uri to)
    : Exception(to.Scheme == Uri.UriSchemeHttp && from.Scheme == Uri.UriSchemeHttps
        ? $"{from.GetLeftPart(UriPartial.Authority)} redirected to plain {to.GetLeftPart(UriPartial.Authority)}; credentials are not sent unencrypted"
        : $"{from.GetLeftPart(UriPartial.Authority)} redirected to {to.GetLeftPart(UriPartial.Authority)}, which is not a master named in --master; "
            + $"credentials go only to the masters named there (if it is one of yours: --master {from.GetLeftPart(UriPartial.Authority)},{to.GetLeftPart(UriPartial.Authority)})")
{
    public Uri From { get; } = from;

    public Uri To { get; } = to;
}

/// <summary>
/// Builds the HTTP handlers that talk to a master. <see cref="CreateTransport"/> is the one place where the
/// connection to a master URL is set up: the TLS trust for it (the cluster CA pinned by <c>drover login</c> or
/// given with <c>--ca-cert</c>) belongs there, so every client of every command gets it.
/// </summary>
public static class MasterHttp
{
    /// <summary>
    /// The connection-level handler for <paramref name="master"/>, trusting what <paramref name="trust"/> says for its
    /// HTTPS certificate (the machine's store when null). Redirects are followed by <see cref="MasterAuthHandler"/>, not here.
    /// </summary>
    public static SocketsHttpHandler CreateTransport(Uri master, MasterTrust? trust = null)
    {
        ArgumentNullException.ThrowIfNull(master);
        var handler = MasterTls.CreateHandler(trust?.Roots, trust?.OnUntrusted);
        handler.AllowAutoRedirect = false;
        handler.UseProxy = true; // a user's CLI goes through the proxy the environment names, as before
        return handler;
    }

    /// <summary>
    /// The handler chain for <paramref name="master"/>: the transport, with <paramref name="token"/> (null: none)
    /// sent as <c>Authorization: token=…</c>. With <paramref name="loginRequiredOn401"/> a 401 answer throws
    /// <see cref="MasterLoginRequiredException"/> (what the CLI turns into one sentence). <paramref name="namedMasters"/>:
    /// the other masters the user named (<c>--master a,b,c</c>), to which a redirect may carry the token.
    /// </summary>
    public static HttpMessageHandler Create(Uri master, string? token, bool loginRequiredOn401 = false, MasterTrust? trust = null, IEnumerable<Uri>? namedMasters = null) =>
        new MasterAuthHandler(master, token, loginRequiredOn401, CreateTransport(master, trust), namedMasters);
}

/// <summary>
/// Sends the login token with every request to the master (DC/OS' form, <c>Authorization: token=&lt;JWT&gt;</c>) and
/// follows redirects itself: a follower master sends every call to the leader with a 307, and the transport's own
/// redirect handling would drop the <c>Authorization</c> header on the way. A redirect is followed with the token and
/// the request's body only to the host and port the request was first sent to or to a master the user named
/// (<paramref name="namedMasters"/>), never from HTTPS to plain HTTP; to any other place a call carrying either is
/// not followed (<see cref="MasterRedirectRefusedException"/>), and one carrying neither is followed as it is.
/// </summary>
public sealed class MasterAuthHandler(Uri master, string? token, bool loginRequiredOn401, HttpMessageHandler inner, IEnumerable<Uri>? namedMasters = null)
    : DelegatingHandler(inner)
{
    private const int MaxRedirects = 5;

    private readonly Uri[] _named = [master, .. namedMasters ?? []];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var first = request.RequestUri!;
        var firstScheme = first.Scheme;
        var sendToken = token is not null;
        for (var hop = 0; ; hop++)
        {
            request.Headers.Remove("Authorization");
            if (sendToken)
            {
                // "token=<JWT>" is not an RFC 7235 scheme, so it goes in unvalidated.
                request.Headers.TryAddWithoutValidation("Authorization", "token=" + token);
            }

            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (hop < MaxRedirects && IsRedirect(response.StatusCode) && response.Headers.Location is { } location)
            {
                var target = location.IsAbsoluteUri ? location : new Uri(request.RequestUri!, location);
                if (target.Scheme is not ("http" or "https"))
                {
                    return response;
                }

                var trusted = (SameHostAndPort(target, first) || _named.Any(m => SameHostAndPort(target, m)))
                    && !(firstScheme == Uri.UriSchemeHttps && target.Scheme == Uri.UriSchemeHttp);
                // 303, and 301/302 of a POST, become a GET without the body (as browsers and the transport do); the others replay it.
                var toGet = response.StatusCode is HttpStatusCode.SeeOther
                    || (response.StatusCode is HttpStatusCode.Moved or HttpStatusCode.Found && request.Method == HttpMethod.Post);
                if (!trusted && (token is not null || (request.Content is not null && !toGet)))
                {
                    response.Dispose();
                    throw new MasterRedirectRefusedException(request.RequestUri!, target);
                }

                sendToken = token is not null && trusted;
                if (toGet)
                {
                    request.Method = HttpMethod.Get;
                    request.Content = null;
                }

                request.RequestUri = target;
                response.Dispose();
                continue;
            }

            if (response.StatusCode == HttpStatusCode.Unauthorized && loginRequiredOn401)
            {
                response.Dispose();
                throw new MasterLoginRequiredException(master, token is not null);
            }

            return response;
        }
    }

    private static bool SameHostAndPort(Uri a, Uri b) =>
        Uri.Compare(a, b, UriComponents.HostAndPort, UriFormat.SafeUnescaped, StringComparison.OrdinalIgnoreCase) == 0;

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.Moved or HttpStatusCode.Found or HttpStatusCode.SeeOther
        or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;
}
