using System.Collections.Immutable;

namespace Drover.Core.Marathon;

/// <summary>
/// Drover's size caps on an app (<see cref="InputLimits"/>, docs/limits.md): what Marathon leaves unbounded but a
/// master must keep in memory and in every kept version, and what the kernel would refuse at exec time anyway.
/// Each refusal is a 422 detail naming the field.
/// </summary>
public static partial class MarathonValidator
{
    private static void ValidateLimits(AppDefinition app, AppId? id, MarathonErrorBuilder e)
    {
        if (id is { } canonical && canonical.ToString() is { Length: > InputLimits.MaxAppIdLength } full)
        {
            e.Add("/id", MarathonErrorText.IdTooLong(full.Length));
        }

        var argv = new List<string>();
        if (app.Cmd is { Length: > 0 } cmd)
        {
            argv.AddRange(["/bin/sh", "-c", cmd]);
            if (InputLimits.ArgumentError(cmd) is { } error)
            {
                e.Add("/cmd", error);
            }
        }

        var args = app.Args ?? [];
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is { } arg)
            {
                argv.Add(arg);
                if (InputLimits.ArgumentError(arg) is { } error)
                {
                    e.Add(Index("/args", i), error);
                }
            }
        }

        // Names are checked by ValidateEnv; secret values are resolved on the agent and counted there.
        var env = (app.Env ?? ImmutableSortedDictionary<string, EnvVarValue>.Empty)
            .Where(kv => kv.Key.Length > 0 && kv.Value?.Value is not null)
            .Select(kv => KeyValuePair.Create(kv.Key, kv.Value!.Value!))
            .ToList();
        foreach (var (name, value) in env)
        {
            if (!value.Contains('\0', StringComparison.Ordinal) && InputLimits.EnvValueError(name, value) is { } error)
            {
                e.Add("/env/" + name, error);
            }
        }

        var envBytes = InputLimits.EnvBytes(env);
        if (InputLimits.EnvTotalError(envBytes) is { } envError)
        {
            e.Add("/env", envError);
        }
        else if (InputLimits.CommandTotalError(argv, envBytes) is { } total)
        {
            e.Add(app.Cmd is not null ? "/cmd" : "/args", total);
        }

        if (app.Labels is { } labels && InputLimits.LabelsTotalError(InputLimits.LabelBytes(labels.Where(kv => kv.Value is not null))) is { } labelsError)
        {
            e.Add("/labels", labelsError);
        }

        MaxItems("/constraints", app.Constraints?.Length, e);
        var constraints = app.Constraints ?? [];
        for (var i = 0; i < constraints.Length; i++)
        {
            var c = constraints[i];
            for (var j = 0; !c.IsDefault && j < c.Length; j++)
            {
                if (c[j] is { Length: > InputLimits.MaxShortText } text)
                {
                    e.Add(Index(Index("/constraints", i), j), TooLong(text.Length));
                }
            }
        }

        MaxItems("/healthChecks", app.HealthChecks?.Length, e);
        var checks = app.HealthChecks ?? [];
        for (var i = 0; i < checks.Length; i++)
        {
            var path = Index("/healthChecks", i);
            if (checks[i]?.Command?.Value is { } command && InputLimits.ArgumentError(command) is { } error)
            {
                e.Add(path + "/command/value", error);
            }

            if (checks[i]?.Path is { Length: > InputLimits.MaxShortText } p)
            {
                e.Add(path + "/path", TooLong(p.Length));
            }
        }

        MaxItems("/dependencies", app.Dependencies?.Length, e);
        MaxItems("/portDefinitions", app.PortDefinitions?.Length, e);
    }

    private static void MaxItems(string path, int? count, MarathonErrorBuilder e)
    {
        if (count > InputLimits.MaxListItems)
        {
            e.Add(path, FormattableString.Invariant($"has {count} elements; at most {InputLimits.MaxListItems}"));
        }
    }

    private static string TooLong(int length) =>
        FormattableString.Invariant($"is {length} characters; at most {InputLimits.MaxShortText}");
}
