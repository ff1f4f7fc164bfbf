"""Real nvcc-built CUDA runtime programs (cudart 13 static, cudart 12) under the hook, on the
simulated GPU: they see the slice, are capped and are throttled through cudart's
cuGetProcAddress path. The programs are the simulated GPU's own (native/fakegpu/tests)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import REQUIRE_NVCC_PROGRAMS, skip_or_fail
from hook_fixtures import GIB, MIB, HookEnv, Job

pytestmark = pytest.mark.native

PROGRAMS = ["test-rt-basic", "test-rt-cudart12"]


def _program(env: HookEnv, name: str) -> Path:
    path = env.build.fake_dir / name
    if not path.exists():
        skip_or_fail(f"{path} is not built (make -C native/fakegpu programs; needs nvcc)",
                     REQUIRE_NVCC_PROGRAMS)
    return path


def _run(env: HookEnv, job: Job, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env.env(job), capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("name", PROGRAMS)
def test_runtime_program_sees_and_is_held_to_the_slice(hook_env: HookEnv, name: str) -> None:
    prog = _program(hook_env, name)
    job = hook_env.job(memory=GIB)
    ok = _run(hook_env, job, [str(prog), "alloc", "512"])
    assert f"alloc_rc=0 free={GIB - 512 * MIB} total={GIB}" in ok.stdout, ok.stdout + ok.stderr
    over = _run(hook_env, job, [str(prog), "alloc", "2048"])
    assert "alloc_rc=2 " in over.stdout  # cudaErrorMemoryAllocation
    assert hook_env.device()["memory_used"] == 0


@pytest.mark.parametrize("name", ["test-rt-basic", "test-rt-broad", "test-rt-cudart12"])
def test_runtime_program_runs_end_to_end_under_the_hook(hook_env: HookEnv, name: str) -> None:
    prog = _program(hook_env, name)
    job = hook_env.job(memory=8 * GIB)
    out = _run(hook_env, job, [str(prog)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert not [line for line in out.stderr.splitlines() if line.startswith("vgpu: ")]


@pytest.mark.slow
def test_runtime_program_is_throttled(hook_env: HookEnv) -> None:
    prog = _program(hook_env, "test-rt-basic")
    job = hook_env.job(compute_permille=300)
    t0 = time.monotonic_ns()
    proc = subprocess.Popen([str(prog), "busy", "2600", "5000"], env=hook_env.env(job),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.1)
    dev = hook_env.ground_truth_window(t0 + 100_000_000, t0 + 2_100_000_000)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    busy = sum(int(p["busy_window_ns"]) for p in dev["processes"])
    assert 100 * busy / 2e9 == pytest.approx(30, abs=5)
