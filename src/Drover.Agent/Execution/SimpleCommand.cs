using System.Collections.Frozen;

namespace Drover.Agent.Execution;

/// <summary>
/// Recognises a shell command that <c>/bin/sh -c</c> would run as one plain program invocation, so the
/// task can run that program directly instead of through an extra shell process.
/// </summary>
/// <remarks>
/// Why: dash (Debian's <c>/bin/sh</c>) does not <c>exec</c> the last command of <c>sh -c</c>, so
/// <c>sh -c "sleep 600"</c> keeps a shell process alive as the program's parent, for the task's whole
/// life: one process start (and a dynamic loader run) per task for nothing. bash does the same
/// shortcut for <c>bash -c</c>. The rule is deliberately narrow: only words made of characters no POSIX
/// shell treats specially (no quoting, expansion, globbing, redirection, separators or comments),
/// separated by blanks, whose first word is neither an assignment nor a shell builtin or keyword (of
/// dash or bash: a builtin such as <c>echo</c> or <c>exit</c> behaves differently from a program of the
/// same name, or from no program at all). For such a command the shell would do nothing but a PATH
/// lookup and an exec of exactly these words, with the same environment and working directory, so
/// the program, its arguments and its exit status are the same; only <c>$$</c>-style facts about the
/// intermediate shell disappear, and such a command has no <c>$</c>. Pure and thread-safe.
/// </remarks>
internal static class SimpleCommand
{
    /// <summary>Builtins and reserved words of dash and bash (either may be <c>/bin/sh</c>).</summary>
    private static readonly FrozenSet<string> ShellWords = new[]
    {
        // POSIX special and regular builtins as dash 0.5.12 has them
        ".", ":", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo", "eval", "exec", "exit",
        "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read",
        "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask",
        "unalias", "unset", "wait",

        // bash's own builtins
        "bind", "builtin", "caller", "compgen", "complete", "compopt", "declare", "dirs", "disown", "enable",
        "help", "history", "let", "logout", "mapfile", "popd", "pushd", "readarray", "shopt", "source",
        "suspend", "typeset",

        // reserved words
        "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select",
        "then", "time", "until", "while",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>
    /// The argv <c>/bin/sh -c <paramref name="command"/></c> would exec, when the command is that simple;
    /// otherwise null (run it through the shell).
    /// </summary>
    public static string[]? TrySplit(string command)
    {
        foreach (var c in command)
        {
            if (!IsPlain(c) && c is not (' ' or '\t'))
            {
                return null;
            }
        }

        var words = command.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0 || words[0].Contains('=', StringComparison.Ordinal) || ShellWords.Contains(words[0]))
        {
            return null;
        }

        return words;
    }

    /// <summary>
    /// Characters with no meaning to a POSIX shell in any position of a word. Not included, among
    /// others: quotes, <c>\ $ ` * ? [ ] { } ~ # ! &amp; | ; &lt; &gt; ( )</c> and newlines. <c>=</c> matters
    /// only in the first word (an assignment), checked separately.
    /// </summary>
    private static bool IsPlain(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '/' or ',' or ':' or '+' or '@' or '%' or '^' or '=';
}
