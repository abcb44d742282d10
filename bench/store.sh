#!/usr/bin/env bash
# State store benchmark: single-key transactions (compare mod revision + put 256 bytes), one writer
# and then 16 writers, against
#   1. the embedded SQLite store (WAL, synchronous = FULL) in a fresh directory,
#   2. a 1-member etcd, 3. a 3-member etcd (all members on this machine, loopback, etcd's default
#      Raft timers), each with fresh data directories under /tmp (the same disk as SQLite's).
#   bench/store.sh [OPS=2000]          (BENCH_ETCD_TLS=1: etcd over TLS with client certificates, see bench/etcd.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ops="${1:-2000}"
base_port="${BENCH_ETCD_PORT:-24790}"
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly
bench() { dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" store "$@" "$ops"; }

work="$(mktemp -d /tmp/drover-store-bench.XXXXXX)"
# shellcheck source=bench/etcd.sh
source "$root/bench/etcd.sh"
trap cleanup EXIT

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
