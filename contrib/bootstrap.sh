#!/usr/bin/env bash
# Install what `make`, `make test` and `make demo` need on a fresh Debian machine (12 "bookworm",
# 13 "trixie" or sid), from Debian and PyPI, and nothing that is already there (a second run takes
# well under a second). `make test` and `make demo` run it first; VGPU_NO_BOOTSTRAP=1 skips it.
#
# Debian's Python is "externally managed" (PEP 668) and ships without pip, so the Python side goes
# into a virtual environment of this checkout ($VENV, default .venv), made from Debian's python3
# (python3-venv); the Makefile puts $VENV/bin first on PATH for everything it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PY=${BASE_PYTHON:-python3}
VENV=${VENV:-$PWD/.venv}

[ "${VGPU_NO_BOOTSTRAP:-0}" = 1 ] && exit 0

# Debian: Slurm and its accounting stack (the test cluster and the demo), libslurm-dev (the SPANK
# plugin builds against spank.h/slurm.h), a C toolchain, valgrind (instruction counts), Python
# with venv, and what the generated .deb is built with (dpkg-dev: dpkg-deb, dpkg-architecture).
APT_PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client
              libslurm-dev make gcc libc6-dev valgrind python3 python3-venv python3-dev
              dpkg-dev procps)
# The simulated AMD GPU (native/fakegpu: fake libamdhip64.so.5 and librocm_smi64.so.1, its HIP
# test programs) has HIP 5's ABI: Debian 12 ships HIP 5.2, Debian 13 HIP 5.7, one soname. sid's
# HIP 6 is another ABI (libamdhip64.so.6), not simulated: there its tests skip (tests/conftest.py).
case "$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" in
  bookworm|trixie) APT_PACKAGES+=(hipcc libamdhip64-dev librocm-smi-dev) ;;
esac
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
    echo "bootstrap: install them as root: apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The virtual environment: made once; remade when its Python is gone (a moved or upgraded base).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
  echo "bootstrap: creating the virtual environment $VENV ($("$BASE_PY" --version 2>&1))"
  rm -rf --one-file-system "$VENV"
  "$BASE_PY" -m venv "$VENV"
fi
PY=$VENV/bin/python

# PyPI: the project itself (editable) with its dev extra, unless every requirement is there.
if ! "$PY" - <<'PYEOF'
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
missing = []
for req in wanted:
    name = req.split(";")[0]
    for sep in "<>=!~[ ":
        name = name.split(sep)[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(name)
try:
    import slurm_vgpu
    if not Path(slurm_vgpu.__file__).resolve().is_relative_to(Path("src").resolve()):
        missing.append(f"slurm-vgpu from this checkout (found {slurm_vgpu.__file__})")
except ImportError:
    missing.append("slurm-vgpu")
if missing:
    print("bootstrap: missing Python packages: " + ", ".join(missing))
    sys.exit(1)
PYEOF
then
  echo "bootstrap: pip install -e '.[dev]' into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check -e '.[dev]'
fi

# CUDA headers: the machine's CUDA install, else the nvidia-cuda-runtime wheel of the dev extra.
CUDA=${CUDA:-/usr/local/cuda}
if [ ! -f "$CUDA/include/cuda.h" ]; then
  echo "bootstrap: no $CUDA/include/cuda.h: building against PyPI's nvidia-cuda-runtime headers" \
       "(the CUDA runtime test programs need nvcc and are skipped without it)"
fi
