using System.Collections.Immutable;
using Drover.Core.Marathon;
using Drover.Master.Services;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Services;

/// <summary>
/// The registry's half of "what was authorized is what is written": a change carries whether it expects the app to
/// exist (update) or not (create), and the registry checks that under the same lock as the write. A caller allowed
/// only to create, whose check ran before another request created the app, must not overwrite it; a caller allowed
/// to update an app another request removed must not create it anew.
/// </summary>
public sealed class ServiceRegistryExpectationTests
{
    private readonly ServiceRegistry _registry = new(null, new ManualTimeProvider(), NullLogger<ServiceRegistry>.Instance);

    private static AppDefinition App(string id, string cmd = "sleep 600") =>
        MarathonJson.TryParseApp($$"""{"id": "{{id}}", "cmd": "{{cmd}}", "cpus": 0.1, "mem": 32}""", out var app, out var error)
            ? app.WithDefaults()
            : throw new ArgumentException(error.Message);

    [Fact]
    public void Put_ExpectedAbsentButCreatedMeanwhile_RefusedAndNotOverwritten()
    {
        // The caller's check saw no app (create); then someone else created it.
        Assert.Equal(AppChangeError.None, _registry.Put(App("/race"), AppExpectation.Absent, force: false).Error);

        var result = _registry.Put(App("/race", "cat /etc/shadow"), AppExpectation.Absent, force: true);

        Assert.Equal(AppChangeError.AlreadyExists, result.Error);
        Assert.Equal("/race", result.ChangedApp);
        Assert.Equal("sleep 600", _registry.Get("/race")!.Current.Cmd);
    }

    [Fact]
    public void Put_ExpectedPresentButRemovedMeanwhile_RefusedAndNotCreated()
    {
        Assert.Equal(AppChangeError.None, _registry.Put(App("/gone"), AppExpectation.Absent, force: false).Error);
        Assert.Equal(AppChangeError.None, _registry.Delete("/gone", force: true).Error);
        _registry.FinishDeployment("/gone", _registry.Get("/gone")!.Deployment!.Id); // the stop deployment finished: the app is gone

        var result = _registry.Put(App("/gone", "cat /etc/shadow"), AppExpectation.Present, force: true);

        Assert.Equal(AppChangeError.Changed, result.Error);
        Assert.Null(_registry.Get("/gone"));
    }

    [Fact]
    public void Put_ExpectationHolds_CreatesThenUpdates()
    {
        Assert.Equal(AppChangeError.None, _registry.Put(App("/ok"), AppExpectation.Absent, force: false).Error);
        Assert.Equal(AppChangeError.None, _registry.Put(App("/ok", "sleep 700"), AppExpectation.Present, force: true).Error);

        Assert.Equal("sleep 700", _registry.Get("/ok")!.Current.Cmd);
    }

    [Fact]
    public void PutPlan_OneAppsExistenceChanged_WholePlanRefusedAndNothingChanged()
    {
        Assert.Equal(AppChangeError.None, _registry.Put(App("/g/existing"), AppExpectation.Absent, force: false).Error);
        Assert.Equal(AppChangeError.None, _registry.Put(App("/g/sneaked-in"), AppExpectation.Absent, force: false).Error);
        var before = _registry.Get("/g/existing")!.Current.Version;

        // Authorized as: update /g/existing, create /g/sneaked-in (which someone created after the check).
        var result = _registry.PutPlan(
            [(App("/g/existing", "sleep 1"), ImmutableArray<string>.Empty), (App("/g/sneaked-in", "cat /etc/shadow"), ImmutableArray<string>.Empty)],
            [], force: true, expected: new Dictionary<string, bool> { ["/g/existing"] = true, ["/g/sneaked-in"] = false });

        Assert.Equal(AppChangeError.Changed, result.Error);
        Assert.Equal("/g/sneaked-in", result.ChangedApp);
        Assert.Equal(before, _registry.Get("/g/existing")!.Current.Version);
        Assert.Equal("sleep 600", _registry.Get("/g/sneaked-in")!.Current.Cmd);
    }
}
