#!/usr/bin/env bash
# Launchers against the real systems (tests/all/launchers.rs, the tests
# marked #[ignore = "needs Slurm…"]): brings up a single-node Slurm
# (scripts/cluster/slurm.sh) and network-namespace hosts
# (scripts/cluster/netns.sh), runs the ignored launcher tests, and brings down
# what it started even when they fail. Needs root (CI runs as root).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"

[ "$(id -u)" = 0 ] || { echo "40-cluster.sh: needs root (Slurm daemons, ip netns)" >&2; exit 1; }

NETNS_HOSTS=2
export SLURM_DIR="${SLURM_DIR:-/tmp/wasmpar-slurm}"
started_slurm=0
started_netns=0
cleanup() {
  local rc=$?
  if [ "$started_slurm" = 1 ]; then
    if [ "$rc" != 0 ]; then
      echo "--- Slurm logs (tail) ---" >&2
      tail -n 30 "$SLURM_DIR"/log/slurmctld.log "$SLURM_DIR"/log/slurmd-*.log >&2 2>/dev/null || true
    fi
    bash scripts/cluster/slurm.sh down || true
  fi
  [ "$started_netns" = 1 ] && bash scripts/cluster/netns.sh down "$NETNS_HOSTS" || true
  stop_started
  exit "$rc"
}
trap cleanup EXIT

if bash scripts/cluster/slurm.sh status >/dev/null 2>&1; then
  echo "40-cluster.sh: Slurm already up (left running)" >&2
else
  started_slurm=1
  bash scripts/cluster/slurm.sh up
fi
bash scripts/cluster/slurm.sh selftest
eval "$(bash scripts/cluster/slurm.sh env)"

if ! ip link show br-t200 >/dev/null 2>&1; then started_netns=1; fi
bash scripts/cluster/netns.sh up "$NETNS_HOSTS"
export WASMPAR_NETNS_HOSTS="$NETNS_HOSTS"

# One at a time: the jobs share the node's 8 advertised CPUs.
cargo test --release --test all -- --ignored --test-threads=1 launchers::
