"""The step anchor (docs/hook.md): inside a vgpu step the hook takes its limits from the
root-owned anchor of its nearest root `slurmstepd` parent, and a VGPU_LIMITS/VGPU_STATE that
disagrees means deny. Without Slurm: a root process renamed `slurmstepd` (prctl PR_SET_NAME)
stands in for slurmstepd, and the test writes its anchor."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hook_fixtures import GIB, HookEnv, Job, parse_lines

pytestmark = pytest.mark.native

STEP_DIR = Path("/run/slurm-vgpu-steps")  # VGPU_STEP_DIR in native/include/vgpu_abi.h

# waits for "go", then runs argv[1:] as its child (the task) and passes its output on
STEPD = """
import ctypes, subprocess, sys
ctypes.CDLL(None).prctl(15, b"slurmstepd", 0, 0, 0)
sys.stdin.readline()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
"""


def start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[19])


@pytest.fixture
def anchor_dir() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (anchors are root-owned)")
    STEP_DIR.mkdir(mode=0o755, exist_ok=True)
    yield STEP_DIR


def run_in_step(hook_env: HookEnv, job: Job | None, args: list[str],
                anchor: str | None, extra: dict[str, str] | None = None,
                owner: int = 0) -> tuple[list[dict[str, str]], list[str]]:
    """Run the probe under a stand-in slurmstepd whose anchor says `anchor` ({start} is
    replaced by its start time); returns the probe's lines and the hook's `vgpu:` lines."""
    env = hook_env.env(job, extra)
    for key in [k for k, v in (extra or {}).items() if v == "<unset>"]:
        env.pop(key)
    stepd = subprocess.Popen([sys.executable, "-c", STEPD, str(hook_env.build.probe()), *args],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    path = STEP_DIR / str(stepd.pid)
    try:
        if anchor is not None:
            path.write_text(anchor.replace("{start}", str(start_time(stepd.pid))))
            os.chown(path, owner, owner)
            path.chmod(0o644)
        out, err = stepd.communicate("go\n", timeout=90)
    finally:
        path.unlink(missing_ok=True)
        if stepd.poll() is None:
            stepd.kill()
            stepd.wait(10)
    return parse_lines(out), [ln for ln in err.splitlines() if ln.startswith("vgpu: ")]


def anchor_of(job: Job) -> str:
    return f"job=7\nstep=0\nstart={{start}}\nlimits={job.limits}\nstate={job.state}\n"


def rc(lines: list[dict[str, str]], cmd: str, nth: int = 0) -> int:
    return int([ln for ln in lines if ln["cmd"] == cmd][nth]["rc"])


def test_the_steps_own_files_are_enforced(hook_env: HookEnv, anchor_dir: Path) -> None:
    job = hook_env.job(memory=GIB)
    lines, vgpu = run_in_step(hook_env, job, ["alloc", "2G", "alloc", "512M"], anchor_of(job))
    assert (rc(lines, "alloc"), rc(lines, "alloc", 1)) == (2, 0)
    assert vgpu == []


@pytest.mark.parametrize("how", ["unset", "empty", "other", "other_state"])
def test_a_variable_that_disagrees_with_the_anchor_denies(
        hook_env: HookEnv, anchor_dir: Path, how: str) -> None:
    job = hook_env.job("mine", memory=GIB)
    big = hook_env.job("big", memory=8 * GIB)
    extra = {"unset": {"VGPU_LIMITS": "<unset>"}, "empty": {"VGPU_LIMITS": ""},
             "other": {"VGPU_LIMITS": str(big.limits), "VGPU_STATE": str(big.state)},
             "other_state": {"VGPU_STATE": str(big.state)}}[how]
    lines, vgpu = run_in_step(hook_env, job, ["info", "alloc", "2G"], anchor_of(job), extra)
    assert rc(lines, "alloc") != 0
    assert next(ln for ln in lines if ln["cmd"] == "info")["total"] != str(16 * GIB)
    assert len(vgpu) == 1 and "inside job 7 step 0" in vgpu[0] and "will fail" in vgpu[0], vgpu


def test_a_step_holding_no_slices_denies(hook_env: HookEnv, anchor_dir: Path) -> None:
    lines, vgpu = run_in_step(hook_env, None, ["alloc", "512M"],
                              "job=7\nstep=3\nstart={start}\nlimits=-\nstate=-\n")
    assert rc(lines, "alloc") != 0
    assert len(vgpu) == 1 and "holds no GPU slices" in vgpu[0]


def test_an_anchor_not_owned_by_root_denies(hook_env: HookEnv, anchor_dir: Path) -> None:
    job = hook_env.job(memory=GIB)
    lines, vgpu = run_in_step(hook_env, job, ["alloc", "512M"], anchor_of(job), owner=65534)
    assert rc(lines, "alloc") != 0
    assert len(vgpu) == 1 and "step anchor" in vgpu[0]


def test_a_stale_anchor_of_a_reused_pid_is_ignored(hook_env: HookEnv,
                                                   anchor_dir: Path) -> None:
    job = hook_env.job(memory=GIB)
    stale = anchor_of(job).replace("start={start}", "start=1")
    lines, vgpu = run_in_step(hook_env, job, ["alloc", "2G", "alloc", "512M"], stale)
    assert (rc(lines, "alloc"), rc(lines, "alloc", 1)) == (2, 0)  # the variables, as before
    assert vgpu == []


def test_no_slurmstepd_parent_keeps_the_variables(hook_env: HookEnv) -> None:
    run = hook_env.run(None, ["info", "alloc", "2G"])  # not a vgpu job: pass through
    assert run.rc("alloc") == 0 and run.vgpu_lines() == []


def test_vgpu_hook_conf_is_ignored_inside_a_step(hook_env: HookEnv, anchor_dir: Path) -> None:
    conf = hook_env.root / "hook.conf"
    conf.write_text("on_error = unlimited\n")  # root-owned: honoured outside a step
    conf.chmod(0o644)
    job = hook_env.job(memory=GIB)
    job.state.write_bytes(b"garbage")  # the user can break their own state file
    lines, vgpu = run_in_step(hook_env, job, ["alloc", "2G"], anchor_of(job),
                              {"VGPU_HOOK_CONF": str(conf)})
    assert rc(lines, "alloc") != 0
    assert len(vgpu) == 1 and "on_error=deny" in vgpu[0], vgpu
