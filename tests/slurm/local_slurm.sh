#!/usr/bin/env bash
# A throw-away single-node Slurm (munged, slurmctld, slurmd as root) for pelab's tests.
#   tests/slurm/local_slurm.sh start DIR   generates DIR/slurm.conf from slurm.conf.in, a munge
#                                          key, starts the daemons and waits for the node to be
#                                          idle; prints the SLURM_CONF to export
#   tests/slurm/local_slurm.sh stop DIR    stops the daemons this script started in DIR
# Needs root and Debian's munge, slurmctld, slurmd and slurm-client (scripts/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
action=${1:?usage: local_slurm.sh start|stop DIR}
dir=${2:?usage: local_slurm.sh start|stop DIR}

stop() {
  for name in slurmd slurmctld munged; do
    if [[ -f "$dir/$name.pid" ]]; then
      local pid
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
}

fail() {
  echo "local_slurm.sh: $*" >&2
  for log in munged.log slurmctld.log slurmd.log; do
    [[ -f "$dir/$log" ]] && { echo "--- $dir/$log (end)" >&2; tail -n 15 "$dir/$log" >&2; }
  done
  stop
  exit 1
}

if [[ $action == stop ]]; then stop; exit 0; fi
[[ $action == start ]] || { echo "usage: local_slurm.sh start|stop DIR" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "local_slurm.sh: needs root (slurmd and munged run as root)" >&2; exit 1; }
for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null || { echo "local_slurm.sh: '$tool' is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
host=$(hostname -s)
# Ports from this folder's name, so two test runs on one machine do not collide.
base=$(( 20000 + $(cksum <<<"$dir" | cut -d' ' -f1) % 20000 ))
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
sed -e "s|@DIR@|$dir|g" -e "s|@HOST@|$host|g" -e "s|@NODE@|$host|g" \
    -e "s|@CTLD_PORT@|$base|g" -e "s|@SLURMD_PORT@|$((base + 1))|g" \
    -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory|g" "$here/slurm.conf.in" >"$dir/slurm.conf"
export SLURM_CONF=$dir/slurm.conf

dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" \
  || fail "munged did not start"
slurmctld -f "$dir/slurm.conf" -i || fail "slurmctld did not start"
slurmd -f "$dir/slurm.conf" -N "$host" || fail "slurmd did not start"
for _ in $(seq 150); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
  [[ $state == idle ]] && { echo "$dir/slurm.conf"; exit 0; }
  sleep 0.2
done
fail "the node did not become idle within 30 s (state: '${state:-none}')"
