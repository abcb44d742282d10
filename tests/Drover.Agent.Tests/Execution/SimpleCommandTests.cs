using Drover.Agent.Execution;

namespace Drover.Agent.Tests.Execution;

public sealed class SimpleCommandTests
{
    [Theory]
    [InlineData("sleep 600", new[] { "sleep", "600" })]
    [InlineData("  python3 -m http.server 8080 ", new[] { "python3", "-m", "http.server", "8080" })]
    [InlineData("./bin/server\t--port=80 --hosts=a,b:1 user@host 50% a^b +x", new[] { "./bin/server", "--port=80", "--hosts=a,b:1", "user@host", "50%", "a^b", "+x" })]
    [InlineData("/usr/bin/env", new[] { "/usr/bin/env" })]
    [InlineData("sleepy if then fi", new[] { "sleepy", "if", "then", "fi" })]
    public void TrySplit_PlainWords_ReturnsTheArgvTheShellWouldExec(string command, string[] argv) =>
        Assert.Equal(argv, SimpleCommand.TrySplit(command));

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("sleep $PORT0")]
    [InlineData("sleep ${X}")]
    [InlineData("sleep 1; sleep 2")]
    [InlineData("sleep 1 && true")]
    [InlineData("sleep 1 | cat")]
    [InlineData("sleep 1 &")]
    [InlineData("sleep 1 > out")]
    [InlineData("cat < in")]
    [InlineData("sleep 1 # comment")]
    [InlineData("ls *.txt")]
    [InlineData("ls file?")]
    [InlineData("ls [ab]")]
    [InlineData("ls ~/x")]
    [InlineData("\"sleep\" 1")]
    [InlineData("sleep '1'")]
    [InlineData("sleep \\1")]
    [InlineData("echo `date`")]
    [InlineData("(sleep 1)")]
    [InlineData("{ sleep 1; }")]
    [InlineData("! sleep 1")]
    [InlineData("sleep 1\nsleep 2")]
    [InlineData("FOO=1 sleep 1")]
    [InlineData("échoué 1")]
    public void TrySplit_AnythingTheShellInterprets_ReturnsNull(string command) =>
        Assert.Null(SimpleCommand.TrySplit(command));

    [Theory]
    [InlineData("echo hello")]
    [InlineData("exec sleep 1")]
    [InlineData("exit 3")]
    [InlineData("cd /tmp")]
    [InlineData("true")]
    [InlineData("kill 1")]
    [InlineData("test -f x")]
    [InlineData(". ./env")]
    [InlineData(": nothing")]
    [InlineData("source ./env")]
    [InlineData("while true")]
    [InlineData("time sleep 1")]
    public void TrySplit_ShellBuiltinOrKeywordFirst_ReturnsNull(string command) =>
        Assert.Null(SimpleCommand.TrySplit(command));
}
