using Drover.Core.Marathon;

namespace Drover.Core.Tests.Marathon;

public class AppIdTests
{
    [Theory]
    [InlineData("/prod/web", true, new[] { "prod", "web" })]
    [InlineData("web", false, new[] { "web" })]
    [InlineData("//prod//web/", true, new[] { "prod", "web" })]
    [InlineData("/", true, new string[0])]
    [InlineData("../db", false, new[] { "..", "db" })]
    public void Parse_TrimsSlashesAndSplits(string text, bool absolute, string[] segments)
    {
        var id = AppId.Parse(text);

        Assert.Equal(absolute, id.IsAbsolute);
        Assert.Equal(segments, id.Segments.ToArray());
    }

    [Theory]
    [InlineData("/prod/web", "/prod/web")]
    [InlineData("web", "web")]
    [InlineData("/", "/")]
    [InlineData("a/b/", "a/b")]
    public void ToString_RoundTripsNormalisedForm(string text, string expected) =>
        Assert.Equal(expected, AppId.Parse(text).ToString());

    [Theory]
    [InlineData("web", "/prod", "/prod/web")]
    [InlineData("./web", "/prod", "/prod/web")]
    [InlineData("../web", "/prod/api", "/prod/web")]
    [InlineData("../../../web", "/prod", "/web")]
    [InlineData("/abs/web", "/prod", "/abs/web")]
    [InlineData("a/../b", "/", "/b")]
    [InlineData("..", "/", "/")]
    public void Canonical_ResolvesRelativeAndDots(string text, string baseId, string expected) =>
        Assert.Equal(expected, AppId.Parse(text).Canonical(AppId.Parse(baseId)).ToString());

    [Fact]
    public void Canonical_NoBase_ResolvesAgainstRoot() =>
        Assert.Equal("/a/b", AppId.Parse("a/b").Canonical().ToString());

    [Fact]
    public void Canonical_RelativeBase_Throws() =>
        Assert.Throws<ArgumentException>(() => AppId.Parse("a").Canonical(AppId.Parse("rel")));

    [Fact]
    public void Parent_OfNestedId_IsEnclosingGroup()
    {
        var id = AppId.Parse("/prod/web/api");

        Assert.Equal("/prod/web", id.Parent.ToString());
        Assert.Equal("api", id.Name);
        Assert.Equal(AppId.Root, AppId.Parse("/web").Parent);
        Assert.Equal(AppId.Root, AppId.Root.Parent);
    }

    [Fact]
    public void IsChildOf_DirectChildOnly()
    {
        var group = AppId.Parse("/prod");

        Assert.True(AppId.Parse("/prod/web").IsChildOf(group));
        Assert.False(AppId.Parse("/prod/a/web").IsChildOf(group));
        Assert.False(AppId.Parse("/other/web").IsChildOf(group));
        Assert.False(AppId.Root.IsChildOf(AppId.Root));
    }

    [Fact]
    public void Equals_SameSegments_EqualAndSameHash()
    {
        var a = AppId.Parse("/a/b");
        var b = AppId.Parse("//a/b/");

        Assert.Equal(a, b);
        Assert.True(a == b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, AppId.Parse("a/b"));
        Assert.Equal(AppId.Root, default(AppId).Canonical());
    }

    [Fact]
    public void Append_AddsSegment() =>
        Assert.Equal("/prod/web", AppId.Root.Append("prod").Append("web").ToString());

    [Theory]
    [InlineData("/prod/web")]
    [InlineData("web")]
    [InlineData("/a.b/c-d/e1")]
    [InlineData("../web")]
    [InlineData("/")]
    [InlineData("my-app.v2")]
    public void Validate_ValidIds_Null(string text) => Assert.Null(AppId.Validate(text));

    [Theory]
    [InlineData("/Prod")]
    [InlineData("/prod_web")]
    [InlineData("/-web")]
    [InlineData("/web-")]
    [InlineData("/we b")]
    public void Validate_BadCharacters_ErrorPattern(string text) =>
        Assert.Equal("error.pattern", AppId.Validate(text));

    [Fact]
    public void Validate_SegmentPassesRamlButNotSegmentRule_MarathonMessage() =>
        Assert.Equal($"must fully match regular expression '{AppId.SegmentPattern}'", AppId.Validate("/a-.b"));

    [Theory]
    [InlineData("/prod/tasks")]
    [InlineData("versions")]
    [InlineData("/a/restart")]
    public void Validate_ReservedLastSegment_Error(string text) =>
        Assert.Equal("must not end with any of the following reserved keywords: restart, tasks, versions", AppId.Validate(text));

    [Fact]
    public void Validate_Empty_MinLength() => Assert.Equal("error.minLength", AppId.Validate(""));

    [Fact]
    public void TryParse_Valid_ReturnsId()
    {
        Assert.True(AppId.TryParse("/prod/web", out var id, out var error));
        Assert.Null(error);
        Assert.Equal("/prod/web", id.ToString());

        Assert.False(AppId.TryParse("/Prod", out _, out error));
        Assert.Equal("error.pattern", error);
    }
}
