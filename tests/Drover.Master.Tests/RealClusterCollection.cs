namespace Drover.Master.Tests;

/// <summary>
/// Test classes that run real clusters with real processes share this collection so they run one
/// after another: on a 2-core CI machine, several clusters at once starve health checks and make
/// timing-sensitive assertions (health floors, replacement times) flaky.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealClusterCollection
{
    public const string Name = "real cluster";
}
