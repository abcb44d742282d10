using System.CommandLine;
using System.Security.Cryptography;
using System.Text;

namespace Drover.Cli.Commands;

/// <summary><c>drover secret put|get|ls|rm</c>: the secret store (<c>/drover/v1/secrets</c>).</summary>
internal static class SecretCommands
{
    public static Command Create()
    {
        var secret = new Command("secret", "Store secrets and read them back (values are encrypted at rest and reach only the tasks that use them)");
        secret.Subcommands.Add(Put());
        secret.Subcommands.Add(Get());
        secret.Subcommands.Add(List());
        secret.Subcommands.Add(Remove());
        return secret;
    }

    private static Argument<string> PathArgument() => new("path") { Description = "The secret's path: segments of letters, digits, '.', '_', '-' separated by '/' (team-a/db/password)" };

    private static Command Put()
    {
        var path = PathArgument();
        var valueFile = new Option<string?>("--value-file") { Description = "Read the value from this file (default: standard input, to its end; not the command line, where other users' ps would see it)" };
        var description = new Option<string?>("--description") { Description = "What the secret is for (shown by get, never the value)" };
        var cmd = new Command("put", "Create or replace a secret") { path, valueFile, description };
        cmd.SetAction(async (pr, ct) =>
        {
            byte[] value;
            if (pr.GetValue(valueFile) is { } file)
            {
                value = await File.ReadAllBytesAsync(file, ct);
            }
            else
            {
                if (!Console.IsInputRedirected)
                {
                    await Console.Error.WriteLineAsync("Reading the value from standard input; end it with Ctrl-D.");
                }

                using var buffer = new MemoryStream();
                await Console.OpenStandardInput().CopyToAsync(buffer, ct);
                value = buffer.ToArray();
            }

            try
            {
                using var client = CliContext.Client(pr);
                var stored = await client.PutSecretAsync(pr.GetValue(path)!, value, pr.GetValue(description), ct);
                if (pr.GetValue(CliContext.Json))
                {
                    CliContext.PrintJson(stored);
                }
                else
                {
                    Console.Out.WriteLine($"stored secret {stored.Path} ({value.Length} bytes)");
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(value);
            }

            return 0;
        });
        return cmd;
    }

    private static Command Get()
    {
        var path = PathArgument();
        var cmd = new Command("get", "Print a secret's value (needs read permission on it); --json prints it with its metadata") { path };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var secret = await client.GetSecretAsync(pr.GetValue(path)!, ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(secret);
                return 0;
            }

            // The value exactly as stored: no newline added, bytes as they are.
            var bytes = secret.Data ?? Encoding.UTF8.GetBytes(secret.Value ?? "");
            await using var stdout = Console.OpenStandardOutput();
            await stdout.WriteAsync(bytes, ct);
            return 0;
        });
        return cmd;
    }

    private static Command List()
    {
        var prefix = new Argument<string?>("prefix") { Description = "Only secrets under this path", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("ls", "List the secrets under a path (names only)") { prefix };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var paths = await client.ListSecretsAsync(pr.GetValue(prefix), ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(new Drover.Core.Secrets.SecretList { Secrets = paths });
                return 0;
            }

            foreach (var p in paths)
            {
                Console.Out.WriteLine(p);
            }

            return 0;
        });
        return cmd;
    }

    private static Command Remove()
    {
        var path = PathArgument();
        var cmd = new Command("rm", "Delete a secret (apps that use it fail to launch new instances until it is stored again)") { path };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            await client.DeleteSecretAsync(pr.GetValue(path)!, ct);
            Console.Out.WriteLine($"deleted secret {pr.GetValue(path)}");
            return 0;
        });
        return cmd;
    }
}
