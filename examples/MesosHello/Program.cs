using MesosHello;

// dotnet run --project examples/MesosHello -- [MASTER_URL] [TASKS]
var master = new Uri(args.Length > 0 ? args[0] : "http://127.0.0.1:5050");
var count = args.Length > 1 && int.TryParse(args[1], out var n) && n > 0 ? n : 5;
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
return await new HelloFramework(master, count, Console.Out).RunAsync(cts.Token);
