using Drover.Client;
using Drover.Client.Mesos;
using MesosHello;

// dotnet run --project examples/MesosHello -- [MASTER_URL] [TASKS]
// MESOS_PRINCIPAL and MESOS_SECRET (environment, so the secret stays out of the process list): authenticate as that principal.
// DROVER_CA_CERT: the PEM file of the cluster CA to trust for an https:// master (its <data-dir>/ca.pem).
var master = new Uri(args.Length > 0 ? args[0] : "http://127.0.0.1:5050");
var count = args.Length > 1 && int.TryParse(args[1], out var n) && n > 0 ? n : 5;
var principal = Environment.GetEnvironmentVariable("MESOS_PRINCIPAL");
var credential = string.IsNullOrEmpty(principal) ? null : new MesosCredential(principal, Environment.GetEnvironmentVariable("MESOS_SECRET") ?? "");
var trust = Environment.GetEnvironmentVariable("DROVER_CA_CERT") is { Length: > 0 } caFile
    ? new MasterTrust(Drover.Core.Security.Pki.PemCertificates.LoadAll(File.ReadAllText(caFile)).Value ?? throw new ArgumentException($"DROVER_CA_CERT: {caFile} holds no certificate"))
    : null;
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
return await new HelloFramework(master, count, Console.Out, credential, trust).RunAsync(cts.Token);
