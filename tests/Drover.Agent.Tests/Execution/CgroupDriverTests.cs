using System.Diagnostics;
using System.Globalization;
using Drover.Agent.Execution.Cgroups;
using Xunit.Abstractions;

namespace Drover.Agent.Tests.Execution;

/// <summary>Detection and the v2 driver against a fake directory tree; the v1 driver against the real kernel.</summary>
public sealed class CgroupDriverTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("drover-cgroup-fake-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Detect_RootWithCgroupControllers_ReturnsV2()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids\n");

        Assert.Equal(CgroupVersion.V2, CgroupDriver.Detect(_root).Version);
    }

    [Fact]
    public void Detect_PerControllerHierarchies_ReturnsV1WithTheMountedOnes()
    {
        foreach (var dir in new[] { "memory", "cpu,cpuacct", "freezer", "unified" })
        {
            Directory.CreateDirectory(Path.Combine(_root, dir));
            File.WriteAllText(Path.Combine(_root, dir, "cgroup.procs"), "");
        }

        var driver = Assert.IsType<CgroupV1Driver>(CgroupDriver.Detect(_root));

        Assert.Equal(CgroupVersion.V1, driver.Version);
        Assert.Equal(Path.Combine(_root, "memory"), driver.Mounts["memory"]);
        Assert.Equal(Path.Combine(_root, "cpu,cpuacct"), driver.Mounts["cpu"]);
        Assert.False(driver.Mounts.ContainsKey("pids"));
        Assert.Equal(
            [Path.Combine(_root, "memory", "a/b"), Path.Combine(_root, "cpu,cpuacct", "a/b"), Path.Combine(_root, "freezer", "a/b")],
            driver.Open("a/b").Directories.ToArray());
    }

    [Fact]
    public void Detect_ThisMachine_MatchesItsLayout()
    {
        var expected = File.Exists("/sys/fs/cgroup/cgroup.controllers") ? CgroupVersion.V2 : CgroupVersion.V1;

        Assert.Equal(expected, CgroupDriver.Detect().Version);
    }

    [Fact]
    public void V2Create_WithLimits_WritesLimitFilesAndEnablesControllersInAncestors()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n");
        var task = Path.Combine(_root, "drover", "agent-x", "task.1");
        Directory.CreateDirectory(task);
        File.WriteAllText(Path.Combine(task, "memory.swap.max"), "max\n");
        File.WriteAllText(Path.Combine(task, "memory.oom.group"), "0\n");
        var driver = new CgroupV2Driver(_root);

        var cgroup = driver.Create("drover/agent-x/task.1", new CgroupLimits { MemoryMiB = 32, MilliCpus = 1500, PidsLimit = 50 });

        Assert.Equal([task], cgroup.Directories.ToArray());
        Assert.Equal("33554432", Read(task, "memory.max"));
        Assert.Equal("0", Read(task, "memory.swap.max"));
        Assert.Equal("1", Read(task, "memory.oom.group"));
        Assert.Equal("150000 100000", Read(task, "cpu.max"));
        Assert.Equal("59", Read(task, "cpu.weight"));
        Assert.Equal("50", Read(task, "pids.max"));
        foreach (var dir in new[] { _root, Path.Combine(_root, "drover"), Path.Combine(_root, "drover", "agent-x") })
        {
            Assert.Equal("+cpu +memory +pids", Read(dir, "cgroup.subtree_control"));
        }

        Assert.False(File.Exists(Path.Combine(task, "cgroup.subtree_control")));
    }

    [Fact]
    public void V2Create_ParentLacksAController_EnablesOnlyWhatIsAvailable()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "memory pids\n");
        var driver = new CgroupV2Driver(_root);

        driver.Create("drover/t", new CgroupLimits { MemoryMiB = 1 });

        Assert.Equal("+memory +pids", Read(_root, "cgroup.subtree_control"));
    }

    [Fact]
    public void V2Create_NoLimits_WritesNoLimitFiles()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids\n");
        var driver = new CgroupV2Driver(_root);

        var cgroup = driver.Create("drover/agent-y/task.2", CgroupLimits.None);

        foreach (var file in new[] { "memory.max", "cpu.max", "cpu.weight", "pids.max" })
        {
            Assert.False(File.Exists(Path.Combine(cgroup.Directories[0], file)), file);
        }
    }

    [Fact]
    public void V2Create_ZeroCpus_WritesMinimumWeightAndNoQuota()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids\n");
        var driver = new CgroupV2Driver(_root);

        var cgroup = driver.Create("drover/agent-z/task.3", new CgroupLimits { MilliCpus = 0 });

        Assert.Equal("1", Read(cgroup.Directories[0], "cpu.weight"));
        Assert.False(File.Exists(Path.Combine(cgroup.Directories[0], "cpu.max")));
    }

    [Fact]
    public void V2WasOomKilled_ReadsOomKillFromMemoryEvents()
    {
        var driver = new CgroupV2Driver(_root);
        var cgroup = driver.Open("drover/t");
        Directory.CreateDirectory(cgroup.Directories[0]);
        var events = Path.Combine(cgroup.Directories[0], "memory.events");

        File.WriteAllText(events, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n");
        Assert.False(driver.WasOomKilled(cgroup, diedBySigkill: true));

        File.WriteAllText(events, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
        Assert.True(driver.WasOomKilled(cgroup, diedBySigkill: false));
    }

    [Fact]
    public async Task V2AddProcessListPidsAndKillAll_UseCgroupProcsAndCgroupKill()
    {
        var driver = new CgroupV2Driver(_root);
        var cgroup = driver.Open("drover/t");
        var dir = cgroup.Directories[0];
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cgroup.procs"), "");
        File.WriteAllText(Path.Combine(dir, "cgroup.kill"), "");

        driver.AddProcess(cgroup, 4242);
        Assert.Equal([4242], driver.ListPids(cgroup));

        File.WriteAllText(Path.Combine(dir, "cgroup.procs"), ""); // the kernel empties it after the kill
        Assert.True(await driver.KillAllAsync(cgroup));
        Assert.Equal("1", Read(dir, "cgroup.kill"));
    }

    [Fact]
    public void CgroupLimits_CpuConversions_MatchKernelConventions()
    {
        Assert.Equal(50_000, new CgroupLimits { MilliCpus = 500 }.CpuQuotaMicros);
        Assert.Equal(1_000, new CgroupLimits { MilliCpus = 1 }.CpuQuotaMicros); // kernel minimum
        Assert.Null(CgroupLimits.None.CpuQuotaMicros);
        Assert.Equal(1024, new CgroupLimits { MilliCpus = 1000 }.CpuShares);
        Assert.Equal(2, new CgroupLimits { MilliCpus = 1 }.CpuShares);
        Assert.Equal(39, new CgroupLimits { MilliCpus = 1000 }.CpuWeight); // as runc/systemd convert 1024 shares
        Assert.Equal(1, CgroupLimits.None.CpuWeight);
        Assert.InRange(new CgroupLimits { MilliCpus = 1_000_000 }.CpuWeight, 1, 10_000);
    }

    [Fact]
    public void Open_InvalidName_Throws()
    {
        var driver = new CgroupV2Driver(_root);

        Assert.Throws<ArgumentException>(() => driver.Open("drover/../../etc"));
        Assert.Throws<ArgumentException>(() => driver.Open(""));
    }

    [Fact]
    public async Task V1Driver_RealKernel_CreatesLimitsJoinsKillsForkersAndRemoves()
    {
        if (!Privileges.RequireRoot(output))
        {
            return;
        }

        var driver = CgroupDriver.Detect();
        if (driver.Version != CgroupVersion.V1)
        {
            output.WriteLine("This machine uses cgroup v2; the v1 driver is covered by the fake-tree tests only.");
            return;
        }

        var name = $"drover-test/v1-driver-{Environment.ProcessId}/t.1";
        var cgroup = driver.Create(name, new CgroupLimits { MemoryMiB = 64, MilliCpus = 250, PidsLimit = 64 });
        try
        {
            Assert.Equal("25000", Read(cgroup.Directories.Single(d => d.Contains("/cpu/", StringComparison.Ordinal)), "cpu.cfs_quota_us"));

            // A shell that joins the cgroup itself (so no child escapes) and then forks without pause:
            // freezing stops the race between listing and killing.
            var start = new ProcessStartInfo("sh", ["-c", "for f in \"$@\"; do echo $$ > \"$f\"; done; while :; do sleep 100 & done", "forker"]);
            foreach (var procs in cgroup.ProcsFiles)
            {
                start.ArgumentList.Add(procs);
            }

            using var forker = Process.Start(start)!;
            await Eventually.TrueAsync(() => driver.ListPids(cgroup).Count > 3, "the forker forks");

            Assert.True(await driver.KillAllAsync(cgroup));
            Assert.Empty(driver.ListPids(cgroup));
            await forker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.False(driver.WasOomKilled(cgroup, diedBySigkill: true));
        }
        finally
        {
            Assert.True(await driver.RemoveAsync(cgroup));
            await driver.RemoveAsync(driver.Open($"drover-test/v1-driver-{Environment.ProcessId}"));
        }

        Assert.All(cgroup.Directories, d => Assert.False(Directory.Exists(d), d));
    }

    private static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file)).Trim();
}
