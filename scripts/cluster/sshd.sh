#!/usr/bin/env bash
# An SSH server in each network-namespace host (scripts/cluster/netns.sh), for
# the SSH launcher's tests (root only).
#   scripts/cluster/sshd.sh up N     sshd in h1..hN on 10.200.0.(10+K):22, throw-away keys
#   scripts/cluster/sshd.sh down N   stop them (by pid); safe when absent
# Everything lives in SSHD_DIR (default /tmp/wasmpar-sshd): host key, a client
# key allowed to log in as root, known_hosts, and ssh_config, so that
#   ssh -F $SSHD_DIR/ssh_config h1 CMD
# runs CMD "on" h1 without touching ~/.ssh or /etc/ssh. Idempotent.
set -euo pipefail

SSHD_DIR=${SSHD_DIR:-/tmp/wasmpar-sshd}

log() { echo "[sshd.sh] $*" >&2; }
die() { log "$*"; exit 1; }

check_n() {
  case "$1" in ''|*[!0-9]*) die "N must be a number, got '$1'" ;; esac
  [ "$1" -ge 1 ] && [ "$1" -le 200 ] || die "N must be from 1 to 200"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  check_n "$1"
  [ "$(id -u)" = 0 ] || die "needs root"
  [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd not found (apt-get install openssh-server)"
  command -v ssh >/dev/null || die "ssh not found (apt-get install openssh-client)"
  mkdir -p "$SSHD_DIR" /run/sshd
  chmod 0700 "$SSHD_DIR"
  [ -f "$SSHD_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C wasmpar-test-host -f "$SSHD_DIR/host_ed25519"
  [ -f "$SSHD_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C wasmpar-test-client -f "$SSHD_DIR/id_ed25519"
  cp "$SSHD_DIR/id_ed25519.pub" "$SSHD_DIR/authorized_keys"
  chmod 0600 "$SSHD_DIR/authorized_keys"
  cat > "$SSHD_DIR/sshd_config" <<CONF
HostKey $SSHD_DIR/host_ed25519
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
ClientAliveInterval 10
ClientAliveCountMax 3
CONF
  : > "$SSHD_DIR/known_hosts"
  {
    echo "Host h*"
    echo "  User root"
    echo "  IdentityFile $SSHD_DIR/id_ed25519"
    echo "  IdentitiesOnly yes"
    echo "  UserKnownHostsFile $SSHD_DIR/known_hosts"
    echo "  StrictHostKeyChecking yes"
    echo "  ConnectTimeout 5"
    echo "  LogLevel ERROR"
  } > "$SSHD_DIR/ssh_config"
  local k addr
  for k in $(seq 1 "$1"); do
    addr=10.200.0.$((10 + k))
    [ -e "/run/netns/h$k" ] || die "no namespace h$k (run scripts/cluster/netns.sh up $1 first)"
    echo "$addr $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" >> "$SSHD_DIR/known_hosts"
    printf 'Host h%s\n  HostName %s\n' "$k" "$addr" >> "$SSHD_DIR/ssh_config"
    if alive "$SSHD_DIR/sshd-h$k.bgpid"; then continue; fi
    setsid nsenter --net="/run/netns/h$k" /usr/sbin/sshd -D -f "$SSHD_DIR/sshd_config" \
      -o "ListenAddress=$addr" -o "PidFile=$SSHD_DIR/sshd-h$k.pid" -E "$SSHD_DIR/sshd-h$k.log" \
      </dev/null >/dev/null 2>&1 &
    echo $! > "$SSHD_DIR/sshd-h$k.bgpid"
  done
  for k in $(seq 1 "$1"); do
    for _ in $(seq 1 50); do
      ssh -F "$SSHD_DIR/ssh_config" -o BatchMode=yes "h$k" true 2>/dev/null && break
      sleep 0.1
    done
    ssh -F "$SSHD_DIR/ssh_config" -o BatchMode=yes "h$k" true || { tail -n 20 "$SSHD_DIR/sshd-h$k.log" >&2 || true; die "ssh to h$k fails"; }
  done
  log "sshd up in h1..h$1; ssh -F $SSHD_DIR/ssh_config hK"
}

down() {
  check_n "$1"
  local k pf pid
  for k in $(seq 1 "$1"); do
    pf=$SSHD_DIR/sshd-h$k.bgpid
    [ -f "$pf" ] || continue
    pid=$(cat "$pf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pf"
  done
  log "down"
}

case "${1:-}" in
  up) up "${2:-1}" ;;
  down) down "${2:-1}" ;;
  *) echo "usage: $0 up N | down N" >&2; exit 2 ;;
esac
