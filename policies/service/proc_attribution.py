"""Which Slurm job step owns a process? Proved from the kernel's view, never from variables
the user can set: the process's cgroup path (Slurm's cgroup plugins name job_<id>/step_<id>),
else its ancestry up to a root-owned `slurmstepd: [JOB.STEP]` (proctrack/linuxproc, as on the
test cluster). A process that escaped its step (double fork to init) is unattributed."""

from __future__ import annotations

import re
from pathlib import Path

MAX_DEPTH = 64
_CGROUP_STEP = re.compile(r"/job_(\d+)/step_([A-Za-z0-9_]+)(?:/|$)")
_STEPD_TITLE = re.compile(rb"^slurmstepd: \[(\d+)\.([A-Za-z0-9_]+)\]")


def _read(path: Path, limit: int = 65536) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _uid_and_ppid(proc: Path) -> tuple[int, int] | None:
    status = _read(proc / "status")
    if status is None:
        return None
    uid = ppid = None
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])
        elif line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
    if uid is None or ppid is None:
        return None
    return uid, ppid


def process_uid(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """The real uid of a live process, or None when it is gone."""
    info = _uid_and_ppid(proc_root / str(pid))
    return None if info is None else info[0]


def _step_name(step: str) -> str:
    # cgroup names: step_batch, step_extern, step_0; slurmstepd titles print the same words
    return step


def attribute_pid(pid: int, proc_root: Path = Path("/proc")) -> tuple[int, str] | None:
    """(job_id, step) for a process, or None when it cannot be proved."""
    cgroup = _read(proc_root / str(pid) / "cgroup")
    if cgroup:
        m = _CGROUP_STEP.search(cgroup.decode("utf-8", "replace"))
        if m:
            return int(m.group(1)), _step_name(m.group(2))
    current = pid
    for _ in range(MAX_DEPTH):
        proc = proc_root / str(current)
        info = _uid_and_ppid(proc)
        if info is None:
            return None
        uid, ppid = info
        if uid == 0 and current != pid:
            cmdline = _read(proc / "cmdline", 256) or b""
            title = _STEPD_TITLE.match(cmdline)
            if title:
                return int(title.group(1)), title.group(2).decode()
        if ppid <= 1:
            return None
        current = ppid
    return None
