#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (munged, slurmctld, slurmd) for tests/test_slurm.py.
#
# Installs Debian's slurm-wlm and munge if missing, writes /etc/slurm/slurm.conf (where sbatch,
# squeue and sinfo look by default), starts the daemons and waits until the node is idle.
# Safe to run twice: when the node is already up, it does nothing. Needs root (no sudo).
# State, spool and logs go to $HARNESS_SLURM_DIR (default /var/tmp/harness-slurm).
set -euo pipefail

dir=${HARNESS_SLURM_DIR:-/var/tmp/harness-slurm}
conf=/etc/slurm/slurm.conf
node=$(hostname -s)

node_state() { sinfo -h -N -n "$node" -o %t 2>/dev/null | head -n1; }

if command -v sinfo >/dev/null && [[ $(node_state) =~ ^(idle|mix|alloc) ]]; then
    echo "slurm: already up ($node $(node_state))"
    exit 0
fi

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

# 2. munge: a key, then the daemon
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# 3. slurm.conf for this one node (RealMemory a little under the total, or slurmd drains the node)
mkdir -p "$dir"/{state,spool,log} /etc/slurm
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat >"$conf.new" <<EOF
# Written by .ci/start-slurm.sh: a one-node cluster on localhost.
ClusterName=harness
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=600
KillWait=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.new" "$conf"

# 4. daemons (each only if its pid file names no live process)
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$dir/slurmctld.pid" || slurmctld -f "$conf"
running "$dir/slurmd.pid" || slurmd -f "$conf"

# 5. wait for the node; a node left down or drained by an earlier run is resumed
for i in $(seq 60); do
    state=$(node_state || true)
    if [[ $state =~ ^(idle|mix|alloc) ]]; then
        echo "slurm: up ($node $state, conf $conf, logs $dir/log)"
        exit 0
    fi
    if [[ $state =~ ^(down|drain|drng) ]] && ((i % 5 == 0)); then
        scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
    fi
    sleep 1
done
echo "slurm: node $node did not become idle (state '${state:-none}'); see $dir/log/" >&2
tail -n 20 "$dir"/log/*.log >&2 || true
exit 1
