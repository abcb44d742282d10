using System.Globalization;

namespace Drover.Core.Tests;

public class ResourcesTests
{
    [Theory]
    [InlineData("cpus:4;mem:8192;disk:0;ports:[31000-32000]")]
    [InlineData("cpus:0.25;mem:32;disk:0")]
    [InlineData("cpus:0.001;mem:4;disk:1")]
    [InlineData("cpus:1.5;mem:1024;disk:100;gpus:2;ports:[80-80, 443-443, 31000-32000]")]
    [InlineData("cpus:0;mem:0;disk:0")]
    public void ToString_ParsedCanonicalText_RoundTrips(string text)
    {
        var parsed = Resources.Parse(text);

        Assert.Equal(text, parsed.ToString());
        Assert.Equal(parsed, Resources.Parse(parsed.ToString()));
    }

    [Fact]
    public void Parse_MesosText_SetsEveryField()
    {
        var r = Resources.Parse("cpus:4;mem:8192;disk:10;gpus:1;ports:[31000-32000]");

        Assert.Equal(4000, r.MilliCpus);
        Assert.Equal(4m, r.Cpus);
        Assert.Equal(8192, r.MemMiB);
        Assert.Equal(10, r.DiskMiB);
        Assert.Equal(1, r.Gpus);
        Assert.Equal(PortRanges.Range(31000, 32000), r.Ports);
        Assert.Equal(1001, r.Ports.Count);
    }

    [Theory]
    [InlineData("cpus:0.25", 250)]
    [InlineData("cpus:4", 4000)]
    [InlineData("cpus:0.1", 100)]
    [InlineData("cpus:.5", 500)]
    [InlineData("cpus:0.001", 1)]
    [InlineData("cpus:0.0001", 1)]
    [InlineData("cpus:1.2341", 1235)]
    [InlineData("cpus:0", 0)]
    public void Parse_Cpus_StoresMilliCpusRoundingUp(string text, long expectedMilli)
    {
        Assert.Equal(expectedMilli, Resources.Parse(text).MilliCpus);
    }

    [Fact]
    public void Parse_RoleSuffix_IsAcceptedAndIgnored()
    {
        var r = Resources.Parse("cpus(*):2;mem(*):64;disk(drover):5;gpus(*):1;ports(*):[8000-8001]");

        Assert.Equal(Resources.Parse("cpus:2;mem:64;disk:5;gpus:1;ports:[8000-8001]"), r);
        Assert.Equal(2000, r.MilliCpus);
    }

    [Fact]
    public void Parse_WhitespaceAndEmptyItems_AreTolerated()
    {
        var r = Resources.Parse(" cpus : 2 ;; mem : 64 ; ");

        Assert.Equal(2000, r.MilliCpus);
        Assert.Equal(64, r.MemMiB);
    }

    [Fact]
    public void Parse_FractionalMem_FloorsToWholeMiB()
    {
        var r = Resources.Parse("mem:10.9;disk:3.2");

        Assert.Equal(10, r.MemMiB);
        Assert.Equal(3, r.DiskMiB);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("cpus:0;mem:0")]
    public void Parse_EmptyOrAllZero_IsZero(string text)
    {
        var r = Resources.Parse(text);

        Assert.True(r.IsZero);
        Assert.Equal(Resources.Zero, r);
    }

    [Theory]
    [InlineData("cpus:1;foo:2", "unknown resource 'foo'")]
    [InlineData("cpus:1;cpus:2", "resource 'cpus' is given twice")]
    [InlineData("cpus:1;cpus(*):2", "resource 'cpus' is given twice")]
    [InlineData("mem:1;mem:2", "resource 'mem' is given twice")]
    [InlineData("cpus:-1", "cpus: '-1'")]
    [InlineData("cpus:abc", "cpus: 'abc'")]
    [InlineData("cpus:1e3", "cpus: '1e3'")]
    [InlineData("cpus:", "cpus: ''")]
    [InlineData("mem:-5", "mem: '-5'")]
    [InlineData("mem:lots", "mem: 'lots'")]
    [InlineData("disk:1e3", "disk: '1e3'")]
    [InlineData("disk:-0.5", "disk: '-0.5'")]
    [InlineData("gpus:1.5", "gpus: '1.5'")]
    [InlineData("gpus:-1", "gpus: '-1'")]
    [InlineData("ports:[5-1]", "ports: '5-1'")]
    [InlineData("ports:[1-2", "ports: unbalanced brackets")]
    [InlineData("cpus", "'cpus' is not of the form name:value")]
    [InlineData(":4", "':4' is not of the form name:value")]
    public void TryParse_InvalidText_FailsNamingTheResource(string text, string expectedError)
    {
        Assert.False(Resources.TryParse(text, out var r, out var error));
        Assert.NotNull(error);
        Assert.Contains(expectedError, error, StringComparison.Ordinal);
        Assert.Equal(Resources.Zero, r);

        var thrown = Assert.Throws<FormatException>(() => Resources.Parse(text));
        Assert.Equal(error, thrown.Message);
    }

    [Fact]
    public void Add_TenthOfACpuTenThousandTimes_IsExactlyOneThousandCpus()
    {
        var tenth = Resources.Parse("cpus:0.1;mem:1");
        var total = Resources.Zero;
        for (var i = 0; i < 10_000; i++)
        {
            total = total.Add(tenth);
        }

        Assert.Equal(1_000_000, total.MilliCpus);
        Assert.Equal(1000m, total.Cpus);
        Assert.Equal(10_000, total.MemMiB);
        Assert.Equal("cpus:1000;mem:10000;disk:0", total.ToString());

        for (var i = 0; i < 10_000; i++)
        {
            total = total.Subtract(tenth);
        }

        Assert.True(total.IsZero);
        Assert.Equal(Resources.Zero, total);
    }

    [Fact]
    public void Add_AllFields_SumsScalarsAndUnitesPorts()
    {
        var a = Resources.Parse("cpus:1;mem:100;disk:10;gpus:1;ports:[1000-1001]");
        var b = Resources.Parse("cpus:0.5;mem:50;disk:5;gpus:2;ports:[1002-1003, 2000-2000]");

        var sum = a.Add(b);

        Assert.Equal(Resources.Parse("cpus:1.5;mem:150;disk:15;gpus:3;ports:[1000-1003, 2000-2000]"), sum);
        Assert.Equal(sum, b.Add(a));
        Assert.Equal(Resources.Parse("cpus:1;mem:100;disk:10;gpus:1;ports:[1000-1001]"), a);
    }

    [Fact]
    public void Subtract_Contained_RemovesScalarsAndSplitsPorts()
    {
        var total = Resources.Parse("cpus:4;mem:8192;disk:100;gpus:2;ports:[31000-32000]");
        var used = Resources.Parse("cpus:1.25;mem:1024;disk:100;gpus:1;ports:[31500-31501]");

        var free = total.Subtract(used);

        Assert.Equal(Resources.Parse("cpus:2.75;mem:7168;disk:0;gpus:1;ports:[31000-31499, 31502-32000]"), free);
        Assert.Equal(total, free.Add(used));
    }

    [Fact]
    public void Subtract_Itself_IsZero()
    {
        var r = Resources.Parse("cpus:4;mem:8192;disk:1;gpus:1;ports:[31000-32000]");

        Assert.True(r.Subtract(r).IsZero);
    }

    [Theory]
    [InlineData("cpus:1.001")]
    [InlineData("mem:101")]
    [InlineData("disk:11")]
    [InlineData("gpus:2")]
    [InlineData("ports:[999-1000]")]
    [InlineData("ports:[1011-1011]")]
    public void Subtract_NotContained_Throws(string tooMuch)
    {
        var have = Resources.Parse("cpus:1;mem:100;disk:10;gpus:1;ports:[1000-1010]");

        Assert.Throws<InvalidOperationException>(() => have.Subtract(Resources.Parse(tooMuch)));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("cpus:2;mem:100;disk:10;gpus:1;ports:[31000-32000]", true)]
    [InlineData("cpus:2.001", false)]
    [InlineData("cpus:1.999;mem:99", true)]
    [InlineData("mem:101", false)]
    [InlineData("disk:11", false)]
    [InlineData("gpus:2", false)]
    [InlineData("ports:[31500-31600]", true)]
    [InlineData("ports:[31000-31000, 32000-32000]", true)]
    [InlineData("ports:[30999-31000]", false)]
    [InlineData("ports:[32001-32001]", false)]
    [InlineData("cpus:1;ports:[8080-8080]", false)]
    public void Contains_Request_ChecksEveryScalarAndPort(string request, bool expected)
    {
        var have = Resources.Parse("cpus:2;mem:100;disk:10;gpus:1;ports:[31000-32000]");

        Assert.Equal(expected, have.Contains(Resources.Parse(request)));
    }

    [Fact]
    public void SubtractClamped_MoreThanPresent_ClampsAtZeroInsteadOfThrowing()
    {
        var have = Resources.Parse("cpus:1;mem:100;ports:[1-10]");
        var take = Resources.Parse("cpus:2;mem:50;disk:5;gpus:1;ports:[5-20]");

        var left = have.SubtractClamped(take);

        Assert.Equal(Resources.Parse("cpus:0;mem:50;disk:0;gpus:0;ports:[1-4]"), left);
        Assert.Equal(0, left.MilliCpus);
        Assert.Equal(0, left.Gpus);
    }

    [Fact]
    public void SubtractClamped_Contained_EqualsSubtract()
    {
        var have = Resources.Parse("cpus:4;mem:100;disk:10;gpus:2;ports:[1-10]");
        var take = Resources.Parse("cpus:0.5;mem:50;disk:5;gpus:1;ports:[5-6]");

        Assert.Equal(have.Subtract(take), have.SubtractClamped(take));
    }

    [Theory]
    [InlineData(0, "0")]
    [InlineData(1, "0.001")]
    [InlineData(100, "0.1")]
    [InlineData(250, "0.25")]
    [InlineData(1000, "1")]
    [InlineData(1500, "1.5")]
    [InlineData(123456, "123.456")]
    [InlineData(1_000_000, "1000")]
    public void FormatCpus_MilliCpus_PrintsShortestExactDecimal(long milli, string expected)
    {
        Assert.Equal(expected, Resources.FormatCpus(milli));
    }

    [Theory]
    [InlineData("0.1", 100)]
    [InlineData("2", 2000)]
    [InlineData("0.0005", 1)]
    [InlineData("0.0015", 2)]
    [InlineData("0", 0)]
    public void ToMilli_Cpus_ConvertsRoundingUp(string cpus, long expected)
    {
        Assert.Equal(expected, Resources.ToMilli(decimal.Parse(cpus, CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Of_Arguments_BuildsResources()
    {
        var r = Resources.Of(cpus: 0.25m, memMiB: 64, diskMiB: 5, gpus: 1, ports: PortRanges.Range(80, 81));

        Assert.Equal(250, r.MilliCpus);
        Assert.Equal(0.25m, r.Cpus);
        Assert.Equal("cpus:0.25;mem:64;disk:5;gpus:1;ports:[80-81]", r.ToString());
    }

    [Fact]
    public void ToString_ZeroGpusAndNoPorts_OmitsThem()
    {
        Assert.Equal("cpus:1;mem:2;disk:0", Resources.Of(cpus: 1, memMiB: 2).ToString());
    }

    [Fact]
    public void IsZero_AnyNonZeroField_IsFalse()
    {
        Assert.True(Resources.Zero.IsZero);
        Assert.False(Resources.Of(cpus: 0.001m).IsZero);
        Assert.False(Resources.Of(memMiB: 1).IsZero);
        Assert.False(Resources.Of(diskMiB: 1).IsZero);
        Assert.False(Resources.Of(gpus: 1).IsZero);
        Assert.False(Resources.Of(ports: PortRanges.Of(80)).IsZero);
    }

    [Theory]
    [InlineData("cpus:10000000000000000")]
    [InlineData("mem:99999999999999999999")]
    [InlineData("disk:99999999999999999999")]
    public void TryParse_ValueTooLargeForLong_FailsInsteadOfThrowing(string text)
    {
        Assert.False(Resources.TryParse(text, out _, out var error));
        Assert.NotNull(error);
    }
}
