using Drover.Store.Etcd;

namespace Drover.Store.Tests.Etcd;

public sealed class EtcdEndpointsTests
{
    [Fact]
    public void Parse_SeveralHosts_HttpUrisInOrder()
    {
        var parsed = EtcdEndpoints.Parse("etcd://10.0.0.1:2379,etcd-2:2380,[fd00::3]:2379");

        Assert.Equal(["http://10.0.0.1:2379/", "http://etcd-2:2380/", "http://[fd00::3]:2379/"], parsed.Uris.Select(u => u.AbsoluteUri));
        Assert.Null(parsed.Prefix);
    }

    [Fact]
    public void Parse_NoPortWithPath_DefaultPortAndPrefix()
    {
        var parsed = EtcdEndpoints.Parse("etcd://h1,h2/drover/prod");

        Assert.Equal(["http://h1:2379/", "http://h2:2379/"], parsed.Uris.Select(u => u.AbsoluteUri));
        Assert.Equal("/drover/prod", parsed.Prefix);
        Assert.Equal("etcd://h1:2379,h2:2379/drover/prod", parsed.ToString());
    }

    [Fact]
    public void Parse_HttpsUrls_SchemeKeptAndPrefixAfterTheLast()
    {
        var parsed = EtcdEndpoints.Parse("https://10.0.0.1:2379, https://etcd-2:2380/drover/prod");

        Assert.Equal(["https://10.0.0.1:2379/", "https://etcd-2:2380/"], parsed.Uris.Select(u => u.AbsoluteUri));
        Assert.Equal("/drover/prod", parsed.Prefix);
        Assert.True(parsed.SchemeWritten);
        Assert.True(parsed.IsTls);
        Assert.Equal("https://10.0.0.1:2379,https://etcd-2:2380/drover/prod", parsed.ToString());
        Assert.Same(parsed, parsed.WithTls());
    }

    [Fact]
    public void WithTls_EtcdForm_Https()
    {
        var parsed = EtcdEndpoints.Parse("etcd://h1,[fd00::2]:2380/p");

        var tls = parsed.WithTls();

        Assert.False(parsed.IsTls);
        Assert.Equal(["https://h1:2379/", "https://[fd00::2]:2380/"], tls.Uris.Select(u => u.AbsoluteUri));
        Assert.Equal("/p", tls.Prefix);
    }

    [Fact]
    public void WithTls_HttpUrls_Throws()
    {
        var parsed = EtcdEndpoints.Parse("http://h1:2379,http://h2:2379");

        Assert.False(parsed.IsTls);
        Assert.Throws<InvalidOperationException>(parsed.WithTls);
    }

    [Theory]
    [InlineData("redis://h1:6379", "must start with etcd://")]
    [InlineData("https://h1:2379,http://h2:2379", "mixes schemes: endpoint 2 'http://h2:2379' is not https://")]
    [InlineData("https://h1:2379,h2:2379", "endpoint 2 'h2:2379' of 'https://h1:2379,h2:2379' has no scheme")]
    [InlineData("https://h1", "has no port: write https://h1:2379")]
    [InlineData("https://h1:2379/a,https://h2:2379", "only the last endpoint may carry the key prefix")]
    [InlineData("https://h1:2379,https://h1:2379", "appears more than once")]
    [InlineData("etcd://", "names no etcd endpoint")]
    [InlineData("etcd://h1:2379,,h3:2379", "endpoint 2 of 'etcd://h1:2379,,h3:2379' is empty")]
    [InlineData("etcd://h1:2379,h2:x", "the port 'x' of endpoint 'h2:x'")]
    [InlineData("etcd://h1:70000", "the port '70000' of endpoint 'h1:70000'")]
    [InlineData("etcd://h1:2379,:2379", "endpoint ':2379'")]
    [InlineData("etcd://fd00::1:2379", "write an IPv6 address in brackets")]
    [InlineData("etcd://[fd00::1:2379", "never closes it")]
    [InlineData("etcd://h1,h1:2379", "'h1:2379' appears more than once")]
    [InlineData("etcd://bad_host!:2379", "'bad_host!' (endpoint 'bad_host!:2379'")]
    public void Parse_Malformed_FormatExceptionNamingThePart(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => EtcdEndpoints.Parse(text));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/drover", "/drover")]
    [InlineData("/drover/", "/drover")]
    [InlineData("/", "")]
    [InlineData("", "")]
    public void NormalizePrefix_Forms_LeadingSlashNoTrailing(string prefix, string expected) =>
        Assert.Equal(expected, EtcdStateStore.NormalizePrefix(prefix));

    [Fact]
    public void NormalizePrefix_Relative_Rejected() =>
        Assert.Throws<ArgumentException>(() => EtcdStateStore.NormalizePrefix("drover"));

    [Fact]
    public void PrefixEnd_LastByteIncremented_TrailingFfDropped()
    {
        Assert.Equal("/a0"u8.ToArray(), EtcdStateStore.PrefixEnd("/a/"u8.ToArray()));
        Assert.Equal(new byte[] { 0x2f, 0x62 }, EtcdStateStore.PrefixEnd([0x2f, 0x61, 0xff]));
    }
}
