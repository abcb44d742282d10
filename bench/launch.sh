#!/usr/bin/env bash
# Launch benchmarks against `drover dev` started as its own process on a spare port with a fresh
# data dir:
#   bench/launch.sh [COUNT=1000]             COUNT one-off tasks at once: submit→TASK_RUNNING p50/p99, total
#   bench/launch.sh services [INSTANCES=1000] [ROUNDS=2]
#                                           one /v2 app of INSTANCES: POST→all running, POST→all healthy;
#                                           round 1 on a fresh master and agent, later rounds warm
#                                           (BENCH_TIMELINE=1 prints the counts at every 100 ms poll;
#                                           BENCH_DROVER_DLL runs another build, see below;
#                                           BENCH_AUTH=1 runs with TLS and logins: drover dev --auth)
#   bench/launch.sh auth [REQUESTS=5000]    login latency and an authenticated read's latency (with BENCH_AUTH=1;
#                                           without it, the read on a dev cluster without logins, to compare)
#   bench/launch.sh restart [TASKS=10000] [RUNNING=1000] [RESTARTS=5]
#                                           a master with TASKS task records is SIGKILLed and restarted:
#                                           start→/ping, start→all tasks listed (own master + agent processes)
#   bench/launch.sh agent-loss [INSTANCES=20] [UNREACHABLE_S=15] [ROUNDS=5]
#                                           kill -9 the agent holding most of an app: kill→TASK_UNREACHABLE,
#                                           kill→all instances running again (own master + 2 agent processes)
# The dev agent is told it has 64 cpus / 48 GiB so 1,000 tasks of 0.01 cpu / 8 MiB fit on one
# 2-core machine: the benchmark measures the control and launch path, not CPU contention.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=launch
case "${1:-}" in services|restart|agent-loss|auth) mode="$1"; shift ;; esac
count="${1:-1000}"
port="${BENCH_PORT:-5077}"
"$root/drover" --help >/dev/null   # build once, outside the timing
dotnet build "$root/bench/Drover.Bench/Drover.Bench.csproj" -c Release -nologo -v q -clp:ErrorsOnly

if [ "$mode" = restart ]; then
  # Starts and restarts its own master and agent processes (dotnet drover.dll, as ./drover runs it).
  exec dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" restart "$root/artifacts/drover/drover.dll" \
    "${1:-10000}" "${2:-1000}" "${3:-5}"
fi

if [ "$mode" = agent-loss ]; then
  exec dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" agent-loss "$root/artifacts/drover/drover.dll" \
    "${1:-20}" "${2:-15}" "${3:-5}"
fi

data="$(mktemp -d "${TMPDIR:-/tmp}/drover-bench.XXXXXX")"   # the agent's sandboxes live here too

# BENCH_DROVER_DLL=path/to/drover.dll runs another build's dev cluster (A/B against an older commit:
# `git worktree add /tmp/old COMMIT && dotnet publish /tmp/old/src/Drover.Cli -c Release
#  --use-current-runtime --self-contained false -p:PublishReadyToRun=true -o /tmp/old-drover`).
drover=("$root/drover")
[ -n "${BENCH_DROVER_DLL:-}" ] && drover=(dotnet "$BENCH_DROVER_DLL")
# BENCH_AUTH=1: the same with TLS and logins on (`drover dev --auth`); the bench logs in as the bootstrap
# admin and trusts the cluster CA, as a client of a secure cluster does (docs/benchmarks.md, "Security").
auth=()
scheme=http
if [ -n "${BENCH_AUTH:-}" ]; then auth=(--auth); scheme=https; fi
"${drover[@]}" dev --listen "127.0.0.1:$port" --data-dir "$data" --log-level warning "${auth[@]}" \
  --resources "cpus:64;mem:49152;disk:10000;ports:[31000-32000]" >"$data/dev.log" 2>&1 &
dev=$!
# sync: ext4 without a journal (this VM's /) skips inodes deleted in the last 60 s when allocating, or
# 360 s while their inode blocks are dirty; written back, the next run is clear of ours after a minute.
cleanup() { kill -TERM "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -rf "$data"; sync; }
trap cleanup EXIT
curl_args=()
if [ -n "${BENCH_AUTH:-}" ]; then
  # A new secure cluster makes its CA, signing key and admin password first (seconds on a busy machine).
  for _ in $(seq 1 600); do [ -s "$data/master/ca.pem" ] && [ -s "$data/master/bootstrap-admin-password" ] && break; sleep 0.2; done
  [ -s "$data/master/bootstrap-admin-password" ] || { echo "drover dev --auth did not write its CA and admin password within 120 s; see $data/dev.log" >&2; cat "$data/dev.log" >&2; exit 1; }
  export DROVER_CA_CERT="$data/master/ca.pem"
  password="$(cat "$data/master/bootstrap-admin-password")"
  export BENCH_ADMIN_PASSWORD="$password"
  DROVER_TOKEN="$(curl -sf --cacert "$DROVER_CA_CERT" -H 'Content-Type: application/json' \
    -d "{\"uid\":\"admin\",\"password\":\"$password\"}" "https://127.0.0.1:$port/acs/api/v1/auth/login" | sed 's/.*"token": *"\([^"]*\)".*/\1/')"
  export DROVER_TOKEN
  curl_args=(--cacert "$DROVER_CA_CERT" -H "Authorization: token=$DROVER_TOKEN")
fi
for _ in $(seq 1 100); do
  curl -sf "${curl_args[@]}" "$scheme://127.0.0.1:$port/drover/v1/agents" | grep -q '"active"' && break
  sleep 0.2
done

if [ "$mode" = auth ]; then
  dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" auth "$scheme://127.0.0.1:$port" "${1:-5000}"
elif [ "$mode" = services ]; then
  dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" services "$scheme://127.0.0.1:$port" "$count" "${2:-2}"
else
  dotnet "$root/bench/Drover.Bench/bin/Release/net10.0/Drover.Bench.dll" launch "$scheme://127.0.0.1:$port" "$count" 0.01 8 -- sleep 120
fi
