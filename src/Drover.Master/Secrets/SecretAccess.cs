using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Drover.Core.Marathon;
using Drover.Core.Secrets;
using Drover.Core.Security;
using Drover.Master.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Secrets;

/// <summary>
/// Who may put a secret into a task: whoever deploys a Marathon app, or the principal of the Mesos framework that
/// launches a task, must hold <c>read</c> on every secret it references (<see cref="Rids.Secret"/>), and the secret must
/// exist — otherwise team-a could deploy an app that prints team-b's secret. Checked when the definition is deployed
/// (every create, update, patch, group change or group rollback of a definition that uses secrets; cancelling a
/// deployment restores a definition authorized when it was deployed); a running app keeps
/// getting its secrets for new instances afterwards, as DC/OS' Marathon does with its own service account.
/// </summary>
internal static class SecretAccess
{
    /// <summary>The secrets a Marathon app uses: the field that names each (<c>/secrets/{name}/source</c>) and its canonical path.</summary>
    public static IEnumerable<(string Field, string Path)> Uses(AppDefinition app)
    {
        ArgumentNullException.ThrowIfNull(app);
        foreach (var (name, secret) in app.Secrets ?? ImmutableSortedDictionary<string, AppSecret>.Empty)
        {
            if (SecretPaths.Canonical(secret?.Source, out _) is { } path)
            {
                yield return ("/secrets/" + name + "/source", path);
            }
        }
    }

    /// <summary>Why <paramref name="allows"/> may not deploy a task using <paramref name="path"/>, or null.</summary>
    public static string? Refusal(string path, SecretStore secrets, string who, Func<string, PermissionAction, bool> allows)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(allows);
        var rid = Rids.Secret(path);
        // Permission first: a caller without it does not learn whether the secret exists.
        if (!allows(rid, PermissionAction.Read))
        {
            return $"'{who}' lacks permission '{rid}' with action 'read', needed to give secret '{path}' to a task";
        }

        return secrets.Exists(path) ? null : $"secret '{path}' does not exist";
    }

    /// <summary>
    /// Marathon's 422 (<c>{"message": "Object is not valid", "details": [{"path", "errors"}]}</c>) when the caller may not
    /// deploy one of <paramref name="apps"/> for its secrets, naming each refused field; null when every app may go.
    /// <paramref name="prefix"/> maps an app to the prefix of its fields (a group change names the app).
    /// </summary>
    public static IResult? MarathonRefusal(HttpContext http, IEnumerable<AppDefinition> apps, Func<AppDefinition, string>? prefix = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(apps);
        JsonArray? details = null;
        SecretStore? secrets = null;
        foreach (var app in apps)
        {
            if (app.Secrets is not { Count: > 0 })
            {
                continue;
            }

            secrets ??= http.RequestServices.GetRequiredService<SecretStore>();
            var who = http.Caller().Id;
            foreach (var (field, path) in Uses(app))
            {
                if (Refusal(path, secrets, who, http.Allows) is { } error)
                {
                    details ??= [];
                    details.Add(new JsonObject { ["path"] = (prefix?.Invoke(app) ?? "") + field, ["errors"] = new JsonArray(error) });
                }
            }
        }

        return details is null
            ? null
            : Results.Json(new JsonObject { ["message"] = "Object is not valid", ["details"] = details }, SecretJsonNodes.Default.JsonObject, statusCode: StatusCodes.Status422UnprocessableEntity);
    }
}
