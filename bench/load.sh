#!/usr/bin/env bash
# Bounded memory under load (issue 14, docs/benchmarks.md "Load"):
#   bench/load.sh [RUNS=2] [APPS=2000] [SUBSCRIBERS=200] [READERS=8]
# Each run starts `drover dev` as its own process on a spare loopback port and a fresh data dir, and at once:
# SUBSCRIBERS clients on GET /v2/events, READERS clients looping GET /v2/apps, GET /ping every 20 ms, and APPS
# POST /v2/apps (64 in flight, instances: 0). It prints subscribers dropped, /ping p99, the master's peak RSS
# (VmHWM) and throughput, and exits non-zero when a target is missed (0 dropped, p99 < 100 ms, peak < 1 GiB).
# BENCH_BASELINE_DLL=path/to/drover.dll also runs another build (e.g. main before the change), interleaved run by
# run with this one, for a side-by-side ratio:
#   git worktree add --detach /tmp/base main && dotnet publish /tmp/base/src/Drover.Cli -c Release -o /tmp/base-drover
#   BENCH_BASELINE_DLL=/tmp/base-drover/drover.dll bench/load.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-2}"; apps="${2:-2000}"; subscribers="${3:-200}"; readers="${4:-8}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$root/drover" --help >/dev/null   # build once, outside the timing
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly || exit 1
bench="$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll"
status=0
for run in $(seq 1 "$runs"); do
  if [ -n "${BENCH_BASELINE_DLL:-}" ]; then
    BENCH_LABEL="baseline#$run" dotnet "$bench" load "$BENCH_BASELINE_DLL" "$apps" "$subscribers" "$readers" || true
  fi
  BENCH_LABEL="drover#$run" dotnet "$bench" load "$root/artifacts/drover/drover.dll" "$apps" "$subscribers" "$readers" || status=1
done
exit $status
