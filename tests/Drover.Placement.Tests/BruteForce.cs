using System.Globalization;
using System.Text.RegularExpressions;
using Drover.Core;

namespace Drover.Placement.Tests;

/// <summary>
/// An independent, deliberately plain implementation of the documented placement semantics (README: filters,
/// scores, ties to the lowest id, Marathon constraints, resources consumed in order), used as the oracle in the
/// differential tests. It shares no code with the engine beyond the public model; it is quadratic and slow.
/// </summary>
internal static class BruteForce
{
    /// <summary>Task id → agent id (null when unplaced) and ports, in request order.</summary>
    public static List<(string TaskId, string? AgentId, int[] Ports)> Place(PlacementStrategy strategy, ClusterSnapshot cluster, IReadOnlyList<PlacementRequest> requests)
    {
        var agents = cluster.Agents;
        var freeCpu = agents.Select(a => a.Free.MilliCpus).ToArray();
        var freeMem = agents.Select(a => a.Free.MemMiB).ToArray();
        var freeDisk = agents.Select(a => a.Free.DiskMiB).ToArray();
        var freeGpus = agents.Select(a => a.Free.Gpus).ToArray();
        var freePorts = agents.Select(a => a.Free.Ports).ToArray();
        var groups = agents.Select(a => a.GroupCounts.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)).ToArray();
        var result = new List<(string, string?, int[])>();

        // README: largest first by share of the cluster's total cpus + memory + disk + gpus, ties in request order.
        double Total(Func<Resources, long> of) => agents.Sum(a => (double)Math.Max(0, of(a.Total)));
        double[] totals = [Total(r => r.MilliCpus), Total(r => r.MemMiB), Total(r => r.DiskMiB), Total(r => r.Gpus)];
        double Size(PlacementRequest r)
        {
            long[] need = [r.Resources.MilliCpus, r.Resources.MemMiB, r.Resources.DiskMiB, r.Resources.Gpus];
            return Enumerable.Range(0, 4).Sum(d => totals[d] > 0 ? Math.Max(0, need[d]) / totals[d] : 0);
        }

        foreach (var request in requests.Select((r, i) => (r, i)).OrderByDescending(x => Size(x.r)).ThenBy(x => x.i).Select(x => x.r))
        {
            var need = request.Resources;
            var feasibleByConstraints = Enumerable.Range(0, agents.Length).Select(_ => true).ToArray();
            foreach (var constraint in request.Constraints)
            {
                var accepts = Accepts(constraint, request.Group, agents, groups);
                for (var i = 0; i < agents.Length; i++)
                {
                    feasibleByConstraints[i] &= accepts[i];
                }
            }

            var best = -1;
            var bestScore = double.NegativeInfinity;
            for (var i = 0; i < agents.Length; i++)
            {
                if (!agents[i].Schedulable || freeCpu[i] < need.MilliCpus || freeMem[i] < need.MemMiB || freeDisk[i] < need.DiskMiB
                    || freeGpus[i] < need.Gpus || freePorts[i].Count < Math.Max(0, request.PortCount) || !feasibleByConstraints[i])
                {
                    continue;
                }

                var binpack = 50.0 * (Utilisation(agents[i].Total.MilliCpus, freeCpu[i], need.MilliCpus) + Utilisation(agents[i].Total.MemMiB, freeMem[i], need.MemMiB));
                var score = strategy == PlacementStrategy.Spread ? 100.0 - binpack : binpack;
                if (score > bestScore || (score == bestScore && string.CompareOrdinal(agents[i].Id, agents[best].Id) < 0))
                {
                    best = i;
                    bestScore = score;
                }
            }

            if (best < 0)
            {
                result.Add((request.TaskId, null, []));
                continue;
            }

            freeCpu[best] -= need.MilliCpus;
            freeMem[best] -= need.MemMiB;
            freeDisk[best] -= need.DiskMiB;
            freeGpus[best] -= need.Gpus;
            var ports = request.PortCount > 0 ? freePorts[best].TakeLowest(request.PortCount)! : [];
            freePorts[best] = freePorts[best].Subtract(PortRanges.Of(ports));
            groups[best][request.Group] = groups[best].GetValueOrDefault(request.Group) + 1;
            result.Add((request.TaskId, agents[best].Id, ports));
        }

        return result;
    }

    private static double Utilisation(long total, long free, long request) =>
        total <= 0 ? 1.0 : Math.Clamp((double)(total - free + request) / total, 0.0, 1.0);

    private static string? ValueOf(AgentSnapshot agent, string field) => field switch
    {
        "hostname" or "@hostname" => agent.Hostname,
        "@region" => agent.Domain?.Region,
        "@zone" => agent.Domain?.Zone,
        _ => agent.Attributes.TryGet(field, out var v) ? v.ToString() : null,
    };

    private static bool[] Accepts(Constraint constraint, string group, IReadOnlyList<AgentSnapshot> agents, Dictionary<string, int>[] groups)
    {
        var values = agents.Select(a => ValueOf(a, constraint.Field)).ToArray();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < agents.Count; i++)
        {
            if (values[i] is { } v)
            {
                counts[v] = counts.GetValueOrDefault(v) + groups[i].GetValueOrDefault(group);
            }
        }

        Func<string, bool> accepts;
        switch (constraint.Operator)
        {
            case ConstraintOperator.Unique:
                accepts = v => counts[v] == 0;
                break;
            case ConstraintOperator.MaxPer when int.TryParse(constraint.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var max):
                accepts = v => counts[v] < max;
                break;
            case ConstraintOperator.Cluster when constraint.Value is null:
                var anyPlaced = counts.Values.Any(n => n > 0);
                accepts = v => !anyPlaced || counts[v] > 0;
                break;
            case ConstraintOperator.Cluster or ConstraintOperator.Is when constraint.Value is not null:
                accepts = v => v == constraint.Value;
                break;
            case ConstraintOperator.GroupBy:
                var known = agents.Select((a, i) => (a, i)).Where(x => x.a.Schedulable && values[x.i] is not null).Select(x => counts[values[x.i]!]).ToList();
                var min = known.Count == 0 ? int.MaxValue : known.Min();
                accepts = v => counts[v] == min;
                break;
            case ConstraintOperator.Like or ConstraintOperator.Unlike when IsValidRegex(constraint.Value):
                var regex = new Regex($@"\A(?:{constraint.Value})\z", RegexOptions.CultureInvariant);
                var like = constraint.Operator == ConstraintOperator.Like;
                accepts = v => regex.IsMatch(v) == like;
                break;
            default:
                accepts = _ => false;
                break;
        }

        return [.. values.Select(v => v is not null && accepts(v))];
    }

    private static bool IsValidRegex(string? pattern)
    {
        if (pattern is null)
        {
            return false;
        }

        try
        {
            _ = new Regex($@"\A(?:{pattern})\z");
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
