namespace Drover.Core.Tests;

public class PortRangesTests
{
    private static PortRanges P(string text) =>
        PortRanges.TryParse(text, out var ranges, out var error) ? ranges : throw new FormatException(error);

    [Fact]
    public void FromRanges_UnsortedOverlappingAdjacent_MergesIntoCanonicalForm()
    {
        var ranges = PortRanges.FromRanges(
        [
            new PortRange(10, 12),
            new PortRange(5, 6),
            new PortRange(1, 3),
            new PortRange(2, 4), // overlaps 1-3, adjacent to 5-6
            new PortRange(7, 7), // adjacent to 5-6
            new PortRange(20, 30),
            new PortRange(22, 25), // inside 20-30
            new PortRange(40, 39), // reversed: dropped
        ]);

        Assert.Equal(new[] { new PortRange(1, 7), new PortRange(10, 12), new PortRange(20, 30) }, ranges.Ranges.ToArray());
        Assert.Equal(7 + 3 + 11, ranges.Count);
    }

    [Fact]
    public void FromRanges_NothingValid_IsEmpty()
    {
        Assert.Same(PortRanges.Empty, PortRanges.FromRanges([]));
        Assert.True(PortRanges.FromRanges([new PortRange(5, 4)]).IsEmpty);
    }

    [Fact]
    public void Of_SinglePorts_MergesRuns()
    {
        var ranges = PortRanges.Of(5, 3, 1, 2, 9);

        Assert.Equal(new[] { new PortRange(1, 3), new PortRange(5, 5), new PortRange(9, 9) }, ranges.Ranges.ToArray());
    }

    [Theory]
    [InlineData("[31000-32000]", "[31000-32000]")]
    [InlineData("31000-32000", "[31000-32000]")]
    [InlineData("[8080]", "[8080-8080]")]
    [InlineData("8080", "[8080-8080]")]
    [InlineData("[33000-33010, 31000-32000]", "[31000-32000, 33000-33010]")]
    [InlineData("[1-5,6-10]", "[1-10]")]
    [InlineData("[1-10, 5-20]", "[1-20]")]
    [InlineData("[ 80 , 443 ]", "[80-80, 443-443]")]
    [InlineData("[1-65535]", "[1-65535]")]
    [InlineData("[1 - 3]", "[1-3]")]
    [InlineData("[1-3,,5]", "[1-3, 5-5]")]
    [InlineData("[]", "[]")]
    [InlineData("", "[]")]
    public void TryParse_ValidText_ParsesToCanonicalForm(string text, string expected)
    {
        Assert.True(PortRanges.TryParse(text, out var ranges, out var error));
        Assert.Null(error);
        Assert.Equal(expected, ranges.ToString());
        Assert.Equal(ranges, P(ranges.ToString()));
    }

    [Theory]
    [InlineData("[5-1]", "'5-1' is outside 1-65535 or reversed")]
    [InlineData("0", "'0' is outside 1-65535 or reversed")]
    [InlineData("[0-10]", "'0-10' is outside")]
    [InlineData("65536", "'65536' is outside")]
    [InlineData("[1-70000]", "'1-70000' is outside")]
    [InlineData("[31000-32000", "unbalanced brackets")]
    [InlineData("31000-32000]", "unbalanced brackets")]
    [InlineData("abc", "'abc' is not a port or port range")]
    [InlineData("[1-2-3]", "'1-2-3' is not a port or port range")]
    [InlineData("-5", "'-5' is not a port")]
    [InlineData("+5", "'+5' is not a port")]
    [InlineData("1-", "'1-' is not a port")]
    [InlineData("[80, x]", "'x' is not a port")]
    public void TryParse_InvalidText_FailsWithReason(string text, string expectedError)
    {
        Assert.False(PortRanges.TryParse(text, out var ranges, out var error));
        Assert.NotNull(error);
        Assert.Contains(expectedError, error, StringComparison.Ordinal);
        Assert.True(ranges.IsEmpty);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(9, false)]
    [InlineData(10, true)]
    [InlineData(15, true)]
    [InlineData(20, true)]
    [InlineData(21, false)]
    [InlineData(29, false)]
    [InlineData(30, true)]
    [InlineData(31, false)]
    [InlineData(39, false)]
    [InlineData(40, true)]
    [InlineData(50, true)]
    [InlineData(55, false)]
    [InlineData(60, true)]
    [InlineData(70, true)]
    [InlineData(79, false)]
    [InlineData(80, true)]
    [InlineData(90, true)]
    [InlineData(91, false)]
    [InlineData(65535, false)]
    public void Contains_Port_FindsRangeByBinarySearch(int port, bool expected)
    {
        var ranges = P("[10-20, 30, 40-50, 60-70, 80-90]");

        Assert.Equal(expected, ranges.Contains(port));
    }

    [Fact]
    public void Contains_PortInManyFragmentedRanges_MatchesLinearScan()
    {
        // Every odd port 1..2001: 1001 single-port ranges, so the search runs ~10 levels deep.
        var ranges = PortRanges.Of(Enumerable.Range(0, 1001).Select(i => (2 * i) + 1).ToArray());
        Assert.Equal(1001, ranges.Ranges.Length);

        for (var port = 0; port <= 2003; port++)
        {
            Assert.Equal(port % 2 == 1 && port <= 2001, ranges.Contains(port));
        }
    }

    [Fact]
    public void Contains_Port_EmptyHasNothing()
    {
        Assert.False(PortRanges.Empty.Contains(1));
        Assert.False(PortRanges.Empty.Contains(0));
    }

    [Theory]
    [InlineData("[]", true)]
    [InlineData("[10-20]", true)]
    [InlineData("[12-14, 40-41]", true)]
    [InlineData("[10, 20, 30, 50]", true)]
    [InlineData("[10-30]", false)]
    [InlineData("[9-10]", false)]
    [InlineData("[20-21]", false)]
    [InlineData("[10-20, 51]", false)]
    [InlineData("[25]", false)]
    public void Contains_Set_TrueOnlyWhenEveryPortIsPresent(string other, bool expected)
    {
        var ranges = P("[10-20, 30, 40-50]");

        Assert.Equal(expected, ranges.Contains(P(other)));
    }

    [Theory]
    [InlineData("[1-100]", "[10-20, 50, 90-110]", "[1-9, 21-49, 51-89]")]
    [InlineData("[1-100]", "[50]", "[1-49, 51-100]")]
    [InlineData("[1-100]", "[1]", "[2-100]")]
    [InlineData("[1-100]", "[100]", "[1-99]")]
    [InlineData("[1-100]", "[1-100]", "[]")]
    [InlineData("[1-100]", "[200-300]", "[1-100]")]
    [InlineData("[1-10, 20-30]", "[5-25]", "[1-4, 26-30]")]
    [InlineData("[1-10, 20-30]", "[2, 4, 22, 24]", "[1, 3, 5-10, 20-21, 23, 25-30]")]
    [InlineData("[1-10]", "[]", "[1-10]")]
    [InlineData("[]", "[1-10]", "[]")]
    public void Subtract_Ranges_RemovesEveryPortSplittingRanges(string from, string remove, string expected)
    {
        var result = P(from).Subtract(P(remove));

        Assert.Equal(P(expected), result);
        Assert.Equal(P(from).Count - P(from).Ranges.Sum(r => Enumerable.Range(r.Begin, r.Count).Count(P(remove).Contains)), result.Count);
    }

    [Fact]
    public void Add_AdjacentAndEmpty_Merges()
    {
        Assert.Equal(P("[1-10]"), P("[1-5]").Add(P("[6-10]")));
        Assert.Equal(P("[1-5, 7-8]"), P("[7-8]").Add(P("[1-5]")));
        var x = P("[1-5]");
        Assert.Equal(x, x.Add(PortRanges.Empty));
        Assert.Equal(x, PortRanges.Empty.Add(x));
    }

    [Fact]
    public void TakeLowest_AcrossRanges_ReturnsLowestInOrder()
    {
        var ranges = P("[20-22, 10-11, 30]");

        Assert.Equal(new[] { 10, 11, 20, 21 }, ranges.TakeLowest(4));
        Assert.Equal(new[] { 10, 11, 20, 21, 22, 30 }, ranges.TakeLowest(6));
        Assert.Equal(new[] { 10 }, ranges.TakeLowest(1));
        Assert.Equal(Array.Empty<int>(), ranges.TakeLowest(0));
    }

    [Fact]
    public void TakeLowest_TooFewPorts_ReturnsNull()
    {
        Assert.Null(P("[20-22, 10-11, 30]").TakeLowest(7));
        Assert.Null(PortRanges.Empty.TakeLowest(1));
    }

    [Theory]
    [InlineData("[]", 0)]
    [InlineData("[80]", 1)]
    [InlineData("[1-10, 20-29]", 20)]
    [InlineData("[31000-32000]", 1001)]
    [InlineData("[1-65535]", 65535)]
    public void Count_Ranges_CountsPorts(string text, int expected)
    {
        var ranges = P(text);

        Assert.Equal(expected, ranges.Count);
        Assert.Equal(expected == 0, ranges.IsEmpty);
    }

    [Fact]
    public void Equals_SamePortsDifferentSpelling_AreEqualWithEqualHash()
    {
        var a = P("[1-5, 6-10, 20]");
        var b = PortRanges.FromRanges([new PortRange(20, 20), new PortRange(1, 10)]);

        Assert.True(a.Equals(b));
        Assert.True(a.Equals((object)b));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Single(new HashSet<PortRanges> { a, b });
    }

    [Theory]
    [InlineData("[1-9]")]
    [InlineData("[1-10]")]
    [InlineData("[1-10, 21]")]
    [InlineData("[]")]
    public void Equals_DifferentPorts_AreNotEqual(string other)
    {
        var a = P("[1-10, 20]");

        Assert.False(a.Equals(P(other)));
    }

    [Fact]
    public void Equals_Null_IsFalse()
    {
        Assert.False(P("[1]").Equals(null));
        Assert.False(P("[1]").Equals((object?)null));
        Assert.False(P("[1]").Equals((object)"[1-1]"));
    }

    [Theory]
    [InlineData(80, 80, 1, "80")]
    [InlineData(31000, 32000, 1001, "31000-32000")]
    public void PortRange_CountAndToString_DescribeRange(int begin, int end, int count, string text)
    {
        var range = new PortRange(begin, end);

        Assert.Equal(count, range.Count);
        Assert.Equal(text, range.ToString());
        Assert.True(range.Contains(begin));
        Assert.True(range.Contains(end));
        Assert.False(range.Contains(begin - 1));
        Assert.False(range.Contains(end + 1));
    }
}
