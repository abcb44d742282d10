using Drover.Client.Mesos;
using Drover.Core;
using Drover.Core.Mesos;
using Drover.Core.Security;
using Drover.Master.Iam;
using Drover.Testing;
using MesosHello;
using Microsoft.Extensions.DependencyInjection;

namespace Drover.Master.Tests.Mesos;

/// <summary>The typed scheduler client (src/Drover.Client/Mesos) and the example framework built on it, on a real cluster.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class MesosClientTests
{
    [Fact]
    public async Task HelloFramework_RunsItsTasksToCompletionAcrossAgents_AndTearsDown()
    {
        if (!Requirements.RootAvailable())
        {
            return;
        }

        await using var cluster = await InProcessCluster.StartAsync();
        await cluster.AddAgentAsync("hello-0", TestPorts.Resources("cpus:0.2;mem:1024;disk:1024", 10));
        await cluster.AddAgentAsync("hello-1", TestPorts.Resources("cpus:0.2;mem:1024;disk:1024", 10));
        using var output = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var exit = await new HelloFramework(cluster.Master.Url, 4, output).RunAsync(timeout.Token);

        Assert.True(exit == 0, output.ToString());
        Assert.Contains("all 4 tasks finished", output.ToString(), StringComparison.Ordinal);
        var tasks = (await cluster.Client.ListTasksAsync()).Where(t => t.FrameworkId is not null).ToList();
        Assert.Equal(4, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskState.Finished, t.State));
        Assert.Equal(2, tasks.Select(t => t.Hostname).Distinct().Count()); // 0.2 cpus per agent: two tasks each
    }

    [Fact]
    public async Task Client_WithCredential_SubscribesToSecuredMaster_WithoutOrWithWrongOne_Refused()
    {
        await using var cluster = await InProcessCluster.StartAsync(secure: true);
        var iam = cluster.Master.Services.GetRequiredService<IamStore>();
        Assert.True((await iam.CreateUserAsync(new IamUser { Uid = "hello", Kind = AccountKind.Service, PasswordHash = PasswordHasher.Hash("hello-secret", iterations: 10_000) }, CancellationToken.None)).Succeeded);
        Assert.True((await iam.GrantAsync(Rids.FrameworkRole("*"), "hello", isGroup: false, PermissionAction.Create, CancellationToken.None)).Succeeded);
        Assert.True((await iam.GrantAsync(Rids.TaskUser("nobody"), "hello", isGroup: false, PermissionAction.Create, CancellationToken.None)).Succeeded);
        var info = new MFrameworkInfo { User = "nobody", Name = "authenticated" };

        // With the credential: subscribed (the stream and the calls on it carry it), and torn down by a call.
        using (var client = new MesosSchedulerClient(cluster.Master.Url, new MesosCredential("hello", "hello-secret")))
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await foreach (var e in client.SubscribeAsync(info, timeout.Token))
            {
                Assert.Equal("SUBSCRIBED", e.Type);
                await client.TeardownAsync(timeout.Token);
                break;
            }
        }

        // Without one, or with a wrong secret: the master's 401, as an exception, and the example exits with 2.
        foreach (var credential in new MesosCredential?[] { null, new("hello", "wrong") })
        {
            using var client = new MesosSchedulerClient(cluster.Master.Url, credential);
            var refused = await Assert.ThrowsAsync<MesosCallException>(async () =>
            {
                await foreach (var _ in client.SubscribeAsync(info))
                {
                }
            });
            Assert.Equal(401, refused.StatusCode);

            using var output = new StringWriter();
            Assert.Equal(2, await new HelloFramework(cluster.Master.Url, 1, output, credential).RunAsync(CancellationToken.None));
            Assert.Contains("HTTP 401", output.ToString(), StringComparison.Ordinal);
        }

        Assert.DoesNotContain("hello-secret", new MesosCredential("hello", "hello-secret").ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RecordIo_ReadAsync_SplitsRecordsByLength()
    {
        var bytes = "5\nhello3\nabc0\n"u8.ToArray();
        var records = new List<string>();
        await foreach (var r in RecordIo.ReadAsync(new MemoryStream(bytes)))
        {
            records.Add(System.Text.Encoding.UTF8.GetString(r));
        }

        Assert.Equal(["hello", "abc", ""], records);
        await Assert.ThrowsAsync<EndOfStreamException>(async () =>
        {
            await foreach (var _ in RecordIo.ReadAsync(new MemoryStream("9\nshort"u8.ToArray())))
            {
            }
        });
    }
}
