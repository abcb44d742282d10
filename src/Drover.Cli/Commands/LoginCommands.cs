using System.CommandLine;
using System.Globalization;
using System.Text;
using Drover.Client.Auth;
using Drover.Client.Iam;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover login</c> and <c>drover logout</c>: a login token from the master's DC/OS login
/// (<c>POST /acs/api/v1/auth/login</c>), kept per master by <see cref="TokenFiles"/> and sent by every command.
/// </summary>
internal static class LoginCommands
{
    public static Command Login()
    {
        var username = new Option<string?>("--username", "-u") { Description = "The uid to log in as (asked for when not given)" };
        var passwordFile = new Option<string?>("--password-file") { Description = "Read the password from this file (its first line), or - for stdin; without it the password is asked for without echo" };
        var keyFile = new Option<string?>("--service-account-key")
        {
            Description = "Log in as a service account: sign the login with the RSA private key in this PEM file (the account holds its public key)",
        };
        var cmd = new Command("login", "Log in to the master and keep the token for the commands that follow") { username, passwordFile, keyFile };
        cmd.SetAction(async (pr, ct) =>
        {
            var master = CliContext.MasterUrl(pr);
            var keyPath = pr.GetValue(keyFile);
            if (keyPath is not null && pr.GetValue(passwordFile) is not null)
            {
                throw new CliException("give either --password-file (a user) or --service-account-key (a service account), not both", 2);
            }

            var uid = pr.GetValue(username) ?? Prompt("Username: ");
            if (string.IsNullOrWhiteSpace(uid))
            {
                throw new CliException("--username: a uid is needed", 2);
            }

            // No token and no 401 conversion: a refused login is answered here, in its own words.
            using var iam = new IamClient(master, MasterHttp.Create(master, token: null, trust: CliContext.Trust(pr, master), namedMasters: CliContext.NamedMasters(pr)));
            string token;
            try
            {
                if (keyPath is not null)
                {
                    string signed;
                    try
                    {
                        signed = ServiceLogin.CreateToken(uid, await ReadFileAsync(keyPath, "--service-account-key", ct), DateTimeOffset.UtcNow);
                    }
                    catch (ArgumentException e)
                    {
                        throw new CliException($"--service-account-key {keyPath}: {e.Message}", 2);
                    }

                    token = await iam.LoginWithServiceTokenAsync(uid, signed, ct);
                }
                else
                {
                    var password = await Secrets.ReadPasswordAsync(pr.GetValue(passwordFile), "--password-file", confirm: false, ct);
                    token = await iam.LoginAsync(uid, password, ct);
                }
            }
            catch (IamApiException e) when (e.StatusCode == 401)
            {
                throw new CliException($"login to {Authority(master)} as {uid} refused: {e.Description}", 2);
            }

            var path = await TokenFiles.Default().WriteAsync(master, token, ct);
            var (_, expires) = ServiceLogin.Describe(token);
            var until = expires is { } e2 ? $" until {e2.ToString("u", CultureInfo.InvariantCulture)}" : "";
            await Console.Out.WriteLineAsync($"Logged in to {Authority(master)} as {uid}{until} (token in {path}).");
            return 0;
        });
        return cmd;
    }

    public static Command Logout()
    {
        var cmd = new Command("logout", "Forget the login token kept for the master");
        cmd.SetAction(pr =>
        {
            var master = CliContext.MasterUrl(pr);
            Console.Out.WriteLine(TokenFiles.Default().Delete(master)
                ? $"Logged out of {Authority(master)}."
                : $"Not logged in to {Authority(master)}.");
            if (Environment.GetEnvironmentVariable("DROVER_TOKEN") is { Length: > 0 })
            {
                Console.Error.WriteLine("drover: DROVER_TOKEN is set: commands still send it.");
            }

            return 0;
        });
        return cmd;
    }

    public static string Authority(Uri master) => master.GetLeftPart(UriPartial.Authority);

    private static string Prompt(string text)
    {
        if (Console.IsInputRedirected)
        {
            throw new CliException("no terminal to ask on: give --username", 2);
        }

        Console.Error.Write(text);
        return Console.ReadLine()?.Trim() ?? "";
    }

    internal static async Task<string> ReadFileAsync(string path, string option, CancellationToken ct)
    {
        try
        {
            return path == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{option} {path}: {e.Message}", 2);
        }
    }
}

/// <summary>Passwords from a file or the terminal, never echoed and never from the command line (it shows in <c>ps</c>).</summary>
internal static class Secrets
{
    /// <summary>
    /// The first line of <paramref name="file"/> (<c>-</c>: stdin), or, without a file, asked for on the terminal
    /// without echo (twice with <paramref name="confirm"/>).
    /// </summary>
    public static async Task<string> ReadPasswordAsync(string? file, string option, bool confirm, CancellationToken ct)
    {
        if (file is not null)
        {
            var text = await LoginCommands.ReadFileAsync(file, option, ct);
            var line = text.Split('\n', 2)[0].TrimEnd('\r');
            return line.Length > 0 ? line : throw new CliException($"{option} {file}: the first line is empty", 2);
        }

        if (Console.IsInputRedirected)
        {
            throw new CliException($"no terminal to ask for the password on: give {option}", 2);
        }

        var password = ReadHidden("Password: ");
        if (confirm && ReadHidden("Password (again): ") != password)
        {
            throw new CliException("the two passwords differ", 2);
        }

        return password;
    }

    private static string ReadHidden(string prompt)
    {
        Console.Error.Write(prompt);
        var text = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                if (text.Length > 0)
                {
                    text.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                text.Append(key.KeyChar);
            }
        }

        Console.Error.WriteLine();
        return text.ToString();
    }
}
