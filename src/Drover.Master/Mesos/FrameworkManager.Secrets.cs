using System.Collections.Immutable;
using Drover.Core;
using Drover.Core.Mesos;
using Drover.Core.Secrets;
using Drover.Core.Security;
using Drover.Master.Secrets;

namespace Drover.Master.Mesos;

/// <summary>
/// Mesos' <c>Secret</c> in a LAUNCH or LAUNCH_GROUP: in <c>command.environment.variables</c> (<c>type: SECRET</c>) and in
/// <c>container.volumes</c> (<c>source.type: SECRET</c>, a file at <c>container_path</c> in the sandbox). A REFERENCE
/// names a stored secret, which the principal launching the task must be allowed to read (checked with the other
/// launch authorizations: TASK_ERROR, REASON_TASK_UNAUTHORIZED) and which must exist; a VALUE carries the bytes, which
/// the master keeps encrypted under the task until it ends (<see cref="SecretStore.KeepTaskValues"/>). The task's spec
/// holds references only. A task that cannot have its secrets gets TASK_ERROR with the reason, and nothing is launched.
/// </summary>
internal sealed partial class FrameworkManager
{
    /// <summary>The secret store (set by the host; null in unit tests without one: then a task with secrets is refused).</summary>
    public SecretStore? Secrets { get; init; }

    /// <summary>
    /// Why <paramref name="caller"/> may not give <paramref name="task"/> the stored secrets it references (it lacks read
    /// on one), or null. Malformed references are left to <see cref="SecretsError"/>; nothing is checked without logins.
    /// </summary>
    private static string? SecretAuthorizationError(Framework fw, MTaskInfo task, SchedulerCaller caller)
    {
        if (caller.Principal is not { } principal)
        {
            return null;
        }

        var references = (task.Command?.Environment?.Variables ?? []).Where(v => v.Type == "SECRET").Select(v => v.Secret)
            .Concat((task.Container?.Volumes ?? []).Select(v => v?.Source?.Secret));
        foreach (var secret in references)
        {
            if (secret is { Type: "REFERENCE", Reference.Name: { } name } && SecretPaths.Canonical(name, out _) is { } path
                && !caller.Allows(Rids.Secret(path), PermissionAction.Read))
            {
                return $"Principal '{principal}' is not authorized to launch task {task.TaskId?.Value} of framework {fw.Id} with secret '{path}': "
                    + $"'{principal}' lacks permission '{Rids.Secret(path)}' with action 'read'";
            }
        }

        return null;
    }

    /// <summary>The VALUE secrets of the task a successful <see cref="BuildTask"/> built (read under the lock, right after).</summary>
    private List<(int Index, byte[] Value)>? _lastInline;

    /// <summary>
    /// The secrets of <paramref name="info"/> as references, and the VALUE secrets' bytes by index; or why the task
    /// cannot have them. <paramref name="executor"/> is the custom executor running the task (null: the agent runs it).
    /// </summary>
    private string? SecretsError(Framework fw, MTaskInfo info, MExecutorInfo? executor, out ImmutableArray<TaskSecret> secrets, out List<(int Index, byte[] Value)>? inline)
    {
        secrets = [];
        inline = null;
        var found = new List<(SecretTarget Target, string Name, string Field, MSecret? Secret)>();
        foreach (var v in info.Command?.Environment?.Variables ?? [])
        {
            if (v.Type == "SECRET")
            {
                found.Add((SecretTarget.Env, v.Name, $"command.environment.variables['{v.Name}'].secret", v.Secret));
            }
        }

        var volumes = info.Container?.Volumes ?? [];
        for (var i = 0; i < volumes.Count; i++)
        {
            var field = $"container.volumes[{i}]";
            var volume = volumes[i];
            if (volume?.Source is not { Type: "SECRET" } source || volume.HostPath is not null || volume.Image is not null)
            {
                return $"{field}: only volumes with source.type SECRET are supported (Drover has no host-path, image or persistent volumes)";
            }

            found.Add((SecretTarget.File, volume.ContainerPath ?? "", field, source.Secret));
        }

        if (found.Count == 0)
        {
            return null;
        }

        if (executor is not null)
        {
            return "secrets are delivered only to tasks the agent runs itself (LAUNCH with a command, or LAUNCH_GROUP with the DEFAULT executor), not to a custom executor's tasks";
        }

        if (found.Count > SecretPaths.MaxPerTask)
        {
            return $"a task may use at most {SecretPaths.MaxPerTask} secrets";
        }

        if (Secrets is null)
        {
            return "this master has no secret store";
        }

        var result = ImmutableArray.CreateBuilder<TaskSecret>(found.Count);
        var files = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (target, name, field, secret) in found)
        {
            var nameError = target == SecretTarget.Env ? SecretPaths.EnvNameError(name) : SecretPaths.FilePathError(name);
            if (nameError is not null)
            {
                return $"{(target == SecretTarget.Env ? field : field + ".container_path")}: {nameError}";
            }

            if (target == SecretTarget.File && !files.Add(name))
            {
                return $"{field}.container_path: '{name}' is used by another secret volume";
            }

            switch (secret)
            {
                case { Type: "REFERENCE", Reference: { } reference }:
                    if (SecretPaths.Canonical(reference.Name, out var pathError) is not { } path)
                    {
                        return $"{field}.reference.name: {pathError}";
                    }

                    if (!string.IsNullOrEmpty(reference.Key))
                    {
                        return $"{field}.reference.key: not supported (a Drover secret holds one value; store each field as its own secret)";
                    }

                    // Read permission was checked with the launch's other authorizations (SecretAuthorizationError).
                    if (!Secrets.Exists(path))
                    {
                        return $"{field}: secret '{path}' does not exist";
                    }

                    result.Add(new TaskSecret { Target = target, Name = name, Path = path });
                    break;
                case { Type: "VALUE", Value: { } value }:
                    var bytes = new byte[SecretPaths.MaxValueBytes + 1];
                    if (!Convert.TryFromBase64String(value.Data ?? "", bytes, out var length))
                    {
                        return $"{field}.value.data: must be base64 of at most {SecretPaths.MaxValueBytes} bytes";
                    }

                    (inline ??= []).Add((result.Count, bytes[..length]));
                    Array.Clear(bytes);
                    result.Add(new TaskSecret { Target = target, Name = name });
                    break;
                default:
                    return $"{field}: a secret of type REFERENCE with 'reference' or of type VALUE with 'value' is required";
            }
        }

        secrets = result.MoveToImmutable();
        return null;
    }
}
