using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;
using Drover.Core.Health;
using Drover.Core.Marathon;

namespace Drover.Master.Services;

/// <summary>Turns one version of a (validated, defaulted) Marathon app into the spec of one instance.</summary>
internal static class AppTaskFactory
{
    public static TaskSpec Create(AppDefinition app)
    {
        var appId = app.Id!;
        var id = Ids.NewTaskId(appId.Trim('/').Replace('/', '_'));
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
        env["MESOS_TASK_ID"] = id;
        foreach (var (k, v) in app.Labels ?? ImmutableSortedDictionary<string, string>.Empty)
        {
            var name = "MARATHON_APP_LABEL_" + new string([.. k.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
            env[name] = v;
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
            Id = id,
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
            AppVersion = ServiceRegistry.ConfigVersion(app),
            HealthCheck = HealthCheckOf(app),
            PortNames = [.. app.EffectivePortDefinitions.Select(p => p.Name ?? "")],
        };
    }

    private static HealthCheck? HealthCheckOf(AppDefinition app)
    {
        if (app.HealthChecks is not { Length: > 0 } checks)
        {
            return null;
        }

        var hc = checks[0];
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
}
