"""Shared pytest setup. Fixture modules live beside this file; each part adds its own line."""

import os
import shutil
from pathlib import Path

import pytest

# Fixture modules (tests/ is on sys.path through pytest's rootdir conftest handling).
pytest_plugins: list[str] = ["slurm_cluster", "fakegpu", "hook_fixtures"]

REQUIRE_SLURM = os.environ.get("VGPU_REQUIRE_SLURM") == "1"
REQUIRE_NATIVE = os.environ.get("VGPU_REQUIRE_NATIVE") == "1"
# The CUDA runtime test programs need nvcc (the build skips them without it, as on a fresh
# Debian server): required only where nvcc is installed.
NVCC = Path(os.environ.get("CUDA", "/usr/local/cuda")) / "bin" / "nvcc"
REQUIRE_NVCC_PROGRAMS = REQUIRE_NATIVE and NVCC.exists()


def _debian_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


# The simulated AMD GPU and its hipcc-built programs need Debian's HIP 5 (12 "bookworm": 5.2,
# 13 "trixie": 5.7), which contrib/bootstrap.sh installs there; sid ships HIP 6, another ABI,
# not simulated. Required (a failure in CI) where bootstrap installs it or hipcc is installed.
AMD_SIM_RELEASES = ("bookworm", "trixie")
REQUIRE_AMD = REQUIRE_NATIVE and (_debian_codename() in AMD_SIM_RELEASES
                                  or shutil.which("hipcc") is not None)


def skip_or_fail(reason: str, required: bool) -> None:
    """Skip with a clear reason locally; fail in CI, where nothing may be silently skipped."""
    if required:
        pytest.fail(f"required but unavailable: {reason}")
    pytest.skip(reason)
