"""The backstop's kill of processes that belong to no job step (docs/security.md): the
re-check just before the kill, and the applier's accounting of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from slurm_vgpu.policies.decide.actions import KillProcess
from slurm_vgpu.policies.decide.snapshot import Snapshot
from slurm_vgpu.policies.service.applier import Applier, kill_escaped


def fake_proc(root: Path, pid: int, uid: int, ppid: int, cgroup: str = "0::/\n") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "cgroup").write_text(cgroup)
    (d / "cmdline").write_bytes(b"x\0")


def test_kill_escaped_rechecks_owner_and_step(tmp_path: Path) -> None:
    fake_proc(tmp_path, 100, 0, 1)
    assert kill_escaped(100, tmp_path) == "runs as root"
    assert kill_escaped(101, tmp_path) == "gone already"
    fake_proc(tmp_path, 102, 1000, 1, "4:freezer:/slurm/uid_1000/job_7/step_0\n")
    assert kill_escaped(102, tmp_path) == "belongs to job 7 step 0 now"


def test_kill_escaped_kills_a_real_orphan() -> None:
    # as root: the child runs as nobody (root's processes are never killed)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True,
                             user=65534 if os.geteuid() == 0 else None)
    try:
        # its parent is this test, not a slurmstepd: no job step
        assert kill_escaped(child.pid) == ""
        assert child.wait(10) == -9
    finally:
        if child.poll() is None:
            child.kill()


class NoSlurm:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no Slurm call expected: {name}")


def test_the_applier_counts_only_what_it_killed() -> None:
    killed: list[int] = []

    def kill(pid: int) -> str:
        if pid == 1:
            return "runs as root"
        killed.append(pid)
        return ""

    applier = Applier(NoSlurm(), NoSlurm(), kill=kill)  # type: ignore[arg-type]
    snap = Snapshot(time=0.0, nodes=(), jobs=())
    res = applier.apply(snap, [KillProcess("n1", "GPU-x", 1, "r"),
                               KillProcess("n1", "GPU-x", 5, "r")])
    assert killed == [5]
    assert res.applied["kill_process"] == 1 and not res.failed
    dry = Applier(NoSlurm(), NoSlurm(), dry_run=True, kill=kill)  # type: ignore[arg-type]
    assert dry.apply(snap, [KillProcess("n1", "GPU-x", 6, "r")]).applied["kill_process"] == 0
    assert killed == [5]
