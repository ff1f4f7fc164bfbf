"""Shared pytest setup. Fixture modules live beside this file; each part adds its own line."""

import os

import pytest

# Fixture modules (tests/ is on sys.path through pytest's rootdir conftest handling).
pytest_plugins: list[str] = ["slurm_cluster", "fakegpu", "hook_fixtures"]

REQUIRE_SLURM = os.environ.get("VGPU_REQUIRE_SLURM") == "1"
REQUIRE_NATIVE = os.environ.get("VGPU_REQUIRE_NATIVE") == "1"


def skip_or_fail(reason: str, required: bool) -> None:
    """Skip with a clear reason locally; fail in CI, where nothing may be silently skipped."""
    if required:
        pytest.fail(f"required but unavailable: {reason}")
    pytest.skip(reason)
