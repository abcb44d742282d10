using System.CommandLine;
using Drover.Cli.Commands;
using Drover.Client;

namespace Drover.Cli;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("Drover: one pool of machines, work placed automatically.")
        {
            ServerCommands.Dev(),
            ServerCommands.Master(),
            ServerCommands.Agent(),
            RunCommand.Create(),
            TaskCommands.Create(),
            NodeCommands.Create(),
            AppCommands.Create(),
            DeploymentCommands.Create(),
            GroupCommands.Create(),
            LoginCommands.Login(),
            LoginCommands.Logout(),
            IamCommands.Create(),
            SecretCommands.Create(),
            SecurityCommands.Ca(),
        };
        root.Options.Add(CliContext.Master); // global: `drover --master URL node ls` and `drover node ls --master URL` both work
        root.Options.Add(CliContext.CaCert);
        foreach (var client in root.Subcommands.Where(c => c.Name is "run" or "task" or "node" or "secret" or "ca"))
        {
            client.Options.Add(CliContext.Json);
        }

        if (Console.IsOutputRedirected)
        {
            // Piped output: no colour codes, and no wrapping to an imaginary 80-column terminal.
            Spectre.Console.AnsiConsole.Profile.Capabilities.Ansi = false;
            Spectre.Console.AnsiConsole.Profile.Width = 240;
        }

        try
        {
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CliException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Message}");
            return e.ExitCode;
        }
        catch (Hosting.HostStartException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Message}");
            return 1;
        }
        catch (Drover.Client.Auth.MasterLoginRequiredException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Message}.");
            return 2;
        }
        catch (Drover.Client.Auth.MasterRedirectRefusedException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Message}.");
            return 2;
        }
        catch (Drover.Client.Iam.IamApiException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Description}");
            return e.StatusCode is >= 400 and < 500 ? 2 : 1;
        }
        catch (DroverApiException e)
        {
            await Console.Error.WriteLineAsync($"drover: {e.Error.Message}");
            foreach (var d in e.Error.Details)
            {
                await Console.Error.WriteLineAsync($"  {d.Field}: {d.Reason}");
            }

            return e.StatusCode is >= 400 and < 500 ? 2 : 1;
        }
        catch (HttpRequestException e)
        {
            if (await Security.CliTrust.DescribeRejectionAsync(e) is { } untrusted)
            {
                await Console.Error.WriteLineAsync($"drover: {untrusted}");
                return 1;
            }

            var hint = Security.CliTrust.IsTlsFailure(e)
                ? "the TLS handshake failed; is it an http:// master (drover dev), or does its certificate not name this host?"
                : "is `./drover dev` running? set --master or DROVER_MASTER";
            await Console.Error.WriteLineAsync($"drover: cannot reach the master: {e.Message} ({hint})");
            return 1;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
    }
}
