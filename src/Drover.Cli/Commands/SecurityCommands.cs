using System.CommandLine;
using System.Globalization;
using Drover.Client.Auth;
using Drover.Core.Protocol;
using Drover.Core.Security.Pki;
using Spectre.Console;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover node token create|ls|revoke</c> (join tokens for agents) and <c>drover ca show|pin</c> (the CA a
/// master tells clients to trust). See docs/security.md.
/// </summary>
internal static class SecurityCommands
{
    /// <summary><c>drover node token …</c>.</summary>
    public static Command NodeToken()
    {
        var token = new Command("token", "Join tokens: what a new agent needs once to get its certificate (drover agent --join-token)");
        var ttl = new Option<string>("--ttl") { Description = "How long the token may be used, e.g. 10m, 1h (default 1h, at most 24h)" };
        var description = new Option<string?>("--description") { Description = "A note kept with the token (shown by ls)" };
        var create = new Command("create", "Create a join token; it is printed once and the master keeps only a hash of its secret") { ttl, description };
        create.SetAction(async (pr, ct) =>
        {
            var span = pr.GetValue(ttl) is { } text ? MarathonCli.ParseDuration(text, ttl.Name) : (TimeSpan?)null;
            using var client = CliContext.Client(pr);
            var created = await client.CreateJoinTokenAsync(span, pr.GetValue(description), ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(created);
                return 0;
            }

            Console.Out.WriteLine(created.Token);
            await Console.Error.WriteLineAsync($"join token {created.Id}, valid until {created.ExpiresAt.ToString("u", CultureInfo.InvariantCulture)}: "
                + $"drover agent --master {client.Master.GetLeftPart(UriPartial.Authority)} --join-token <token> --work-dir …");
            return 0;
        });

        var list = new Command("ls", "List the join tokens that have not expired (ids only; secrets are never shown again)");
        list.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            var tokens = await client.ListJoinTokensAsync(ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(new JoinTokenList { Tokens = tokens });
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "CREATED", "EXPIRES", "DESCRIPTION");
            foreach (var t in tokens)
            {
                table.AddRow(Markup.Escape(t.Id), t.CreatedAt.ToString("u", CultureInfo.InvariantCulture), t.ExpiresAt.ToString("u", CultureInfo.InvariantCulture), Markup.Escape(t.Description ?? "-"));
            }

            AnsiConsole.Write(table);
            return 0;
        });

        var id = new Argument<string>("id") { Description = "Join token id (the second part of the token, or from ls)" };
        var revoke = new Command("revoke", "Revoke a join token now (agents that joined with it keep their certificates)") { id };
        revoke.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Client(pr);
            await client.RevokeJoinTokenAsync(pr.GetValue(id)!, ct);
            Console.Out.WriteLine($"join token {pr.GetValue(id)} revoked");
            return 0;
        });

        token.Subcommands.Add(create);
        token.Subcommands.Add(list);
        token.Subcommands.Add(revoke);
        return token;
    }

    /// <summary><c>drover ca …</c>.</summary>
    public static Command Ca()
    {
        var ca = new Command("ca", "The CA a master's HTTPS certificate chains to: show it, pin it for this user");
        var show = new Command("show", "Fetch the master's CA (without trusting it) and print its SHA-256 fingerprint and PEM");
        show.SetAction(async (pr, ct) =>
        {
            var master = CliContext.MasterUrl(pr);
            var (_, info) = await Client.MasterTls.FetchCaAsync(master, ct);
            if (pr.GetValue(CliContext.Json))
            {
                CliContext.PrintJson(info);
                return 0;
            }

            Console.Out.WriteLine($"SHA-256 fingerprint {info.Fingerprint}");
            Console.Out.WriteLine($"public key hash     {info.PublicKeyHash}");
            Console.Out.Write(info.Certificate);
            return 0;
        });

        var fingerprint = new Option<string?>("--fingerprint") { Description = "The SHA-256 fingerprint you expect (from the master's start-up output or its operator); pins only if it matches" };
        var pin = new Command("pin", "Trust the master's CA for that master from now on (kept in ~/.config/drover/masters/, 0600), after checking its fingerprint") { fingerprint };
        pin.SetAction(async (pr, ct) =>
        {
            var master = CliContext.MasterUrl(pr);
            if (master.Scheme != Uri.UriSchemeHttps)
            {
                throw new CliException($"--master: {master} is plain HTTP; there is no CA to pin", 2);
            }

            var expected = pr.GetValue(fingerprint);
            var store = MasterTrustStore.ForUser();
            var (info, path) = await store.FetchAndPinAsync(master, ca =>
            {
                Console.Out.WriteLine($"The master at {master.GetLeftPart(UriPartial.Authority)} presents a CA with SHA-256 fingerprint");
                Console.Out.WriteLine($"  {ca.Fingerprint}");
                if (expected is not null)
                {
                    var roots = PemCertificates.LoadAll(ca.Certificate);
                    return roots.Succeeded && PemCertificates.FingerprintMatches(roots.Value![0], expected);
                }

                if (Console.IsInputRedirected)
                {
                    return false;
                }

                Console.Out.Write("Trust it for this master? Compare it with the one the master printed at start-up. [y/N] ");
                return Console.In.ReadLine()?.Trim().ToLowerInvariant() is "y" or "yes";
            }, ct);
            if (path is null)
            {
                throw new CliException(expected is not null
                    ? $"the master's CA fingerprint is {info.Fingerprint}, not {expected}: not pinned"
                    : "not pinned (give --fingerprint to pin without a question)", 1);
            }

            Console.Out.WriteLine($"pinned in {path}");
            return 0;
        });

        ca.Subcommands.Add(show);
        ca.Subcommands.Add(pin);
        return ca;
    }
}
