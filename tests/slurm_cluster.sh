#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the integration tests and for trying slurm/ by hand.
#
#   bash tests/slurm_cluster.sh          # start (idempotent): munged, slurmctld, slurmd; wait for idle
#   bash tests/slurm_cluster.sh status   # print sinfo; exit 0 when the node is usable
#   bash tests/slurm_cluster.sh stop     # stop slurmd, slurmctld and the munged we started
#   bash tests/slurm_cluster.sh two-nodes       # a second, separate SLURM whose 2 nodes (n1, n2,
#   bash tests/slurm_cluster.sh stop-two-nodes  #   1 CPU each) are 2 slurmd on this host; use it
#                                        #   with SLURM_CONF=/tmp/st-slurm2/slurm.conf
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (scripts/setup_system.sh).
# The config is free of cgroups and systemd (containers have neither): proctrack/linuxproc,
# task/none, no accounting. The node is this host with the CPUs and memory `slurmd -C` measures.
# It writes /etc/slurm/slurm.conf only when that file is absent or was written by this script, so it
# never touches a real cluster's config.
set -euo pipefail

MARK="# written by sparsity-tune tests/slurm_cluster.sh"
CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm
NODE=$(hostname -s)
TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-60}

die() { echo "slurm_cluster: $*" >&2; exit 1; }

need_tools() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"
  local missing=()
  for t in munged munge unmunge slurmctld slurmd sinfo scontrol sbatch; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: install Debian packages slurmctld slurmd slurm-client munge (bash scripts/setup_system.sh)"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  munge_ok && return 0
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    # mungekey ships with munge >= 0.5.14; dd is the fallback the munge docs give.
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 20); do munge_ok && return 0; sleep 0.25; done
  die "munged did not answer (see /var/log/munge/munged.log)"
}

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to touch a real cluster's config"
  fi
  local node_line
  # `slurmd -C` prints this host's CPUs, sockets, cores, threads and RealMemory (MiB).
  node_line=$(slurmd -C | head -1)
  [[ "$node_line" == NodeName=* ]] || die "slurmd -C gave no node line: $node_line"
  install -d -m 0755 /etc/slurm "$LOGDIR" "$RUNDIR" "$SPOOL"
  install -d -m 0700 "$STATE"
  local new
  new=$(cat <<EOF
$MARK
ClusterName=localcluster
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
# No cgroups or systemd here: track processes by /proc parentage, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=30
MinJobAge=600
# A node that restarts is usable again at once; a requeued job may start again at once.
$node_line State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -e "$CONF" ] || [ "$new" != "$(cat "$CONF")" ]; then
    printf '%s\n' "$new" >"$CONF"
    CONF_CHANGED=1
  fi
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1; }

node_usable() {
  case "$(node_state)" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

start() {
  need_tools
  start_munge
  CONF_CHANGED=0
  write_conf
  if [ "$CONF_CHANGED" = 1 ]; then
    # Plugin changes (e.g. JobCompType) need a restart, not `scontrol reconfigure`; job state
    # survives it (StateSaveLocation).
    stop_daemons
  fi
  pid_alive "$RUNDIR/slurmctld.pid" || slurmctld
  pid_alive "$RUNDIR/slurmd.pid" || slurmd
  local state=""
  for _ in $(seq "$TIMEOUT"); do
    state=$(node_state)
    case "$state" in
      idle | mixed | allocated | completing)
        echo "slurm_cluster: node $NODE is $state"
        sinfo
        return 0
        ;;
      down* | drain*)
        scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
        ;;
    esac
    sleep 1
  done
  tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
  die "node $NODE not idle after ${TIMEOUT}s (state: ${state:-none}); logs above"
}

stop_daemons() {
  if pid_alive "$RUNDIR/slurmd.pid"; then kill "$(cat "$RUNDIR/slurmd.pid")"; fi
  if pid_alive "$RUNDIR/slurmctld.pid"; then kill "$(cat "$RUNDIR/slurmctld.pid")"; fi
  for _ in $(seq 20); do
    pid_alive "$RUNDIR/slurmd.pid" || pid_alive "$RUNDIR/slurmctld.pid" || break
    sleep 0.5
  done
}

stop() {
  stop_daemons
  if pid_alive /run/munge/munged.pid; then kill "$(cat /run/munge/munged.pid)"; fi
  echo "slurm_cluster: stopped"
}

# ---- two nodes on one host: several slurmd (slurmd -N NAME), each with its own port -----------
TWO=/tmp/st-slurm2

start_two() {
  need_tools
  start_munge
  mkdir -p "$TWO/state" "$TWO/log"
  chmod 700 "$TWO/state"
  cat >"$TWO/slurm.conf" <<EOF
$MARK (two-nodes)
ClusterName=twonodes
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$TWO/state
SlurmdSpoolDir=$TWO/spool-%n
SlurmctldPidFile=$TWO/slurmctld.pid
SlurmdPidFile=$TWO/slurmd-%n.pid
SlurmctldLogFile=$TWO/log/slurmctld.log
SlurmdLogFile=$TWO/log/slurmd-%n.log
SlurmctldPort=6917
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
NodeName=n1 NodeHostname=$NODE NodeAddr=127.0.0.1 Port=6931 CPUs=1 RealMemory=2000 State=UNKNOWN
NodeName=n2 NodeHostname=$NODE NodeAddr=127.0.0.1 Port=6932 CPUs=1 RealMemory=2000 State=UNKNOWN
PartitionName=two Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$TWO/slurm.conf"
  pid_alive "$TWO/slurmctld.pid" || slurmctld
  for n in n1 n2; do pid_alive "$TWO/slurmd-$n.pid" || slurmd -N "$n"; done
  local states=""
  for _ in $(seq "$TIMEOUT"); do
    states=$(sinfo -h -N -o %T 2>/dev/null | sort -u | tr '\n' ' ')
    if [ "$states" = "idle " ]; then
      echo "slurm_cluster: two nodes idle; use SLURM_CONF=$SLURM_CONF"
      sinfo -N
      return 0
    fi
    sleep 1
  done
  die "two-nodes cluster not idle after ${TIMEOUT}s (states: ${states:-none}); see $TWO/log"
}

stop_two() {
  for f in "$TWO"/slurmd-n1.pid "$TWO"/slurmd-n2.pid "$TWO"/slurmctld.pid; do
    if pid_alive "$f"; then kill "$(cat "$f")"; fi
  done
  echo "slurm_cluster: two-nodes cluster stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && node_usable ;;
  two-nodes) start_two ;;
  stop-two-nodes) stop_two ;;
  *) die "usage: $0 [start|stop|status|two-nodes|stop-two-nodes]" ;;
esac
