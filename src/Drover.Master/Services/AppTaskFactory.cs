using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.CompilerServices;
using Drover.Core;
using Drover.Core.Health;
using Drover.Core.Marathon;
using Drover.Core.Secrets;

namespace Drover.Master.Services;

/// <summary>Turns one version of a (validated, defaulted) Marathon app into the spec of one instance.</summary>
internal static class AppTaskFactory
{
    /// <summary>
    /// One spec per app version, shared by all its instances except for the id: at a million instances,
    /// a private copy of the environment, constraints and checks per instance would be gigabytes. The
    /// agent adds MESOS_TASK_ID (and the other per-task variables) at launch. Keyed by the registry's
    /// definition object, which is immutable and lives as long as the version is deployed.
    /// </summary>
    private static readonly ConditionalWeakTable<AppDefinition, TaskSpec> Templates = [];

    public static TaskSpec Create(AppDefinition app)
    {
        var template = Templates.GetValue(app, Template);
        return template with { Id = Ids.NewTaskId(app.Id!.Trim('/').Replace('/', '_')) };
    }

    private static TaskSpec Template(AppDefinition app)
    {
        var appId = app.Id!;
        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in app.Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty)
        {
            if (v.Value is { } value)
            {
                env[k] = value;
            }
        }

        // Marathon's own variables, as tasks launched by Marathon see them.
        env["MARATHON_APP_ID"] = appId;
        env["MARATHON_APP_VERSION"] = ServiceRegistry.ConfigVersion(app);
        foreach (var (k, v) in app.Labels ?? ImmutableSortedDictionary<string, string>.Empty)
        {
            var name = "MARATHON_APP_LABEL_" + new string([.. k.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
            env[name] = v;
        }

        // Secrets by reference: the master resolves them into the launch command for the instance's agent.
        var secrets = ImmutableArray.CreateBuilder<TaskSecret>();
        var sources = app.Secrets ?? ImmutableSortedDictionary<string, AppSecret>.Empty;
        foreach (var (k, v) in app.Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty)
        {
            if (v.Secret is { } name && SourceOf(sources, name) is { } path)
            {
                secrets.Add(new TaskSecret { Target = SecretTarget.Env, Name = k, Path = path });
            }
        }

        foreach (var volume in app.SecretVolumes)
        {
            if (SourceOf(sources, volume.Secret) is { } path)
            {
                secrets.Add(new TaskSecret { Target = SecretTarget.File, Name = volume.ContainerPath, Path = path });
            }
        }

        var constraints = ImmutableArray.CreateBuilder<Constraint>();
        foreach (var c in app.Constraints ?? [])
        {
            if (Constraint.TryCreate(c[0], c[1], c.Length > 2 ? c[2] : null, out var parsed, out _))
            {
                constraints.Add(parsed!);
            }
        }

        return new TaskSpec
        {
            Id = "",
            Name = appId,
            Shell = app.Cmd,
            Args = app.Cmd is null ? app.Args ?? [] : [],
            Env = env.ToImmutable(),
            Resources = app.RequestedResources,
            PortCount = app.PortCount,
            Constraints = constraints.ToImmutable(),
            KillGracePeriod = app.TaskKillGracePeriodSeconds is { } g ? TimeSpan.FromSeconds(g) : TaskSpec.DefaultKillGracePeriod,
            Group = appId,
            AppId = appId,
            User = app.User,
            AppVersion = ServiceRegistry.ConfigVersion(app),
            HealthChecks = [.. (app.HealthChecks ?? []).Select(HealthCheckOf)],
            ReadinessChecks = ReadinessChecksOf(app),
            PortNames = [.. app.EffectivePortDefinitions.Select(p => p.Name ?? "")],
            Secrets = secrets.ToImmutable(),
        };
    }

    private static string? SourceOf(ImmutableSortedDictionary<string, AppSecret> sources, string name) =>
        sources.TryGetValue(name, out var s) ? SecretPaths.Canonical(s.Source, out _) : null;

    private static HealthCheck HealthCheckOf(AppHealthCheck hc)
    {
        var protocol = hc.EffectiveProtocol switch
        {
            "COMMAND" => HealthCheckProtocol.Command,
            "TCP" or "MESOS_TCP" => HealthCheckProtocol.Tcp,
            "HTTPS" or "MESOS_HTTPS" => HealthCheckProtocol.Https,
            _ => HealthCheckProtocol.Http,
        };
        return new HealthCheck
        {
            Protocol = protocol,
            PortIndex = hc.Port is null && protocol != HealthCheckProtocol.Command ? hc.PortIndex ?? 0 : null,
            Port = hc.Port,
            Path = hc.Path ?? "/",
            Command = hc.Command?.Value,
            GracePeriod = TimeSpan.FromSeconds(hc.GracePeriodSeconds ?? AppHealthCheck.DefaultGracePeriodSeconds),
            Interval = TimeSpan.FromSeconds(hc.IntervalSeconds ?? AppHealthCheck.DefaultIntervalSeconds),
            Timeout = TimeSpan.FromSeconds(hc.TimeoutSeconds ?? AppHealthCheck.DefaultTimeoutSeconds),
            Delay = TimeSpan.FromSeconds(hc.DelaySeconds ?? AppHealthCheck.DefaultDelaySeconds),
            MaxConsecutiveFailures = hc.MaxConsecutiveFailures ?? AppHealthCheck.DefaultMaxConsecutiveFailures,
            IgnoreHttp1xx = hc.IgnoreHttp1xx ?? false,
        };
    }

    /// <summary>Marathon's readiness checks, the port named by <c>portName</c> becoming its index among the app's ports.</summary>
    private static ImmutableArray<TaskReadinessCheck> ReadinessChecksOf(AppDefinition app)
    {
        if (app.ReadinessChecks is not { Length: > 0 } checks)
        {
            return [];
        }

        var ports = app.EffectivePortDefinitions;
        var result = ImmutableArray.CreateBuilder<TaskReadinessCheck>(checks.Length);
        foreach (var rc in checks)
        {
            var portName = rc.PortName ?? ReadinessCheck.DefaultPortName;
            var index = -1;
            for (var i = 0; i < ports.Length && index < 0; i++)
            {
                if (string.Equals(ports[i].Name, portName, StringComparison.Ordinal))
                {
                    index = i;
                }
            }

            result.Add(new TaskReadinessCheck
            {
                Name = rc.Name ?? ReadinessCheck.DefaultName,
                Protocol = string.Equals(rc.Protocol, "HTTPS", StringComparison.OrdinalIgnoreCase) ? HealthCheckProtocol.Https : HealthCheckProtocol.Http,
                Path = rc.Path ?? ReadinessCheck.DefaultPath,
                PortIndex = index, // validated apps always name one of their ports; -1 fails the launch otherwise
                Interval = TimeSpan.FromSeconds(rc.IntervalSeconds ?? ReadinessCheck.DefaultIntervalSeconds),
                Timeout = TimeSpan.FromSeconds(rc.TimeoutSeconds ?? ReadinessCheck.DefaultTimeoutSeconds),
                HttpStatusCodesForReady = rc.HttpStatusCodesForReady ?? [ReadinessCheck.DefaultStatusCode],
            });
        }

        return result.MoveToImmutable();
    }
}
