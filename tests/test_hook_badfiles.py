"""Bad limits or state files: one clear `vgpu:` line, then the admin's on_error choice (deny
by default, or unlimited); never a crash or a hang."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hook_fixtures import GIB, HookEnv, Job

from slurm_vgpu.native import LIMITS_SIZE, JobLimits, encode_limits, read_limits_file

pytestmark = pytest.mark.native

NOBODY = 65534


def _rewrite(job: Job, data: bytes) -> None:
    job.limits.write_bytes(data)
    os.chmod(job.limits, 0o644)


def _limits(job: Job) -> JobLimits:
    return read_limits_file(job.limits)


def missing_limits(job: Job) -> str:
    job.limits.unlink()
    return "cannot open"


def truncated_limits(job: Job) -> str:
    _rewrite(job, job.limits.read_bytes()[: LIMITS_SIZE // 2])
    return "truncated"


def corrupt_limits(job: Job) -> str:
    _rewrite(job, b"\x00garbage" * (LIMITS_SIZE // 8))
    return "bad magic"


def wrong_version_limits(job: Job) -> str:
    data = bytearray(job.limits.read_bytes())
    data[8:12] = (2).to_bytes(4, "little")
    _rewrite(job, bytes(data))
    return "version 2"


def limits_not_root_owned(job: Job) -> str:
    os.chown(job.limits, NOBODY, NOBODY)
    return "must be owned by root"


def limits_group_writable(job: Job) -> str:
    os.chmod(job.limits, 0o664)
    return "not writable by group or others"


def limits_for_another_user(job: Job) -> str:
    lim = _limits(job)
    _rewrite(job, encode_limits(JobLimits(job_id=lim.job_id, uid=12345, gpus=lim.gpus)))
    return "written for uid 12345"


def limits_dir_world_writable(job: Job) -> str:
    os.chmod(job.dir, 0o777)
    return "directory"


def state_wrong_owner(job: Job) -> str:
    os.chown(job.state, NOBODY, NOBODY)
    return "must be owned by uid"


def state_world_writable(job: Job) -> str:
    os.chmod(job.state, 0o666)
    return "mode 0600"


def state_corrupt_size(job: Job) -> str:
    job.state.write_bytes(b"not a state file")
    return "expected 0 or"


def state_wrong_magic(job: Job, size: int = 0) -> str:
    from slurm_vgpu.native import STATE_SIZE

    job.state.write_bytes(b"\xff" * STATE_SIZE)
    return "bad magic or version"


def state_missing(job: Job) -> str:
    job.state.unlink()
    return "cannot open"


BREAKERS: list[Callable[[Job], str]] = [
    missing_limits, truncated_limits, corrupt_limits, wrong_version_limits,
    limits_not_root_owned, limits_group_writable, limits_for_another_user,
    limits_dir_world_writable, state_wrong_owner, state_world_writable, state_corrupt_size,
    state_wrong_magic, state_missing,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_bad_file_denies_device_memory_by_default(
    hook_env: HookEnv, breaker: Callable[[Job], str]
) -> None:
    job = hook_env.job(memory=GIB)
    why = breaker(job)
    run = hook_env.run(job, ["info", "alloc", "1M", "launch", "1"], timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.rc("alloc") == 2
    assert run.get("info")["total"] == "0"
    assert run.rc("launch") == 0  # no memory, but nothing crashes or hangs
    lines = run.vgpu_lines()
    assert len(lines) == 1, run.stderr
    assert why in lines[0] and "on_error=deny" in lines[0]
    assert hook_env.device()["memory_used"] == 0


def _admin_conf(root: Path, text: str) -> Path:
    conf = root / "hook.conf"
    conf.write_text(text)
    os.chmod(conf, 0o644)
    return conf


@pytest.mark.parametrize("breaker", [corrupt_limits, state_wrong_owner],
                         ids=["corrupt_limits", "state_wrong_owner"])
def test_bad_file_runs_unlimited_when_the_admin_says_so(
    hook_env: HookEnv, breaker: Callable[[Job], str]
) -> None:
    conf = _admin_conf(hook_env.root, "# test\non_error = unlimited\n")
    job = hook_env.job(memory=GIB)
    breaker(job)
    run = hook_env.run(job, ["info", "alloc", "4G"], extra={"VGPU_HOOK_CONF": str(conf)})
    assert run.rc("alloc") == 0
    assert run.get("info")["total"] == str(16 * GIB)
    lines = run.vgpu_lines()
    assert len(lines) == 1 and "running WITHOUT limits (on_error=unlimited" in lines[0]


def test_a_user_owned_override_conf_is_ignored(hook_env: HookEnv) -> None:
    conf = _admin_conf(hook_env.root, "on_error=unlimited\n")
    os.chown(conf, NOBODY, NOBODY)
    job = hook_env.job(memory=GIB)
    corrupt_limits(job)
    run = hook_env.run(job, ["alloc", "4G"], extra={"VGPU_HOOK_CONF": str(conf)})
    assert run.rc("alloc") == 2
    assert any("ignoring VGPU_HOOK_CONF" in line for line in run.vgpu_lines())


def test_valid_files_with_an_admin_conf_log_nothing(hook_env: HookEnv) -> None:
    conf = _admin_conf(hook_env.root, "on_error=deny\nalloc_granularity=1048576\n")
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, ["alloc", "1000K", "info"], extra={"VGPU_HOOK_CONF": str(conf)})
    assert run.get("info")["free"] == str(GIB - (1 << 20))  # charged in 1 MiB units
    assert run.vgpu_lines() == []
