namespace Drover.Core.Tests;

public class ConstraintTests
{
    [Theory]
    [InlineData("hostname:UNIQUE", "hostname", ConstraintOperator.Unique, null)]
    [InlineData("@hostname:UNIQUE", "hostname", ConstraintOperator.Unique, null)]
    [InlineData("rack:UNIQUE:", "rack", ConstraintOperator.Unique, null)]
    [InlineData("rack:CLUSTER", "rack", ConstraintOperator.Cluster, null)]
    [InlineData("rack:CLUSTER:r1", "rack", ConstraintOperator.Cluster, "r1")]
    [InlineData("rack:GROUP_BY", "rack", ConstraintOperator.GroupBy, null)]
    [InlineData("rack:GROUP_BY:", "rack", ConstraintOperator.GroupBy, null)]
    [InlineData("@region:GROUP_BY:3", "@region", ConstraintOperator.GroupBy, "3")]
    [InlineData("hostname:LIKE:web-[0-9]+", "hostname", ConstraintOperator.Like, "web-[0-9]+")]
    [InlineData("hostname:UNLIKE:db.*", "hostname", ConstraintOperator.Unlike, "db.*")]
    [InlineData("rack:MAX_PER:2", "rack", ConstraintOperator.MaxPer, "2")]
    [InlineData("rack:IS:r1", "rack", ConstraintOperator.Is, "r1")]
    [InlineData("@zone:IS:us-east-1a", "@zone", ConstraintOperator.Is, "us-east-1a")]
    [InlineData("rack:is:r1", "rack", ConstraintOperator.Is, "r1")]
    [InlineData("rack:Group_By", "rack", ConstraintOperator.GroupBy, null)]
    [InlineData("rack:max_per:1", "rack", ConstraintOperator.MaxPer, "1")]
    [InlineData("@hostname:unique", "hostname", ConstraintOperator.Unique, null)]
    [InlineData("url:IS:http://a:80", "url", ConstraintOperator.Is, "http://a:80")]
    [InlineData("hostname:LIKE:a:b:c", "hostname", ConstraintOperator.Like, "a:b:c")]
    public void TryParse_ValidText_ParsesFieldOperatorValue(string text, string field, ConstraintOperator op, string? value)
    {
        Assert.True(Constraint.TryParse(text, out var c, out var error));
        Assert.Null(error);

        Assert.Equal(new Constraint(field, op, value), c);
    }

    [Theory]
    [InlineData("rack", "'rack' is not of the form field:OPERATOR[:value]")]
    [InlineData("", "is not of the form field:OPERATOR[:value]")]
    [InlineData(":UNIQUE", "the field is empty")]
    [InlineData(" :UNIQUE", "the field is empty")]
    [InlineData("rack:EQUALS:r1", "unknown operator 'EQUALS'")]
    [InlineData("rack::r1", "unknown operator ''")]
    [InlineData("rack:LIKE", "LIKE needs a value")]
    [InlineData("rack:LIKE:", "LIKE needs a value")]
    [InlineData("rack:UNLIKE", "UNLIKE needs a value")]
    [InlineData("rack:IS", "IS needs a value")]
    [InlineData("rack:LIKE:[a-", "'[a-' is not a valid regular expression")]
    [InlineData("rack:UNLIKE:(", "'(' is not a valid regular expression")]
    [InlineData("rack:MAX_PER", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER:abc", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER:0", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER:-1", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER:1.5", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER:+2", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:MAX_PER: 2", "MAX_PER needs a whole number of at least 1")]
    [InlineData("rack:GROUP_BY:+2", "GROUP_BY takes an optional whole number of at least 1")]
    [InlineData("rack:GROUP_BY:2 ", "GROUP_BY takes an optional whole number of at least 1")]
    [InlineData("rack:GROUP_BY:0", "GROUP_BY takes an optional whole number of at least 1")]
    [InlineData("rack:GROUP_BY:x", "GROUP_BY takes an optional whole number of at least 1")]
    [InlineData("hostname:UNIQUE:x", "UNIQUE takes no value")]
    public void TryParse_InvalidText_FailsWithReason(string text, string expectedError)
    {
        Assert.False(Constraint.TryParse(text, out var c, out var error));

        Assert.Null(c);
        Assert.NotNull(error);
        Assert.Contains(expectedError, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hostname:UNIQUE")]
    [InlineData("rack:CLUSTER")]
    [InlineData("rack:CLUSTER:r1")]
    [InlineData("rack:GROUP_BY")]
    [InlineData("rack:GROUP_BY:3")]
    [InlineData("hostname:LIKE:web-[0-9]+")]
    [InlineData("hostname:UNLIKE:db.*")]
    [InlineData("rack:MAX_PER:2")]
    [InlineData("rack:IS:r1")]
    [InlineData("url:IS:http://a:80")]
    public void ToString_CanonicalText_RoundTrips(string text)
    {
        Assert.True(Constraint.TryParse(text, out var c, out _));

        Assert.Equal(text, c!.ToString());
    }

    [Theory]
    [InlineData("@hostname:unique", "hostname:UNIQUE")]
    [InlineData("rack:max_per:2", "rack:MAX_PER:2")]
    [InlineData("rack:group_by", "rack:GROUP_BY")]
    [InlineData("rack:UNIQUE:", "rack:UNIQUE")]
    public void ToString_NonCanonicalText_PrintsNormalisedForm(string text, string expected)
    {
        Assert.True(Constraint.TryParse(text, out var c, out _));

        Assert.Equal(expected, c!.ToString());
    }

    [Theory]
    [InlineData(ConstraintOperator.Unique, "UNIQUE")]
    [InlineData(ConstraintOperator.Cluster, "CLUSTER")]
    [InlineData(ConstraintOperator.GroupBy, "GROUP_BY")]
    [InlineData(ConstraintOperator.Like, "LIKE")]
    [InlineData(ConstraintOperator.Unlike, "UNLIKE")]
    [InlineData(ConstraintOperator.MaxPer, "MAX_PER")]
    [InlineData(ConstraintOperator.Is, "IS")]
    public void OperatorName_EveryOperator_IsMarathonNameAndParsesBack(ConstraintOperator op, string name)
    {
        Assert.Equal(name, Constraint.OperatorName(op));
        Assert.True(Constraint.TryParseOperator(name, out var parsed));
        Assert.Equal(op, parsed);
        Assert.True(Constraint.TryParseOperator(name.ToLowerInvariant(), out parsed));
        Assert.Equal(op, parsed);
    }

    [Fact]
    public void OperatorName_EveryEnumValue_HasAName()
    {
        foreach (var op in Enum.GetValues<ConstraintOperator>())
        {
            Assert.True(Constraint.TryParseOperator(Constraint.OperatorName(op), out var parsed));
            Assert.Equal(op, parsed);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("EQUALS")]
    [InlineData("GROUPBY")]
    [InlineData("MAXPER")]
    public void TryParseOperator_Unknown_IsFalse(string text)
    {
        Assert.False(Constraint.TryParseOperator(text, out _));
    }

    [Theory]
    [InlineData("rack", "IS", "r1", "rack:IS:r1")]
    [InlineData("@hostname", "unique", null, "hostname:UNIQUE")]
    [InlineData("rack", "GROUP_BY", "", "rack:GROUP_BY")]
    [InlineData("url", "LIKE", "http://.*:80", "url:LIKE:http://.*:80")]
    public void TryCreate_ArrayParts_BuildsConstraint(string field, string op, string? value, string expected)
    {
        Assert.True(Constraint.TryCreate(field, op, value, out var c, out var error));

        Assert.Null(error);
        Assert.Equal(expected, c!.ToString());
    }
}
