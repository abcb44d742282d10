namespace Drover.Placement;

/// <summary>
/// The values of one field that a static constraint (IS, CLUSTER:value, LIKE, UNLIKE) allows, as flags per
/// value id and as a list, with the number of agents that have them: when that number is small, placement
/// looks only at those agents instead of searching the whole cluster.
/// </summary>
internal sealed class ValueSet
{
    public ValueSet(FieldIndex field, bool[] flags)
    {
        Flags = flags;
        var values = new List<int>();
        for (var id = 0; id < flags.Length; id++)
        {
            if (flags[id])
            {
                values.Add(id);
                Agents += field.AgentCount(id);
            }
        }

        Values = [.. values];
    }

    public bool[] Flags { get; }

    public int[] Values { get; }

    /// <summary>Agents (schedulable or not) with an allowed value.</summary>
    public int Agents { get; }

    /// <summary>The other values of the field (agents lacking the field are in neither).</summary>
    public ValueSet Complement(FieldIndex field) => new(field, [.. Flags.Select(f => !f)]);
}
