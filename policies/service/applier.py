"""Applies a cycle's actions: limits-file writes locally, the rest through the Slurm client.

The apply step is where a policy bug would do harm, so it checks what no policy may do: a
compute target outside 0..1000, or any write that leaves a job's memory cap above what it was
(policies never raise memory caps; the action types cannot even carry one, and every job
whose limits were written is re-read and compared). A violated check raises PolicyBug for that
action only; the daemon logs it, counts it, and carries on with the others.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slurm_vgpu.errors import VgpuError
from slurm_vgpu.policies.decide.actions import (
    Action,
    CancelStep,
    KillProcess,
    RecordViolation,
    RequeueJob,
    SetComputeLimit,
    SetNodeVgpuCount,
    SetNodeWeight,
    action_kind,
)
from slurm_vgpu.policies.decide.snapshot import Snapshot
from slurm_vgpu.policies.service.job_files import JobFileError, JobFiles
from slurm_vgpu.policies.service.proc_attribution import attribute_pid, process_uid
from slurm_vgpu.policies.slurm.slurm_client import (
    SlurmClient,
    SlurmRequestRejected,
    SlurmUnavailable,
)

log = logging.getLogger("slurm_vgpu.daemon")


class PolicyBug(VgpuError):
    """An action violated an invariant the apply step guards (never applied)."""


@dataclass(slots=True)
class ApplyResult:
    applied: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    violations: list[RecordViolation] = field(default_factory=list)
    slurm_error: str = ""


def _memory_caps(snapshot: Snapshot) -> dict[tuple[int, str], int]:
    return {(job.job_id, jg.gpu_uuid): jg.memory_limit_bytes
            for job in snapshot.jobs for jg in job.gpus}


def kill_escaped(pid: int, proc_root: Path = Path("/proc")) -> str:
    """SIGKILL pid if it still belongs to no job step and is not root's (re-checked here: the
    snapshot is up to one period old and the pid may have been reused). Returns "" when
    killed, else why not."""
    uid = process_uid(pid, proc_root)
    if uid is None:
        return "gone already"
    if uid == 0:
        return "runs as root"
    owner = attribute_pid(pid, proc_root)
    if owner is not None:
        return f"belongs to job {owner[0]} step {owner[1]} now"
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as e:
        return str(e)
    return ""


class Applier:
    def __init__(self, slurm: SlurmClient, files: JobFiles, dry_run: bool = False,
                 kill: Callable[[int], str] = kill_escaped) -> None:
        self.slurm = slurm
        self.files = files
        self.dry_run = dry_run
        self.kill = kill

    def _check(self, action: Action, caps: dict[tuple[int, str], int]) -> None:
        if isinstance(action, SetComputeLimit):
            if not 0 <= action.permille <= 1000:
                raise PolicyBug(f"compute target {action.permille} outside 0..1000: {action}")
            if (action.job_id, action.gpu_uuid) not in caps:
                raise PolicyBug(f"target for a job/GPU not in the snapshot: {action}")
        elif isinstance(action, SetNodeVgpuCount) and action.count < 0:
            raise PolicyBug(f"negative vgpu count: {action}")
        elif isinstance(action, SetNodeWeight) and action.weight < 0:
            raise PolicyBug(f"negative weight: {action}")

    def _verify_memory_unchanged(self, job_id: int, caps: dict[tuple[int, str], int]) -> None:
        limits = self.files.read_limits(job_id)
        if limits is None:
            return
        for gl in limits.gpus:
            before = caps.get((job_id, gl.uuid))
            if before is not None and gl.memory_limit_bytes > before:
                raise PolicyBug(
                    f"job {job_id}'s memory cap on {gl.uuid} rose from {before} to "
                    f"{gl.memory_limit_bytes} bytes during the apply step")

    def _apply_one(self, action: Action) -> None:
        if isinstance(action, SetComputeLimit):
            self.files.set_compute_limit(action.job_id, action.gpu_uuid, action.permille)
        elif isinstance(action, SetNodeVgpuCount):
            self.slurm.set_node_vgpu_count(action.node, action.count)
        elif isinstance(action, SetNodeWeight):
            self.slurm.set_node_weight(action.node, action.weight)
        elif isinstance(action, RequeueJob):
            self.slurm.requeue_job(action.job_id)
        elif isinstance(action, CancelStep):
            self.slurm.cancel_step(action.job_id, action.step)

    def _kill(self, action: KillProcess, result: ApplyResult) -> None:
        if self.dry_run:
            log.info("vgpu: dry run: would kill_process: %s", action)
            return
        why = self.kill(action.pid)
        if why:
            log.debug("vgpu: backstop: pid %d not killed: %s", action.pid, why)
            return
        log.warning("vgpu: backstop: killed pid %d on %s GPU %s: %s", action.pid,
                    action.node, action.gpu_uuid, action.reason)
        result.applied["kill_process"] += 1

    def apply(self, snapshot: Snapshot, actions: list[Action]) -> ApplyResult:
        result = ApplyResult()
        caps = _memory_caps(snapshot)
        written: set[int] = set()
        slurm_down = False
        for action in actions:
            kind = action_kind(action)
            if isinstance(action, RecordViolation):
                # Logged and counted by the daemon, once per episode.
                result.violations.append(action)
                result.applied[kind] += 1
                continue
            if isinstance(action, KillProcess):
                self._kill(action, result)
                continue
            try:
                self._check(action, caps)
                if slurm_down and not isinstance(action, SetComputeLimit):
                    result.failed[kind] += 1
                    continue
                if self.dry_run:
                    log.info("vgpu: dry run: would %s: %s", kind, action)
                else:
                    self._apply_one(action)
                    log.info("vgpu: %s: %s", kind, action)
                if isinstance(action, SetComputeLimit):
                    written.add(action.job_id)
                result.applied[kind] += 1
            except SlurmUnavailable as e:
                # One failed Slurm write: skip the remaining Slurm actions this cycle.
                slurm_down = True
                result.slurm_error = str(e)
                result.failed[kind] += 1
            except (JobFileError, OSError, ValueError, PolicyBug, SlurmRequestRejected) as e:
                level = logging.ERROR if isinstance(e, PolicyBug) else logging.WARNING
                log.log(level, "vgpu: %s not applied: %s", kind, e)
                result.failed[kind] += 1
        for job_id in sorted(written):
            try:
                self._verify_memory_unchanged(job_id, caps)
            except PolicyBug as e:
                log.error("vgpu: %s", e)
                result.failed["memory_cap_check"] += 1
            except (JobFileError, OSError):
                pass
        return result
