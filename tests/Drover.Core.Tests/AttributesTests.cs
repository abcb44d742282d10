namespace Drover.Core.Tests;

public class AttributesTests
{
    private static Attributes A(string text) =>
        Attributes.TryParse(text, out var attributes, out var error) ? attributes : throw new FormatException(error);

    [Fact]
    public void TryParse_MixedValues_ClassifiesTextAndScalar()
    {
        var attrs = A("rack:r1;cores:8;ratio:0.5");

        Assert.Equal(3, attrs.Count);
        Assert.True(attrs.TryGet("rack", out var rack));
        Assert.Equal("r1", rack.Text);
        Assert.Null(rack.Scalar);
        Assert.True(attrs.TryGet("cores", out var cores));
        Assert.Equal(8.0, cores.Scalar);
        Assert.Null(cores.Text);
        Assert.True(attrs.TryGet("ratio", out var ratio));
        Assert.Equal(0.5, ratio.Scalar);
        Assert.False(attrs.TryGet("zone", out _));
    }

    [Theory]
    [InlineData("8", 8.0)]
    [InlineData("0.5", 0.5)]
    [InlineData("-3", -3.0)]
    [InlineData("1e3", 1000.0)]
    [InlineData("08", 8.0)]
    public void TryParse_NumericValue_IsScalar(string value, double expected)
    {
        Assert.True(A($"x:{value}").TryGet("x", out var v));

        Assert.Equal(expected, v.Scalar);
        Assert.Null(v.Text);
    }

    [Theory]
    [InlineData("r1")]
    [InlineData("a100")]
    [InlineData("1.2.3")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("0x10")]
    [InlineData("us-east-1a")]
    [InlineData("http://host:80")]
    public void TryParse_NonNumericValue_IsText(string value)
    {
        Assert.True(A($"x:{value}").TryGet("x", out var v));

        Assert.Equal(value, v.Text);
        Assert.Null(v.Scalar);
        Assert.Equal(value, v.ToString());
    }

    [Theory]
    [InlineData("rack:r1", "rack:r1")]
    [InlineData("zone:z1;rack:r1;cores:8", "cores:8;rack:r1;zone:z1")]
    [InlineData(" rack : r1 ;; cores : 8 ", "cores:8;rack:r1")]
    [InlineData("ratio:0.25;url:http://x:1", "ratio:0.25;url:http://x:1")]
    [InlineData("", "")]
    public void ToString_Parsed_PrintsNameSortedAndRoundTrips(string text, string expected)
    {
        var attrs = A(text);

        Assert.Equal(expected, attrs.ToString());
        Assert.Equal(attrs, A(attrs.ToString()));
    }

    [Theory]
    [InlineData("rack:a;rack:b", "attribute 'rack' is given twice")]
    [InlineData("ra ck:a", "attribute name 'ra ck'")]
    [InlineData("ra/ck:a", "attribute name 'ra/ck'")]
    [InlineData("..:a", "attribute name '..'")]
    [InlineData("rack", "'rack' is not of the form name:value")]
    [InlineData("rack:", "'rack:' is not of the form name:value")]
    [InlineData(":r1", "':r1' is not of the form name:value")]
    public void TryParse_Invalid_FailsWithReason(string text, string expectedError)
    {
        Assert.False(Attributes.TryParse(text, out var attrs, out var error));
        Assert.NotNull(error);
        Assert.Contains(expectedError, error, StringComparison.Ordinal);
        Assert.Same(Attributes.Empty, attrs);
    }

    [Fact]
    public void Equals_SameAttributesAnyOrder_AreEqualWithEqualHash()
    {
        var a = A("rack:r1;cores:8");
        var b = A("cores:8.0;rack:r1");

        Assert.True(a.Equals(b));
        Assert.True(a.Equals((object)b));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Equal(a, Attributes.From([new("rack", "r1"), new("cores", "8")]));
    }

    [Theory]
    [InlineData("rack:r2;cores:8")]
    [InlineData("rack:r1;cores:9")]
    [InlineData("rack:r1")]
    [InlineData("rack:r1;cores:8;zone:z")]
    [InlineData("Rack:r1;cores:8")]
    public void Equals_DifferentAttributes_AreNotEqual(string other)
    {
        Assert.False(A("rack:r1;cores:8").Equals(A(other)));
    }

    [Fact]
    public void Equals_Null_IsFalse()
    {
        Assert.False(A("rack:r1").Equals(null));
        Assert.False(A("rack:r1").Equals((object?)null));
    }

    [Fact]
    public void Enumerate_Attributes_YieldsNameSortedPairs()
    {
        var names = A("b:1;a:x;c:y").Select(kv => kv.Key).ToArray();

        Assert.Equal(["a", "b", "c"], names);
    }

    [Fact]
    public void AttributeValue_ToString_UsesInvariantText()
    {
        Assert.Equal("0.1", AttributeValue.OfScalar(0.1).ToString());
        Assert.Equal("1000", AttributeValue.OfScalar(1e3).ToString());
        Assert.Equal("r1", AttributeValue.OfText("r1").ToString());
    }

    [Fact]
    public void FaultDomain_ToString_IsRegionSlashZone()
    {
        Assert.Equal("us-east/us-east-1a", new FaultDomain("us-east", "us-east-1a").ToString());
    }
}
