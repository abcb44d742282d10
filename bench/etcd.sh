# Sourced by the benchmark scripts that need etcd (store.sh, ha.sh). Expects $work (a scratch dir)
# and $base_port; provides start_etcd N, stop_etcd and cleanup (stop_etcd + rm -rf $work).
command -v etcd >/dev/null || { echo "${0##*/}: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
pids=()
stop_etcd() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_etcd; rm -rf "$work"; }

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
