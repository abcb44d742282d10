using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Drover.Core.Marathon;

/// <summary>
/// A Marathon app definition (<c>/v2/apps</c>), field for field with Marathon's JSON names so DC/OS users
/// bring their definitions unchanged and a GET returns what was POSTed plus Marathon's defaults.
/// </summary>
/// <remarks>
/// <para>Every field is nullable: null means "absent", so validation can tell absent from zero and the
/// source generator cannot reset an initializer (dotnet/runtime#84484). <see cref="WithDefaults"/> fills
/// Marathon's defaults in and brings deprecated fields into canonical form; it is what the API stores and
/// returns. Validate first with <see cref="MarathonValidator.Validate"/>.</para>
/// <para>Fields Drover cannot honour yet (container images, fetch, volumes other than secrets, …) are kept as Marathon
/// sent them so they can be named in the 422; the validator rejects them. See Marathon/README.md.</para>
/// </remarks>
public sealed record AppDefinition
{
    public const int DefaultInstances = 1;
    public const decimal DefaultCpus = 1m;
    public const decimal DefaultMem = 128m;
    public const decimal DefaultDisk = 0m;
    public const int DefaultGpus = 0;
    public const string DefaultExecutor = "";
    public const int DefaultBackoffSeconds = 1;
    public const decimal DefaultBackoffFactor = 1.15m;

    /// <summary>3600 s: the default of app.raml and of <c>AppDefinition.DefaultMaxLaunchDelay</c> in Marathon 1.x.</summary>
    public const int DefaultMaxLaunchDelaySeconds = 3600;

    public const string DefaultRole = "*";

    /// <summary>Marathon's label that marks an app as single-instance (at most one instance).</summary>
    public const string SingleInstanceLabel = "MARATHON_SINGLE_INSTANCE_APP";

    /// <summary>Absolute (<c>/prod/web</c>) or relative to the enclosing group (<c>web</c>, <c>../web</c>). Required.</summary>
    public string? Id { get; init; }

    /// <summary>Shell command, run as <c>/bin/sh -c cmd</c>. Exactly one of <see cref="Cmd"/> and <see cref="Args"/>.</summary>
    public string? Cmd { get; init; }

    /// <summary>Exec form: argv, no shell.</summary>
    public ImmutableArray<string>? Args { get; init; }

    /// <summary>Rejected: Drover runs every task as the agent's task user.</summary>
    public string? User { get; init; }

    /// <summary>Environment; values are strings or <c>{"secret": "name"}</c>, a reference to one of <see cref="Secrets"/>.</summary>
    public ImmutableSortedDictionary<string, EnvVarValue>? Env { get; init => field = value?.WithComparers(StringComparer.Ordinal); }

    public int? Instances { get; init; }

    /// <summary>CPU shares per instance; fractions allowed. Exact (decimal) so milli-CPUs never drift.</summary>
    public decimal? Cpus { get; init; }

    /// <summary>Memory per instance in MiB (Marathon says MB and means MiB).</summary>
    public decimal? Mem { get; init; }

    /// <summary>Sandbox disk per instance in MiB.</summary>
    public decimal? Disk { get; init; }

    public int? Gpus { get; init; }

    /// <summary>Only <c>""</c> and <c>//cmd</c> (the command executor) are supported.</summary>
    public string? Executor { get; init; }

    /// <summary>Placement constraints: <c>[field, OPERATOR]</c> or <c>[field, OPERATOR, value]</c>.</summary>
    public ImmutableArray<ImmutableArray<string>>? Constraints { get; init; }

    /// <summary>Deprecated <c>fetch</c>; rejected when not empty.</summary>
    public ImmutableArray<string>? Uris { get; init; }

    /// <summary>Rejected when not empty.</summary>
    public ImmutableArray<JsonElement>? Fetch { get; init; }

    /// <summary>Rejected when not empty.</summary>
    public ImmutableArray<string>? StoreUrls { get; init; }

    /// <summary>Deprecated form of <see cref="PortDefinitions"/> (port numbers only); migrated by <see cref="WithDefaults"/>.</summary>
    public ImmutableArray<int>? Ports { get; init; }

    /// <summary>
    /// Host ports per task, exposed as <c>PORT0</c>…; port 0 is dynamic. Absent means one dynamic port
    /// named <c>default</c> (Marathon's default); an empty array means none.
    /// </summary>
    public ImmutableArray<PortDefinition>? PortDefinitions { get; init; }

    /// <summary>When true, non-zero <see cref="PortDefinition.Port"/>s are the host ports themselves, not service ports.</summary>
    public bool? RequirePorts { get; init; }

    public int? BackoffSeconds { get; init; }

    public decimal? BackoffFactor { get; init; }

    public int? MaxLaunchDelaySeconds { get; init; }

    /// <summary>
    /// Kept as sent; any image, port mapping or volume other than a secret volume is rejected (an imageless MESOS
    /// container is accepted). Secret volumes are read through <see cref="SecretVolumes"/>.
    /// </summary>
    public JsonElement? Container { get; init; }

    public ImmutableArray<AppHealthCheck>? HealthChecks { get; init; }

    /// <summary>Marathon allows at most one.</summary>
    public ImmutableArray<ReadinessCheck>? ReadinessChecks { get; init; }

    /// <summary>App or group ids this app depends on; relative ids are resolved against the app's own id.</summary>
    public ImmutableArray<string>? Dependencies { get; init; }

    public UpgradeStrategy? UpgradeStrategy { get; init; }

    public ImmutableSortedDictionary<string, string>? Labels { get; init => field = value?.WithComparers(StringComparer.Ordinal); }

    /// <summary>Only <c>["*"]</c> is supported (Drover has no reservations).</summary>
    public ImmutableArray<string>? AcceptedResourceRoles { get; init; }

    /// <summary>Only <c>"*"</c> is supported.</summary>
    public string? Role { get; init; }

    /// <summary>Only a single <c>{"mode": "host"}</c> network is supported (the default).</summary>
    public ImmutableArray<AppNetwork>? Networks { get; init; }

    /// <summary>Deprecated IP-per-task networking; rejected.</summary>
    public JsonElement? IpAddress { get; init; }

    /// <summary>Resident tasks (persistent volumes); rejected.</summary>
    public JsonElement? Residency { get; init; }

    /// <summary>
    /// Secrets the app uses, by a name of the app's choosing: <c>{"db": {"source": "team-a/db-password"}}</c>. An
    /// environment variable (<c>{"secret": "db"}</c>) or a secret volume (<c>container.volumes</c>
    /// <c>{"containerPath", "secret": "db"}</c>) names one; the source is the path in Drover's secret store.
    /// </summary>
    public ImmutableSortedDictionary<string, AppSecret>? Secrets { get; init => field = value?.WithComparers(StringComparer.Ordinal); }

    /// <summary>Mesos checks (Marathon 1.6+); rejected.</summary>
    public JsonElement? Check { get; init; }

    /// <summary>Rejected when true.</summary>
    public bool? Tty { get; init; }

    /// <summary>Resource limits above the request (Marathon 1.10); rejected.</summary>
    public JsonElement? ResourceLimits { get; init; }

    /// <summary>Seconds between SIGTERM and SIGKILL; Marathon's default is the executor's (Drover: 3 s).</summary>
    public int? TaskKillGracePeriodSeconds { get; init; }

    /// <summary><c>YOUNGEST_FIRST</c> (default) or <c>OLDEST_FIRST</c>: which instances go first on scale-down.</summary>
    public string? KillSelection { get; init; }

    public UnreachableStrategy? UnreachableStrategy { get; init; }

    /// <summary>Output: the version (timestamp) of this definition, set by the API.</summary>
    public string? Version { get; init; }

    /// <summary>Output only: set by the API.</summary>
    public VersionInfo? VersionInfo { get; init; }

    /// <summary>Fields Drover does not model. Read-only fields of Marathon's GET answer are ignored; any other is rejected.</summary>
    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    /// <summary>
    /// The ports the tasks get, in order: <see cref="PortDefinitions"/>, else the deprecated
    /// <see cref="Ports"/>, else Marathon's one dynamic <c>default</c> port.
    /// </summary>
    [JsonIgnore]
    public ImmutableArray<PortDefinition> EffectivePortDefinitions =>
        PortDefinitions is { IsDefault: false } defs ? defs
        : Ports is { IsDefault: false } ports ? [.. ports.Select(p => new PortDefinition { Port = p })]
        : [PortDefinition.Default];

    /// <summary>
    /// The secret volumes of <c>container.volumes</c> (<c>{"containerPath": "p", "secret": "name"}</c>): a file at
    /// <c>$MESOS_SANDBOX/p</c> holding the secret's value. Meaningful for a validated definition; elements that are not
    /// secret volumes are skipped (the validator refuses them).
    /// </summary>
    [JsonIgnore]
    public ImmutableArray<SecretVolume> SecretVolumes
    {
        get
        {
            if (Container is not { ValueKind: JsonValueKind.Object } c || !c.TryGetProperty("volumes", out var volumes) || volumes.ValueKind != JsonValueKind.Array)
            {
                return [];
            }

            var result = ImmutableArray.CreateBuilder<SecretVolume>();
            foreach (var v in volumes.EnumerateArray())
            {
                if (v.ValueKind == JsonValueKind.Object
                    && v.TryGetProperty("secret", out var secret) && secret.ValueKind == JsonValueKind.String
                    && v.TryGetProperty("containerPath", out var path) && path.ValueKind == JsonValueKind.String)
                {
                    result.Add(new SecretVolume(path.GetString()!, secret.GetString()!));
                }
            }

            return result.ToImmutable();
        }
    }

    /// <summary>How many host ports each task needs (<c>PORT0</c>…).</summary>
    [JsonIgnore]
    public int PortCount => EffectivePortDefinitions.Length;

    /// <summary>The fixed host ports each task needs when <see cref="RequirePorts"/> is set (non-zero ports only).</summary>
    [JsonIgnore]
    public ImmutableArray<int> RequiredHostPorts => RequirePorts == true
        ? [.. EffectivePortDefinitions.Select(p => p.Port ?? 0).Where(p => p != 0)]
        : [];

    /// <summary>
    /// The scalar resources one instance requests, exact: CPUs as milli-CPUs (<see cref="Resources.ToMilli"/>),
    /// memory and disk rounded up to whole MiB. Ports are not included: see <see cref="PortCount"/>.
    /// Meaningful for a validated definition (absent fields take their defaults).
    /// </summary>
    [JsonIgnore]
    public Resources RequestedResources => new()
    {
        MilliCpus = Resources.ToMilli(Cpus ?? DefaultCpus),
        MemMiB = (long)Math.Ceiling(Mem ?? DefaultMem),
        DiskMiB = (long)Math.Ceiling(Disk ?? DefaultDisk),
        Gpus = Gpus ?? DefaultGpus,
    };

    /// <summary>
    /// Marathon's canonical form with every default filled in, as the API stores and returns it: the id
    /// and dependencies made absolute (relative ids resolve against <paramref name="parentGroupId"/>, or the
    /// root), <c>ports</c> migrated to <c>portDefinitions</c>, enum spellings canonical, health checks and
    /// readiness checks completed. Ids that do not parse are left as they are. Idempotent.
    /// </summary>
    public AppDefinition WithDefaults(string? parentGroupId = null)
    {
        var parent = parentGroupId is null ? AppId.Root : AppId.Parse(parentGroupId).Canonical();
        var id = Id is { Length: > 0 } raw && AppId.Validate(raw) is null ? AppId.Parse(raw).Canonical(parent) : (AppId?)null;
        var explicitPorts = (PortDefinitions ?? []).Length + (Ports ?? []).Length > 0;

        return this with
        {
            Id = id?.ToString() ?? Id,
            Env = Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty,
            Instances = Instances ?? DefaultInstances,
            Cpus = Cpus ?? DefaultCpus,
            Mem = Mem ?? DefaultMem,
            Disk = Disk ?? DefaultDisk,
            Gpus = Gpus ?? DefaultGpus,
            Executor = Executor ?? DefaultExecutor,
            Constraints = Constraints ?? [],
            Uris = null, // Marathon folds uris into fetch and never writes them back
            Fetch = Fetch ?? [],
            StoreUrls = StoreUrls ?? [],
            Ports = null,
            PortDefinitions = [.. EffectivePortDefinitions.Select(p => p.WithDefaults())],
            RequirePorts = RequirePorts ?? false,
            BackoffSeconds = BackoffSeconds ?? DefaultBackoffSeconds,
            BackoffFactor = BackoffFactor ?? DefaultBackoffFactor,
            MaxLaunchDelaySeconds = MaxLaunchDelaySeconds ?? DefaultMaxLaunchDelaySeconds,
            HealthChecks = [.. (HealthChecks ?? []).Select(h => h.WithDefaults(explicitPorts))],
            ReadinessChecks = [.. (ReadinessChecks ?? []).Select(r => r.WithDefaults())],
            Dependencies = [.. (Dependencies ?? []).Select(d => CanonicalDependency(d, id))],
            UpgradeStrategy = (UpgradeStrategy ?? UpgradeStrategy.Default).WithDefaults(),
            Labels = Labels ?? ImmutableSortedDictionary<string, string>.Empty,
            Role = Role ?? DefaultRole,
            Networks = Networks is { IsDefaultOrEmpty: false } networks ? [.. networks.Select(n => n.WithDefaults())] : [AppNetwork.Host],
            KillSelection = KillSelection is null ? KillSelections.YoungestFirst : KillSelections.Canonical(KillSelection) ?? KillSelection,
            UnreachableStrategy = (UnreachableStrategy ?? UnreachableStrategy.Default).WithDefaults(),
            Unknown = null,
        };
    }

    /// <summary>Marathon resolves a relative dependency against the app's own id: <c>../db</c> of <c>/prod/web</c> is <c>/prod/db</c>.</summary>
    private static string CanonicalDependency(string? dependency, AppId? app) =>
        app is { } appId && dependency is not null && AppId.Validate(dependency) is null
            ? AppId.Parse(dependency).Canonical(appId).ToString()
            : dependency!; // an invalid (or null) element is left for the validator to report
}

/// <summary>A secret the app uses (Marathon's <c>SecretDef</c>): where it lives in the secret store.</summary>
public sealed record AppSecret
{
    /// <summary>The secret's path in Drover's secret store (<c>team-a/db-password</c>, a leading <c>/</c> allowed).</summary>
    public string? Source { get; init; }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }
}

/// <summary>A secret volume: the value of the app's secret <see cref="Secret"/> as a file at <see cref="ContainerPath"/> in the sandbox.</summary>
public sealed record SecretVolume(string ContainerPath, string Secret);

/// <summary>An environment variable's value: a string, or a reference to one of the app's <c>secrets</c> by name.</summary>
[JsonConverter(typeof(EnvVarValueJsonConverter))]
public sealed record EnvVarValue
{
    /// <summary>The value, or null for a secret reference.</summary>
    public string? Value { get; init; }

    /// <summary>The secret's name in <c>{"secret": "name"}</c>.</summary>
    public string? Secret { get; init; }

    public static implicit operator EnvVarValue(string value) => FromString(value);

    public static EnvVarValue FromString(string value) => new() { Value = value };
}

/// <summary>A host port: <c>port</c> 0 is dynamic; with <c>requirePorts</c> a non-zero port is the host port itself.</summary>
public sealed record PortDefinition
{
    public const string DefaultProtocol = "tcp";

    /// <summary>Marathon's default when an app gives no ports: one dynamic tcp port named <c>default</c>.</summary>
    public static readonly PortDefinition Default = new() { Port = 0, Protocol = DefaultProtocol, Name = "default" };

    public int? Port { get; init; }

    /// <summary><c>tcp</c> (default), <c>udp</c> or both (<c>udp,tcp</c> / <c>tcp,udp</c>).</summary>
    public string? Protocol { get; init; }

    /// <summary>Optional, unique among the app's ports; also exposed as <c>PORT_NAME</c>.</summary>
    public string? Name { get; init; }

    public ImmutableSortedDictionary<string, string>? Labels { get; init => field = value?.WithComparers(StringComparer.Ordinal); }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    internal PortDefinition WithDefaults() => this with
    {
        Port = Port ?? 0,
        Protocol = Protocol is null ? DefaultProtocol : PortProtocols.Canonical(Protocol) ?? Protocol,
    };
}

/// <summary>
/// An app health check with Marathon's fields and defaults. <c>HTTP</c>, <c>HTTPS</c>, <c>TCP</c> and their
/// <c>MESOS_</c> forms probe a port (<see cref="PortIndex"/> or <see cref="Port"/>); <c>COMMAND</c> runs
/// <see cref="Command"/>. A check with a command is a command check whatever its protocol, as in Marathon.
/// </summary>
public sealed record AppHealthCheck
{
    public const int DefaultGracePeriodSeconds = 300;
    public const int DefaultIntervalSeconds = 60;
    public const int DefaultTimeoutSeconds = 20;
    public const int DefaultMaxConsecutiveFailures = 3;
    public const int DefaultDelaySeconds = 15;

    /// <summary>HTTP (default), HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP.</summary>
    public string? Protocol { get; init; }

    /// <summary>HTTP(S) path; absent means <c>/</c>.</summary>
    public string? Path { get; init; }

    /// <summary>Index into the app's ports; absent means 0 when the app has exactly one port.</summary>
    public int? PortIndex { get; init; }

    /// <summary>A fixed port to probe instead of <see cref="PortIndex"/>.</summary>
    public int? Port { get; init; }

    public CommandCheck? Command { get; init; }

    public int? GracePeriodSeconds { get; init; }

    public int? IntervalSeconds { get; init; }

    public int? TimeoutSeconds { get; init; }

    /// <summary>0 means never kill the task for failing this check.</summary>
    public int? MaxConsecutiveFailures { get; init; }

    public int? DelaySeconds { get; init; }

    public bool? IgnoreHttp1xx { get; init; }

    /// <summary>IPv4 or IPv6, for the MESOS_ protocols; kept as sent.</summary>
    public string? IpProtocol { get; init; }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    /// <summary>The protocol in effect: COMMAND when a command is given, else the (canonical) protocol, else HTTP.</summary>
    [JsonIgnore]
    public string EffectiveProtocol => Command is not null
        ? HealthCheckProtocols.Command
        : Protocol is null ? HealthCheckProtocols.Http : HealthCheckProtocols.Canonical(Protocol) ?? Protocol;

    /// <param name="appHasExplicitPorts">
    /// Marathon adds <c>portIndex: 0</c> to a port-probing check without <c>port</c>/<c>portIndex</c> only
    /// when the app listed its ports itself (AppNormalization).
    /// </param>
    internal AppHealthCheck WithDefaults(bool appHasExplicitPorts)
    {
        var protocol = EffectiveProtocol;
        var probesPort = protocol != HealthCheckProtocols.Command;
        return this with
        {
            Protocol = protocol,
            PortIndex = PortIndex ?? (probesPort && Port is null && appHasExplicitPorts ? 0 : null),
            GracePeriodSeconds = GracePeriodSeconds ?? DefaultGracePeriodSeconds,
            IntervalSeconds = IntervalSeconds ?? DefaultIntervalSeconds,
            TimeoutSeconds = TimeoutSeconds ?? DefaultTimeoutSeconds,
            MaxConsecutiveFailures = MaxConsecutiveFailures ?? DefaultMaxConsecutiveFailures,
            DelaySeconds = DelaySeconds ?? DefaultDelaySeconds,
            IgnoreHttp1xx = IgnoreHttp1xx ?? false,
        };
    }
}

/// <summary>The command of a COMMAND health check: <c>{"value": "curl -f http://$HOST:$PORT0/health"}</c>.</summary>
public sealed record CommandCheck
{
    public string? Value { get; init; }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }
}

/// <summary>Polled during deployments until a new task answers with one of <see cref="HttpStatusCodesForReady"/>.</summary>
public sealed record ReadinessCheck
{
    public const string DefaultName = "readinessCheck";
    public const string DefaultPath = "/";
    public const string DefaultPortName = "http-api";
    public const int DefaultIntervalSeconds = 30;
    public const int DefaultTimeoutSeconds = 10;
    public const int DefaultStatusCode = 200;

    public string? Name { get; init; }

    /// <summary>HTTP (default) or HTTPS.</summary>
    public string? Protocol { get; init; }

    public string? Path { get; init; }

    /// <summary>The name of one of the app's port definitions.</summary>
    public string? PortName { get; init; }

    public int? IntervalSeconds { get; init; }

    /// <summary>Must be smaller than <see cref="IntervalSeconds"/>.</summary>
    public int? TimeoutSeconds { get; init; }

    public ImmutableArray<int>? HttpStatusCodesForReady { get; init; }

    public bool? PreserveLastResponse { get; init; }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    internal ReadinessCheck WithDefaults() => this with
    {
        Name = Name ?? DefaultName,
        Protocol = Protocol is null ? HealthCheckProtocols.Http : HealthCheckProtocols.CanonicalReadiness(Protocol) ?? Protocol,
        Path = Path ?? DefaultPath,
        PortName = PortName ?? DefaultPortName,
        IntervalSeconds = IntervalSeconds ?? DefaultIntervalSeconds,
        TimeoutSeconds = TimeoutSeconds ?? DefaultTimeoutSeconds,
        HttpStatusCodesForReady = HttpStatusCodesForReady is { IsDefaultOrEmpty: false } codes ? codes : [DefaultStatusCode],
        PreserveLastResponse = PreserveLastResponse ?? false,
    };
}

/// <summary>How many instances may be down (<see cref="MinimumHealthCapacity"/>) or extra (<see cref="MaximumOverCapacity"/>) during an upgrade, as fractions of <c>instances</c>.</summary>
public sealed record UpgradeStrategy
{
    public static readonly UpgradeStrategy Default = new() { MinimumHealthCapacity = 1m, MaximumOverCapacity = 1m };

    /// <summary>In [0, 1]; default 1.</summary>
    public decimal? MinimumHealthCapacity { get; init; }

    /// <summary>In [0, 1]; default 1.</summary>
    public decimal? MaximumOverCapacity { get; init; }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    internal UpgradeStrategy WithDefaults() => this with
    {
        MinimumHealthCapacity = MinimumHealthCapacity ?? 1m,
        MaximumOverCapacity = MaximumOverCapacity ?? 1m,
        Unknown = null,
    };
}

/// <summary>
/// What happens to instances on an unreachable agent: the string <c>"disabled"</c>, or an object with
/// <c>inactiveAfterSeconds</c> (replace the instance after that long) and <c>expungeAfterSeconds</c>
/// (forget it after that long). Marathon's default is <c>{0, 0}</c>; a field missing from a given
/// object takes its own default, 300 and 600.
/// </summary>
[JsonConverter(typeof(UnreachableStrategyJsonConverter))]
public sealed record UnreachableStrategy
{
    public const long DefaultInactiveAfterSeconds = 300;
    public const long DefaultExpungeAfterSeconds = 600;
    public const string DisabledLiteral = "disabled";

    /// <summary>Marathon's default for apps without persistent volumes: replace and expunge at once.</summary>
    public static readonly UnreachableStrategy Default = new() { InactiveAfterSeconds = 0, ExpungeAfterSeconds = 0 };

    public static readonly UnreachableStrategy Disabled = new() { IsDisabled = true };

    public bool IsDisabled { get; init; }

    public long? InactiveAfterSeconds { get; init; }

    public long? ExpungeAfterSeconds { get; init; }

    /// <summary>Members Drover does not know, for the validator to name.</summary>
    internal ImmutableArray<string> UnknownFields { get; init => field = value.IsDefault ? [] : value; } = [];

    internal UnreachableStrategy WithDefaults() => IsDisabled ? Disabled : this with
    {
        UnknownFields = [],
        InactiveAfterSeconds = InactiveAfterSeconds ?? DefaultInactiveAfterSeconds,
        ExpungeAfterSeconds = ExpungeAfterSeconds ?? DefaultExpungeAfterSeconds,
    };
}

/// <summary>A network the app joins. Drover supports only <c>{"mode": "host"}</c>.</summary>
public sealed record AppNetwork
{
    public const string HostMode = "host";
    public const string ContainerMode = "container";
    public const string BridgeMode = "container/bridge";

    public static readonly AppNetwork Host = new() { Mode = HostMode };

    /// <summary><c>container</c> (Marathon's default when absent), <c>container/bridge</c> or <c>host</c>.</summary>
    public string? Mode { get; init; }

    /// <summary>The container network to join (not with host mode).</summary>
    public string? Name { get; init; }

    public ImmutableSortedDictionary<string, string>? Labels { get; init => field = value?.WithComparers(StringComparer.Ordinal); }

    [JsonExtensionData]
    [JsonInclude]
    internal Dictionary<string, JsonElement>? Unknown { get; set; }

    /// <summary>The mode in effect, canonical: absent means <c>container</c>.</summary>
    [JsonIgnore]
    public string EffectiveMode => Mode is null ? ContainerMode : NetworkModes.Canonical(Mode) ?? Mode;

    internal AppNetwork WithDefaults() => this with { Mode = EffectiveMode };
}

/// <summary>Output only: when the app last changed, and last scaled or restarted.</summary>
public sealed record VersionInfo
{
    public string? LastScalingAt { get; init; }

    public string? LastConfigChangeAt { get; init; }
}

/// <summary>Marathon's kill selections. Marathon reads its enums case-insensitively.</summary>
public static class KillSelections
{
    public const string YoungestFirst = "YOUNGEST_FIRST";
    public const string OldestFirst = "OLDEST_FIRST";

    /// <summary>The canonical spelling, or null when <paramref name="value"/> is not a kill selection.</summary>
    public static string? Canonical(string value) => value.ToUpperInvariant() switch
    {
        YoungestFirst => YoungestFirst,
        OldestFirst => OldestFirst,
        _ => null,
    };
}

/// <summary>Health and readiness check protocols.</summary>
public static class HealthCheckProtocols
{
    public const string Http = "HTTP";
    public const string Https = "HTTPS";
    public const string Tcp = "TCP";
    public const string Command = "COMMAND";
    public const string MesosHttp = "MESOS_HTTP";
    public const string MesosHttps = "MESOS_HTTPS";
    public const string MesosTcp = "MESOS_TCP";

    public static readonly ImmutableArray<string> All = [Http, Https, Tcp, Command, MesosHttp, MesosHttps, MesosTcp];

    /// <summary>Protocols Marathon counts as Mesos health checks (at most one per app).</summary>
    public static readonly ImmutableArray<string> Mesos = [MesosHttp, MesosHttps, MesosTcp];

    public static string? Canonical(string value)
    {
        var upper = value.ToUpperInvariant();
        return All.Contains(upper) ? upper : null;
    }

    /// <summary>Readiness checks speak HTTP or HTTPS only.</summary>
    public static string? CanonicalReadiness(string value) => value.ToUpperInvariant() switch
    {
        Http => Http,
        Https => Https,
        _ => null,
    };
}

/// <summary>Port protocols.</summary>
public static class PortProtocols
{
    public static string? Canonical(string value) => value.ToLowerInvariant() switch
    {
        "tcp" => "tcp",
        "udp" => "udp",
        "udp,tcp" => "udp,tcp",
        "tcp,udp" => "tcp,udp",
        _ => null,
    };
}

/// <summary>Network modes.</summary>
public static class NetworkModes
{
    public static string? Canonical(string value) => value.ToLowerInvariant() switch
    {
        AppNetwork.HostMode => AppNetwork.HostMode,
        AppNetwork.ContainerMode => AppNetwork.ContainerMode,
        AppNetwork.BridgeMode => AppNetwork.BridgeMode,
        _ => null,
    };
}
