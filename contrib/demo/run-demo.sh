#!/usr/bin/env bash
# slurm-vgpu demo (make demo): a real loopback Slurm 22.05 cluster whose two nodes each have two
# simulated GPUs (n2's are AMD where the simulated AMD GPU is built); the GRES generator, the
# SPANK plugin, the hook, the cluster controller and a node agent per node, all real.
# Jobs ask for slices with --gres=vgpu:N, run real CUDA programs (nvcc-built, cudart 13) and
# driver-API programs, and are held to their slices' memory and compute. Runs as root.
#
#   contrib/demo/run-demo.sh                 # fresh temp work directory, removed at the end
#   VGPU_DEMO_DIR=/tmp/demo contrib/demo/run-demo.sh   # keep everything (logs) there
#
# Each step is a function below.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${VGPU_BUILD:-$REPO/build}
FAKE=$BUILD/fakegpu
PROBE=$BUILD/native/tests/vgpu_probe
PY=${PYTHON:-python3}
DEVCLUSTER=("$PY" "$REPO/contrib/devcluster/devcluster.py")
# the installed console script when it is this checkout's; else the module
if command -v vgpu >/dev/null && [ "$(command -v vgpu)" -ef "$(dirname "$(command -v "$PY")")/vgpu" ]; then
  VGPU=(vgpu)
else
  VGPU=("$PY" -m slurm_vgpu.cli)
fi
WORKDIR=${VGPU_DEMO_DIR:-$(mktemp -d /tmp/vgpu-demo-XXXXXX)}
JOB_TIMEOUT=${VGPU_DEMO_TIMEOUT:-120}   # seconds any wait below may take
NODES=(n1 n2)
# n2's GPUs are simulated AMD ones (fake libamdhip64 + ROCm SMI) where the simulated AMD GPU is
# built: Debian 12 and 13 ship the HIP 5 it needs (contrib/bootstrap.sh); elsewhere n2 is NVIDIA.
if [ -e "$FAKE/libamdhip64.so.5" ] && [ -e "$FAKE/librocm_smi64.so.1" ] \
   && [ -x "$FAKE/test-hip-hook-probe" ]; then
  AMD_NODE=n2
else
  AMD_NODE=""
fi
JOBS=()
DAEMON_PIDS=()  # the controller and the node agents

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s==== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() { echo "demo: $*" >&2; exit 1; }

teardown() {
  local rc=$?
  local pid
  for pid in "${DAEMON_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  [ "$rc" -eq 0 ] || show_daemon_logs
  step "Tear down the cluster"
  "${DEVCLUSTER[@]}" down --workdir "$WORKDIR" || rc=1
  if [ -z "${VGPU_DEMO_DIR:-}" ]; then
    rm -rf "$WORKDIR"
  else
    echo "work directory kept: $WORKDIR (logs in $WORKDIR/log, agent logs in $WORKDIR/agent-*.log, controller log in $WORKDIR/controller.log)"
  fi
  exit "$rc"
}

# On failure: what the controller and agents did last (the work directory may vanish with a chroot).
show_daemon_logs() {
  local f
  for f in "$WORKDIR/controller.log" "$WORKDIR"/agent-*.log; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f"
    tail -n 25 "$f" | sed 's/^/  /'
  done
}

# Wait (bounded) until `cmd...` succeeds.
wait_until() {
  local what=$1; shift
  local deadline=$((SECONDS + JOB_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: still not true after ${JOB_TIMEOUT}s"
    sleep 0.2
  done
}

jobs_left() { [ -n "$(squeue -h -j "$(IFS=,; echo "${JOBS[*]}")" -o %i 2>/dev/null)" ]; }
none_left() { ! jobs_left; }
none_pending() { ! squeue -h -j "$(IFS=,; echo "${JOBS[*]}")" -o %T 2>/dev/null | grep -q PENDING; }
all_summarized() {  # the daemon's utilization summary of every demo job is in accounting
  [ "$(sacct -n -X -j "$(IFS=,; echo "${JOBS[*]}")" -o AdminComment%300 2>/dev/null \
      | grep -ci 'vgpu1;')" -ge "${#JOBS[@]}" ]
}
all_accounted() {
  [ "$(sacct -n -X -j "$(IFS=,; echo "${JOBS[*]}")" -o State 2>/dev/null | grep -c COMPLETED)" \
    -ge "${#JOBS[@]}" ]
}
probe_holds() { grep -q "alloc rc=" "$WORKDIR/jobs/$1.probe" 2>/dev/null; }

check_built() {
  local f
  for f in "$BUILD/spank/vgpu.so" "$BUILD/native/libvgpu.so" "$FAKE/libcuda.so.1" \
           "$FAKE/libnvidia-ml.so.1" "$FAKE/fakegpu-ctl" "$FAKE/fakegpu-dump" "$PROBE"; do
    [ -e "$f" ] || die "$f is not built: run 'make' (or 'make demo') first"
  done
  [ "$(id -u)" -eq 0 ] || die "run as root (the demo starts Slurm daemons)"
  "$PY" -c 'import slurm_vgpu' 2>/dev/null || die "slurm_vgpu is not installed: pip install -e '.[dev]'"
}

# The CUDA program the jobs run: nvcc-built (cudart 13) when nvcc was there, else the probe.
cuda_alloc() {  # cuda_alloc MIB: one cudaMalloc, then what cudaMemGetInfo says
  if [ -x "$FAKE/test-rt-basic" ]; then
    echo "\"$FAKE/test-rt-basic\" alloc $1"
  else
    echo "\"$PROBE\" alloc ${1}M info | grep -v '^setup' | paste -sd' '"
  fi
}

step_simulated_gpus() {
  if [ -n "$AMD_NODE" ]; then
    step "1. Two simulated GPUs per node, 10 GiB each: NVIDIA on n1 (fake libcuda + libnvidia-ml), AMD on $AMD_NODE (fake libamdhip64 + librocm_smi64)"
  else
    step "1. Two simulated GPUs per node (fake libcuda + libnvidia-ml; 10 GiB, 108 SMs each)"
  fi
  mkdir -p "$WORKDIR/fake" "$WORKDIR/inv" "$WORKDIR/rt"
  chmod 755 "$WORKDIR" "$WORKDIR/fake"
  local node i uuids vendor group
  for node in "${NODES[@]}"; do
    # (an AMD GPU's UUID is ROCm SMI's 64-bit unique id: bytes 8..15 of the state's UUID)
    vendor=(--name "NVIDIA FakeGPU") group=8000
    [ "$node" != "$AMD_NODE" ] || vendor=(--vendor amd) group=a3d0
    uuids=""
    for i in 0 1; do
      uuids+="${uuids:+,}GPU-de300000-0000-4000-$group-$(printf '%s%011d' "${node#n}" "$i")"
    done
    "$FAKE/fakegpu-ctl" create --force --state "$WORKDIR/fake/$node.state" --count 2 \
      --mem 10G "${vendor[@]}" --uuid "$uuids" --ctx-overhead 0 >/dev/null
    # (contexts free, so the demo shows caps in round numbers; by default the simulated GPU
    # charges 512 MiB per context as an H200 does, and the hook counts it inside the cap)
    chmod 666 "$WORKDIR/fake/$node.state"  # every job's processes share the simulated node
  done
  echo "state files: $WORKDIR/fake/{n1,n2}.state"
}

step_generate() {
  step "2. vgpu gres generate: discover the GPUs (NVML; ROCm SMI on AMD), write gres.conf + inventory"
  cat >"$WORKDIR/vgpu-gres.yaml" <<EOF
slices_per_gpu: 10     # a slice = 10 % of a card's memory (hard cap) and compute (share)
reserved_memory: 0     # the simulated GPU has no driver overhead to hold back
EOF
  local node
  local library
  for node in "${NODES[@]}"; do
    library=(--discovery nvml --library "$FAKE/libnvidia-ml.so.1")
    [ "$node" != "$AMD_NODE" ] || library=(--discovery rsmi --library "$FAKE/librocm_smi64.so.1")
    FAKEGPU_STATE="$WORKDIR/fake/$node.state" "${VGPU[@]}" gres generate \
      --config "$WORKDIR/vgpu-gres.yaml" "${library[@]}" --node "$node" \
      --output-dir "$WORKDIR/gen/$node" >/dev/null
    cp "$WORKDIR/gen/$node/inventory.conf" "$WORKDIR/inv/$node.conf"
  done
  printf '$ vgpu gres generate --node n1 --library fakegpu/libnvidia-ml.so.1 --output-dir ...\n'
  sed 's/^/  gres.conf:     /' <(grep -v '^#' "$WORKDIR/gen/n1/gres.conf")
  sed 's/^/  slurm.conf:    /' <(grep -v '^#' "$WORKDIR/gen/n1/slurm.conf.fragment")
  sed 's/^/  inventory.conf: /' <(grep '^gpu ' "$WORKDIR/gen/n1/inventory.conf")
  if [ -n "$AMD_NODE" ]; then
    printf '$ vgpu gres generate --node %s --discovery rsmi --library fakegpu/librocm_smi64.so.1 ...\n' "$AMD_NODE"
    sed 's/^/  inventory.conf: /' <(grep '^gpu ' "$WORKDIR/gen/$AMD_NODE/inventory.conf")
  fi
}

step_start_cluster() {
  step "3. Start a loopback Slurm cluster (munged, MariaDB, slurmdbd, slurmctld, 2 slurmd) with the SPANK plugin"
  cat >"$WORKDIR/plugstack.conf" <<EOF
required $BUILD/spank/vgpu.so runtime_dir=$WORKDIR/rt/%n inventory=$WORKDIR/inv/%n.conf hook=$BUILD/native/libvgpu.so on_error=deny
EOF
  echo "plugstack.conf: $(cat "$WORKDIR/plugstack.conf")"
  local exports count
  count=$(sed -n 's/.*Count=\([0-9]*\).*/\1/p' "$WORKDIR/gen/n1/gres.conf")
  # a preemptible partition for backfill on idle slices (step 11; docs/daemon.md)
  cat >"$WORKDIR/preemption.conf" <<EOF
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=scavenger Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=0 PreemptMode=REQUEUE
EOF
  # the shipped job_submit.lua (refusals at submit; holds new batch jobs for the controller's
  # placement steering while its steering file is fresh: step 13), pointed at this work dir
  sed "s|\"/run/slurm-vgpu/steering\"|\"$WORKDIR/steering\"|" \
    "$REPO/contrib/job_submit/job_submit.lua" >"$WORKDIR/job_submit.lua"
  exports=$("${DEVCLUSTER[@]}" up --workdir "$WORKDIR" --vgpu "$count" \
    --plugstack "$WORKDIR/plugstack.conf" --extra-conf "$WORKDIR/preemption.conf" \
    --job-submit-lua "$WORKDIR/job_submit.lua")
  eval "$exports"
  echo "$exports"
  run sinfo -N -o "%N %T %G"
}

step_daemon() {
  step "4. Start the cluster controller and a node agent per node (share adjustment, backfill, backstop, Prometheus /metrics)"
  PORT=$(free_port)
  local node port
  # one config for every part: the agents take their node with --node (%n in the paths),
  # the controller reads Slurm for all of them and talks to them through exchange.dir
  cat >"$WORKDIR/vgpu-daemon.yaml" <<EOF
control_period_seconds: 1
runtime_dir: $WORKDIR/rt/%n
inventory: $WORKDIR/inv/%n.conf
metrics: {address: 127.0.0.1, port: $PORT}
exchange: {dir: $WORKDIR/exchange, stale_after_seconds: 10}
slurm: {reader: $BUILD/spank/vgpu-slurm-read}  # libslurm, not squeue/sinfo (installed: auto)
# lend slices idle for 2 s (300 s by default) to jobs of the scavenger partition, 4 at most
backfill: {enabled: true, idle_after_seconds: 2, max_offer_slices: 4, preemptible_partitions: [scavenger]}
# name the node of each new unpinned batch job (job_submit.lua holds it; docs/placement.md)
steering: {enabled: true, file: $WORKDIR/steering, hold_seconds: 10}
EOF
  port=$(free_port)
  "${VGPU[@]}" controller --config "$WORKDIR/vgpu-daemon.yaml" --metrics-port "$port" \
    >"$WORKDIR/controller.log" 2>&1 &
  DAEMON_PIDS+=($!)
  wait_until "the controller's /metrics" metrics_up "$port"
  echo "vgpu controller running (pid $!), metrics on http://127.0.0.1:$port/metrics"
  for node in "${NODES[@]}"; do
    if [ "$node" = n1 ]; then port=$PORT; else port=$(free_port); fi
    FAKEGPU_STATE="$WORKDIR/fake/$node.state" LD_LIBRARY_PATH="$FAKE" \
      "${VGPU[@]}" agent --config "$WORKDIR/vgpu-daemon.yaml" --node "$node" \
      --metrics-port "$port" >"$WORKDIR/agent-$node.log" 2>&1 &
    DAEMON_PIDS+=($!)
    wait_until "$node's agent /metrics" metrics_up "$port"
    echo "vgpu agent for $node running (pid $!), metrics on http://127.0.0.1:$port/metrics"
  done
  ln -sf agent-n1.log "$WORKDIR/daemon.log"
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

metrics_up() {
  "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/metrics', timeout=1)"
}

job_script() {  # job_script NAME SLICES: a job that checks its cap, then computes for 8 s
  local cap_mib=$(($2 * 1024))
  cat >"$WORKDIR/jobs/$1.sh" <<EOF
#!/bin/bash
export LD_LIBRARY_PATH=$FAKE FAKEGPU_STATE=$WORKDIR/fake/%n.state
echo "job \$SLURM_JOB_ID (\$SLURM_JOB_NAME) on \$SLURMD_NODENAME: CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES"
echo "  cudaMalloc \$(( $cap_mib - 512 )) MiB (within the cap): \$($(cuda_alloc $((cap_mib - 512))))"
echo "  cudaMalloc \$(( $cap_mib + 512 )) MiB (over the cap):   \$($(cuda_alloc $((cap_mib + 512))))"
# wait (bounded) until the demo has placed every job, so that all of them compute together
for i in \$(seq 600); do [ -e "$WORKDIR/jobs/go" ] && break; sleep 0.1; done
# hold memory and keep the GPU busy, as a training loop does (1 ms kernels, 4 per sync)
FAKEGPU_KERNEL_NS=1000000 PROBE_BATCH=4 $PROBE alloc $((cap_mib / 2))M busy 8000 > "$WORKDIR/jobs/\$SLURM_JOB_ID.probe" 2>&1
EOF
  chmod 755 "$WORKDIR/jobs/$1.sh"
}

placed() { grep -q "^job=$1 " "$WORKDIR/rt/n1/placements" 2>/dev/null; }

step_submit() {
  step "5. Submit jobs asking for GPU slices on n1 (two GPUs of 10 slices), one after the other"
  cd "$WORKDIR/jobs"
  local spec jobid share
  for spec in 7 3 5; do
    share=guaranteed
    [ "$spec" -ne 5 ] || share=burst  # may use the compute its GPU's other slices leave idle
    job_script "demo-vgpu$spec" "$spec"
    jobid=$(sbatch --parsable -w n1 --gres="vgpu:$spec" --vgpu-share="$share" \
      -J "demo-vgpu$spec" -o "%x-%j.out" "$WORKDIR/jobs/demo-vgpu$spec.sh")
    echo "sbatch -w n1 --gres=vgpu:$spec --vgpu-share=$share demo-vgpu$spec.sh  -> job $jobid"
    JOBS+=("$jobid")
    wait_until "job $jobid to be placed" placed "$jobid"
  done
}

step_show_running() {
  step "6. Where the slices went (SPANK placement: best fit on one GPU) and what the jobs use"
  wait_until "jobs to start" none_pending
  touch "$WORKDIR/jobs/go"
  local jobid
  for jobid in "${JOBS[@]}"; do wait_until "job $jobid computing" probe_holds "$jobid"; done
  run squeue -o "%.6i %.12j %.9T %N %b"
  echo "\$ cat $WORKDIR/rt/n1/placements"
  grep '^job=' "$WORKDIR/rt/n1/placements" | sed 's/^/  /'
  sleep 1  # let the shares settle and the daemon sample them
  FAKEGPU_STATE="$WORKDIR/fake/n1.state" LD_LIBRARY_PATH="$FAKE" \
    run "${VGPU[@]}" status --runtime-dir "$WORKDIR/rt/n1" --inventory "$WORKDIR/inv/n1.conf" \
    --node n1 --sample-seconds 2
  echo "\$ fakegpu-dump --window-ms 2000   # the simulated GPUs' ground truth, no hook involved"
  "$FAKE/fakegpu-dump" --state "$WORKDIR/fake/n1.state" --window-ms 2000 \
    | "$PY" "$REPO/contrib/demo/show_gpus.py" 2
  echo "(best fit: the vgpu:3 job fills the GPU the vgpu:7 job left 3 slices of, and they share"
  echo " its time 70/30; the burst vgpu:5 job is alone on the other GPU and borrows its idle half)"
}

step_metrics() {
  step "7. Prometheus metrics from the node agent of n1 (scraped at collection time)"
  echo "\$ curl -s http://127.0.0.1:$PORT/metrics | grep -E '^vgpu_(job_memory_limit_bytes|job_compute_(guaranteed|achieved)_ratio|gpu_slices_allocated)'"
  "$PY" -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$PORT/metrics', timeout=5).read().decode())" \
    | grep -E '^vgpu_(job_memory_limit_bytes|job_compute_(guaranteed|achieved)_ratio|gpu_slices_allocated)' \
    | sed 's/^/  /'
}

step_show_output() {
  step "8. Job output: each job sees its slices' memory as the card, and cannot exceed it"
  wait_until "jobs to finish" none_left
  local f
  for f in "$WORKDIR"/jobs/demo-vgpu*.out; do
    sed 's/^/  /' "$f"
  done
}

step_show_accounting() {
  step "9. Accounting: AllocTRES carries gres/vgpu; AdminComment the placement and utilization"
  wait_until "slurmdbd to record the jobs" all_accounted
  wait_until "the job summaries (agents -> controller -> AdminComment)" all_summarized
  local ids
  ids=$(IFS=,; echo "${JOBS[*]}")
  run sacct -j "$ids" -o JobID,JobName%12,State,AllocTRES%40
  run sacct -X -j "$ids" -o JobID,AdminComment%150
  run "${VGPU[@]}" report --job "${JOBS[0]}" || true
}

node_count() { sinfo -h -N -n n1 -o %G | sed -n 's/.*vgpu:\([0-9]*\).*/\1/p' | head -1; }
count_is() { [ "$(node_count)" = "$1" ]; }  # (one line per partition: the first)
job_state_is() { [ "$(squeue -h -j "$1" -o %T 2>/dev/null)" = "$2" ]; }
guest_holds() { grep -q "alloc rc=" "$WORKDIR/jobs/guest.probe" 2>/dev/null; }

step_backfill() {
  step "11. Backfill: an idle owner's slices are lent to a preemptible job, and taken back"
  cd "$WORKDIR/jobs"
  cat >"$WORKDIR/jobs/owner.sh" <<EOF
#!/bin/bash
export LD_LIBRARY_PATH=$FAKE FAKEGPU_STATE=$WORKDIR/fake/%n.state
# idle (computes nothing) until the demo wakes it, then trains on GPU 0 with 6 GiB
for i in \$(seq 6000); do [ -e "$WORKDIR/jobs/wake" ] && break; sleep 0.1; done
FAKEGPU_KERNEL_NS=1000000 PROBE_BATCH=4 $PROBE alloc 6G busy 60000
EOF
  cat >"$WORKDIR/jobs/guest.sh" <<EOF
#!/bin/bash
export LD_LIBRARY_PATH=$FAKE FAKEGPU_STATE=$WORKDIR/fake/%n.state
$PROBE total alloc 3G busy 60000 > "$WORKDIR/jobs/guest.probe" 2>&1
EOF
  chmod 755 "$WORKDIR/jobs/owner.sh" "$WORKDIR/jobs/guest.sh"
  OWNER=$(sbatch --parsable -w n1 --gres=vgpu:20 -J owner -o owner.out "$WORKDIR/jobs/owner.sh")
  JOBS+=("$OWNER")
  echo "sbatch -w n1 --gres=vgpu:20 owner.sh   -> job $OWNER (books both GPUs, then sits idle)"
  wait_until "the agent and controller to lend idle slices" count_is 24
  run sinfo -N -n n1 -p debug -o "%N %G"
  echo "\$ cat $WORKDIR/rt/n1/lent"
  grep -v '^#' "$WORKDIR/rt/n1/lent" | sed 's/^/  /'
  GUEST=$(sbatch --parsable -w n1 -p scavenger --gres=vgpu:4 -J guest -o guest.out \
    "$WORKDIR/jobs/guest.sh")
  JOBS+=("$GUEST")
  echo "sbatch -w n1 -p scavenger --gres=vgpu:4 guest.sh   -> job $GUEST"
  wait_until "the guest to run on the lent slices" guest_holds
  echo "  guest's probe: $(grep -E '^(total|alloc) ' "$WORKDIR/jobs/guest.probe" | paste -sd' ')"
  echo "\$ cat $WORKDIR/rt/n1/placements   # GPU 0 now carries 10 + 4 slices"
  grep '^job=' "$WORKDIR/rt/n1/placements" | sed 's/^/  /'
  touch "$WORKDIR/jobs/wake"
  echo "(the owner wakes up and trains on GPU 0 with 6 GiB: the guest is throttled at once,"
  echo " and requeued because the owner may need all 10 GiB of its GPU back)"
  wait_until "the guest to be requeued" job_state_is "$GUEST" PENDING
  run squeue -j "$OWNER,$GUEST" -o "%.6i %.8j %.10P %.9T %r"
  grep -E "job_id=$GUEST|lent slices now" "$WORKDIR/daemon.log" | tail -3 \
    | sed -e 's/^[0-9-]* [0-9:,]* INFO vgpu: /  agent n1: /' || true
  grep -E "set_node_vgpu_count: n1" "$WORKDIR/controller.log" | tail -2 \
    | sed -e 's/^[0-9-]* [0-9:,]* INFO vgpu: /  controller: /' || true
  echo "(the owner is still idle on GPU 1, so the offer moves there)"
  scancel "$GUEST" "$OWNER"
  wait_until "the owner and guest to end" none_left
}

amd_summarized() { sacct -n -X -j "$1" -o AdminComment%300 2>/dev/null | grep -q 'vgpu1;'; }
amd_done() { [ -s "$WORKDIR/jobs/$1.hip" ] && ! job_state_is "$1" RUNNING && ! job_state_is "$1" PENDING; }

step_amd() {
  [ -n "$AMD_NODE" ] || return 0
  step "12. The AMD node: --gres=vgpu:3 on $AMD_NODE, a hipcc-built program held to 3 of 10 GiB"
  cd "$WORKDIR/jobs"
  cat >"$WORKDIR/jobs/amd.sh" <<EOF
#!/bin/bash
export LD_LIBRARY_PATH=$FAKE FAKEGPU_STATE=$WORKDIR/fake/\$SLURMD_NODENAME.state
echo "job \$SLURM_JOB_ID on \$SLURMD_NODENAME: ROCR_VISIBLE_DEVICES=\$ROCR_VISIBLE_DEVICES CUDA_VISIBLE_DEVICES=\${CUDA_VISIBLE_DEVICES-unset}"
# hipMemGetInfo, 2.5 GiB (within the cap), 1 GiB more (past it: rc=2, hipErrorOutOfMemory);
# then hold the 2.5 GiB for 3 s, so that the agent samples the job
$FAKE/test-hip-hook-probe info alloc malloc 2560 alloc malloc 1024 sleep 3000 > "$WORKDIR/jobs/\$SLURM_JOB_ID.hip" 2>&1
sed 's/^/  /' "$WORKDIR/jobs/\$SLURM_JOB_ID.hip"
EOF
  chmod 755 "$WORKDIR/jobs/amd.sh"
  local jobid
  jobid=$(sbatch --parsable -w "$AMD_NODE" --gres=vgpu:3 -J demo-amd -o "%x-%j.out" "$WORKDIR/jobs/amd.sh")
  echo "sbatch -w $AMD_NODE --gres=vgpu:3 amd.sh  -> job $jobid"
  wait_until "job $jobid to finish" amd_done "$jobid"
  sed 's/^/  /' "$WORKDIR/jobs/demo-amd-$jobid.out"
  grep -q "^alloc rc=2 " "$WORKDIR/jobs/$jobid.hip" || die "the AMD job was not held to its cap"
  echo "(total = 3 GiB: the slices, not the card; the allocation past them is refused)"
  wait_until "the AMD job's summary (n2's agent reads ROCm SMI)" amd_summarized "$jobid"
  run sacct -X -j "$jobid" -o JobID,AdminComment%150
  echo "(v:amd: the GPU's vendor, from the inventory; docs/accounting.md)"
}

job_started() { ! job_state_is "$1" PENDING; }
placed_on() { grep -q "^job=$2 " "$WORKDIR/rt/$1/placements" 2>/dev/null; }

step_steering() {
  step "13. Placement steering: the controller names the node of each new batch job"
  cd "$WORKDIR/jobs"
  local spec jobid node gpu ids=()
  for spec in 6 4 3; do
    jobid=$(sbatch --parsable --gres="vgpu:$spec" -J "steer$spec" -o /dev/null --wrap "sleep 30")
    echo "sbatch --gres=vgpu:$spec --wrap 'sleep 30'  -> job $jobid (held by job_submit.lua: Reason=BeginTime)"
    ids+=("$jobid")
  done
  for jobid in "${ids[@]}"; do wait_until "job $jobid to be steered and started" job_started "$jobid"; done
  echo "\$ grep 'steering: job' controller.log"
  grep -E "steering: job ($(IFS='|'; echo "${ids[*]}")) " "$WORKDIR/controller.log" \
    | sed -e 's/^[0-9-]* [0-9:,]* INFO vgpu: /  controller: /'
  for jobid in "${ids[@]}"; do
    node=$(squeue -h -j "$jobid" -o %N)
    # RUNNING can come before the plugin's prolog has written the placement (24.11)
    wait_until "job $jobid's placement on $node" placed_on "$node" "$jobid"
    gpu=$(sed -n "s/^job=$jobid gpu=\([0-9]*\) .*/\1/p" "$WORKDIR/rt/$node/placements" 2>/dev/null)
    echo "  job $jobid: started on $node, GPU ${gpu:-?} (the plugin's best fit there)"
  done
  echo "(each node is the one where FGD's expected fragmentation under the held jobs' request"
  echo " mix grows least, ties to the fullest node; srun and -w jobs are never held)"
}

step_rejected() {
  step "10. A request larger than any node is refused at submit; a bad option before the job starts"
  run sbatch --gres=vgpu:21 --wrap true 2>&1 || true
  run sbatch --gres=vgpu:1 --vgpu-share=always --wrap true 2>&1 || true
}

main() {
  trap teardown EXIT
  trap 'exit 130' INT TERM
  check_built
  step_simulated_gpus
  step_generate
  step_start_cluster
  step_daemon
  step_submit
  step_show_running
  step_metrics
  step_show_output
  step_show_accounting
  step_rejected
  step_backfill
  step_amd
  step_steering
}

main "$@"
