using System.Collections.Immutable;
using System.Globalization;
using Drover.Core;
using Drover.Placement.Filters;

namespace Drover.Placement;

/// <summary>
/// Explains, in one sentence, why a request fitted no agent. Runs only on failure, so it may allocate:
/// it re-runs the filters over every agent and charges each rejection to the first filter that rejected it.
/// </summary>
internal static class FailureReasons
{
    public const string NoAgents = "no agents are registered";

    public static PlacementFailure Explain(PlacementState state, PlacementRequest request, in Need need, ReadOnlySpan<CompiledConstraint> constraints)
    {
        var work = state.Work;
        var notSchedulable = 0;
        var shortOfPorts = 0;
        Span<int> shortOf = stackalloc int[(int)Shortfall.Gpus + 1];
        var byConstraint = new int[constraints.Length];
        var anySchedulable = false;
        long maxCpu = 0, maxMem = 0, maxDisk = 0;
        int maxGpus = 0, maxPorts = 0;
        for (var i = 0; i < work.Length; i++)
        {
            ref readonly var agent = ref work[i];
            if (!SchedulableFilter.Accepts(agent))
            {
                notSchedulable++;
                continue;
            }

            anySchedulable = true;
            maxCpu = Math.Max(maxCpu, agent.FreeCpu);
            maxMem = Math.Max(maxMem, agent.FreeMem);
            maxDisk = Math.Max(maxDisk, agent.FreeDisk);
            maxGpus = Math.Max(maxGpus, agent.FreeGpus);
            maxPorts = Math.Max(maxPorts, agent.FreePortCount);

            var shortfall = ResourcesFilter.FirstShortfall(agent, need);
            if (shortfall != Shortfall.None)
            {
                shortOf[(int)shortfall]++;
            }
            else if (!PortsFilter.Accepts(agent, need))
            {
                shortOfPorts++;
            }
            else if (ConstraintsFilter.FirstViolated(constraints, i) is var c and >= 0)
            {
                byConstraint[c]++;
            }
        }

        var resources = shortOf[(int)Shortfall.Cpus] + shortOf[(int)Shortfall.Mem] + shortOf[(int)Shortfall.Disk] + shortOf[(int)Shortfall.Gpus];
        var rejectedBy = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        AddIfAny(rejectedBy, SchedulableFilter.Name, notSchedulable);
        AddIfAny(rejectedBy, ResourcesFilter.Name, resources);
        AddIfAny(rejectedBy, PortsFilter.Name, shortOfPorts);
        AddIfAny(rejectedBy, ConstraintsFilter.Name, Sum(byConstraint));

        // When no schedulable agent could hold the request even empty of constraints, that is the story.
        var reason = !anySchedulable ? null
            : need.Cpu > maxCpu ? Invariant($"no agent has {Resources.FormatCpus(need.Cpu)} cpus free; the largest has {Resources.FormatCpus(maxCpu)}")
            : need.Mem > maxMem ? Invariant($"no agent has {need.Mem} MiB of memory free; the largest has {maxMem} MiB")
            : need.Disk > maxDisk ? Invariant($"no agent has {need.Disk} MiB of disk free; the largest has {maxDisk} MiB")
            : need.Gpus > maxGpus ? Invariant($"no agent has {need.Gpus} gpus free; the largest has {maxGpus}")
            : need.PortCount > maxPorts ? Invariant($"no agent has {need.PortCount} free ports; the most is {maxPorts}")
            : null;

        if (reason is null)
        {
            var parts = new List<(int Count, string Text)>
            {
                (notSchedulable, Invariant($"{notSchedulable} not schedulable")),
                (shortOf[(int)Shortfall.Cpus], Invariant($"{shortOf[(int)Shortfall.Cpus]} without {Resources.FormatCpus(need.Cpu)} cpus free")),
                (shortOf[(int)Shortfall.Mem], Invariant($"{shortOf[(int)Shortfall.Mem]} without {need.Mem} MiB of memory free")),
                (shortOf[(int)Shortfall.Disk], Invariant($"{shortOf[(int)Shortfall.Disk]} without {need.Disk} MiB of disk free")),
                (shortOf[(int)Shortfall.Gpus], Invariant($"{shortOf[(int)Shortfall.Gpus]} without {need.Gpus} gpus free")),
                (shortOfPorts, Invariant($"{shortOfPorts} without {need.PortCount} free ports")),
            };
            for (var k = 0; k < byConstraint.Length; k++)
            {
                parts.Add((byConstraint[k], Invariant($"{byConstraint[k]} rejected by constraint {request.Constraints[k]}")));
            }

            var agents = work.Length == 1 ? "agent fits" : "agents fit";
            var details = string.Join(", ", parts.Where(p => p.Count > 0).OrderByDescending(p => p.Count).Select(p => p.Text));
            reason = Invariant($"0 of {work.Length} {agents}: {details}");
        }

        return new PlacementFailure { TaskId = request.TaskId, Reason = reason, RejectedBy = rejectedBy.ToImmutable() };
    }

    private static void AddIfAny(ImmutableDictionary<string, int>.Builder rejectedBy, string filter, int count)
    {
        if (count > 0)
        {
            rejectedBy.Add(filter, count);
        }
    }

    private static int Sum(int[] counts)
    {
        var sum = 0;
        foreach (var n in counts)
        {
            sum += n;
        }

        return sum;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
