using Drover.Core;
using Drover.Core.Api;
using Drover.Core.Json;
using Drover.Core.Protocol;
using Drover.Core.Security;
using Drover.Core.Security.Pki;
using Drover.Master.Http;
using Drover.Master.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Drover.Master.Security.Pki;

/// <summary>
/// The PKI's HTTP side (the protocol is described in Drover.Core/Protocol/AgentJoin.cs):
/// <list type="bullet">
/// <item><c>GET /drover/v1/ca</c>: the CA clients must trust for this master, PEM (or <see cref="CaInfo"/> JSON with
/// <c>Accept: application/json</c>). Public: it is what a client checks a fingerprint against.</item>
/// <item><c>POST|GET /drover/v1/join-tokens</c>, <c>DELETE /drover/v1/join-tokens/{id}</c>: join tokens (administrators).</item>
/// <item><c>POST /internal/v1/agents/join</c>: a join token and a CSR buy a certificate for an id the master assigns.</item>
/// <item><c>POST /internal/v1/agents/{id}/certificate</c>: renewal, mutual TLS as agent {id}.</item>
/// </list>
/// Without TLS (<c>drover dev</c>, <c>--insecure</c>) these answer 404: there is no CA to hand out.
/// </summary>
public static partial class PkiEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);

        app.MapGet("/drover/v1/ca", (HttpContext http) =>
        {
            if (http.RequestServices.GetService<MasterCredentials>() is not { } credentials)
            {
                return NoTls();
            }

            if (http.Request.Headers.Accept.Any(a => a?.Contains("application/json", StringComparison.OrdinalIgnoreCase) == true))
            {
                var first = credentials.ServingRoots[0];
                return ApiResults.Json(new CaInfo
                {
                    Certificate = credentials.ServingCaPem,
                    Fingerprint = PemCertificates.Fingerprint(first),
                    PublicKeyHash = PemCertificates.PublicKeyHash(first),
                }, DroverJsonContext.Default.CaInfo);
            }

            return Results.Text(credentials.ServingCaPem, "application/x-pem-file");
        }).Access(RouteAccess.Anonymous); // public: what a client checks a fingerprint against

        var tokens = app.MapGroup("/drover/v1/join-tokens");
        tokens.MapPost("", async (HttpRequest req, IServiceProvider services, CancellationToken ct) =>
        {
            if (services.GetService<JoinTokens>() is not { } joinTokens || services.GetService<MasterCredentials>() is not { } credentials)
            {
                return NoTls();
            }

            var options = credentials.Options;
            var ttl = options.DefaultJoinTokenTtl;
            string? description = null;
            if (DroverApiEndpoints.HasBody(req))
            {
                var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.JoinTokenRequest, ct);
                if (error is not null)
                {
                    return error;
                }

                if (body!.TtlSeconds is { } seconds)
                {
                    if (!double.IsFinite(seconds) || seconds < 1 || seconds > options.MaxJoinTokenTtl.TotalSeconds)
                    {
                        return ApiResults.Validation([new FieldError("ttlSeconds", $"must be between 1 and {options.MaxJoinTokenTtl.TotalSeconds:0} (seconds)")]);
                    }

                    ttl = TimeSpan.FromSeconds(seconds);
                }

                if (body.Description is { Length: > 200 })
                {
                    return ApiResults.Validation([new FieldError("description", "must be at most 200 characters")]);
                }

                description = body.Description;
            }

            var created = await joinTokens.CreateAsync(ttl, description, ct);
            return ApiResults.Json(created, DroverJsonContext.Default.JoinTokenCreated, StatusCodes.Status201Created);
        }).Access(RouteAccess.Permission(Rids.AgentJoin, PermissionAction.Create)).MaxBody(16 * 1024);

        tokens.MapGet("", async (IServiceProvider services, CancellationToken ct) =>
            services.GetService<JoinTokens>() is { } joinTokens
                ? ApiResults.Json(new JoinTokenList { Tokens = await joinTokens.ListAsync(ct) }, DroverJsonContext.Default.JoinTokenList)
                : NoTls())
            .Access(RouteAccess.Permission(Rids.AgentJoin, PermissionAction.Read));

        tokens.MapDelete("/{id}", async (string id, IServiceProvider services, CancellationToken ct) =>
        {
            if (services.GetService<JoinTokens>() is not { } joinTokens)
            {
                return NoTls();
            }

            return await joinTokens.RevokeAsync(id, ct) ? Results.NoContent() : ApiResults.NotFound($"no join token with id '{id}'");
        }).Access(RouteAccess.Permission(Rids.AgentJoin, PermissionAction.Delete));

        app.MapPost("/internal/v1/agents/join", async (HttpRequest req, IServiceProvider services, ILoggerFactory loggers, CancellationToken ct) =>
        {
            // The gate leaves this route to its token: every refusal of it is a 401 with a challenge, as the gate's are.
            if (services.GetService<JoinTokens>() is not { } joinTokens || services.GetService<MasterCredentials>() is not { } credentials)
            {
                return new Unauthorized("this master serves plain HTTP (drover dev, --insecure): it has no CA and takes no joins");
            }

            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.AgentJoinRequest, ct);
            if (error is not null)
            {
                return new Unauthorized("a join needs a JSON body with the join token (token) and a certificate signing request (csr)");
            }

            if (await joinTokens.CheckAsync(body!.Token, ct) is { } refused)
            {
                LogJoinRefused(loggers.CreateLogger(typeof(PkiEndpoints)), req.HttpContext.Connection.RemoteIpAddress?.ToString() ?? "?", refused);
                return new Unauthorized(refused);
            }

            // Always a new id: a token lets its holder add an agent, never take over an existing one.
            var agentId = Ids.NewAgentId();
            var issued = credentials.IssueAgent(agentId, body.Csr ?? "");
            if (!issued.Succeeded)
            {
                return ApiResults.Validation([new FieldError("csr", issued.Error!["csr: ".Length..])]);
            }

            using var certificate = issued.Value!;
            LogJoined(loggers.CreateLogger(typeof(PkiEndpoints)), agentId, Sanitize(body.Hostname), JoinToken.ParseCredential(body.Token)!.Value.Id);
            return ApiResults.Json(new AgentJoinResponse
            {
                AgentId = agentId,
                Certificate = PemCertificates.Export(certificate),
                ClusterCa = credentials.Ca.Pem,
            }, DroverJsonContext.Default.AgentJoinResponse);
        }).Access(RouteAccess.JoinToken).MaxBody(64 * 1024); // the token in the body is checked here, not by the gate

        app.MapPost("/internal/v1/agents/{id}/certificate", async (string id, HttpRequest req, IServiceProvider services, CancellationToken ct) =>
        {
            if (services.GetService<MasterCredentials>() is not { } credentials)
            {
                return NoTls();
            }

            var (body, error) = await ApiResults.ReadBody(req, DroverJsonContext.Default.CertificateRenewal, ct);
            if (error is not null)
            {
                return error;
            }

            var issued = credentials.IssueAgent(id, body!.Csr);
            if (!issued.Succeeded)
            {
                return ApiResults.Validation([new FieldError("csr", issued.Error!["csr: ".Length..])]);
            }

            using var certificate = issued.Value!;
            return ApiResults.Json(new CertificateIssued { Certificate = PemCertificates.Export(certificate), ClusterCa = credentials.Ca.Pem },
                DroverJsonContext.Default.CertificateIssued);
        }).Access(RouteAccess.Agent).MaxBody(64 * 1024); // the gate checks the certificate is agent {id}'s
    }

    /// <summary>A 401 with a challenge, in the shape the gate writes its own (<see cref="Denials"/>).</summary>
    private sealed class Unauthorized(string reason) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) => Denials.WriteAsync(httpContext, StatusCodes.Status401Unauthorized, reason);
    }

    private static IResult NoTls() =>
        ApiResults.NotFound("this master serves plain HTTP (drover dev or --insecure): it has no CA, join tokens or agent certificates");

    private static string Sanitize(string? text) =>
        text is null ? "?" : new string([.. text.Take(100).Select(c => char.IsControl(c) ? '?' : c)]);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent {AgentId} ({Hostname}) joined with join token {TokenId}")]
    private static partial void LogJoined(ILogger logger, string agentId, string hostname, string tokenId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused a join from {Remote}: {Reason}")]
    private static partial void LogJoinRefused(ILogger logger, string remote, string reason);
}
