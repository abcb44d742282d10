namespace Drover.Core.Security;

/// <summary>Who may call a route: declared once per endpoint as endpoint metadata and enforced by the gate.</summary>
public enum AccessKind
{
    /// <summary>Anyone, without credentials: only <c>/health</c>, <c>/ping</c>, login and the public CA certificate.</summary>
    Anonymous,

    /// <summary>An authenticated user or service account holding every permission in <see cref="RouteAccess.Requires"/>.</summary>
    Permission,

    /// <summary>
    /// An authenticated user or service account holding <see cref="RouteAccess.Requires"/> (the API as a whole); the handler then checks each object it touches (an app by its path, a task's
    /// user, a framework's role) and answers 403 for the ones the caller may not touch or leaves them out of a listing.
    /// </summary>
    PermissionThenObjects,

    /// <summary>
    /// Any authenticated user or service account; the handler checks everything it does (Mesos' scheduler API:
    /// a framework's principal, roles and user are checked at SUBSCRIBE, every later call against its stream).
    /// </summary>
    Authenticated,

    /// <summary>An agent, by its certificate; the route's <c>{id}</c> (when present) must be that agent's id.</summary>
    Agent,

    /// <summary>A master, by its certificate (the agent's own API).</summary>
    Master,

    /// <summary>A custom executor: the handler checks its token against the call (Mesos' executor API), not the gate.</summary>
    Executor,

    /// <summary>A new agent with a join token in its body: the join endpoint checks the token, not the gate.</summary>
    JoinToken,
}

/// <summary>
/// The access rule of one route. Every mapped endpoint carries exactly one; an endpoint without one is
/// refused (500, logged) and fails the route-enumeration test, so a new endpoint cannot be forgotten.
/// </summary>
public sealed record RouteAccess
{
    public required AccessKind Kind { get; init; }

    /// <summary>For <see cref="AccessKind.Permission"/> and <see cref="AccessKind.PermissionThenObjects"/>: every one is required.</summary>
    public System.Collections.Immutable.ImmutableArray<Grant> Requires { get; init => field = value.IsDefault ? [] : value; } = [];

    /// <summary>Whether calls that change something are written to the audit log (all but machine-to-machine traffic).</summary>
    public bool Audited { get; init; } = true;

    public static RouteAccess Anonymous { get; } = new() { Kind = AccessKind.Anonymous, Audited = false };

    public static RouteAccess Authenticated { get; } = new() { Kind = AccessKind.Authenticated };

    public static RouteAccess Agent { get; } = new() { Kind = AccessKind.Agent, Audited = false };

    public static RouteAccess Master { get; } = new() { Kind = AccessKind.Master, Audited = false };

    public static RouteAccess Executor { get; } = new() { Kind = AccessKind.Executor, Audited = false };

    public static RouteAccess JoinToken { get; } = new() { Kind = AccessKind.JoinToken };

    public static RouteAccess Permission(string rid, PermissionAction action) => new() { Kind = AccessKind.Permission, Requires = [new Grant(rid, action)] };

    public static RouteAccess PermissionThenObjects(string rid, PermissionAction action) => new() { Kind = AccessKind.PermissionThenObjects, Requires = [new Grant(rid, action)] };

    /// <summary>This rule with one more required permission.</summary>
    public RouteAccess And(string rid, PermissionAction action) => this with { Requires = Requires.Add(new Grant(rid, action)) };
}

public enum CallerKind
{
    /// <summary>A person, with a password.</summary>
    User,

    /// <summary>A program (a framework, a CI job), logging in with a JWT signed by its own key, or a secret over HTTP Basic.</summary>
    ServiceAccount,

    Agent,
    Master,
    Executor,

    /// <summary>Anyone on a <c>drover dev</c> cluster running without logins (loopback only): allowed everything.</summary>
    DevAnonymous,
}

/// <summary>An authenticated caller. <see cref="Id"/> is the uid, agent id, master address or executor id.</summary>
public sealed record Caller(CallerKind Kind, string Id)
{
    public static Caller Dev { get; } = new(CallerKind.DevAnonymous, "anonymous");

    public bool IsPerson => Kind is CallerKind.User or CallerKind.ServiceAccount;

    public override string ToString() => Kind switch
    {
        CallerKind.User => "user:" + Id,
        CallerKind.ServiceAccount => "service:" + Id,
        CallerKind.Agent => "agent:" + Id,
        CallerKind.Master => "master:" + Id,
        CallerKind.Executor => "executor:" + Id,
        _ => "anonymous",
    };
}

/// <summary>What the gate decided for one request.</summary>
public enum AccessOutcome
{
    Allowed,

    /// <summary>401: no credentials, or credentials that do not prove an identity.</summary>
    Unauthenticated,

    /// <summary>403: a known caller without the permission, or the wrong kind of caller.</summary>
    Forbidden,

    /// <summary>The route declares no access rule: a bug, refused.</summary>
    Undeclared,
}

public readonly record struct AccessDecision(AccessOutcome Outcome, string Reason)
{
    public static AccessDecision Allowed { get; } = new(AccessOutcome.Allowed, "");
}

/// <summary>
/// The gate's decision as a pure function of the route's rule and the caller (authentication already done).
/// <paramref name="allows"/> answers whether the caller holds an action on a resource id.
/// </summary>
public static class AccessGate
{
    public static AccessDecision Decide(RouteAccess? access, Caller? caller, string? routeAgentId, Func<string, PermissionAction, bool> allows)
    {
        ArgumentNullException.ThrowIfNull(allows);
        if (access is null)
        {
            return new(AccessOutcome.Undeclared, "this route declares no access rule");
        }

        if (access.Kind is AccessKind.Anonymous or AccessKind.JoinToken or AccessKind.Executor)
        {
            // Executors and joining agents prove themselves with a token the handler checks against the call.
            return AccessDecision.Allowed;
        }

        if (caller is null)
        {
            return new(AccessOutcome.Unauthenticated, "authentication required");
        }

        if (caller.Kind == CallerKind.DevAnonymous)
        {
            return AccessDecision.Allowed;
        }

        switch (access.Kind)
        {
            case AccessKind.Agent:
                if (caller.Kind != CallerKind.Agent)
                {
                    return new(AccessOutcome.Forbidden, "only agents, by their certificate, may call this route");
                }

                return routeAgentId is null || string.Equals(routeAgentId, caller.Id, StringComparison.Ordinal)
                    ? AccessDecision.Allowed
                    : new(AccessOutcome.Forbidden, $"the certificate is agent '{caller.Id}''s; it cannot speak for agent '{routeAgentId}'");
            case AccessKind.Master:
                return caller.Kind == CallerKind.Master
                    ? AccessDecision.Allowed
                    : new(AccessOutcome.Forbidden, "only the master, by its certificate, may call this route");
            case AccessKind.Authenticated:
                return caller.IsPerson
                    ? AccessDecision.Allowed
                    : new(AccessOutcome.Forbidden, $"a {caller.Kind.ToString().ToLowerInvariant()} certificate or token does not grant access to this route");
            case AccessKind.Permission or AccessKind.PermissionThenObjects:
                if (!caller.IsPerson)
                {
                    return new(AccessOutcome.Forbidden, $"a {caller.Kind.ToString().ToLowerInvariant()} certificate or token does not grant access to this route");
                }

                foreach (var need in access.Requires)
                {
                    if (!allows(need.Rid, need.Actions))
                    {
                        return new(AccessOutcome.Forbidden, $"'{caller.Id}' lacks permission '{need.Rid}' with action '{PermissionActions.Describe(need.Actions)}'");
                    }
                }

                return access.Requires.IsEmpty ? new(AccessOutcome.Undeclared, "a permission rule that names no permission") : AccessDecision.Allowed;
            default:
                return new(AccessOutcome.Undeclared, $"unknown access kind {access.Kind}");
        }
    }
}

/// <summary>Request limits every gate applies.</summary>
public static class RequestLimits
{
    /// <summary>
    /// A request body larger than this is refused with 413 on every route that does not declare its own limit
    /// (Kubernetes caps requests at 3 MiB; a Marathon group of hundreds of apps fits).
    /// </summary>
    public const long DefaultMaxBody = 3 * 1024 * 1024;
}
