#!/usr/bin/env bash
# Runs every test. Installs what the tests need when it is missing (as root, with apt-get), builds
# once, runs each test project, and ends with one summary line: "N passed, N failed, N skipped".
# Tests that need root, cgroups or network namespaces run for real; under CI=true they never skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)   # tasks run as their own user
command -v mount >/dev/null 2>&1 || need+=(mount)          # a task's /proc on kernels before 6.18
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)   # the etcd store's tests start their own members
command -v openssl >/dev/null 2>&1 || need+=(openssl)      # an impostor agent endpoint (AgentIdentityTests) serves a certificate with s_server
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need[*]}"
    # etcd-server's postinst would start a system etcd on 2379; tests never use it. A policy-rc.d
    # that denies every start keeps it down during the install (one already there is respected).
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    install_status=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || install_status=$?
    if [ -n "$own_policy" ]; then rm -f "$policy"; fi
    if [[ " ${need[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
      systemctl disable --now etcd >/dev/null 2>&1 || true   # nor at the next boot
    fi
    [ "$install_status" = 0 ] || exit "$install_status"
  else
    echo "test.sh: missing ${need[*]} (run as root to install)" >&2
  fi
fi
if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET 10 SDK (dotnet) is required" >&2
  exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
echo "test.sh: building"
dotnet build Drover.sln -c Release -nologo -v q -clp:ErrorsOnly

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
for project in tests/Drover.*.Tests/*.csproj; do
  echo "test.sh: $(basename "$project" .csproj)"
  if ! dotnet test "$project" -c Release --no-build -nologo -v q --logger "console;verbosity=minimal" 2>&1 | tee -a "$log"; then
    status=1
  fi
done

# One closing line for the whole run, summed over the per-project summaries.
awk '
  /^(Passed|Failed)!/ {
    for (i = 1; i <= NF; i++) {
      gsub(",", "", $(i+1))
      if ($i == "Failed:") f += $(i+1)
      if ($i == "Passed:") p += $(i+1)
      if ($i == "Skipped:") s += $(i+1)
    }
  }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit $status
