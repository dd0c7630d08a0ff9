#!/usr/bin/env bash
# `make test-slurm`: the decoding SLURM array on a real single-node SLURM (Debian's slurm-wlm) and the quick demo.
# Needs root. Installs slurm-wlm and munge with apt when missing, starts a private munged, slurmctld and
# slurmd (own key, socket, ports, state and logs in a temporary directory; nothing under /etc is changed),
# runs tests/slurm/check_array.py against them and stops them on exit, failure included.
# KEEP_SLURM_TEST=1 keeps the temporary directory (logs, data); it is kept after a failure anyway.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=$repo/.venv/bin/python
me=run_slurm_test.sh
start=$SECONDS
[ "$(id -u)" = 0 ] || { echo "$me: needs root (it starts munged, slurmctld and slurmd)" >&2; exit 2; }
[ -x "$py" ] || { echo "$me: no $py: run make install first" >&2; exit 2; }

missing=()
for tool in sbatch slurmctld slurmd munged mungekey; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "$me: installing slurm-wlm and munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

work=$(mktemp -d /tmp/bhscore-slurm.XXXXXX)
chmod 755 "$work"  # munged wants its socket's directories searchable by all
mkdir -p "$work"/{munge,key,state,spool,run,log}
chmod 700 "$work/key"
ok=0
cleanup() {
  set +e
  if [ -f "$work/run/slurmctld.pid" ]; then
    squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel 2>/dev/null
  fi
  for daemon in slurmd slurmctld munged; do
    pid=$(cat "$work/run/$daemon.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "$ok" = 1 ] && [ -z "${KEEP_SLURM_TEST:-}" ]; then
    rm -rf "$work"
  else
    for log in "$work"/log/slurm*.log; do echo "== last lines of $log"; tail -n 15 "$log"; done
    echo "$me: kept $work"
  fi
  echo "$me: daemons stopped, total $((SECONDS - start)) s"
}
trap cleanup EXIT

mungekey --create --keyfile="$work/key/munge.key"
munged --socket="$work/munge/munge.socket" --key-file="$work/key/munge.key" \
  --pid-file="$work/run/munged.pid" --log-file="$work/log/munged.log" --seed-file="$work/key/munged.seed"

read -r ctld_port node_port < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
host=$(hostname -s)
# this node's real CPUs and memory, as slurmd detects them
node=$(slurmd -C | head -n 1)
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=bhscoretest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$node_port
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
KillWait=5
DefMemPerCPU=1024
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "$me: $node; config $SLURM_CONF"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1) || true
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || { echo "$me: the node did not come up (state '${state:-none}')" >&2; exit 1; }

"$py" "$repo/tests/slurm/check_array.py" --work "$work" | tee "$work/check.log"
ok=1
closing=$(tail -n 1 "$work/check.log")
echo "$me: passed in $((SECONDS - start)) s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
cleanup
trap - EXIT
echo "$closing"
