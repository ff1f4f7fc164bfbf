#!/usr/bin/env bash
# One release's column of the compatibility table, on the machine it runs on (the host, or a
# chroot of `vgpu-chroot run`): install, build the plugin, run the Slurm-backed tests and the
# demo, build the .deb. Every step's exit code, time and log land in OUT (default /out), with
# the .deb and the simulated GPU that contrib/deb/check-installed.sh needs next.
#
#   contrib/chroot/check-release.sh [OUT] [PYTEST_ARGS...]     # default: -m slurm -q
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/out}
shift || true
PYTEST=("$@")
[ ${#PYTEST[@]} -gt 0 ] || PYTEST=(-m slurm -q -p no:cacheprovider)
mkdir -p "$OUT"
results=$OUT/steps.tsv
: > "$results"
failed=0

step() {
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s)
  echo "check-release: $name: $*"
  "$@" > "$OUT/$name.log" 2>&1 || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$results"
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "check-release: $name FAILED (exit $rc); last lines of $name.log:"
    tail -n 40 "$OUT/$name.log"
  else
    tail -n 2 "$OUT/$name.log"
  fi
  return "$rc"
}

export VGPU_REQUIRE_SLURM=1 VGPU_REQUIRE_NATIVE=1
step deps make deps
slurmd -V > "$OUT/slurm-version.txt" 2>&1
step build make all
step tests make test PYTEST_ARGS="${PYTEST[*]}"
step demo make demo
step deb make deb DEB_OUT="$OUT"
for f in build/fakegpu/libcuda.so.1 build/fakegpu/libnvidia-ml.so.1 build/fakegpu/fakegpu-ctl \
         build/native/tests/vgpu_probe; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
exit "$failed"
