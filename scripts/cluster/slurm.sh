#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurmctld/slurmd/munge) for tests, as
# root, without systemd. Adapted from ../shared/slurm/slurm-up.sh.
#   scripts/cluster/slurm.sh up        install if missing, start munged + slurmctld + slurmd, wait for idle
#   scripts/cluster/slurm.sh down      stop what `up` started (by pid), keep logs; safe when nothing is up
#   scripts/cluster/slurm.sh selftest  sbatch, squeue, scancel of a running job
#   scripts/cluster/slurm.sh env       print `export SLURM_CONF=…` for eval
#   scripts/cluster/slurm.sh status    exit 0 when a cluster started by this script is up
# Idempotent: `up` on a running cluster that this script started does nothing.
# Every Slurm client then needs SLURM_CONF=$SLURM_DIR/etc/slurm.conf.
# SLURM_DIR (default /tmp/wasmpar-slurm) holds config, state, logs and pids.
# The node advertises SLURM_CPUS (default 8) CPUs on however many cores there
# are (SlurmdParameters=config_overrides), so 8 one-CPU tasks fit on 2 cores.
# Ports 6817/6818 must be free. ProctrackType=proctrack/pgid: a job's
# processes that detach (setsid) escape scancel, so engines stay in the
# foreground.
set -euo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/wasmpar-slurm}
SLURM_CPUS=${SLURM_CPUS:-8}
SLURM_MEM_MB=${SLURM_MEM_MB:-4096}
CTLD_PORT=6817
SLURMD_PORT=6818
NODE=$(hostname -s)
export SLURM_CONF=$SLURM_DIR/etc/slurm.conf

log() { echo "[slurm.sh] $*" >&2; }
die() { log "$*"; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_pkgs() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
     || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then log "munged already running"; return; fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --force   # daemonizes; pid in /run/munge/munged.pid
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munged does not answer"
  cp /run/munge/munged.pid "$SLURM_DIR/munged.pid"   # marks "we started it"
}

write_conf() {
  mkdir -p "$SLURM_DIR"/{etc,state,spool,log}
  rm -rf "${SLURM_DIR:?}"/state/* "${SLURM_DIR:?}"/spool/*   # a fresh cluster: job ids restart at 1
  cat > "$SLURM_CONF" <<CONF
ClusterName=wasmpar
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool/%n
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/spool/%n/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=30
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS RealMemory=$SLURM_MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
  mkdir -p "$SLURM_DIR/spool/$NODE"
}

idle() { [ "$(sinfo -h -o '%T %D' 2>/dev/null)" = "idle 1" ]; }
# Up and answering, idle or busy with jobs.
serving() { sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; }

up() {
  [ "$(id -u)" = 0 ] || die "needs root"
  install_pkgs
  mkdir -p "$SLURM_DIR"
  if alive "$SLURM_DIR/slurmctld.bgpid" && alive "$SLURM_DIR/slurmd.bgpid" && serving; then
    log "already up; export SLURM_CONF=$SLURM_CONF"
    return
  fi
  down_daemons   # half-up from an earlier run: start clean
  for p in "$CTLD_PORT" "$SLURMD_PORT"; do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is busy (another Slurm?)"; fi
  done
  start_munge
  write_conf
  local t0; t0=$(date +%s.%N)
  setsid slurmctld -D -f "$SLURM_CONF" >"$SLURM_DIR/log/slurmctld.out" 2>&1 </dev/null &
  echo $! >"$SLURM_DIR/slurmctld.bgpid"
  setsid slurmd -D -f "$SLURM_CONF" -N "$NODE" >"$SLURM_DIR/log/slurmd.out" 2>&1 </dev/null &
  echo $! >"$SLURM_DIR/slurmd.bgpid"
  for _ in $(seq 1 240); do idle && break; sleep 0.25; done
  if ! idle; then
    sinfo -N -l >&2 || true
    tail -n 20 "$SLURM_DIR"/log/*.out "$SLURM_DIR"/log/*.log >&2 || true
    down
    die "the node never became idle"
  fi
  log "node $NODE idle after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s; export SLURM_CONF=$SLURM_CONF"
}

down_daemons() {
  if alive "$SLURM_DIR/slurmctld.bgpid"; then scontrol shutdown >/dev/null 2>&1 || true; fi
  local pf pid
  for pf in "$SLURM_DIR"/slurmctld.bgpid "$SLURM_DIR"/slurmd.bgpid; do
    [ -f "$pf" ] || continue
    pid=$(cat "$pf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$(basename "$pf" .bgpid) ($pid) still up, SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$pf"
  done
}

down() {
  down_daemons
  if [ -f "$SLURM_DIR/munged.pid" ]; then
    kill "$(cat "$SLURM_DIR/munged.pid")" 2>/dev/null || true
    rm -f "$SLURM_DIR/munged.pid"
  fi
  log "down (logs in $SLURM_DIR/log)"
}

selftest() {
  serving || die "not up (run: $0 up)"
  local d=$SLURM_DIR/selftest j pid
  rm -rf "$d"; mkdir -p "$d"
  j=$(sbatch --parsable -o "$d/sleep.out" --wrap "echo \$\$ > $d/pid; exec sleep 300")
  for _ in $(seq 1 100); do [ "$(squeue -h -j "$j" -o %T)" = RUNNING ] && [ -s "$d/pid" ] && break; sleep 0.1; done
  [ "$(squeue -h -j "$j" -o %T)" = RUNNING ] || die "FAIL: job $j not running: $(squeue -h -j "$j" -o %T)"
  pid=$(cat "$d/pid")
  kill -0 "$pid" || die "FAIL: job process $pid not found"
  scancel "$j"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && die "FAIL: job process survived scancel"
  echo "selftest: sbatch, squeue RUNNING, scancel ok"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  selftest) selftest ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  status) alive "$SLURM_DIR/slurmctld.bgpid" && alive "$SLURM_DIR/slurmd.bgpid" && serving ;;
  *) echo "usage: $0 up|down|selftest|env|status" >&2; exit 2 ;;
esac
