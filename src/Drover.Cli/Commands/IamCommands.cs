using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Drover.Client.Auth;
using Drover.Client.Iam;
using Drover.Core.Iam;
using Spectre.Console;

namespace Drover.Cli.Commands;

/// <summary>
/// <c>drover iam user|group|grant|revoke|permissions</c>: users, service accounts, groups and permissions through
/// the master's DC/OS IAM API (<c>/acs/api/v1</c>). <c>--json</c> prints DC/OS' JSON.
/// </summary>
internal static class IamCommands
{
    private static readonly string[] ActionNames = ["create", "read", "update", "delete", "full"];

    private static readonly JsonSerializerOptions Indented = new(IamJsonContext.Default.Options) { WriteIndented = true };

    public static Command Create()
    {
        var iam = new Command("iam", "Users, service accounts, groups and permissions (DC/OS IAM)");
        iam.Options.Add(CliContext.Json);
        iam.Subcommands.Add(Users());
        iam.Subcommands.Add(Groups());
        iam.Subcommands.Add(GrantOrRevoke(grant: true));
        iam.Subcommands.Add(GrantOrRevoke(grant: false));
        iam.Subcommands.Add(Permissions());
        return iam;
    }

    // ------------------------------------------------------------------ users

    private static Command Users()
    {
        var user = new Command("user", "Users (password) and service accounts (public key)");

        var uid = new Argument<string>("uid") { Description = "The user's id: letters, digits, '.', '_', '@', '-'" };
        var passwordFile = new Option<string?>("--password-file") { Description = "Read the password from this file's first line (- for stdin); without it (and without --public-key-file) it is asked for" };
        var keyFile = new Option<string?>("--public-key-file") { Description = "Create a service account that logs in with the private key of this RSA public key (PEM)" };
        var description = new Option<string?>("--description") { Description = "A description, e.g. the person's name" };
        var add = new Command("add", "Create a user, or a service account with --public-key-file") { uid, passwordFile, keyFile, description };
        add.SetAction(async (pr, ct) =>
        {
            var id = pr.GetValue(uid)!;
            string? password = null, key = null;
            if (pr.GetValue(keyFile) is { } path)
            {
                if (pr.GetValue(passwordFile) is not null)
                {
                    throw new CliException("give either --password-file (a user) or --public-key-file (a service account), not both", 2);
                }

                key = await LoginCommands.ReadFileAsync(path, "--public-key-file", ct);
            }
            else
            {
                password = await Secrets.ReadPasswordAsync(pr.GetValue(passwordFile), "--password-file", confirm: true, ct);
            }

            using var client = CliContext.Iam(pr);
            await client.CreateUserAsync(id, password, key, pr.GetValue(description), ct);
            var created = await client.FindUserAsync(id, ct);
            return Done(pr, created!, IamJsonContext.Default.IamUserView, $"Created {(key is null ? "user" : "service account")} {id}.");
        });
        user.Subcommands.Add(add);

        var ls = new Command("ls", "List users and service accounts");
        ls.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Iam(pr);
            var all = (await client.ListUsersAsync(serviceAccounts: false, ct)).AddRange(await client.ListUsersAsync(serviceAccounts: true, ct));
            if (pr.GetValue(CliContext.Json))
            {
                Print(new IamArray<IamUserView>(all), IamJsonContext.Default.IamArrayIamUserView);
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("UID", "TYPE", "DESCRIPTION");
            foreach (var u in all.OrderBy(u => u.Uid, StringComparer.Ordinal))
            {
                table.AddRow(Markup.Escape(u.Uid), u.IsService ? "service" : "user", Markup.Escape(u.Description.Length == 0 ? "-" : u.Description));
            }

            AnsiConsole.Write(table);
            return 0;
        });
        user.Subcommands.Add(ls);

        var rmUid = new Argument<string>("uid") { Description = "The user or service account to delete (its memberships and grants go with it)" };
        var rm = new Command("rm", "Delete a user or service account; its tokens stop working") { rmUid };
        rm.SetAction(async (pr, ct) =>
        {
            var id = pr.GetValue(rmUid)!;
            using var client = CliContext.Iam(pr);
            await client.DeleteUserAsync(id, ct);
            return Done(pr, new UserRef(id, "deleted"), IamCliJsonContext.Default.UserRef, $"Deleted {id}.");
        });
        user.Subcommands.Add(rm);

        var pwUid = new Argument<string>("uid") { Description = "The user whose password to set" };
        var pwFile = new Option<string?>("--password-file") { Description = "Read the new password from this file's first line (- for stdin); without it it is asked for twice" };
        var passwd = new Command("passwd", "Set a user's password; tokens issued before stop working") { pwUid, pwFile };
        passwd.SetAction(async (pr, ct) =>
        {
            var id = pr.GetValue(pwUid)!;
            var password = await Secrets.ReadPasswordAsync(pr.GetValue(pwFile), "--password-file", confirm: true, ct);
            using var client = CliContext.Iam(pr);
            await client.UpdateUserAsync(id, password: password, ct: ct);
            var master = CliContext.MasterUrl(pr);
            var own = CliContext.Token(master) is { } token && ServiceLogin.Describe(token).Uid == id;
            return Done(pr, new UserRef(id, "password changed"), IamCliJsonContext.Default.UserRef,
                own ? $"Changed the password of {id}; your token has ended: run `drover login` again." : $"Changed the password of {id}.");
        });
        user.Subcommands.Add(passwd);
        return user;
    }

    // ------------------------------------------------------------------ groups

    private static Command Groups()
    {
        var group = new Command("group", "Groups: their members receive the group's permissions");

        var gid = new Argument<string>("gid") { Description = "The group's id, e.g. team-a" };
        var description = new Option<string?>("--description") { Description = "A description" };
        var add = new Command("add", "Create a group") { gid, description };
        add.SetAction(async (pr, ct) =>
        {
            var id = pr.GetValue(gid)!;
            using var client = CliContext.Iam(pr);
            await client.CreateGroupAsync(id, pr.GetValue(description), ct);
            return Done(pr, (await client.FindGroupAsync(id, ct))!, IamJsonContext.Default.IamGroupView, $"Created group {id}.");
        });
        group.Subcommands.Add(add);

        var ls = new Command("ls", "List groups and their members");
        ls.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Iam(pr);
            var groups = await client.ListGroupsAsync(ct);
            if (pr.GetValue(CliContext.Json))
            {
                Print(new IamArray<IamGroupView>(groups), IamJsonContext.Default.IamArrayIamGroupView);
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("GID", "DESCRIPTION", "MEMBERS");
            foreach (var g in groups)
            {
                var members = await client.GroupUsersAsync(g.Gid, ct);
                table.AddRow(Markup.Escape(g.Gid), Markup.Escape(g.Description.Length == 0 ? "-" : g.Description),
                    Markup.Escape(members.IsEmpty ? "-" : string.Join(", ", members.Select(m => m.User.Uid))));
            }

            AnsiConsole.Write(table);
            return 0;
        });
        group.Subcommands.Add(ls);

        var rmGid = new Argument<string>("gid") { Description = "The group to delete (its members keep their own permissions)" };
        var rm = new Command("rm", "Delete a group") { rmGid };
        rm.SetAction(async (pr, ct) =>
        {
            var id = pr.GetValue(rmGid)!;
            using var client = CliContext.Iam(pr);
            await client.DeleteGroupAsync(id, ct);
            return Done(pr, new UserRef(id, "deleted"), IamCliJsonContext.Default.UserRef, $"Deleted group {id}.");
        });
        group.Subcommands.Add(rm);

        var member = new Command("member", "Add users to a group or remove them");
        foreach (var adding in new[] { true, false })
        {
            var memberGid = new Argument<string>("gid") { Description = "The group" };
            var memberUid = new Argument<string>("uid") { Description = "The user or service account" };
            var cmd = new Command(adding ? "add" : "rm", adding ? "Add a user to a group" : "Remove a user from a group") { memberGid, memberUid };
            cmd.SetAction(async (pr, ct) =>
            {
                var (g, u) = (pr.GetValue(memberGid)!, pr.GetValue(memberUid)!);
                using var client = CliContext.Iam(pr);
                if (adding)
                {
                    await client.AddMemberAsync(g, u, ct);
                }
                else
                {
                    await client.RemoveMemberAsync(g, u, ct);
                }

                return Done(pr, new Membership(g, u, adding), IamCliJsonContext.Default.Membership, adding ? $"Added {u} to group {g}." : $"Removed {u} from group {g}.");
            });
            member.Subcommands.Add(cmd);
        }

        group.Subcommands.Add(member);
        return group;
    }

    // ------------------------------------------------------------------ permissions

    private static Command GrantOrRevoke(bool grant)
    {
        var principal = new Argument<string>("user-or-group") { Description = "A uid or gid; write user:NAME or group:NAME when both exist" };
        var rid = new Argument<string>("rid") { Description = "A resource id (DC/OS permission string), e.g. dcos:service:marathon:marathon:services:/team-a" };
        var action = new Argument<string>("action") { Description = "create, read, update, delete or full" };
        var cmd = new Command(grant ? "grant" : "revoke", grant
            ? "Grant a user or group an action on a resource (the ACL is created when missing)"
            : "Take an action on a resource away from a user or group") { principal, rid, action };
        cmd.SetAction(async (pr, ct) =>
        {
            var (name, resource, what) = (pr.GetValue(principal)!, pr.GetValue(rid)!, pr.GetValue(action)!);
            if (!ActionNames.Contains(what, StringComparer.Ordinal))
            {
                throw new CliException($"action: '{what}' is not one of {string.Join(", ", ActionNames)}", 2);
            }

            using var client = CliContext.Iam(pr);
            var (id, isGroup) = await ResolveAsync(client, name, ct);
            if (grant)
            {
                await client.EnsureAclAsync(resource, ct: ct); // DC/OS' pattern: create the ACL, a 409 is fine, then grant
                await client.GrantAsync(resource, id, isGroup, what, ct);
            }
            else
            {
                await client.RevokeAsync(resource, id, isGroup, what, ct);
            }

            var who = (isGroup ? "group " : "user ") + id;
            var sentence = grant ? $"Granted {what} on {resource} to {who}." : $"Revoked {what} on {resource} from {who}.";
            if (pr.GetValue(CliContext.Json))
            {
                Print(await client.AclPermissionsAsync(resource, ct), IamJsonContext.Default.IamAclPermissions);
                return 0;
            }

            await Console.Out.WriteLineAsync(sentence);
            return 0;
        });
        return cmd;
    }

    private static Command Permissions()
    {
        var uid = new Argument<string>("uid") { Description = "The user or service account" };
        var cmd = new Command("permissions", "What a user may do: its own grants and its groups'") { uid };
        cmd.SetAction(async (pr, ct) =>
        {
            using var client = CliContext.Iam(pr);
            var permissions = await client.UserPermissionsAsync(pr.GetValue(uid)!, ct);
            if (pr.GetValue(CliContext.Json))
            {
                Print(permissions, IamJsonContext.Default.IamUserPermissions);
                return 0;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("RID", "ACTIONS", "VIA");
            foreach (var p in permissions.Direct)
            {
                table.AddRow(Markup.Escape(p.Rid), string.Join(",", p.Actions.Select(a => a.Name)), "direct");
            }

            foreach (var p in permissions.Groups)
            {
                table.AddRow(Markup.Escape(p.Rid), string.Join(",", p.Actions.Select(a => a.Name)), Markup.Escape("group " + p.Gid));
            }

            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    /// <summary><c>user:NAME</c>, <c>group:NAME</c>, or a bare name that is exactly one of a user and a group.</summary>
    private static async Task<(string Id, bool IsGroup)> ResolveAsync(IamClient client, string name, CancellationToken ct)
    {
        if (name.StartsWith("user:", StringComparison.Ordinal))
        {
            return (name["user:".Length..], false);
        }

        if (name.StartsWith("group:", StringComparison.Ordinal))
        {
            return (name["group:".Length..], true);
        }

        var user = await client.FindUserAsync(name, ct);
        var group = await client.FindGroupAsync(name, ct);
        return (user, group) switch
        {
            (not null, not null) => throw new CliException($"'{name}' is both a user and a group: write user:{name} or group:{name}", 2),
            (not null, null) => (name, false),
            (null, not null) => (name, true),
            _ => throw new CliException($"no user or group '{name}' (see `drover iam user ls` and `drover iam group ls`)", 2),
        };
    }

    private static int Done<T>(ParseResult pr, T json, JsonTypeInfo<T> type, string sentence)
    {
        if (pr.GetValue(CliContext.Json))
        {
            Print(json, type);
        }
        else
        {
            Console.Out.WriteLine(sentence);
        }

        return 0;
    }

    private static void Print<T>(T value, JsonTypeInfo<T> type) =>
        Console.Out.WriteLine(JsonSerializer.Serialize(value, type.Options.WriteIndented ? type : (JsonTypeInfo<T>)Indented.GetTypeInfo(typeof(T))));
}

/// <summary>What <c>--json</c> prints for a change that answers with no body: the id and what happened.</summary>
internal sealed record UserRef(string Id, string Result);

internal sealed record Membership(string Gid, string Uid, bool Member);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[System.Text.Json.Serialization.JsonSerializable(typeof(UserRef))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Membership))]
internal sealed partial class IamCliJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
