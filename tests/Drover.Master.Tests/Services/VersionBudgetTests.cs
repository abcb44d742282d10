using Drover.Core.Marathon;
using Drover.Master.Services;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Services;

/// <summary>Kept versions are bounded in bytes as well as in count (issue 14: 50 kept versions each held a full copy).</summary>
public sealed class VersionBudgetTests
{
    private readonly ServiceRegistry _registry = new(null, new ManualTimeProvider(), NullLogger<ServiceRegistry>.Instance);

    /// <summary>An app whose definition is about <paramref name="labelBytes"/> large (one label), distinct per <paramref name="n"/>.</summary>
    private static AppDefinition App(int n, int labelBytes) =>
        MarathonJson.TryParseApp($$$"""{"id": "/big", "cmd": "sleep {{{n}}}", "cpus": 0.1, "mem": 32, "labels": {"pad": "{{{new string('p', labelBytes)}}}"}}""", out var app, out var error)
            ? app.WithDefaults()
            : throw new ArgumentException(error.Message);

    [Fact]
    public void Put_LargeVersions_OldestDroppedToStayWithinTheByteBudgetAndTheCurrentKept()
    {
        for (var i = 1; i <= 20; i++)
        {
            Assert.Equal(AppChangeError.None, _registry.Put(App(i, 200 * 1024), AppExpectation.Any, force: true).Error);
        }

        var snapshot = _registry.Get("/big")!;
        var bytes = snapshot.Versions.Sum(ServiceRegistry.SizeOf);
        Assert.True(bytes <= ServiceRegistry.MaxVersionBytes, $"{snapshot.Versions.Count} versions hold {bytes} bytes");
        Assert.InRange(snapshot.Versions.Count, 2, 5); // 200 KiB each within 1 MiB
        Assert.Equal("sleep 20", snapshot.Versions[^1].Cmd);
        Assert.Equal("sleep 20", snapshot.Current.Cmd);
        Assert.Equal(
            Enumerable.Range(21 - snapshot.Versions.Count, snapshot.Versions.Count).Select(i => $"sleep {i}"),
            snapshot.Versions.Select(v => v.Cmd)); // the newest kept, in order
    }

    [Fact]
    public void Put_OneVersionOverTheWholeBudget_KeptAloneAsTheCurrent()
    {
        _registry.Put(App(1, 10), AppExpectation.Any, force: true);
        _registry.Put(App(2, 1100 * 1024), AppExpectation.Any, force: true); // the registry keeps what validation let through

        var snapshot = _registry.Get("/big")!;
        Assert.Equal("sleep 2", Assert.Single(snapshot.Versions).Cmd);
        Assert.Equal("sleep 2", snapshot.Current.Cmd);
    }

    [Fact]
    public void Put_SmallVersions_StillCappedByCount()
    {
        for (var i = 1; i <= ServiceRegistry.MaxVersions + 10; i++)
        {
            _registry.Put(App(i, 10), AppExpectation.Any, force: true);
        }

        Assert.Equal(ServiceRegistry.MaxVersions, _registry.Get("/big")!.Versions.Count);
    }
}
