# Sourced by the benchmark scripts that need etcd (store.sh, ha.sh). Expects $work (a scratch dir)
# and $base_port; provides start_etcd N, stop_etcd and cleanup (stop_etcd + rm -rf $work).
# BENCH_ETCD_TLS=1: members serve clients and peers over TLS with client certificates required
# (--client-cert-auth, --peer-client-cert-auth), from a CA made here with openssl; the client's files
# are exported as BENCH_ETCD_CA, BENCH_ETCD_CERT, BENCH_ETCD_KEY for Drover.Bench (which passes them
# on as --store-ca/--store-cert/--store-key).
command -v etcd >/dev/null || { echo "${0##*/}: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
pids=()
stop_etcd() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_etcd; rm -rf "$work"; }

scheme=http
tls_member_flags=()
curl_tls=()
if [ "${BENCH_ETCD_TLS:-0}" = 1 ]; then
  command -v openssl >/dev/null || { echo "${0##*/}: BENCH_ETCD_TLS=1 needs openssl" >&2; exit 1; }
  tls="$work/tls"
  mkdir -p "$tls"
  (
    cd "$tls"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-etcd-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
    # One member certificate for every member (all on 127.0.0.1), usable as server and client:
    # etcd 3.4's gateway and its peers present it as a client certificate.
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=etcd -keyout member-key.pem -out member.csr 2>/dev/null
    openssl x509 -req -in member.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -out member.pem \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n') 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=drover-bench -keyout client-key.pem -out client.csr 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -out client.pem \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
  )
  scheme=https
  tls_member_flags=(--cert-file "$tls/member.pem" --key-file "$tls/member-key.pem" --trusted-ca-file "$tls/ca.pem" --client-cert-auth
    --peer-cert-file "$tls/member.pem" --peer-key-file "$tls/member-key.pem" --peer-trusted-ca-file "$tls/ca.pem" --peer-client-cert-auth)
  curl_tls=(--cacert "$tls/ca.pem" --cert "$tls/client.pem" --key "$tls/client-key.pem")
  export BENCH_ETCD_CA="$tls/ca.pem" BENCH_ETCD_CERT="$tls/client.pem" BENCH_ETCD_KEY="$tls/client-key.pem"
fi

# start_etcd N: N members on base_port.. (client 2i, peer 2i+1); sets $address (etcd://…) once all are healthy.
start_etcd() {
  local n="$1" cluster="" endpoints="" i
  for ((i = 0; i < n; i++)); do cluster+="${cluster:+,}b$i=$scheme://127.0.0.1:$((base_port + 2 * i + 1))"; done
  for ((i = 0; i < n; i++)); do
    local client="$scheme://127.0.0.1:$((base_port + 2 * i))" peer="$scheme://127.0.0.1:$((base_port + 2 * i + 1))"
    etcd --name "b$i" --data-dir "$work/etcd$n-$i" --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$cluster" \
      --initial-cluster-state new --initial-cluster-token "bench-$n-$$" --logger zap --log-outputs stderr \
      "${tls_member_flags[@]}" >"$work/etcd$n-$i.log" 2>&1 &
    pids+=($!)
    endpoints+="${endpoints:+,}127.0.0.1:$((base_port + 2 * i))"
  done
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 1 100); do
      curl -sf "${curl_tls[@]}" "$scheme://127.0.0.1:$((base_port + 2 * i))/health" | grep -q '"health":"true"' && break
      sleep 0.2
    done
  done
  address="etcd://$endpoints"
}
