#!/usr/bin/env bash
# State store benchmark: single-key transactions (compare mod revision + put 256 bytes), one writer
# and then 16 writers, against
#   1. the embedded SQLite store (WAL, synchronous = FULL) in a fresh directory,
#   2. a 1-member etcd, 3. a 3-member etcd (all members on this machine, loopback, etcd's default
#      Raft timers), each with fresh data directories under /tmp (the same disk as SQLite's).
#   bench/store.sh [OPS=2000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ops="${1:-2000}"
base_port="${BENCH_ETCD_PORT:-24790}"
command -v etcd >/dev/null || { echo "bench/store.sh: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly
bench() { dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" store "$@" "$ops"; }

work="$(mktemp -d /tmp/drover-store-bench.XXXXXX)"
pids=()
stop_etcd() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_etcd; rm -rf "$work"; }
trap cleanup EXIT

# start_etcd N: N members on base_port.. (client 2i, peer 2i+1); sets $address (etcd://…) once all are healthy.
start_etcd() {
  local n="$1" cluster="" endpoints="" i
  for ((i = 0; i < n; i++)); do cluster+="${cluster:+,}b$i=http://127.0.0.1:$((base_port + 2 * i + 1))"; done
  for ((i = 0; i < n; i++)); do
    local client="http://127.0.0.1:$((base_port + 2 * i))" peer="http://127.0.0.1:$((base_port + 2 * i + 1))"
    etcd --name "b$i" --data-dir "$work/etcd$n-$i" --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$cluster" \
      --initial-cluster-state new --initial-cluster-token "bench-$n-$$" --logger zap --log-outputs stderr \
      >"$work/etcd$n-$i.log" 2>&1 &
    pids+=($!)
    endpoints+="${endpoints:+,}127.0.0.1:$((base_port + 2 * i))"
  done
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$((base_port + 2 * i))/health" | grep -q '"health":"true"' && break
      sleep 0.2
    done
  done
  address="etcd://$endpoints"
}

echo "== sqlite"
mkdir -p "$work/sqlite"
bench sqlite "$work/sqlite"
echo "== etcd, 1 member"
start_etcd 1
bench etcd "$address"
stop_etcd
echo "== etcd, 3 members"
start_etcd 3
bench etcd "$address"
