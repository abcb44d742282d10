using System.Collections.Immutable;
using Drover.Core.Marathon;

namespace Drover.Master.Services;

/// <summary>Marathon's deployment step actions.</summary>
internal static class DeploymentActions
{
    public const string Start = "StartApplication";
    public const string Scale = "ScaleApplication";
    public const string Restart = "RestartApplication";
    public const string Stop = "StopApplication";
}

/// <summary>
/// A change being rolled out to one app: from <see cref="From"/> (null for a new app) to
/// <see cref="To"/>. Immutable; progress is recomputed from the instances on every controller pass.
/// </summary>
internal sealed record Deployment
{
    public required string Id { get; init; }

    public required string AppId { get; init; }

    /// <summary>The definition before the deployment (what a rollback restores), or null for a new app.</summary>
    public AppDefinition? From { get; init; }

    /// <summary>The definition being deployed, or null when the app is being deleted.</summary>
    public AppDefinition? To { get; init; }

    /// <summary><see cref="DeploymentActions"/>: what this deployment does.</summary>
    public required string Action { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>Apps whose deployment in the same plan must finish before this one acts (group dependencies).</summary>
    public ImmutableArray<string> DependsOn { get; init => field = value.IsDefault ? [] : value; } = [];

    public string Version => To?.Version ?? From?.Version ?? "";
}

/// <summary>One app as the service layer holds it. Mutable, guarded by <see cref="ServiceRegistry"/>'s lock.</summary>
internal sealed class AppState(AppDefinition current)
{
    /// <summary>The app's current definition (the deployment's target while one runs).</summary>
    public AppDefinition Current { get; set; } = current;

    /// <summary>Every version, oldest first (bounded).</summary>
    public List<AppDefinition> Versions { get; } = [current];

    public Deployment? Deployment { get; set; }

    public AppDefinition? Version(string? version) =>
        version is null ? null : Versions.LastOrDefault(v => v.Version == version);
}

/// <summary>An app's launch backoff (memory only). Mutable, guarded by <see cref="ServiceRegistry"/>'s lock.</summary>
internal sealed class AppBackoff
{
    /// <summary>Consecutive failed instances since the last healthy one (drives the launch delay).</summary>
    public int Failures { get; set; }

    public DateTimeOffset? DelayedUntil { get; set; }

    public LastTaskFailure? LastFailure { get; set; }
}

/// <summary>Marathon's <c>lastTaskFailure</c>.</summary>
internal sealed record LastTaskFailure(string AppId, string TaskId, string State, string Message, string Host, string Version, DateTimeOffset Timestamp);

/// <summary>What the store holds for an app (definitions as Marathon JSON text).</summary>
internal sealed record PersistedApp
{
    public required string Current { get; init; }

    public ImmutableArray<string> Versions { get; init => field = value.IsDefault ? [] : value; } = [];

    public PersistedDeployment? Deployment { get; init; }
}

internal sealed record PersistedDeployment
{
    public required string Id { get; init; }

    public required string Action { get; init; }

    public string? From { get; init; }

    public string? To { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public ImmutableArray<string> DependsOn { get; init => field = value.IsDefault ? [] : value; } = [];
}

/// <summary>
/// A group's own settings, kept (and persisted) apart from its apps: a group exists when created
/// through <c>/v2/groups</c> even while empty, and its <c>dependencies</c> are echoed back.
/// </summary>
internal sealed record GroupRecord
{
    public required string Id { get; init; }

    /// <summary>Absolute ids of the apps or groups this group's apps wait for.</summary>
    public ImmutableArray<string> Dependencies { get; init => field = value.IsDefault ? [] : value; } = [];

    public required string Version { get; init; }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(PersistedApp))]
[System.Text.Json.Serialization.JsonSerializable(typeof(GroupRecord))]
internal sealed partial class ServicesJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
