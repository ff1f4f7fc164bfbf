#!/bin/sh
# The frameworks tests/test_frameworks.py runs on the simulated GPU (pytest -m frameworks):
# PyTorch (CUDA 13 wheel) and CuPy in their own virtual environment, build/fw-venv (several
# GB, so not in .venv). Idempotent: an environment that already imports both is kept.
#
#   contrib/frameworks-venv.sh            # -> build/fw-venv (FW_VENV= to put it elsewhere)
#
# Measured on the 2-core development machine from nothing: about 3 minutes, 5.6 GB (torch 2.14.1
# from the machine's local wheel store; cupy-cuda13x and the nvidia-* wheels from PyPI).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${FW_VENV:-$here/build/fw-venv}
python=${PYTHON_FOR_FW:-python3}
TORCH=${TORCH_VERSION:-2.14.1}

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, cupy' 2>/dev/null; then
	echo "frameworks-venv: $venv is ready"
	exit 0
fi
start=$(date +%s)
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH" cupy-cuda13x
echo "frameworks-venv: $venv ready in $(( $(date +%s) - start )) s ($(du -sh "$venv" | cut -f1))"
