#!/usr/bin/env bash
# Debian packages for the cluster suite (scripts/test.d/40-cluster.sh): a real
# single-node Slurm with munge, iproute2 for network-namespace hosts, an SSH
# server and client for the SSH launcher, and Open MPI for the MPI launcher.
# Only installs; the suite starts and stops the services. Needs root (CI runs
# as root); without root it says what to install and fails.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

pkgs=(slurmctld slurmd slurm-client munge iproute2 openssh-server openssh-client openmpi-bin)
if [ "$(id -u)" != 0 ]; then
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" = 0 ] && exit 0
  echo "20-cluster.sh: not root; install as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
apt_install "${pkgs[@]}"
