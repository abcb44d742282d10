#!/usr/bin/env bash
# Highly available masters on a 3-member etcd (all on this machine, loopback, etcd's default Raft timers):
#   bench/ha.sh failover [RUNS=10]     SIGKILL the leader of three `drover master --leader-lease 3`:
#                                      kill → a survivor names a new leader that answers the API
#   bench/ha.sh api-write [OPS=1000]   POST /v2/apps (0 instances) latency and rate, 1 and 16 clients,
#                                      on a master with the embedded store, then on one with etcd
#   BENCH_ETCD_TLS=1 runs etcd over TLS with client certificates (bench/etcd.sh); the masters get
#   --store-ca/--store-cert/--store-key
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-failover}"
base_port="${BENCH_ETCD_PORT:-24890}"
"$root/drover" --help >/dev/null   # build once, outside the timing
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly
bench() { dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" "$@"; }
dll="$root/artifacts/drover/drover.dll"

work="$(mktemp -d /tmp/drover-ha-bench.XXXXXX)"
# shellcheck source=bench/etcd.sh
source "$root/bench/etcd.sh"
trap cleanup EXIT

case "$mode" in
  failover)
    start_etcd 3
    bench failover "$dll" "$address" "${2:-10}" ;;
  api-write)
    bench api-write "$dll" embedded "${2:-1000}"
    start_etcd 3
    bench api-write "$dll" "$address" "${2:-1000}" ;;
  *) echo "usage: bench/ha.sh failover [RUNS] | api-write [OPS]" >&2; exit 2 ;;
esac
