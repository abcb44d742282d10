using Drover.Core.Security;

namespace Drover.Core.Tests.Security;

public sealed class BrowserGuardTests
{
    private readonly BrowserGuard _guard = new([.. BrowserGuard.LoopbackNames, "master1.example"]);

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData(null)]
    public void Check_PostWithNonJsonBody_Is415(string? contentType)
    {
        var refused = _guard.Check("POST", "127.0.0.1:5050", null, "http://127.0.0.1:5050", contentType, hasBody: true);
        Assert.Equal(415, refused?.Status);
        Assert.StartsWith("Content-Type", refused!.Value.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("Application/JSON")]
    [InlineData("application/merge-patch+json")]
    public void Check_PostWithJsonBody_Passes(string contentType) =>
        Assert.Null(_guard.Check("POST", "localhost:5050", null, "http://localhost:5050", contentType, hasBody: true));

    [Fact]
    public void Check_RouteThatChecksItsOwnContentType_IsLeftToIt()
    {
        Assert.Equal(415, _guard.Check("POST", "localhost", null, "http://localhost", "application/x-protobuf", true)?.Status);
        Assert.Null(_guard.Check("POST", "localhost", null, "http://localhost", "text/plain", true, routeChecksContentType: true));

        // Origin and Host are still the guard's.
        Assert.Equal(403, _guard.Check("POST", "localhost", "http://evil.example", "http://localhost", "application/json", true, routeChecksContentType: true)?.Status);
    }

    [Fact]
    public void Check_PostWithoutBody_NeedsNoContentType() =>
        Assert.Null(_guard.Check("POST", "localhost:5050", null, "http://localhost:5050", "text/plain", hasBody: false));

    [Theory]
    [InlineData("http://evil.example")]
    [InlineData("null")]
    [InlineData("http://127.0.0.1:9999")]
    [InlineData("https://127.0.0.1:5050")]
    public void Check_ForeignOrigin_Is403(string origin)
    {
        var refused = _guard.Check("GET", "127.0.0.1:5050", origin, "http://127.0.0.1:5050", null, hasBody: false);
        Assert.Equal(403, refused?.Status);
        Assert.StartsWith("Origin", refused!.Value.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_OwnOrigin_Passes() =>
        Assert.Null(_guard.Check("POST", "127.0.0.1:5050", "http://127.0.0.1:5050", "http://127.0.0.1:5050", "application/json", true));

    [Theory]
    [InlineData("evil.example")]
    [InlineData("evil.example:5050")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("127.0.0.1.evil.example")]
    public void Check_UnknownHost_Is403(string? host)
    {
        var refused = _guard.Check("GET", host, null, "http://x", null, hasBody: false);
        Assert.Equal(403, refused?.Status);
        Assert.StartsWith("Host", refused!.Value.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("localhost:5050")]
    [InlineData("LOCALHOST")]
    [InlineData("[::1]:5050")]
    [InlineData("master1.example.:443")]
    public void Check_KnownHost_Passes(string host) => Assert.Null(_guard.Check("GET", host, null, "http://x", null, hasBody: false));

    [Fact]
    public void Check_AnyHost_SkipsOnlyTheHostCheck()
    {
        var any = new BrowserGuard(["ui.example"], anyHost: true);
        Assert.Null(any.Check("GET", "whatever.example", null, "http://whatever.example", null, false));
        Assert.Equal(403, any.Check("GET", "whatever.example", "http://evil.example", "http://whatever.example", null, false)?.Status);
        Assert.Null(any.Check("POST", "whatever.example", "https://ui.example", "http://whatever.example", "application/json", true));
    }

    [Fact]
    public void Check_AnyHostAndARebindingPage_IsRefusedThoughOriginMatchesHost()
    {
        // The page at http://evil.example:5050 rebinds its name to the master: Host and Origin agree, and name the attacker.
        var any = new BrowserGuard([.. BrowserGuard.LoopbackNames], anyHost: true);
        Assert.Equal(403, any.Check("POST", "evil.example:5050", "http://evil.example:5050", "http://evil.example:5050", "application/json", true)?.Status);
    }
}
