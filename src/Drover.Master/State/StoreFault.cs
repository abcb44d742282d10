using Drover.Store;

namespace Drover.Master.State;

/// <summary>
/// Raised once, when a change the master had already applied in memory could not be made durable (a
/// <see cref="MasterJournal"/> flush failed: disk full, an I/O error, etcd unreachable past its retries). From then
/// on the master's memory is ahead of its store and nothing it holds can be trusted to act on: no command for an
/// unsaved change goes to an agent, every later write fails at once, and the host stops (exit code 4 for
/// <c>drover master</c> and <c>drover dev</c>, 3 for a highly available master, as on losing leadership), so the
/// restarted master re-reads the truth from the store. Kubernetes' apiserver and Mesos' registrar do the same on a
/// failed registry write: rolling back every record, ledger entry and offer a change touched is much harder to get
/// right than starting again from what is durable. The audit log raises it too when it cannot be written
/// (<see cref="Security.Audit.AuditLog"/>): calls that cannot be accounted for are not served. Thread-safe.
/// </summary>
public sealed class StoreFault
{
    private readonly CancellationTokenSource _raised = new();
    private string? _reason;

    /// <summary>Cancelled when the fault is raised.</summary>
    public CancellationToken Raised => _raised.Token;

    /// <summary>One sentence saying what failed; null until raised.</summary>
    public string? Reason => Volatile.Read(ref _reason);

    /// <summary>Raises the fault (the first reason wins) and returns the exception later writes fail with.</summary>
    internal void Raise(string reason)
    {
        if (Interlocked.CompareExchange(ref _reason, reason, null) is null)
        {
            _raised.Cancel();
        }
    }

    /// <summary>The exit code of a process whose master stopped on this fault.</summary>
    public const int ExitCode = 4;

    internal static StateStoreUnavailableException Unavailable(Exception e) => e as StateStoreUnavailableException
        ?? new StateStoreUnavailableException($"a write of the master's records failed: {e.Message}", outcomeUnknown: true, e);
}
