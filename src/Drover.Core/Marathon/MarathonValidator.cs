using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Drover.Core.Secrets;

namespace Drover.Core.Marathon;

/// <summary>
/// Marathon's app validation, collecting every error at once in its 422 shape
/// (<c>{"message":"Object is not valid","details":[{"path":…,"errors":[…]}]}</c>). Range, pattern and
/// enum errors use the strings of Marathon's JSON readers (<c>error.min</c>, <c>error.pattern</c>, …);
/// rule errors use Marathon's sentences. Fields Drover cannot honour yet are rejected with a
/// <c>Drover does not support …</c> error naming the field, never ignored. Pure; no I/O.
/// </summary>
public static partial class MarathonValidator
{
    /// <summary>Marathon's pattern for port names and readiness check port names.</summary>
    public const string PortNamePattern = "^[a-z][a-z0-9-]*$";

    public const int MaxPort = 65535;
    public const decimal MinCpus = 0.001m;
    public const int MaxEnvNameLength = 254;

    /// <summary>Read-only fields of Marathon's GET answer: a definition copied from a GET may carry them; they are ignored.</summary>
    public static readonly ImmutableHashSet<string> OutputOnlyFields = ImmutableHashSet.Create(
        StringComparer.Ordinal,
        "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
        "lastTaskFailure", "taskStats", "readinessCheckResults");

    /// <summary>
    /// Validates <paramref name="app"/> as a child of <paramref name="parentGroupId"/> (relative ids resolve
    /// against it; an absolute id must lie directly in it). Without a parent, as <c>POST /v2/apps</c>: relative
    /// ids resolve against the root and may be nested. Null when the app is valid.
    /// </summary>
    public static MarathonError? Validate(AppDefinition app, string? parentGroupId = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        var e = new MarathonErrorBuilder();

        Unknown(app.Unknown, "", e, ignore: OutputOnlyFields);
        var id = ValidateId(app, parentGroupId, e);
        var hasImage = ValidateContainer(app.Container, app.Secrets, e);
        ValidateCommand(app, hasImage, e);
        ValidateEnv(app, e);
        ValidateScalars(app, e);
        ValidateConstraints(app, e);
        ValidateUnsupported(app, e);
        ValidatePorts(app, e);
        ValidateHealthChecks(app, e);
        ValidateReadinessChecks(app, e);
        ValidateDependencies(app, id, e);
        ValidateStrategies(app, e);
        ValidateLabels(app, e);
        ValidateNetworks(app, e);
        ValidateLimits(app, id, e);

        return e.Build(MarathonErrorText.ObjectIsNotValid);
    }

    private static AppId? ValidateId(AppDefinition app, string? parentGroupId, MarathonErrorBuilder e)
    {
        if (app.Id is null)
        {
            e.Add("/id", MarathonErrorText.PathMissing);
            return null;
        }

        if (AppId.Validate(app.Id) is { } error)
        {
            e.Add("/id", error);
            return null;
        }

        var parent = parentGroupId is null ? AppId.Root : AppId.Parse(parentGroupId).Canonical();
        var id = AppId.Parse(app.Id).Canonical(parent);
        if (id.IsRoot)
        {
            e.Add("/id", MarathonErrorText.PathMustHaveElement);
            return null;
        }

        if (parentGroupId is not null && !id.IsChildOf(parent))
        {
            e.Add("/id", MarathonErrorText.NotChildOf(parent));
        }

        return id;
    }

    private static void ValidateCommand(AppDefinition app, bool hasImage, MarathonErrorBuilder e)
    {
        if (app.Cmd is { Length: 0 })
        {
            e.Add("/cmd", MarathonErrorText.MinLength);
        }

        var args = app.Args ?? [];
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is null)
            {
                e.Add(Index("/args", i), MarathonErrorText.ExpectedString);
            }
        }

        var hasCmd = app.Cmd is not null;
        var hasArgs = !args.IsEmpty;

        // Marathon: (cmd XOR args) OR (neither AND a container image). Images are refused elsewhere, so an
        // app with an image is not also told it lacks a command.
        if (!(hasCmd ^ hasArgs) && !(hasImage && !hasCmd && !hasArgs))
        {
            e.Add("/", MarathonErrorText.CmdArgsOrContainer);
        }

        if (!string.IsNullOrEmpty(app.Executor) && app.Executor != "//cmd")
        {
            e.Add("/executor", MarathonErrorText.NoExecutor);
        }

        // A POSIX user name; whether it exists is for the agent that runs the task to say.
        if (app.User is { } user && !Ids.IsValidUserName(user))
        {
            e.Add("/user", MarathonErrorText.BadUser);
        }
    }

    private static void ValidateEnv(AppDefinition app, MarathonErrorBuilder e)
    {
        foreach (var (name, value) in app.Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty)
        {
            var path = "/env/" + name;
            if (name.Length == 0)
            {
                e.Add(path, MarathonErrorText.MustNotBeEmpty);
            }
            else if (name.Length > MaxEnvNameLength)
            {
                e.Add(path, MarathonErrorText.EnvNameTooLong);
            }
            else if (name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
            {
                e.Add(path, "an environment variable name must not contain '=' or NUL");
            }

            if (value is null || (value.Value is null && value.Secret is null))
            {
                e.Add(path, MarathonErrorText.ExpectedString);
            }
            else if (value.Secret is { } secret)
            {
                if (app.Secrets?.ContainsKey(secret) != true)
                {
                    e.Add(path, MarathonErrorText.UndefinedSecret);
                }
            }
            else if (value.Value!.Contains('\0', StringComparison.Ordinal))
            {
                e.Add(path, "an environment variable value must not contain NUL");
            }
        }
    }

    private static void ValidateScalars(AppDefinition app, MarathonErrorBuilder e)
    {
        Min("/instances", app.Instances, 0, e);
        if (app.Cpus is { } cpus)
        {
            if (cpus < MinCpus)
            {
                e.Add("/cpus", MarathonErrorText.Min);
            }
            else if (cpus > Resources.MaxCpus)
            {
                e.Add("/cpus", MarathonErrorText.Max);
            }
        }

        MiB("/mem", app.Mem, e);
        MiB("/disk", app.Disk, e);
        Min("/gpus", app.Gpus, 0, e);
        Min("/backoffSeconds", app.BackoffSeconds, 0, e);
        if (app.BackoffFactor is < 1m)
        {
            e.Add("/backoffFactor", MarathonErrorText.Min);
        }

        Min("/maxLaunchDelaySeconds", app.MaxLaunchDelaySeconds, 0, e);
        Min("/taskKillGracePeriodSeconds", app.TaskKillGracePeriodSeconds, 0, e);

        if (app.KillSelection is { } kill && KillSelections.Canonical(kill) is null)
        {
            e.Add("/killSelection", MarathonErrorText.UnknownEnumLiteral);
        }
    }

    private static void ValidateConstraints(AppDefinition app, MarathonErrorBuilder e)
    {
        var list = app.Constraints ?? [];
        for (var i = 0; i < list.Length; i++)
        {
            var path = Index("/constraints", i);
            var c = list[i];
            if (c.IsDefault)
            {
                e.Add(path, MarathonErrorText.ExpectedArray);
                continue;
            }

            var nulls = false;
            for (var j = 0; j < c.Length; j++)
            {
                if (c[j] is null)
                {
                    e.Add(Index(path, j), MarathonErrorText.ExpectedString);
                    nulls = true;
                }
            }

            if (!nulls && ConstraintError(c) is { } error)
            {
                e.Add(path, error);
            }
        }
    }

    /// <summary>Marathon's constraint rules in its words, then Drover's own (<see cref="Constraint.TryCreate"/>).</summary>
    private static string? ConstraintError(ImmutableArray<string> c)
    {
        if (c.Length is < 2 or > 3)
        {
            return MarathonErrorText.ConstraintFieldCount;
        }

        var (field, op, value) = (c[0], c[1], c.Length == 3 ? c[2] : null);
        if (field.Length == 0)
        {
            return MarathonErrorText.ConstraintMissingFieldAndOperator;
        }

        // Marathon looks operators up by their exact (upper-case) name.
        if (!Constraint.TryParseOperator(op, out var parsed) || Constraint.OperatorName(parsed) != op)
        {
            return MarathonErrorText.ConstraintOperator;
        }

        switch (parsed)
        {
            case ConstraintOperator.Unique when value is not null:
                return MarathonErrorText.ConstraintValueNotUsed;
            case ConstraintOperator.Cluster when string.IsNullOrEmpty(value):
                return MarathonErrorText.ConstraintMissingValue;
            case ConstraintOperator.GroupBy when value is not null && !IsInt(value):
                return MarathonErrorText.ConstraintGroupByNotNumber;
            case ConstraintOperator.MaxPer when value is null || !IsInt(value):
                return MarathonErrorText.ConstraintMaxPerNotNumber;
            case ConstraintOperator.Like or ConstraintOperator.Unlike when value is null:
                return MarathonErrorText.ConstraintRegexRequired;
            case ConstraintOperator.Like or ConstraintOperator.Unlike when !IsRegex(value!):
                return MarathonErrorText.InvalidRegex(value!);
        }

        return Constraint.TryCreate(field, op, value, out _, out var error) ? null : error;
    }

    private static void ValidateUnsupported(AppDefinition app, MarathonErrorBuilder e)
    {
        if (app.Uris is { IsDefaultOrEmpty: false })
        {
            e.Add("/uris", MarathonErrorText.NoFetch);
        }

        if (app.Fetch is { IsDefaultOrEmpty: false })
        {
            e.Add("/fetch", MarathonErrorText.NoFetch);
        }

        if (app.StoreUrls is { IsDefaultOrEmpty: false })
        {
            e.Add("/storeUrls", MarathonErrorText.NoStoreUrls);
        }

        if (app.IpAddress is { ValueKind: not JsonValueKind.Null })
        {
            e.Add("/ipAddress", MarathonErrorText.NoIpAddress);
        }

        if (app.Residency is { ValueKind: not JsonValueKind.Null })
        {
            e.Add("/residency", MarathonErrorText.NoResidency);
        }

        ValidateSecrets(app, e);

        if (app.Check is { ValueKind: not JsonValueKind.Null })
        {
            e.Add("/check", MarathonErrorText.NoChecks);
        }

        if (app.Tty == true)
        {
            e.Add("/tty", MarathonErrorText.NoTty);
        }

        if (app.ResourceLimits is { } limits && !IsEmpty(limits))
        {
            e.Add("/resourceLimits", MarathonErrorText.NoResourceLimits);
        }

        if (app.AcceptedResourceRoles is { IsDefault: false } roles)
        {
            if (roles.IsEmpty)
            {
                e.Add("/acceptedResourceRoles", MarathonErrorText.MustNotBeEmpty);
            }
            else if (roles.Any(r => r != AppDefinition.DefaultRole))
            {
                e.Add("/acceptedResourceRoles", MarathonErrorText.NoRoles);
            }
        }

        if (app.Role is { } role && role != AppDefinition.DefaultRole)
        {
            e.Add("/role", MarathonErrorText.NoRoles);
        }
    }

    /// <summary>Refuses any image, volume other than a secret volume, port mapping or other option; returns whether an image was given.</summary>
    private static bool ValidateContainer(JsonElement? container, ImmutableSortedDictionary<string, AppSecret>? secrets, MarathonErrorBuilder e)
    {
        if (container is not { } c || c.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        if (c.ValueKind != JsonValueKind.Object)
        {
            e.Add("/container", MarathonErrorText.ExpectedObject);
            return false;
        }

        var hasImage = false;
        foreach (var p in c.EnumerateObject())
        {
            if (IsEmpty(p.Value))
            {
                continue;
            }

            var path = "/container/" + p.Name;
            switch (p.Name)
            {
                case "type":
                    var type = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()!.ToUpperInvariant() : null;
                    if (type == "DOCKER")
                    {
                        // Named once: at the image when there is one, else at the type.
                        if (!c.TryGetProperty("docker", out var docker) || IsEmpty(docker))
                        {
                            e.Add(path, MarathonErrorText.NoContainerImages);
                        }

                        hasImage = true;
                    }
                    else if (type != "MESOS")
                    {
                        e.Add(path, MarathonErrorText.UnknownEnumLiteral);
                    }

                    break;
                case "docker" or "appc":
                    e.Add(path, MarathonErrorText.NoContainerImages);
                    hasImage = true;
                    break;
                case "volumes":
                    ValidateVolumes(p.Value, secrets, e);
                    break;
                case "portMappings":
                    e.Add(path, MarathonErrorText.NoPortMappings);
                    break;
                default:
                    e.Add(path, MarathonErrorText.NoContainerOption);
                    break;
            }
        }

        return hasImage;
    }

    /// <summary>
    /// Every secret names a valid source path; the secret store checks, at deploy time, that it exists and that the
    /// deployer may read it (<c>Drover.Master.Secrets</c>), which a pure validator cannot.
    /// </summary>
    private static void ValidateSecrets(AppDefinition app, MarathonErrorBuilder e)
    {
        var secrets = app.Secrets ?? ImmutableSortedDictionary<string, AppSecret>.Empty;
        var uses = (app.Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty).Values.Count(v => v?.Secret is not null) + app.SecretVolumes.Length;
        if (secrets.Count > SecretPaths.MaxPerTask || uses > SecretPaths.MaxPerTask)
        {
            e.Add("/secrets", $"an app may define, and its tasks receive, at most {SecretPaths.MaxPerTask} secrets (environment variables and volumes together)");
        }

        foreach (var (name, secret) in secrets)
        {
            var path = "/secrets/" + name;
            if (name.Length == 0 || !Ids.IsValidName(name))
            {
                e.Add(path, "a secret's name is 1-128 letters, digits, '_', '-' or '.'");
            }

            if (secret is null)
            {
                e.Add(path, MarathonErrorText.ExpectedObject);
                continue;
            }

            Unknown(secret.Unknown, path, e);
            if (secret.Source is null)
            {
                e.Add(path + "/source", MarathonErrorText.SecretSourceRequired);
            }
            else if (SecretPaths.Canonical(secret.Source, out var error) is null)
            {
                e.Add(path + "/source", error);
            }
        }
    }

    /// <summary>Secret volumes (<c>{"containerPath", "secret"}</c>) are accepted; any other volume is refused.</summary>
    private static void ValidateVolumes(JsonElement volumes, ImmutableSortedDictionary<string, AppSecret>? secrets, MarathonErrorBuilder e)
    {
        if (volumes.ValueKind != JsonValueKind.Array)
        {
            e.Add("/container/volumes", MarathonErrorText.ExpectedArray);
            return;
        }

        var paths = new HashSet<string>(StringComparer.Ordinal);
        var i = 0;
        foreach (var v in volumes.EnumerateArray())
        {
            var path = Index("/container/volumes", i++);
            if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty("secret", out var secret))
            {
                e.Add(path, MarathonErrorText.NoVolumesButSecrets);
                continue;
            }

            foreach (var p in v.EnumerateObject())
            {
                if (p.Name is not ("secret" or "containerPath"))
                {
                    e.Add(path + "/" + p.Name, MarathonErrorText.UnknownField);
                }
            }

            if (secret.ValueKind != JsonValueKind.String)
            {
                e.Add(path + "/secret", MarathonErrorText.ExpectedString);
            }
            else if (secrets?.ContainsKey(secret.GetString()!) != true)
            {
                e.Add(path + "/secret", MarathonErrorText.UndefinedSecret);
            }

            if (!v.TryGetProperty("containerPath", out var containerPath) || containerPath.ValueKind != JsonValueKind.String)
            {
                e.Add(path + "/containerPath", MarathonErrorText.ExpectedString);
            }
            else if (SecretPaths.FilePathError(containerPath.GetString()) is { } error)
            {
                e.Add(path + "/containerPath", error);
            }
            else if (!paths.Add(containerPath.GetString()!))
            {
                e.Add(path + "/containerPath", MarathonErrorText.ContainerPathUnique);
            }
        }
    }

    private static void ValidatePorts(AppDefinition app, MarathonErrorBuilder e)
    {
        if (app.Ports is { IsDefault: false } ports)
        {
            for (var i = 0; i < ports.Length; i++)
            {
                Port(Index("/ports", i), ports[i], e);
            }

            var fixedPorts = ports.Where(p => p != 0).ToList();
            if (fixedPorts.Distinct().Count() != fixedPorts.Count)
            {
                e.Add("/", MarathonErrorText.DeprecatedPortsUnique);
            }

            if (app.PortDefinitions is { IsDefault: false } defs
                && !defs.Select(d => d?.Port ?? 0).SequenceEqual(ports))
            {
                e.Add("/", MarathonErrorText.PortsAndPortDefinitions);
            }
        }

        if (app.PortDefinitions is not { IsDefault: false } definitions)
        {
            return;
        }

        var names = new List<string>();
        var numbers = new List<int>();
        for (var i = 0; i < definitions.Length; i++)
        {
            var path = Index("/portDefinitions", i);
            var d = definitions[i];
            if (d is null)
            {
                e.Add(path, MarathonErrorText.ExpectedObject);
                continue;
            }

            Unknown(d.Unknown, path, e);
            if (d.Port is { } port)
            {
                Port(path + "/port", port, e);
                if (port != 0)
                {
                    numbers.Add(port);
                }
            }

            if (d.Protocol is { } protocol && PortProtocols.Canonical(protocol) is null)
            {
                e.Add(path + "/protocol", MarathonErrorText.UnknownEnumLiteral);
            }

            if (d.Name is { } name)
            {
                if (!PortNameRegex().IsMatch(name))
                {
                    e.Add(path + "/name", MarathonErrorText.Pattern);
                }

                names.Add(name);
            }

            NullValues(d.Labels, path + "/labels", e);
        }

        if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
        {
            e.Add("/portDefinitions", MarathonErrorText.PortNamesUnique);
        }

        if (numbers.Distinct().Count() != numbers.Count)
        {
            e.Add("/portDefinitions", MarathonErrorText.PortsUnique);
        }
    }

    private static void ValidateHealthChecks(AppDefinition app, MarathonErrorBuilder e)
    {
        var checks = app.HealthChecks ?? [];
        var portCount = app.PortCount;
        var mesosChecks = 0;
        for (var i = 0; i < checks.Length; i++)
        {
            var path = Index("/healthChecks", i);
            var h = checks[i];
            if (h is null)
            {
                e.Add(path, MarathonErrorText.ExpectedObject);
                continue;
            }

            Unknown(h.Unknown, path, e);
            if (h.Protocol is { } protocol && HealthCheckProtocols.Canonical(protocol) is null)
            {
                e.Add(path + "/protocol", MarathonErrorText.UnknownEnumLiteral);
                continue;
            }

            Min(path + "/gracePeriodSeconds", h.GracePeriodSeconds, 0, e);
            Min(path + "/intervalSeconds", h.IntervalSeconds, 0, e);
            Min(path + "/timeoutSeconds", h.TimeoutSeconds, 0, e);
            Min(path + "/maxConsecutiveFailures", h.MaxConsecutiveFailures, 0, e);
            Min(path + "/delaySeconds", h.DelaySeconds, 0, e);
            if (h.Port is { } port)
            {
                Port(path + "/port", port, e);
            }

            if (h.PortIndex is { } portIndex)
            {
                Port(path + "/portIndex", portIndex, e);
            }

            if (h.IpProtocol is { } ip && ip is not ("IPv4" or "IPv6"))
            {
                e.Add(path + "/ipProtocol", MarathonErrorText.UnknownEnumLiteral);
            }

            if (h.Command is { } command)
            {
                Unknown(command.Unknown, path + "/command", e);
                if (string.IsNullOrEmpty(command.Value))
                {
                    e.Add(path + "/command/value", MarathonErrorText.PathMissing);
                }
            }

            var effective = h.EffectiveProtocol;
            if (effective == HealthCheckProtocols.Command)
            {
                if (h.Command is null)
                {
                    e.Add(path + "/command", MarathonErrorText.PathMissing);
                }

                continue;
            }

            if (HealthCheckProtocols.Mesos.Contains(effective))
            {
                mesosChecks++;
            }

            // A fixed port needs no index; otherwise the index (0 when absent) must address one of the ports.
            var index = h.PortIndex ?? (h.Port is null ? 0 : (int?)null);
            if (index is { } idx && (idx < 0 || idx >= portCount))
            {
                e.Add(path, MarathonErrorText.HealthCheckPortIndex);
            }
        }

        if (mesosChecks > 1)
        {
            e.Add("/", MarathonErrorText.AtMostOneMesosHealthCheck);
        }
    }

    private static void ValidateReadinessChecks(AppDefinition app, MarathonErrorBuilder e)
    {
        var checks = app.ReadinessChecks ?? [];
        if (checks.Length > 1)
        {
            e.Add("/readinessChecks", MarathonErrorText.AtMost(checks.Length, 1));
        }

        var portNames = app.EffectivePortDefinitions.Select(p => p?.Name).Where(n => n is not null).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < checks.Length; i++)
        {
            var path = Index("/readinessChecks", i);
            var r = checks[i];
            if (r is null)
            {
                e.Add(path, MarathonErrorText.ExpectedObject);
                continue;
            }

            Unknown(r.Unknown, path, e);
            if (r.Protocol is { } protocol && HealthCheckProtocols.CanonicalReadiness(protocol) is null)
            {
                e.Add(path + "/protocol", MarathonErrorText.UnknownEnumLiteral);
            }

            if (r.Path is { Length: 0 })
            {
                e.Add(path + "/path", MarathonErrorText.MinLength);
            }

            Min(path + "/intervalSeconds", r.IntervalSeconds, 0, e);
            Min(path + "/timeoutSeconds", r.TimeoutSeconds, 0, e);
            var codes = r.HttpStatusCodesForReady ?? [];
            for (var j = 0; j < codes.Length; j++)
            {
                if (codes[j] < 100)
                {
                    e.Add(Index(path + "/httpStatusCodesForReady", j), MarathonErrorText.Min);
                }
                else if (codes[j] > 999)
                {
                    e.Add(Index(path + "/httpStatusCodesForReady", j), MarathonErrorText.Max);
                }
            }

            var portName = r.PortName ?? ReadinessCheck.DefaultPortName;
            if (!PortNameRegex().IsMatch(portName))
            {
                e.Add(path + "/portName", MarathonErrorText.Pattern);
            }
            else if (!portNames.Contains(portName))
            {
                e.Add(path + "/portName", MarathonErrorText.NoPortDefinitionForName(portName));
            }

            var interval = r.IntervalSeconds ?? ReadinessCheck.DefaultIntervalSeconds;
            var timeout = r.TimeoutSeconds ?? ReadinessCheck.DefaultTimeoutSeconds;
            if (timeout >= interval)
            {
                e.Add(path + "/timeoutSeconds", MarathonErrorText.LessThan(timeout, interval));
            }
        }
    }

    private static void ValidateDependencies(AppDefinition app, AppId? id, MarathonErrorBuilder e)
    {
        var deps = app.Dependencies ?? [];
        for (var i = 0; i < deps.Length; i++)
        {
            var path = Index("/dependencies", i);
            if (deps[i] is not { } dep)
            {
                e.Add(path, MarathonErrorText.ExpectedString);
            }
            else if (AppId.Validate(dep) is { } error)
            {
                e.Add(path, error);
            }
            else if (id is { } appId && AppId.Parse(dep).Canonical(appId).IsRoot)
            {
                e.Add(path, MarathonErrorText.PathMustHaveElement);
            }
        }
    }

    private static void ValidateStrategies(AppDefinition app, MarathonErrorBuilder e)
    {
        if (app.UpgradeStrategy is { } upgrade)
        {
            Unknown(upgrade.Unknown, "/upgradeStrategy", e);
            Fraction("/upgradeStrategy/minimumHealthCapacity", upgrade.MinimumHealthCapacity, e);
            Fraction("/upgradeStrategy/maximumOverCapacity", upgrade.MaximumOverCapacity, e);
        }

        if (app.UnreachableStrategy is { IsDisabled: false } unreachable)
        {
            foreach (var name in unreachable.UnknownFields)
            {
                e.Add("/unreachableStrategy/" + name, MarathonErrorText.UnknownField);
            }

            var inactive = unreachable.InactiveAfterSeconds ?? UnreachableStrategy.DefaultInactiveAfterSeconds;
            var expunge = unreachable.ExpungeAfterSeconds ?? UnreachableStrategy.DefaultExpungeAfterSeconds;
            if (inactive < 0)
            {
                e.Add("/unreachableStrategy/inactiveAfterSeconds", MarathonErrorText.InactiveAfterNegative(inactive));
            }
            else if (inactive > expunge)
            {
                e.Add("/unreachableStrategy/inactiveAfterSeconds", MarathonErrorText.InactiveAfterAboveExpunge(inactive, expunge));
            }

            if (expunge < 0)
            {
                e.Add("/unreachableStrategy/expungeAfterSeconds", MarathonErrorText.Min);
            }
        }
    }

    private static void ValidateLabels(AppDefinition app, MarathonErrorBuilder e)
    {
        NullValues(app.Labels, "/labels", e);
        if (app.Labels is { } labels
            && labels.TryGetValue(AppDefinition.SingleInstanceLabel, out var single)
            && single == "true"
            && (app.Instances ?? AppDefinition.DefaultInstances) > 1)
        {
            e.Add("/", MarathonErrorText.SingleInstanceApp);
        }
    }

    private static void ValidateNetworks(AppDefinition app, MarathonErrorBuilder e)
    {
        if (app.Networks is not { IsDefault: false } networks)
        {
            return;
        }

        if (networks.Length > 1)
        {
            e.Add("/networks", MarathonErrorText.OnlyHostNetworking);
        }

        for (var i = 0; i < networks.Length; i++)
        {
            var path = Index("/networks", i);
            var n = networks[i];
            if (n is null)
            {
                e.Add(path, MarathonErrorText.ExpectedObject);
                continue;
            }

            Unknown(n.Unknown, path, e);
            if (n.Mode is { } mode && NetworkModes.Canonical(mode) is null)
            {
                e.Add(path + "/mode", MarathonErrorText.UnknownEnumLiteral);
            }
            else if (n.EffectiveMode != AppNetwork.HostMode)
            {
                e.Add(path + "/mode", MarathonErrorText.OnlyHostNetworking);
            }
        }
    }

    private static void Unknown(Dictionary<string, JsonElement>? fields, string path, MarathonErrorBuilder e, ImmutableHashSet<string>? ignore = null)
    {
        foreach (var name in fields?.Keys ?? Enumerable.Empty<string>())
        {
            if (ignore is null || !ignore.Contains(name))
            {
                e.Add(path + "/" + name, MarathonErrorText.UnknownField);
            }
        }
    }

    private static void NullValues(ImmutableSortedDictionary<string, string>? map, string path, MarathonErrorBuilder e)
    {
        foreach (var (key, value) in map ?? ImmutableSortedDictionary<string, string>.Empty)
        {
            if (value is null)
            {
                e.Add(path + "/" + key, MarathonErrorText.ExpectedString);
            }
        }
    }

    private static void Min(string path, long? value, long min, MarathonErrorBuilder e)
    {
        if (value < min)
        {
            e.Add(path, MarathonErrorText.Min);
        }
    }

    private static void MiB(string path, decimal? value, MarathonErrorBuilder e)
    {
        if (value < 0)
        {
            e.Add(path, MarathonErrorText.Min);
        }
        else if (value > Resources.MaxMiB)
        {
            e.Add(path, MarathonErrorText.Max);
        }
    }

    private static void Fraction(string path, decimal? value, MarathonErrorBuilder e)
    {
        if (value < 0m)
        {
            e.Add(path, MarathonErrorText.Min);
        }
        else if (value > 1m)
        {
            e.Add(path, MarathonErrorText.Max);
        }
    }

    private static void Port(string path, int port, MarathonErrorBuilder e)
    {
        if (port < 0)
        {
            e.Add(path, MarathonErrorText.Min);
        }
        else if (port > MaxPort)
        {
            e.Add(path, MarathonErrorText.Max);
        }
    }

    private static string Index(string path, int i) => string.Create(CultureInfo.InvariantCulture, $"{path}({i})");

    private static bool IsEmpty(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => true,
        JsonValueKind.Array => value.GetArrayLength() == 0,
        JsonValueKind.Object => !value.EnumerateObject().Any(),
        _ => false,
    };

    private static bool IsInt(string value) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _);

    private static bool IsRegex(string value)
    {
        try
        {
            _ = new Regex(value, RegexOptions.None, TimeSpan.FromSeconds(1));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"\A[a-z][a-z0-9-]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex PortNameRegex();
}
