#!/usr/bin/env bash
# Stop what scripts/slurm-start.sh started: cancel all jobs, then SIGTERM exactly the
# PIDs recorded in /run/slurm-ci/pids (slurmd, slurmctld, munged), newest first.
set -uo pipefail
PIDS=/run/slurm-ci/pids
log() { echo "[slurm-stop $(date +%T)] $*"; }

# 1. cancel all jobs so no slurmstepd/job processes outlive slurmd
if [[ $(scontrol ping 2>/dev/null) == *UP* ]]; then
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# 2. stop recorded daemons in reverse start order
[ -s "$PIDS" ] || { log "nothing recorded in $PIDS"; exit 0; }
tac "$PIDS" | while read -r name pid; do
  if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" != "$name" ]; then
    log "$name: pid $pid not running"; continue
  fi
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM, SIGKILL"; kill -KILL "$pid"; fi
  log "$name ($pid) stopped"
done
rm -f "$PIDS" /run/slurmctld.pid /run/slurmd.pid /run/slurmdbd.pid
exit 0
