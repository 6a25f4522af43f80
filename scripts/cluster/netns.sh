#!/usr/bin/env bash
# Network namespaces as separate "hosts" for tests (root only).
#   scripts/cluster/netns.sh up N      create h1..hN (idempotent: keeps what exists)
#   scripts/cluster/netns.sh down N    delete h1..hN and the bridge (safe when absent)
#   scripts/cluster/netns.sh cut K     take host hK off the network (its veth down)
#   scripts/cluster/netns.sh mend K    put it back
#   scripts/cluster/netns.sh status
# Addressing (only this test range is ever used, only inside namespaces this
# script creates): bridge br-t200 in the root namespace is 10.200.0.1/24 (the
# controller listens there); host hK is 10.200.0.(10+K) on its eth0, a veth
# whose root end veth-hK is a bridge port. Inside a namespace 127.0.0.1 is
# that namespace's own loopback. Run a program "on" hK with
#   nsenter --net=/run/netns/hK PROGRAM   (not `ip netns exec`: it remounts /sys)
set -euo pipefail

BRIDGE=br-t200
BRIDGE_ADDR=10.200.0.1/24

need_root() { [ "$(id -u)" = 0 ] || { echo "netns.sh: needs root (ip netns)" >&2; exit 1; }; }

check_n() {
  case "$1" in ''|*[!0-9]*) echo "netns.sh: N must be a number from 1 to 200, got '$1'" >&2; exit 2 ;; esac
  [ "$1" -ge 1 ] && [ "$1" -le 200 ] || { echo "netns.sh: N must be from 1 to 200" >&2; exit 2; }
}

up() {
  need_root; check_n "$1"
  command -v ip >/dev/null || { echo "netns.sh: ip not found (apt-get install iproute2)" >&2; exit 1; }
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$BRIDGE_ADDR" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local k ns
  for k in $(seq 1 "$1"); do
    ns=h$k
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    if ! ip link show "veth-$ns" >/dev/null 2>&1; then
      ip link add "veth-$ns" type veth peer name eth0 netns "$ns"
    fi
    ip link set "veth-$ns" master "$BRIDGE" up
    ip -n "$ns" addr replace "10.200.0.$((10 + k))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
  echo "netns: h1..h$1 up (10.200.0.11..$((10 + $1))), controller side 10.200.0.1 on $BRIDGE" >&2
}

down() {
  need_root; check_n "$1"
  local k
  for k in $(seq 1 "$1"); do
    ip netns del "h$k" 2>/dev/null || true      # takes both veth ends with it
    ip link del "veth-h$k" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  echo "netns: down" >&2
}

cut() { need_root; check_n "$1"; ip link set "veth-h$1" down; }
mend() { need_root; check_n "$1"; ip link set "veth-h$1" up; ip -n "h$1" neigh flush all; ip neigh flush dev "$BRIDGE"; }

status() {
  ip -br addr show "$BRIDGE" 2>/dev/null || echo "no bridge $BRIDGE"
  ip netns list
}

case "${1:-}" in
  up) up "${2:-1}" ;;
  down) down "${2:-1}" ;;
  cut) cut "${2:-}" ;;
  mend) mend "${2:-}" ;;
  status) status ;;
  *) echo "usage: $0 up N | down N | cut K | mend K | status" >&2; exit 2 ;;
esac
