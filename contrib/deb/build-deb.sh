#!/usr/bin/env bash
# Build the Debian package of slurm-vgpu for the Slurm whose headers are installed here
# (libslurm-dev): `make deb` runs it. The Slurm release is in the version, like pyxis's packages:
#
#   build/deb/slurm-vgpu_0.1.0-1+slurm24.11_amd64.deb
#
# SPANK plugins are built against one Slurm release and load only into that release's srun and
# slurmstepd, so the package depends on that release of slurm-wlm-basic-plugins and on the
# libslurm it links. Contents (nothing is activated on install; README "Installing on a cluster" says how):
#   /usr/lib/slurm-vgpu/vgpu.so            the SPANK plugin
#   /usr/lib/slurm-vgpu/libvgpu.so         the hook (LD_PRELOAD)
#   /usr/lib/slurm-vgpu/vgpu-slurm-read    the cluster controller's job and node reads (libslurm)
#   /usr/lib/slurm-vgpu/python/            the vgpu tool's Python package, and nvidia-ml-py
#                                          (PyPI; Debian main has no NVML binding)
#   /usr/bin/vgpu                          the tool, on Debian's python3
#   /usr/lib/systemd/system/vgpu-*.service the agent, controller and daemon units (not enabled)
#   /usr/share/slurm-vgpu/                 plugstack.conf.d/vgpu.conf to link into
#                                          /etc/slurm/plugstack.conf.d, job_submit.lua (submit
#                                          refusals), hook.conf.example, example configuration
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$REPO/build}
OUT=${DEB_OUT:-$BUILD/deb}
PY=${PYTHON:-python3}

die() { echo "build-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg-dev"
header=/usr/include/slurm/slurm_version.h
[ -f "$header" ] || die "no $header: apt-get install libslurm-dev (the Slurm to build for)"

# SLURM_VERSION_NUMBER 0x180b05 = 24.11.5
number=$(sed -n 's/^#define SLURM_VERSION_NUMBER \(0x[0-9a-fA-F]*\).*/\1/p' "$header")
[ -n "$number" ] || die "cannot read SLURM_VERSION_NUMBER from $header"
major=$((number >> 16)) minor=$(((number >> 8) & 0xff)) micro=$((number & 0xff))
slurm_version=$(printf '%d.%02d.%d' "$major" "$minor" "$micro")
slurm_release=$(printf '%d.%02d' "$major" "$minor")
next_release=$(printf '%d.%02d' "$major" $((minor + 1)))
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("'"$REPO"'/pyproject.toml","rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
libslurm=$(readlink -f "/usr/lib/$multiarch/libslurm.so")
libslurm_pkg=$(dpkg -S "$libslurm" 2>/dev/null | head -n1 | cut -d: -f1)
[ -n "$libslurm_pkg" ] || die "cannot tell which package ships $libslurm"
pkgver="$version-1+slurm$slurm_release"

stage=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-deb.XXXXXX")
trap 'rm -rf --one-file-system "$stage"' EXIT
root=$stage/root
lib=/usr/lib/slurm-vgpu
share=/usr/share/slurm-vgpu

# The C parts, with the installed paths compiled in (the plugin's default hook path).
make -C "$REPO" -s BUILD="$BUILD/deb-build" PREFIX=/usr LIBDIR=$lib HOOK_PATH=$lib/libvgpu.so \
  native spank >/dev/null
make -C "$REPO/native" -s install BUILD="$BUILD/deb-build/native" DESTDIR="$root" PREFIX=/usr \
  LIBDIR=$lib SYSCONFDIR=$share >/dev/null
make -C "$REPO/spank" -s install BUILD="$BUILD/deb-build/spank" DESTDIR="$root" PREFIX=/usr \
  LIBDIR=$lib HOOK_PATH=$lib/libvgpu.so SYSCONFDIR=$share >/dev/null
mv "$root$share/slurm/plugstack.conf.d" "$root$share/plugstack.conf.d"
rmdir "$root$share/slurm"
mv "$root$share/slurm-vgpu/hook.conf.example" "$root$share/hook.conf.example"
rmdir "$root$share/slurm-vgpu"

# The Python package (symlinked sub-packages resolved) and nvidia-ml-py, privately.
install -d "$root$lib/python"
cp -rL "$REPO/src/slurm_vgpu" "$root$lib/python/slurm_vgpu"
find "$root$lib/python" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-compile \
  --target "$root$lib/python" 'nvidia-ml-py>=12.535,<14' >/dev/null \
  || die "cannot fetch nvidia-ml-py from PyPI"
rm -rf "$root$lib/python/"*.dist-info/RECORD
install -d "$root/usr/bin"
cat > "$root/usr/bin/vgpu" <<EOF
#!/usr/bin/python3
# slurm-vgpu command-line tool (Debian package for Slurm $slurm_release)
import sys
sys.path.insert(0, "$lib/python")
from slurm_vgpu.cli import main
sys.exit(main())
EOF
chmod 0755 "$root/usr/bin/vgpu"

install -d "$root/usr/lib/systemd/system" "$root$share/examples" "$root/usr/share/doc/slurm-vgpu"
for unit in "$REPO"/contrib/systemd/*.service; do  # installed, not enabled
  sed 's|/usr/local/bin/vgpu|/usr/bin/vgpu|g' "$unit" > "$root/usr/lib/systemd/system/$(basename "$unit")"
done
install -m 0644 "$REPO/contrib/job_submit/job_submit.lua" "$root$share/job_submit.lua"
cp -r "$REPO"/contrib/config/. "$root$share/examples/"
cp "$REPO/LICENSE" "$root/usr/share/doc/slurm-vgpu/copyright"
cp "$REPO/README.md" "$root/usr/share/doc/slurm-vgpu/README.md"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: slurm-vgpu
Version: $pkgver
Architecture: $arch
Maintainer: slurm-vgpu developers <slurm-vgpu@localhost>
Installed-Size: $size
Depends: $libslurm_pkg, slurm-wlm-basic-plugins (>= $slurm_release~), slurm-wlm-basic-plugins (<< $next_release~), python3 (>= 3.11), python3-click, python3-yaml, python3-prometheus-client, python3-cffi, python3-numpy, libc6
Section: admin
Priority: optional
Homepage: https://github.com/slurm-vgpu/slurm-vgpu
Description: fractional GPUs for Slurm (--gres=vgpu:N), for Slurm $slurm_release
 A SPANK plugin that places vgpu slices on one GPU and writes root-owned per-job
 limits, an LD_PRELOAD hook that holds every process of a job to its memory cap
 and compute share, and the vgpu tool (GRES generation, policy daemon, reports).
 Built against Slurm $slurm_version; it loads only into Slurm $slurm_release.
EOF
install -d "$OUT"
deb="$OUT/slurm-vgpu_${pkgver}_$arch.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
