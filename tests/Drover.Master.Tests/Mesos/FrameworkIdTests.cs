using System.Text.Json;
using System.Text.RegularExpressions;
using Drover.Core.Mesos;
using Drover.Master.Mesos;
using Drover.Master.State;
using Drover.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Drover.Master.Tests.Mesos;

/// <summary>
/// Framework ids are the master's to give: a SUBSCRIBE may not pick one (dev cluster: every caller is anyone, so the
/// id is all that separates frameworks), new ids cannot be guessed, and a new framework never takes the record of a
/// live or removed one. The framework manager on the real ledger, without a store (a dev cluster's behaviour).
/// </summary>
public sealed class FrameworkIdTests
{
    private readonly ManualTimeProvider _time = new();
    private readonly FrameworkManager _frameworks;

    public FrameworkIdTests()
    {
        var options = new MasterOptions();
        var state = new ClusterState(options, _time, NullLogger<ClusterState>.Instance, MasterJournal.None);
        _frameworks = new FrameworkManager(state, null, options, _time, NullLogger<FrameworkManager>.Instance);
    }

    private (Framework? Framework, SchedulerStream? Stream, string? Refusal) Subscribe(string name, string? id = null)
    {
        var (fw, stream, error, refusal) = _frameworks.Subscribe(new MCall
        {
            Type = "SUBSCRIBE",
            FrameworkId = id is null ? null : new MId(id),
            Subscribe = new MSubscribe(new MFrameworkInfo { User = "nobody", Name = name, Id = id is null ? null : new MId(id), FailoverTimeout = 60 }, null),
        }, "localhost:5050");
        Assert.Null(error.Error);
        return (fw, stream, refusal);
    }

    private static MEvent First(SchedulerStream stream)
    {
        Assert.True(stream.Reader.TryRead(out var bytes));
        return JsonSerializer.Deserialize(bytes, MesosV1JsonContext.Default.MEvent)!;
    }

    [Fact]
    public void Subscribe_NamingAnIdNeverIssued_RefusedAndNothingRegistered()
    {
        var (own, _, _) = Subscribe("own");
        var nextInMesosForm = $"{_frameworks.MasterId}-0002";

        foreach (var squat in new[] { nextInMesosForm, "chosen", own!.Id + ".x" })
        {
            var (fw, stream, refusal) = Subscribe("squatter", squat);

            Assert.Null(fw);
            Assert.Null(stream);
            Assert.Equal(FrameworkManager.UnknownFramework(squat), refusal);
        }

        var (frameworks, completed, _, _) = _frameworks.OperatorView(System.Collections.Immutable.ImmutableDictionary<string, Drover.Core.Resources>.Empty);
        Assert.Equal([own.Id], frameworks.Select(f => f.FrameworkInfo!.Id!.Value));
        Assert.Empty(completed);
    }

    [Fact]
    public void Subscribe_WithTheIdItWasGiven_FailsOver()
    {
        var (fw, first, _) = Subscribe("mine");

        var (again, second, refusal) = Subscribe("mine", fw!.Id);

        Assert.Null(refusal);
        Assert.Same(fw, again);
        Assert.NotSame(first, second);
        Assert.Equal(fw.Id, First(second!).Subscribed!.FrameworkId.Value);
    }

    [Fact]
    public void Subscribe_NewFrameworks_RandomIdsWithoutDots()
    {
        var ids = Enumerable.Range(0, 50).Select(i => Subscribe($"f{i}").Framework!.Id).ToList();

        Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());
        Assert.All(ids, id => Assert.Matches("^" + Regex.Escape(_frameworks.MasterId) + "-[0-9a-f]{16}$", id));
        Assert.All(ids, id => Assert.DoesNotContain('.', id));
    }

    [Fact]
    public void Subscribe_GeneratedIdOfALiveOrRemovedFramework_SkippedNeverReplaced()
    {
        var suffixes = new Queue<string>(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"]);
        _frameworks.NewIdSuffix = suffixes.Dequeue;
        var (live, _, _) = Subscribe("live");
        var (removed, stream, _) = Subscribe("removed");
        Assert.Equal(202, _frameworks.Handle(new MCall { Type = "TEARDOWN", FrameworkId = new MId(removed!.Id) }, stream!.Id).Status);

        var (next, _, _) = Subscribe("next");

        Assert.Equal($"{_frameworks.MasterId}-cccccccccccccccc", next!.Id);
        Assert.Empty(suffixes);
        Assert.Equal("live", live!.Info.Name);
        var (frameworks, completed, _, _) = _frameworks.OperatorView(System.Collections.Immutable.ImmutableDictionary<string, Drover.Core.Resources>.Empty);
        Assert.Equal(new[] { $"{live.Id} live", $"{next.Id} next" }, frameworks.Select(f => $"{f.FrameworkInfo!.Id!.Value} {f.FrameworkInfo.Name}").Order(StringComparer.Ordinal));
        Assert.Equal($"{removed.Id} removed", Assert.Single(completed).FrameworkInfo!.Id!.Value + " " + completed[0].FrameworkInfo!.Name);

        // The removed framework's id stays removed.
        Assert.Equal("Framework has been removed", Subscribe("removed", removed.Id).Refusal);
    }
}
