using Drover.Core.Secrets;
using Drover.Core.Security;

namespace Drover.Core.Tests.Secrets;

public sealed class SecretPathsTests
{
    [Theory]
    [InlineData("team-a/db", "team-a/db")]
    [InlineData("/team-a/db", "team-a/db")]
    [InlineData("a.b_c-D9", "a.b_c-D9")]
    public void Canonical_ValidPath_WithoutLeadingSlash(string path, string expected) =>
        Assert.Equal(expected, SecretPaths.Canonical(path, out _));

    [Theory]
    [InlineData("", "must not be empty")]
    [InlineData("/", "not the root")]
    [InlineData("a/", "empty segment")]
    [InlineData("a//b", "empty segment")]
    [InlineData("a/../b", "'..' segment")]
    [InlineData("./a", "'.' segment")]
    [InlineData("a b", "may contain only")]
    [InlineData("a/%2e%2e", "may contain only")]
    [InlineData("a\0b", "may contain only")]
    public void Canonical_InvalidPath_NullWithTheReason(string path, string reason)
    {
        Assert.Null(SecretPaths.Canonical(path, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Canonical_TooLongOrTooDeep_Refused()
    {
        Assert.Null(SecretPaths.Canonical(new string('a', SecretPaths.MaxLength + 1), out _));
        Assert.Null(SecretPaths.Canonical(string.Join('/', Enumerable.Repeat("a", SecretPaths.MaxSegments + 1)), out _));
        Assert.NotNull(SecretPaths.Canonical(string.Join('/', Enumerable.Repeat("a", SecretPaths.MaxSegments)), out _));
    }

    [Theory]
    [InlineData("team-a/db", "team-a", true)]
    [InlineData("team-a", "team-a", true)]
    [InlineData("team-ab/db", "team-a", false)]
    [InlineData("anything", "", true)]
    public void IsUnder_PrefixBySegments(string path, string prefix, bool under) =>
        Assert.Equal(under, SecretPaths.IsUnder(path, prefix));

    [Fact]
    public void Rids_GrantOnATeamsSecrets_CoversItsSecretsOnly()
    {
        Assert.Equal("dcos:secrets:default:/team-a/db", Rids.Secret("team-a/db"));
        Assert.True(Rids.Covers(Rids.Secret("team-a"), Rids.Secret("team-a/db")));
        Assert.False(Rids.Covers(Rids.Secret("team-a"), Rids.Secret("team-ab/db")));
        Assert.Equal("dcos:secrets:list:default:/team-a", Rids.SecretList("team-a/"));
        Assert.False(Rids.Covers(Rids.SecretList("team-a"), Rids.SecretList("")));
    }
}
