using System.Collections.Immutable;
using System.Text.Json;

namespace Drover.Core.Api;

/// <summary>
/// Turns a <see cref="TaskSubmission"/> into a <see cref="TaskSpec"/>, collecting every field error
/// rather than stopping at the first so a user fixes their request in one go. Pure; no I/O.
/// </summary>
public static class TaskSubmissionValidator
{
    public const decimal DefaultCpus = 0.1m;
    public const long DefaultMemMiB = 32;
    public const long MinMemMiB = 4;
    public const int MaxPorts = 100;

    public static (TaskSpec? Spec, ImmutableArray<FieldError> Errors) Validate(TaskSubmission s)
    {
        var errors = ImmutableArray.CreateBuilder<FieldError>();

        if (s.Name is not null && (s.Name.Length == 0 || !Ids.IsValidName(s.Name)))
        {
            errors.Add(new("name", "may hold only letters, digits, '_', '-' and '.', 1-128 characters"));
        }

        var hasCmd = !string.IsNullOrWhiteSpace(s.Cmd);
        var hasArgs = s.Args is { Length: > 0 };
        if (hasCmd && hasArgs)
        {
            errors.Add(new("cmd", "give either cmd or args, not both"));
        }
        else if (!hasCmd && !hasArgs && s.Executor is null)
        {
            errors.Add(new("cmd", "is required (or args)"));
        }

        if (s.User is { } user && !Ids.IsValidUserName(user))
        {
            errors.Add(new("user", "must be a user name of up to 32 letters, digits, '_', '-' or '.'"));
        }

        var executor = s.Executor is { } e ? ValidateExecutor(e, errors) : null;
        if (s.Data is not null && (s.Executor is null || !IsBase64(s.Data)))
        {
            errors.Add(new("data", s.Executor is null ? "is only for tasks with an executor" : "must be base64"));
        }

        if (s.Args is { } args && args.Any(a => a is null))
        {
            errors.Add(new("args", "must not contain null"));
        }

        var cpus = Number(s.Cpus, "cpus", DefaultCpus, errors);
        if (cpus is <= 0)
        {
            errors.Add(new("cpus", "must be greater than 0"));
        }
        else if (cpus > Resources.MaxCpus)
        {
            errors.Add(new("cpus", $"must be at most {Resources.MaxCpus}"));
        }

        var mem = Number(s.Mem, "mem", DefaultMemMiB, errors);
        if (mem is not null && mem < MinMemMiB)
        {
            errors.Add(new("mem", $"must be at least {MinMemMiB} MiB"));
        }
        else if (mem > Resources.MaxMiB)
        {
            errors.Add(new("mem", $"must be at most {Resources.MaxMiB} MiB"));
        }

        var disk = Number(s.Disk, "disk", 0, errors);
        if (disk is < 0)
        {
            errors.Add(new("disk", "must not be negative"));
        }
        else if (disk > Resources.MaxMiB)
        {
            errors.Add(new("disk", $"must be at most {Resources.MaxMiB} MiB"));
        }

        var gpus = WholeNumber(s.Gpus, "gpus", 0, errors);
        if (gpus is < 0)
        {
            errors.Add(new("gpus", "must not be negative"));
        }

        var ports = WholeNumber(s.Ports, "ports", 0, errors);
        if (ports is < 0 or > MaxPorts)
        {
            errors.Add(new("ports", $"must be between 0 and {MaxPorts}"));
        }

        var grace = Number(s.KillGracePeriodSeconds, "killGracePeriodSeconds", 3, errors);
        if (grace is < 0 or > 3600)
        {
            errors.Add(new("killGracePeriodSeconds", "must be between 0 and 3600"));
        }

        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in s.Env ?? ImmutableDictionary<string, string>.Empty)
        {
            if (string.IsNullOrEmpty(k) || k.Contains('=', StringComparison.Ordinal) || k.Contains('\0', StringComparison.Ordinal))
            {
                errors.Add(new($"env.{k}", "an environment variable name must be non-empty and hold no '=' or NUL"));
            }
            else if (v is null)
            {
                errors.Add(new($"env.{k}", "must be a string"));
            }
            else
            {
                env[k] = v;
            }
        }

        CommandLimitErrors("", s.Cmd, s.Args, env, errors);
        var constraints = ImmutableArray.CreateBuilder<Constraint>();
        var list = s.Constraints ?? [];
        if (list.Length > InputLimits.MaxListItems)
        {
            errors.Add(new("constraints", $"has {list.Length} elements; at most {InputLimits.MaxListItems}"));
            list = [];
        }

        for (var i = 0; i < list.Length; i++)
        {
            if (TryReadConstraint(list[i], out var c, out var why))
            {
                constraints.Add(c!);
            }
            else
            {
                errors.Add(new($"constraints[{i}]", why!));
            }
        }

        if (errors.Count > 0)
        {
            return (null, errors.ToImmutable());
        }

        var id = Ids.NewTaskId(s.Name);
        var spec = new TaskSpec
        {
            Id = id,
            Name = s.Name ?? id,
            Shell = hasCmd ? s.Cmd : null,
            Args = hasArgs ? s.Args!.Value : [],
            Env = env.ToImmutable(),
            Resources = new Resources
            {
                MilliCpus = Resources.ToMilli(cpus!.Value),
                MemMiB = (long)mem!.Value,
                DiskMiB = (long)disk!.Value,
                Gpus = gpus!.Value,
            },
            PortCount = ports!.Value,
            Constraints = constraints.ToImmutable(),
            KillGracePeriod = TimeSpan.FromSeconds((double)grace!.Value),
            Group = id,
            User = s.User,
            FrameworkId = executor?.FrameworkId,
            Executor = executor,
            Data = s.Data,
        };
        return (spec, []);
    }

    /// <summary>The executor's spec, or null with the reasons added to <paramref name="errors"/>.</summary>
    private static ExecutorSpec? ValidateExecutor(ExecutorSubmission e, ImmutableArray<FieldError>.Builder errors)
    {
        var before = errors.Count;
        foreach (var (field, value) in new[] { ("executor.executorId", e.ExecutorId), ("executor.frameworkId", e.FrameworkId) })
        {
            if (string.IsNullOrEmpty(value))
            {
                errors.Add(new(field, "is required"));
            }
            else if (value.Length > 128 || value.Any(char.IsControl))
            {
                errors.Add(new(field, "must be 1-128 characters without control characters"));
            }
        }

        var hasCmd = !string.IsNullOrWhiteSpace(e.Cmd);
        var hasArgs = e.Args is { Length: > 0 };
        if (hasCmd == hasArgs)
        {
            errors.Add(new("executor.cmd", hasCmd ? "give either cmd or args, not both" : "is required (or args)"));
        }

        if (e.Args is { } args && args.Any(a => a is null || a.Contains('\0', StringComparison.Ordinal)))
        {
            errors.Add(new("executor.args", "must not contain null or NUL characters"));
        }

        var cpus = Number(e.Cpus, "executor.cpus", 0, errors);
        if (cpus is < 0 or > Resources.MaxCpus)
        {
            errors.Add(new("executor.cpus", $"must be between 0 and {Resources.MaxCpus}"));
        }

        var mem = Number(e.Mem, "executor.mem", 0, errors);
        if (mem is < 0 or > Resources.MaxMiB)
        {
            errors.Add(new("executor.mem", $"must be between 0 and {Resources.MaxMiB} MiB"));
        }

        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in e.Env ?? ImmutableDictionary<string, string>.Empty)
        {
            if (string.IsNullOrEmpty(k) || k.Contains('=', StringComparison.Ordinal) || k.Contains('\0', StringComparison.Ordinal) || v is null)
            {
                errors.Add(new($"executor.env.{k}", "needs a non-empty name without '=' or NUL, and a string value"));
            }
            else
            {
                env[k] = v;
            }
        }

        CommandLimitErrors("executor.", e.Cmd, e.Args, env, errors);
        if (e.Data is not null && !IsBase64(e.Data))
        {
            errors.Add(new("executor.data", "must be base64"));
        }

        if (errors.Count > before)
        {
            return null;
        }

        return new ExecutorSpec
        {
            ExecutorId = e.ExecutorId!,
            FrameworkId = e.FrameworkId!,
            Name = e.Name,
            Shell = hasCmd ? e.Cmd : null,
            Args = hasArgs ? e.Args!.Value : [],
            Env = env.ToImmutable(),
            Resources = new Resources { MilliCpus = Resources.ToMilli(cpus!.Value), MemMiB = (long)mem!.Value },
            Data = e.Data,
        };
    }

    /// <summary>
    /// What the kernel would refuse at exec time (<see cref="InputLimits"/>): NUL in the command or an argument or an
    /// environment value, a string over MAX_ARG_STRLEN, an environment over 256 KiB, argv and environment over 1 MiB.
    /// </summary>
    private static void CommandLimitErrors(string prefix, string? cmd, ImmutableArray<string>? args, IReadOnlyDictionary<string, string> env, ImmutableArray<FieldError>.Builder errors)
    {
        var argv = new List<string>();
        if (cmd is not null)
        {
            argv.AddRange(["/bin/sh", "-c", cmd]);
            if (InputLimits.ArgumentError(cmd) is { } error)
            {
                errors.Add(new(prefix + "cmd", error));
            }
        }

        var list = args ?? [];
        for (var i = 0; i < list.Length; i++)
        {
            if (list[i] is { } arg)
            {
                argv.Add(arg);
                if (InputLimits.ArgumentError(arg) is { } error)
                {
                    errors.Add(new($"{prefix}args[{i}]", error));
                }
            }
        }

        foreach (var (k, v) in env)
        {
            if (InputLimits.EnvValueError(k, v) is { } error)
            {
                errors.Add(new($"{prefix}env.{k}", error));
            }
        }

        var envBytes = InputLimits.EnvBytes(env);
        if (InputLimits.EnvTotalError(envBytes) is { } envError)
        {
            errors.Add(new(prefix + "env", envError));
        }
        else if (InputLimits.CommandTotalError(argv, envBytes) is { } total)
        {
            errors.Add(new(prefix + (cmd is not null ? "cmd" : "args"), total));
        }
    }

    private static bool IsBase64(string text)
    {
        var buffer = new byte[text.Length];
        return System.Convert.TryFromBase64String(text, buffer, out _);
    }

    private static bool TryReadConstraint(JsonElement e, out Constraint? c, out string? why)
    {
        c = null;
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                return Constraint.TryParse(e.GetString()!, out c, out why);
            case JsonValueKind.Array when e.GetArrayLength() is 2 or 3 && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String):
                var parts = e.EnumerateArray().Select(x => x.GetString()!).ToArray();
                return Constraint.TryCreate(parts[0], parts[1], parts.Length == 3 ? parts[2] : null, out c, out why);
            default:
                why = "must be a string \"field:OPERATOR[:value]\" or an array [field, OPERATOR, value]";
                return false;
        }
    }

    private static decimal? Number(JsonElement? e, string field, decimal fallback, ImmutableArray<FieldError>.Builder errors)
    {
        if (e is null || e.Value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }

        if (e.Value.ValueKind != JsonValueKind.Number || !e.Value.TryGetDecimal(out var d))
        {
            errors.Add(new(field, $"must be a number, got {Describe(e.Value)}"));
            return null;
        }

        return d;
    }

    private static int? WholeNumber(JsonElement? e, string field, int fallback, ImmutableArray<FieldError>.Builder errors)
    {
        if (e is null || e.Value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }

        if (e.Value.ValueKind != JsonValueKind.Number || !e.Value.TryGetInt32(out var n))
        {
            errors.Add(new(field, $"must be a whole number, got {Describe(e.Value)}"));
            return null;
        }

        return n;
    }

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{e.GetString()}\"",
        JsonValueKind.Number => e.GetRawText(),
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => e.ValueKind.ToString().ToLowerInvariant(),
    };
}
