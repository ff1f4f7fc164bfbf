#!/usr/bin/env bash
# slurm-vgpu demo (make demo): a real loopback Slurm 22.05 cluster, jobs asking for GPU slices
# with --gres=vgpu:N, what Slurm allocated and what accounting recorded. Runs as root.
#
#   contrib/demo/run-demo.sh                 # fresh temp work directory, removed at the end
#   VGPU_DEMO_DIR=/tmp/demo contrib/demo/run-demo.sh   # keep everything (logs) there
#
# Each step is a function below; later parts (enforcement, metrics, report) add steps.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DEVCLUSTER=(python3 "$REPO/contrib/devcluster/devcluster.py")
WORKDIR=${VGPU_DEMO_DIR:-$(mktemp -d /tmp/vgpu-demo-XXXXXX)}
JOB_TIMEOUT=${VGPU_DEMO_TIMEOUT:-120}   # seconds any wait below may take
JOBS=()

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s==== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
run() { printf '$ %s\n' "$*"; "$@"; }

teardown() {
  local rc=$?
  step "Tear down the cluster"
  "${DEVCLUSTER[@]}" down --workdir "$WORKDIR" || rc=1
  if [ -z "${VGPU_DEMO_DIR:-}" ]; then
    rm -rf "$WORKDIR"
  else
    echo "work directory kept: $WORKDIR (logs in $WORKDIR/log)"
  fi
  exit "$rc"
}

# Wait (bounded) until none of the demo's jobs is pending or running.
wait_jobs_done() {
  local deadline=$((SECONDS + JOB_TIMEOUT)) ids
  ids=$(IFS=,; echo "${JOBS[*]}")
  while [ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: jobs $ids still queued after ${JOB_TIMEOUT}s" >&2
      squeue -j "$ids" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Wait (bounded) until no demo job is still pending (they then run for a few seconds).
wait_jobs_started() {
  local deadline=$((SECONDS + JOB_TIMEOUT)) ids
  ids=$(IFS=,; echo "${JOBS[*]}")
  while squeue -h -j "$ids" -o %T 2>/dev/null | grep -q PENDING; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: jobs $ids still pending after ${JOB_TIMEOUT}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Wait (bounded) until slurmdbd has recorded every demo job (accounting is asynchronous).
wait_accounted() {
  local deadline=$((SECONDS + JOB_TIMEOUT)) ids
  ids=$(IFS=,; echo "${JOBS[*]}")
  until [ "$(sacct -n -X -j "$ids" -o State 2>/dev/null | grep -c COMPLETED)" -ge "${#JOBS[@]}" ]
  do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: accounting incomplete after ${JOB_TIMEOUT}s" >&2
      return 1
    fi
    sleep 0.5
  done
}

step_start_cluster() {
  step "1. Start a loopback Slurm cluster (2 nodes, 20 vgpu slices each) in $WORKDIR"
  local exports
  exports=$("${DEVCLUSTER[@]}" up --workdir "$WORKDIR")
  eval "$exports"
  echo "$exports"
  run sinfo -N -o "%N %T %G"
}

step_submit() {
  step "2. Submit jobs asking for GPU slices"
  cd "$WORKDIR/jobs"
  local spec jobid
  for spec in 3 7 15; do
    jobid=$(sbatch --parsable --gres="vgpu:$spec" -J "demo-vgpu$spec" -o "%x-%j.out" \
      --wrap 'echo "job $SLURM_JOB_ID ($SLURM_JOB_NAME) on node $SLURMD_NODENAME"; sleep 3')
    echo "sbatch --gres=vgpu:$spec  -> job $jobid"
    JOBS+=("$jobid")
  done
}

step_show_running() {
  step "3. What Slurm allocated (squeue, scontrol show job -d)"
  wait_jobs_started
  run squeue -o "%.6i %.12j %.9T %.6D %N %b"
  local jobid
  for jobid in "${JOBS[@]}"; do
    scontrol show job -d "$jobid" | grep -E "JobId=|JobState=|GRES=|TresPerNode=|JOB_GRES=" \
      | sed 's/^ */  /'
  done
}

step_show_output() {
  step "4. Job output"
  wait_jobs_done
  local f
  for f in "$WORKDIR"/jobs/demo-vgpu*.out; do
    printf '%s: %s\n' "$(basename "$f")" "$(cat "$f")"
  done
}

step_show_accounting() {
  step "5. Accounting (AllocTRES carries gres/vgpu for the job and its steps)"
  wait_accounted
  local ids
  ids=$(IFS=,; echo "${JOBS[*]}")
  run sacct -j "$ids" -o JobID,JobName%12,State,AllocTRES%40
}

step_rejected() {
  step "6. A request larger than any node is refused at submit"
  run sbatch --gres=vgpu:21 --wrap true 2>&1 || true
}

main() {
  trap teardown EXIT
  trap 'exit 130' INT TERM
  step_start_cluster
  step_submit
  step_show_running
  step_show_output
  step_show_accounting
  step_rejected
}

main "$@"
