"""The per-job files under <runtime_dir>/jobs/<jobid>/ (docs/contracts.md), from the daemon's
side, over the hook's binding `slurm_vgpu.native` (which owns the layouts):

- `limits` (root-owned, struct vgpu_limits): read for a job's placement and caps; compute
  targets rewritten live under the ABI's seqlock (`update_limits`).
- `state` (owned by the job's user, struct vgpu_state): read for usage. It is user-writable, so
  it can only misinform decisions about its own job (report itself idle or busy); values are
  clamped before use and a malformed file counts as "no usage data".

`JobFiles` is the narrow interface the observer and applier use; unit tests fake it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Protocol

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.native import (
    GpuLimit,
    JobLimits,
    JobUsage,
    LimitsFileError,
    StateFileError,
    process_alive,
    read_limits_file,
    read_usage,
    reclaim_dead,
    update_limits,
)

log = logging.getLogger("slurm_vgpu.daemon")

__all__ = ["GpuLimit", "JobFileError", "JobFiles", "JobLimits", "JobUsage",
           "MemoryCapViolation", "RuntimeDirJobFiles"]


class JobFileError(VgpuError):
    """A per-job file is missing, malformed or not safely owned."""


class MemoryCapViolation(VgpuError):
    """A write would have raised a job's memory cap above its allocation (a policy bug)."""


class JobFiles(Protocol):
    """Per-job files as the daemon needs them."""

    def job_ids(self) -> list[int]: ...

    def read_limits(self, job_id: int) -> JobLimits | None: ...

    def read_usage(self, job_id: int, ngpus: int) -> JobUsage | None: ...

    def set_compute_limit(self, job_id: int, gpu_uuid: str, permille: int) -> None: ...


class RuntimeDirJobFiles:
    """JobFiles over <runtime_dir>/jobs/<jobid>/{limits,state}."""

    def __init__(self, runtime_dir: str | os.PathLike[str], proc_root: Path = Path("/proc"),
                 require_root_owner: bool = True) -> None:
        self.jobs_dir = Path(runtime_dir) / "jobs"
        self.proc_root = proc_root
        self.require_root_owner = require_root_owner

    def _path(self, job_id: int, name: str) -> Path:
        return self.jobs_dir / str(int(job_id)) / name

    def job_ids(self) -> list[int]:
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def _check_limits_file(self, path: Path) -> bool:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            raise JobFileError(f"{path}: not a regular file")
        if self.require_root_owner and (st.st_uid != 0 or st.st_mode & 0o022):
            raise JobFileError(f"{path}: must be owned by root and writable by root only")
        return True

    def read_limits(self, job_id: int) -> JobLimits | None:
        path = self._path(job_id, "limits")
        if not self._check_limits_file(path):
            return None
        try:
            return read_limits_file(path)
        except LimitsFileError as e:
            if not path.exists():
                return None  # the job ended while we looked
            raise JobFileError(str(e)) from e

    def read_usage(self, job_id: int, ngpus: int) -> JobUsage | None:
        """The job's usage (initialized=False while no process of the job has used a GPU
        through the hook), or None when there is no readable state file. Dead
        processes' memory is given back first (only when a recorded pid is gone, so a job
        holding its own mutex cannot stall the daemon every cycle)."""
        path = self._path(job_id, "state")
        try:
            usage = read_usage(path, ngpus)
            if any(not process_alive(p.pid, p.start_time, self.proc_root)
                   for p in usage.processes):
                pids = reclaim_dead(path, self.proc_root)
                if pids:
                    log.info("vgpu: job %d: reclaimed memory of dead pids %s", job_id, pids)
                usage = read_usage(path, ngpus)
        except (StateFileError, OSError) as e:
            log.debug("vgpu: job %d: no usage: %s", job_id, e)
            return None
        return usage

    def set_compute_limit(self, job_id: int, gpu_uuid: str, permille: int) -> None:
        self.write_gpu_limit(job_id, gpu_uuid, compute_permille=permille)

    def write_gpu_limit(self, job_id: int, gpu_uuid: str, *, compute_permille: int | None = None,
                        memory_limit_bytes: int | None = None,
                        memory_ceiling_bytes: int | None = None) -> None:
        """Rewrite one GPU entry live. A memory limit above `memory_ceiling_bytes` (default:
        the current cap) is refused with MemoryCapViolation before anything is written."""
        path = self._path(job_id, "limits")
        limits = self.read_limits(job_id)
        if limits is None:
            raise JobFileError(f"{path}: gone (job ended?)")
        index = next((i for i, g in enumerate(limits.gpus) if g.uuid == gpu_uuid), None)
        if index is None:
            raise JobFileError(f"job {job_id} holds no slices of GPU {gpu_uuid}")
        if memory_limit_bytes is not None:
            ceiling = limits.gpus[index].memory_limit_bytes if memory_ceiling_bytes is None \
                else memory_ceiling_bytes
            if memory_limit_bytes > ceiling:
                raise MemoryCapViolation(
                    f"refusing to raise job {job_id}'s memory cap on {gpu_uuid} to "
                    f"{memory_limit_bytes} bytes, above its allocation of {ceiling}")
        try:
            update_limits(path, index, compute_limit_permille=compute_permille,
                          memory_limit_bytes=memory_limit_bytes)
        except LimitsFileError as e:
            raise JobFileError(str(e)) from e
