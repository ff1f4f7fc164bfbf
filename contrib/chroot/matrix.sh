#!/usr/bin/env bash
# The Slurm release matrix (`make matrix`): for each release, in a fresh Debian chroot of the
# release that ships it, build, test, run the demo and build the .deb (check-release.sh), then
# install that .deb into another fresh chroot of the release and run a --gres=vgpu:3 job from
# the installed files (contrib/deb/check-installed.sh). Writes build/matrix/<release>/ (logs,
# steps.tsv, the .deb) and build/matrix/compatibility.md, the README's table.
#
#   contrib/chroot/matrix.sh [RELEASE...]        # default: 22.05 24.11 26.05
#
# 22.05 runs in a bare Debian 12 (minbase + make): `make deps` installs everything as on a new
# server, with Debian's python3, and the whole suite runs (the README's two commands, as a new
# user runs them). 24.11 and 26.05 run in images with Slurm preinstalled and run the Slurm-backed
# part of the suite (-m slurm). Exit status: 0 when every cell passed.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CHROOT=$REPO/contrib/chroot/vgpu-chroot
OUT=${VGPU_MATRIX_OUT:-$REPO/build/matrix}
RELEASES=("$@")
[ ${#RELEASES[@]} -gt 0 ] || RELEASES=(22.05 24.11 26.05)
mkdir -p "$OUT"
status=0

cell() {  # steps.tsv -> pass/FAIL/- for one step
  local file=$1 name=$2 rc
  rc=$(awk -F'\t' -v n="$name" '$1 == n {print $2}' "$file" 2>/dev/null)
  case "$rc" in 0) echo pass ;; "") echo "-" ;; *) echo FAIL ;; esac
}

for release in "${RELEASES[@]}"; do
  dir=$OUT/$release
  rm -rf "$dir"
  mkdir -p "$dir"
  suite=$("$CHROOT" release "$release") || exit 2
  t0=$(date +%s)
  if [ "$release" = 22.05 ]; then
    echo "matrix: $release ($suite, bare): make deps, make all, make test, make demo, make deb"
    "$CHROOT" run "$release" --bare --out "$dir" -- contrib/chroot/check-release.sh /out -q \
      -p no:cacheprovider || status=1
  else
    echo "matrix: $release ($suite): make deps, make all, make test (-m slurm), make demo, make deb"
    "$CHROOT" run "$release" --out "$dir" -- contrib/chroot/check-release.sh /out || status=1
  fi
  if ls "$dir"/slurm-vgpu_*.deb >/dev/null 2>&1; then
    echo "matrix: $release: install the .deb into a clean $suite and run a job from it"
    t1=$(date +%s) rc=0
    # the same image as the build (bare for 22.05, Slurm preinstalled for the others), fresh
    flavour=()
    [ "$release" = 22.05 ] && flavour=(--bare)
    "$CHROOT" run "$release" "${flavour[@]}" --out "$dir" -- contrib/deb/check-installed.sh /out \
      > "$dir/installed.log" 2>&1 || rc=$?
    printf 'installed\t%s\t%s\n' "$rc" "$(( $(date +%s) - t1 ))" >> "$dir/steps.tsv"
    tail -n 3 "$dir/installed.log"
    [ "$rc" -eq 0 ] || { status=1; tail -n 40 "$dir/installed.log"; }
  else
    status=1
  fi
  echo "matrix: $release done in $(( $(date +%s) - t0 ))s"
done

{
  echo "| Slurm | Debian | plugin builds | test suite | demo | .deb installs, job capped |"
  echo "|---|---|---|---|---|---|"
  for release in "${RELEASES[@]}"; do
    dir=$OUT/$release
    version=$(awk '{print $2}' "$dir/slurm-version.txt" 2>/dev/null)
    scope="-m slurm"
    [ "$release" = 22.05 ] && scope="all"
    echo "| ${version:-$release} | $("$CHROOT" release "$release") | $(cell "$dir/steps.tsv" build)" \
         "| $(cell "$dir/steps.tsv" tests) ($scope) | $(cell "$dir/steps.tsv" demo)" \
         "| $(cell "$dir/steps.tsv" installed) |"
  done
  echo
  echo "The simulated AMD GPU needs Debian's HIP 5 (bookworm 5.2, trixie 5.7); sid ships HIP 6,"
  echo "not simulated: there the AMD tests skip, and the demo's second node is NVIDIA."
} > "$OUT/compatibility.md"
cat "$OUT/compatibility.md"
exit "$status"
