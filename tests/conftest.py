"""Shared pytest setup. Fixture modules live beside this file; each part adds its own line."""

import os
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


def skip_or_fail(reason: str, required: bool) -> None:
    """Skip with a clear reason locally; fail in CI, where nothing may be silently skipped."""
    if required:
        pytest.fail(f"required but unavailable: {reason}")
    pytest.skip(reason)
