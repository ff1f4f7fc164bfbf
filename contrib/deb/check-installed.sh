#!/usr/bin/env bash
# Check an installed slurm-vgpu package the way a site would use it: in a clean Debian with
# that release's Slurm, install the .deb with apt, link the plugin's plugstack snippet, generate
# the node's GRES with the installed `vgpu`, and run a `--gres=vgpu:3` job whose CUDA program
# must see 3 slices as its card and fail to allocate past them. Runs as root; only the package's
# installed files and the node's "driver" are used (no build tree on PATH or LD_LIBRARY_PATH).
#
#   contrib/deb/check-installed.sh DIR
#
# DIR holds slurm-vgpu_*.deb and the simulated GPU, which here plays the NVIDIA driver:
# libcuda.so.1, libnvidia-ml.so.1, fakegpu-ctl, and vgpu_probe (a CUDA driver-API program).
# The loopback cluster comes from contrib/devcluster (a test harness, not part of the package).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$(realpath "${1:?usage: check-installed.sh DIR (with the .deb and the simulated GPU)}")
say() { printf 'check-installed: %s\n' "$*"; }
die() { printf 'check-installed: FAILED: %s\n' "$*" >&2; exit 1; }

deb=$(ls "$DIR"/slurm-vgpu_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || die "no slurm-vgpu_*.deb in $DIR (make deb)"
say "installing $(basename "$deb")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
# the loopback test cluster's own needs (a site has its Slurm daemons already)
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client slurmdbd munge \
  mariadb-server mariadb-client python3 procps >/dev/null
dpkg -s slurm-vgpu | grep -E '^(Version|Depends):'

# The node's "driver": the simulated GPU where a real node has NVIDIA's, found by the loader.
driver=/usr/local/lib/fakegpu
install -d "$driver"
install -m 0755 "$DIR/libcuda.so.1" "$DIR/libnvidia-ml.so.1" "$driver/"
echo "$driver" > /etc/ld.so.conf.d/zz-fakegpu.conf
ldconfig
install -m 0755 "$DIR/fakegpu-ctl" "$DIR/vgpu_probe" /usr/local/bin/

work=$(mktemp -d /tmp/vgpu-installed-XXXXXX)
chmod 755 "$work"
cluster_up=0
cleanup() {
  [ "$cluster_up" = 1 ] && python3 "$REPO/contrib/devcluster/devcluster.py" down --workdir "$work/cluster" >/dev/null 2>&1
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
mkdir -p "$work/fake" "$work/rt" "$work/inv"
chmod 755 "$work/fake"
for node in n1 n2; do
  fakegpu-ctl create --force --state "$work/fake/$node.state" --count 2 --mem 10G \
    --name "NVIDIA FakeGPU" >/dev/null
  chmod 666 "$work/fake/$node.state"
  printf 'slices_per_gpu: 10\nreserved_memory: 0\n' > "$work/gres.yaml"
  FAKEGPU_STATE="$work/fake/$node.state" /usr/bin/vgpu gres generate --config "$work/gres.yaml" \
    --node "$node" --output-dir "$work/gen/$node" >/dev/null
  cp "$work/gen/$node/inventory.conf" "$work/inv/$node.conf"
done
say "vgpu gres generate (installed): $(grep -v '^#' "$work/gen/n1/gres.conf")"

# The package's plugstack snippet, with this node's runtime directory and inventory.
sed -e "s|runtime_dir=[^ ]*|runtime_dir=$work/rt/%n|" -e "s|inventory=[^ ]*|inventory=$work/inv/%n.conf|" \
  /usr/share/slurm-vgpu/plugstack.conf.d/vgpu.conf | grep -v '^#' > "$work/plugstack.conf"
grep -q ' /usr/lib/slurm-vgpu/vgpu.so ' "$work/plugstack.conf" || die "plugstack snippet: $(cat "$work/plugstack.conf")"
count=$(sed -n 's/.*Count=\([0-9]*\).*/\1/p' "$work/gen/n1/gres.conf")
python3 "$REPO/contrib/devcluster/devcluster.py" up --workdir "$work/cluster" --vgpu "$count" \
  --plugstack "$work/plugstack.conf" --slurmd-env "FAKEGPU_STATE=$work/fake/%n.state" >/dev/null
cluster_up=1
eval "$(python3 "$REPO/contrib/devcluster/devcluster.py" env --workdir "$work/cluster")"

# 3 slices of a 10 GiB card: the program sees 3 GiB as the card; 2 GiB fits, 4 GiB does not
# (rc=2 is CUDA_ERROR_OUT_OF_MEMORY).
cat > "$work/job.sh" <<EOF
#!/bin/sh
export FAKEGPU_STATE=$work/fake/%n.state   # which simulated node (the driver expands %n)
vgpu_probe info
vgpu_probe alloc 2G
vgpu_probe alloc 4G
EOF
chmod 755 "$work/job.sh"
job=$(cd "$work" && sbatch --parsable --gres=vgpu:3 -o "$work/job.out" "$work/job.sh")
for _ in $(seq 1 120); do
  state=$(scontrol show job "$job" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 0.5
done
say "job $job: $state"
sed 's/^/  job: /' "$work/job.out"
grep -q 'total=3221225472' "$work/job.out" || die "the job did not see 3 slices (3 GiB) as its card"
grep -q 'alloc rc=0 bytes=2147483648' "$work/job.out" \
  || die "2 GiB within the cap did not succeed"
grep -q 'alloc rc=2 bytes=4294967296' "$work/job.out" \
  || die "4 GiB past the 3 GiB cap was not refused"
# (not `ldd | grep -q`: under pipefail, grep leaving early can fail the pipe with ldd's SIGPIPE)
libs=$(ldd /usr/lib/slurm-vgpu/vgpu.so)
grep -q libslurm <<<"$libs" || die "the plugin does not link libslurm"
# the controller's reader, against this release's slurmctld: the running job, n1 with its GRES
reader=/usr/lib/slurm-vgpu/vgpu-slurm-read
"$reader" jobs > "$work/jobs.txt" || die "$reader jobs failed"
"$reader" nodes > "$work/nodes.txt" || die "$reader nodes failed"
grep -q '^V|1|jobs|' <<<"$(head -n1 "$work/jobs.txt")" || die "$reader jobs: $(head -n1 "$work/jobs.txt")"
grep -q '^N|n1|[^|]*|vgpu:' "$work/nodes.txt" || die "$reader nodes: $(cat "$work/nodes.txt")"
say "vgpu-slurm-read (installed): $(grep -c '^N|' "$work/nodes.txt") nodes"
say "OK: $(dpkg-query -W -f='${Package} ${Version}' slurm-vgpu) runs --gres=vgpu:3 with its cap enforced"
