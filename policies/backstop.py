"""Enforcement backstop: device memory held beyond a job's cap, seen from NVML.

The hook enforces caps inside the job's processes; a process that stripped LD_PRELOAD (or
links the driver statically) escapes it. NVML still sees every process's device memory, so
each poll compares, per GPU and job, what its processes hold with the job's cap on that GPU
(a job holding memory on a GPU it has no slices of has a cap of 0 there). Over cap plus
`tolerance_bytes` (+ `tolerance_bytes_per_process` per process) -> RecordViolation, and with
action `cancel_step` a CancelStep for every offending step. Memory on a sliced GPU held by
processes of no known job is reported too.
"""

from __future__ import annotations

from slurm_vgpu.policies.actions import CancelStep, RecordViolation
from slurm_vgpu.policies.config import BackstopConfig
from slurm_vgpu.policies.snapshot import GpuProcess, Snapshot


def plan_backstop(snapshot: Snapshot, cfg: BackstopConfig) -> list[RecordViolation | CancelStep]:
    if not cfg.enabled or not snapshot.processes:
        return []
    sliced = {(gpu.node, gpu.uuid) for node in snapshot.nodes for gpu in node.gpus}
    caps: dict[tuple[int, str], int] = {}
    for job in snapshot.jobs:
        for jg in job.gpus:
            caps[(job.job_id, jg.gpu_uuid)] = jg.memory_limit_bytes
    groups: dict[tuple[str, str, int | None], list[GpuProcess]] = {}
    for proc in snapshot.processes:
        if (proc.node, proc.gpu_uuid) in sliced:
            groups.setdefault((proc.node, proc.gpu_uuid, proc.job_id), []).append(proc)

    actions: list[RecordViolation | CancelStep] = []
    cancelled: set[tuple[int, str]] = set()
    for (node, uuid, job_id), procs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        used = sum(p.used_memory_bytes for p in procs)
        pids = tuple(sorted(p.pid for p in procs))
        if job_id is None:
            if cfg.report_unattributed and used > cfg.tolerance_bytes:
                actions.append(RecordViolation(
                    node, uuid, None, used, 0, pids,
                    "device memory held by processes of no Slurm job on a sliced GPU"))
            continue
        limit = caps.get((job_id, uuid), 0)
        if used <= limit + cfg.tolerance_bytes + cfg.tolerance_bytes_per_process * len(procs):
            continue
        actions.append(RecordViolation(
            node, uuid, job_id, used, limit, pids,
            f"job {job_id} holds {used} bytes on GPU {uuid}, cap {limit}"
            " (hook bypassed?)"))
        if cfg.action == "cancel_step":
            for step in sorted({p.step for p in procs if p.step}):
                if (job_id, step) not in cancelled:
                    cancelled.add((job_id, step))
                    actions.append(CancelStep(job_id, step,
                                              f"over its memory cap on GPU {uuid}"))
    return actions
