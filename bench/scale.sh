#!/usr/bin/env bash
# End-to-end scale benchmark (issue 6):
#   bench/scale.sh AGENTS INSTANCES      e.g. bench/scale.sh 10000 100000
# Starts a real `drover master` process (fresh data dir, spare port) and a simulator process with
# AGENTS protocol-faithful simulated agents (bench/Drover.AgentSim; no task processes), POSTs
# INSTANCES instances through /v2/apps in apps of 1,000 (0.01 cpu / 8 MiB each), and waits until the
# master counts them all TASK_RUNNING. Meanwhile it times GET /v2/apps/{id} and POST /v2/apps.
# Last line: placed=N seconds=S rate=R rss_mb=M (R instances/s; M the master's peak RSS, VmHWM).
# Environment: SCALE_HEARTBEAT (agent heartbeat interval in s, default 5), SCALE_KEEP=1 keeps the logs,
# SCALE_MASTER_GEN0SIZE=0x4000000 runs the master with DOTNET_GCgen0size (a 64 MiB gen0 budget).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
agents="${1:-10000}"
instances="${2:-100000}"

# 10,000 agents hold 10,000 command streams: one socket each in the master and in the simulator.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

"$root/drover" --help >/dev/null   # build once, outside the timing
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly
dotnet build "$root/bench/Drover.AgentSim/Drover.AgentSim.csproj" -c Release -nologo -v q -clp:ErrorsOnly

exec dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" scale "$root/artifacts/drover/drover.dll" \
  "$root/bench/Drover.AgentSim/bin/Release/net10.0/Drover.AgentSim.dll" "$agents" "$instances"
