#!/usr/bin/env bash
# Launchers against the real systems (tests/all/launchers.rs, the tests
# marked #[ignore = "needs …"]): brings up a single-node Slurm
# (scripts/cluster/slurm.sh), network-namespace hosts h1, h2
# (scripts/cluster/netns.sh) with an sshd in each (scripts/cluster/sshd.sh),
# runs the ignored launcher tests (Slurm, Open MPI, SSH), and brings down what
# it started even when they fail. First it checks the Kubernetes example
# (deploy/kubernetes/) against the API schema, the one check it gets here.
# Needs root (CI runs as root) and the packages of scripts/setup.d/20-cluster.sh.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$TOP"

[ "$(id -u)" = 0 ] || { echo "40-cluster.sh: needs root (Slurm daemons, ip netns)" >&2; exit 1; }

step "deploy/kubernetes against the Kubernetes API schema"
python_venv
"$VENV/bin/kubernetes-validate" --strict deploy/kubernetes/secret.yaml deploy/kubernetes/controller.yaml deploy/kubernetes/engines.yaml

NETNS_HOSTS=2
export SLURM_DIR="${SLURM_DIR:-/tmp/wasmpar-slurm}"
started_slurm=0
started_netns=0
started_sshd=0
cleanup() {
  local rc=$?
  if [ "$started_slurm" = 1 ]; then
    if [ "$rc" != 0 ]; then
      echo "--- Slurm logs (tail) ---" >&2
      tail -n 30 "$SLURM_DIR"/log/slurmctld.log "$SLURM_DIR"/log/slurmd-*.log >&2 2>/dev/null || true
    fi
    bash scripts/cluster/slurm.sh down || true
  fi
  if [ "$started_sshd" = 1 ]; then bash scripts/cluster/sshd.sh down "$NETNS_HOSTS" || true; fi
  if [ "$started_netns" = 1 ]; then bash scripts/cluster/netns.sh down "$NETNS_HOSTS" || true; fi
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
if [ ! -f "${SSHD_DIR:-/tmp/wasmpar-sshd}/sshd-h1.bgpid" ]; then started_sshd=1; fi
bash scripts/cluster/sshd.sh up "$NETNS_HOSTS"
export WASMPAR_SSH_CONFIG="${SSHD_DIR:-/tmp/wasmpar-sshd}/ssh_config"

# One at a time: the jobs share the node's 8 advertised CPUs.
cargo test --release --test all -- --ignored --test-threads=1 launchers::
