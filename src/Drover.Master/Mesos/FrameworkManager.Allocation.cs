using Drover.Core.Mesos;
using Drover.Core;
using Drover.Master.State;

namespace Drover.Master.Mesos;

/// <summary>One allocator pass: failovers, offer expiry and rescinds, built-in priority, inverse offers, DRF offers.</summary>
internal sealed partial class FrameworkManager
{
    /// <summary>Pending built-in tasks the allocator looks at per pass (the oldest first).</summary>
    private const int MaxPendingConsidered = 1_000;

    /// <summary>Below both of these an agent's leftover is not worth an offer (Mesos' MIN_CPUS / MIN_MEM).</summary>
    private const long MinOfferMilliCpus = 10;

    private const long MinOfferMemMiB = 32;

    private readonly Dictionary<string, AgentStatus> _knownAgents = new(StringComparer.Ordinal);
    private long _nextOfferId;

    /// <summary>Raised (under the lock) when the allocator sees an agent removed, for the operator stream.</summary>
    public event Action<OfferAgent>? AgentRemoved;

    /// <summary>
    /// Runs one allocation pass. Called only by <see cref="Allocator"/> (passes never overlap). Returns the
    /// number of offers made. Kills of frameworks whose failover timeout ran out happen after the lock is released.
    /// </summary>
    public int AllocatePass()
    {
        var now = _time.GetUtcNow();
        var expired = new List<string>();
        var made = 0;
        lock (_lock)
        {
            // The ledger's view is taken under our lock (order: ours, then the cluster's), so an ACCEPT between
            // its validation and its launch is counted either as Launching or as tasks, never as neither.
            var view = _state.OfferView(MaxPendingConsidered, includeTasks: _frameworks.Count > 0);
            var agents = view.Agents.ToDictionary(a => a.Id, StringComparer.Ordinal);
            TrackAgentsLocked(view);
            foreach (var fw in _frameworks.Values.ToList())
            {
                if (fw.DisconnectedAt is { } since && now - since >= fw.FailoverTimeout)
                {
                    RemoveLocked(fw, $"its scheduler did not re-subscribe within its failover timeout of {fw.FailoverTimeout.TotalSeconds} s");
                    expired.Add(fw.Id);
                }
            }

            var released = ExpireOffersLocked(agents, now);
            var available = BuiltInPriorityLocked(view, released, now);
            SendInverseOffersLocked(view);
            made = OfferLocked(view, available, now);
        }

        foreach (var fwId in expired)
        {
            foreach (var taskId in _state.ActiveTaskIdsOfFramework(fwId))
            {
                _state.Kill(taskId, "Framework failover timeout expired", TaskReasons.FrameworkRemoved);
            }
        }

        return made;
    }

    /// <summary>Agents going away: an operator event, and FAILURE to every scheduler, once per removed agent.</summary>
    private void TrackAgentsLocked(OfferView view)
    {
        foreach (var a in view.Agents)
        {
            var had = _knownAgents.TryGetValue(a.Id, out var before);
            if (a.Status == AgentStatus.Removed)
            {
                if (had && before != AgentStatus.Removed)
                {
                    AgentRemoved?.Invoke(a);
                    foreach (var fw in _frameworks.Values)
                    {
                        fw.Stream?.Send(Encode(new MEvent { Type = "FAILURE", Failure = new MFailure(new MId(a.Id), null, null) }));
                    }
                }
            }
            _knownAgents[a.Id] = a.Status;
        }
    }

    /// <summary>Rescinds offers that timed out or whose agent is no longer schedulable (unreachable, removed, draining).</summary>
    private Dictionary<string, Resources> ExpireOffersLocked(Dictionary<string, OfferAgent> agents, DateTimeOffset now)
    {
        var released = new Dictionary<string, Resources>(StringComparer.Ordinal);
        foreach (var fw in _frameworks.Values)
        {
            foreach (var offer in fw.Offers.Values.ToList())
            {
                var agentOk = agents.TryGetValue(offer.AgentId, out var a) && a.Schedulable;
                if (agentOk && now - offer.CreatedAt < _options.OfferTimeout)
                {
                    continue;
                }

                RescindLocked(fw, offer);
                released[offer.AgentId] = released.GetValueOrDefault(offer.AgentId, Resources.Zero).Add(offer.Resources);
            }
        }

        return released;
    }

    private void RescindLocked(Framework fw, Offer offer)
    {
        fw.Offers.Remove(offer.Id);
        _state.ReleaseOffer(offer.AgentId, offer.Resources);
        fw.Stream?.Send(Encode(new MEvent { Type = "RESCIND", Rescind = new MRescind(new MId(offer.Id)) }));
    }

    /// <summary>
    /// Built-in work first: first-fits the recently submitted pending built-in tasks (resources only) into the
    /// agents' free resources and keeps what they need out of this pass's offers; a task that fits only with an
    /// outstanding offer's resources gets them (the offers on that agent are rescinded). Returns what is left to
    /// offer per schedulable agent (the view's free plus what this pass already took back from expired offers).
    /// </summary>
    private Dictionary<string, Resources> BuiltInPriorityLocked(OfferView view, Dictionary<string, Resources> released, DateTimeOffset now)
    {
        var available = view.Agents.Where(a => a.Schedulable)
            .ToDictionary(a => a.Id, a => released.TryGetValue(a.Id, out var back) ? a.Free.Add(back) : a.Free, StringComparer.Ordinal);
        var order = view.Agents.Where(a => a.Schedulable).Select(a => a.Id).ToList();
        foreach (var demand in view.PendingBuiltIn)
        {
            if (now - demand.SubmittedAt > _options.BuiltInPriorityWindow)
            {
                continue;
            }

            var need = demand.Resources with { Ports = PortRanges.Empty };
            var fit = order.FirstOrDefault(id => available[id].Contains(need));
            if (fit is null)
            {
                // Fits only with an outstanding offer's resources? Then the offers on that agent go back.
                fit = order.FirstOrDefault(id => available[id].Add(OfferedOn(id)).Contains(need));
                if (fit is null)
                {
                    continue; // fits nowhere even then: it holds nothing back from frameworks
                }

                foreach (var fw in _frameworks.Values)
                {
                    foreach (var offer in fw.Offers.Values.Where(o => o.AgentId == fit).ToList())
                    {
                        RescindLocked(fw, offer);
                        available[fit] = available[fit].Add(offer.Resources);
                    }
                }
            }

            available[fit] = available[fit].Subtract(need);
        }

        return available;
    }

    private Resources OfferedOn(string agentId)
    {
        var sum = Resources.Zero;
        foreach (var fw in _frameworks.Values)
        {
            foreach (var o in fw.Offers.Values)
            {
                if (o.AgentId == agentId)
                {
                    sum = sum.Add(o.Resources);
                }
            }
        }

        return sum;
    }

    /// <summary>
    /// Mesos maintenance as Drover's drains: a framework with tasks on a draining agent gets one inverse offer
    /// per drain (unavailability from the drain's start until its deadline); it is rescinded when the drain ends.
    /// </summary>
    private void SendInverseOffersLocked(OfferView view)
    {
        var draining = view.Agents.Where(a => a.DrainStartedAt is not null && a.Status != AgentStatus.Removed).ToDictionary(a => a.Id, StringComparer.Ordinal);
        foreach (var fw in _frameworks.Values)
        {
            foreach (var io in fw.InverseOffers.Values.ToList())
            {
                if (!draining.TryGetValue(io.AgentId, out var a) || a.DrainStartedAt != io.DrainStartedAt)
                {
                    fw.InverseOffers.Remove(io.Id);
                    fw.Stream?.Send(Encode(new MEvent { Type = "RESCIND_INVERSE_OFFER", RescindInverseOffer = new MRescindInverseOffer(new MId(io.Id)) }));
                }
            }

            if (fw.Stream is null || !view.FrameworkAgents.TryGetValue(fw.Id, out var on))
            {
                continue;
            }

            var batch = new List<MInverseOffer>();
            foreach (var agentId in on)
            {
                if (!draining.TryGetValue(agentId, out var a) || fw.InverseOffers.Values.Any(io => io.AgentId == agentId))
                {
                    continue;
                }

                var io = new InverseOffer($"{_masterId}-I{Interlocked.Increment(ref _nextOfferId)}", agentId, a.DrainStartedAt!.Value);
                fw.InverseOffers[io.Id] = io;
                var start = a.DrainStartedAt!.Value;
                var duration = (a.DrainDeadline ?? start) - start;
                batch.Add(new MInverseOffer
                {
                    Id = new MId(io.Id),
                    FrameworkId = new MId(fw.Id),
                    AgentId = new MId(agentId),
                    Unavailability = new MUnavailability(new MTimeInfo(start.ToUnixTimeMilliseconds() * 1_000_000), new MDurationInfo(duration.Ticks * 100)),
                });
            }

            if (batch.Count > 0)
            {
                fw.Stream.Send(Encode(new MEvent { Type = "INVERSE_OFFERS", InverseOffers = new MInverseOffers(batch) }));
            }
        }
    }

    /// <summary>
    /// Offers each agent's leftover, whole, to the (role, framework) DRF picks: lowest weighted dominant share
    /// first, counting live tasks and outstanding offers. Agents are visited in a random order so no agent is
    /// always offered first. A framework gets at most one outstanding offer per agent.
    /// </summary>
    private int OfferLocked(OfferView view, Dictionary<string, Resources> available, DateTimeOffset now)
    {
        var connected = _frameworks.Values.Where(f => f.Stream is not null).ToList();
        if (connected.Count == 0)
        {
            return 0;
        }

        var total = view.Agents.Where(a => a.Status == AgentStatus.Active).Aggregate(Resources.Zero, (acc, a) => acc.Add(a.Total with { Ports = PortRanges.Empty }));
        var allocation = _frameworks.Values.ToDictionary(f => f.Id,
            f => f.Offers.Values.Aggregate(view.FrameworkUsage.GetValueOrDefault(f.Id, Resources.Zero).Add(f.Launching), (acc, o) => acc.Add(o.Resources with { Ports = PortRanges.Empty })),
            StringComparer.Ordinal);
        var byAgent = view.Agents.ToDictionary(a => a.Id, StringComparer.Ordinal);
        var made = new Dictionary<Framework, List<MOffer>>();
        foreach (var agentId in available.Keys.OrderBy(_ => Random.Shared.Next()).ToList())
        {
            var free = available[agentId];
            if (free.MilliCpus < MinOfferMilliCpus && free.MemMiB < MinOfferMemMiB)
            {
                continue;
            }

            var candidates = new List<DrfClient>();
            foreach (var fw in connected)
            {
                if (IsFiltered(fw, agentId, free, now))
                {
                    continue;
                }

                var roles = fw.Roles.Where(r => !fw.SuppressedRoles.Contains(r)).ToList();
                if (roles.Count == 0 || fw.Offers.Values.Any(o => o.AgentId == agentId))
                {
                    continue;
                }

                candidates.Add(new DrfClient(fw.Id, [.. roles], allocation[fw.Id]));
            }

            var all = _frameworks.Values.Select(f => new DrfClient(f.Id, f.Roles, allocation[f.Id])).ToList();
            if (Drf.Next(candidates, all, RoleWeight, total) is not var (fwId, role))
            {
                continue;
            }

            if (!_state.TryHoldForOffer(agentId, free))
            {
                continue; // placement took some of it meanwhile; the next pass sees the new free
            }

            var framework = _frameworks[fwId];
            var agent = byAgent[agentId];
            var offer = new Offer($"{_masterId}-O{Interlocked.Increment(ref _nextOfferId)}", fwId, agentId, agent.Hostname, free, role, now);
            framework.Offers[offer.Id] = offer;
            allocation[fwId] = allocation[fwId].Add(free with { Ports = PortRanges.Empty });
            if (!made.TryGetValue(framework, out var list))
            {
                made[framework] = list = [];
            }

            list.Add(ToMesos(offer, agent));
        }

        foreach (var (fw, offers) in made)
        {
            fw.Stream?.Send(Encode(new MEvent { Type = "OFFERS", Offers = new MOffers(offers) }));
        }

        return made.Values.Sum(l => l.Count);
    }

    private double RoleWeight(string role) => _options.RoleWeights.TryGetValue(role, out var w) && w > 0 ? w : 1.0;

    private static MOffer ToMesos(Offer offer, OfferAgent agent) => new()
    {
        Id = new MId(offer.Id),
        FrameworkId = new MId(offer.FrameworkId),
        AgentId = new MId(offer.AgentId),
        Hostname = offer.Hostname,
        Resources = MesosResources.ToMesos(offer.Resources, offer.Role),
        Attributes = [.. agent.Attributes.Select(kv => kv.Value.Scalar is { } d
            ? new MAttribute { Name = kv.Key, Type = "SCALAR", Scalar = new MScalar(d) }
            : new MAttribute { Name = kv.Key, Type = "TEXT", Text = new MText(kv.Value.Text ?? "") })],
        Domain = agent.Domain is { } d ? new MDomainInfo(new MFaultDomain(new MName(d.Region), new MName(d.Zone))) : null,
        AllocationInfo = new MAllocationInfo(offer.Role),
    };
}
