namespace Drover.Core.Tests;

public class IdsTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("web")]
    [InlineData("web-1")]
    [InlineData("web_1")]
    [InlineData("web.v2")]
    [InlineData("A.B-C_d9")]
    [InlineData("...")]
    [InlineData(".hidden")]
    public void IsValidName_SafeCharacters_IsTrue(string name)
    {
        Assert.True(Ids.IsValidName(name));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("my app")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("a:b")]
    [InlineData("a=b")]
    [InlineData("a\nb")]
    [InlineData("a\0b")]
    [InlineData("caf\u00e9")]
    [InlineData("\u0661")]
    public void IsValidName_UnsafeCharacters_IsFalse(string name)
    {
        Assert.False(Ids.IsValidName(name));
    }

    [Fact]
    public void IsValidName_Length_AllowsUpTo128()
    {
        Assert.True(Ids.IsValidName(new string('a', 128)));
        Assert.False(Ids.IsValidName(new string('a', 129)));
    }

    [Theory]
    [InlineData("web", "web")]
    [InlineData("my app", "my_app")]
    [InlineData("a/b/c", "a_b_c")]
    [InlineData("web.v2", "web_v2")]
    [InlineData("  x  ", "__x__")]
    [InlineData("caf\u00e9", "caf_")]
    [InlineData("a-b_C9", "a-b_C9")]
    [InlineData(null, "task")]
    [InlineData("", "task")]
    public void NewTaskId_Name_IsSanitisedPrefixDotHexSuffix(string? name, string prefix)
    {
        var id = Ids.NewTaskId(name);

        Assert.StartsWith(prefix + ".", id, StringComparison.Ordinal);
        Assert.Matches(@"^[A-Za-z0-9_-]+\.[0-9a-f]{16}$", id);
        Assert.Equal(prefix.Length + 17, id.Length);
        Assert.True(Ids.IsValidName(id));
    }

    [Fact]
    public void NewTaskId_LongName_TruncatesPrefixTo64()
    {
        var id = Ids.NewTaskId(new string('x', 200));

        Assert.Matches(@"^x{64}\.[0-9a-f]{16}$", id);
    }

    [Fact]
    public void NewTaskId_ManyCalls_AreUnique()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => Ids.NewTaskId("web")).ToHashSet();

        Assert.Equal(1000, ids.Count);
    }

    [Fact]
    public void NewAgentId_Always_IsAgentDashHex()
    {
        Assert.Matches(@"^agent-[0-9a-f]{16}$", Ids.NewAgentId());
        Assert.NotEqual(Ids.NewAgentId(), Ids.NewAgentId());
    }

    [Fact]
    public void NewUuid_Always_IsAGuid()
    {
        Assert.True(Guid.TryParse(Ids.NewUuid(), out _));
    }
}
