"""Enforcement backstop: what the hook cannot stop, seen from the device (NVML).

The hook enforces caps inside the job's processes; a process that stripped LD_PRELOAD (or
links the driver statically, or scribbles on its job's state file) escapes it. NVML still sees
every process's device memory and device time, so each poll compares, per GPU and job:

- memory: what its processes hold with the job's cap on that GPU (a job holding memory on a GPU
  it has no slices of has a cap of 0 there). Over cap plus `tolerance_bytes`
  (+ `tolerance_bytes_per_process` per process) -> RecordViolation;
- compute: the device time its processes kept busy over the last period with the share the hook
  would have allowed (the compute limit; for burst jobs at most what the others left idle, as
  the hook computes it) plus `compute_tolerance_permille` -> RecordViolation(kind="compute").

With action `cancel_step` (the default) every offending step is also cancelled. A process on a
sliced GPU that belongs to no job step (escaped with setsid or a double fork, or left after its
job ended) is killed (`kill_unattributed`, default on; never a root process).
"""

from __future__ import annotations

from slurm_vgpu.policies.decide.actions import CancelStep, KillProcess, RecordViolation
from slurm_vgpu.policies.decide.config import BackstopConfig
from slurm_vgpu.policies.decide.snapshot import GpuProcess, JobState, SharePolicy, Snapshot

BackstopAction = RecordViolation | CancelStep | KillProcess

# The hook leaves a burst job this much of the GPU below what the others use (hook_compute.c).
BURST_HEADROOM_PERMILLE = 100


def _cancel(cfg: BackstopConfig, job_id: int, procs: list[GpuProcess], why: str,
            cancelled: set[tuple[int, str]]) -> list[BackstopAction]:
    if cfg.action != "cancel_step":
        return []
    out: list[BackstopAction] = []
    for step in sorted({p.step for p in procs if p.step}):
        if (job_id, step) not in cancelled:
            cancelled.add((job_id, step))
            out.append(CancelStep(job_id, step, why))
    return out


def _allowed_permille(job: JobState | None, uuid: str, others: int) -> int:
    if job is None:
        return 0
    for jg in job.gpus:
        if jg.gpu_uuid == uuid:
            if job.share == SharePolicy.BURST:
                return max(jg.compute_limit_permille, 1000 - others - BURST_HEADROOM_PERMILLE)
            return jg.compute_limit_permille
    return 0


def plan_backstop(snapshot: Snapshot, cfg: BackstopConfig) -> list[BackstopAction]:
    if not cfg.enabled or not snapshot.processes:
        return []
    sliced = {(gpu.node, gpu.uuid) for node in snapshot.nodes for gpu in node.gpus}
    caps: dict[tuple[int, str], int] = {}
    jobs = {job.job_id: job for job in snapshot.jobs}
    for job in snapshot.jobs:
        for jg in job.gpus:
            caps[(job.job_id, jg.gpu_uuid)] = jg.memory_limit_bytes
    groups: dict[tuple[str, str, int | None], list[GpuProcess]] = {}
    gpu_busy: dict[tuple[str, str], int] = {}
    for proc in snapshot.processes:
        if (proc.node, proc.gpu_uuid) in sliced:
            groups.setdefault((proc.node, proc.gpu_uuid, proc.job_id), []).append(proc)
            gpu_busy[(proc.node, proc.gpu_uuid)] = (gpu_busy.get((proc.node, proc.gpu_uuid), 0)
                                                    + (proc.utilization_permille or 0))

    actions: list[BackstopAction] = []
    cancelled: set[tuple[int, str]] = set()
    for (node, uuid, job_id), procs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        used = sum(p.used_memory_bytes for p in procs)
        pids = tuple(sorted(p.pid for p in procs))
        if job_id is None:
            if cfg.report_unattributed and (used > cfg.tolerance_bytes or cfg.kill_unattributed):
                actions.append(RecordViolation(
                    node, uuid, None, used, 0, pids,
                    "device memory held by processes of no Slurm job step on a sliced GPU"))
            if cfg.kill_unattributed:
                actions.extend(KillProcess(node, uuid, pid, "on a sliced GPU, in no job step")
                               for pid in pids)
            continue
        limit = caps.get((job_id, uuid), 0)
        if used > limit + cfg.tolerance_bytes + cfg.tolerance_bytes_per_process * len(procs):
            actions.append(RecordViolation(
                node, uuid, job_id, used, limit, pids,
                f"job {job_id} holds {used} bytes on GPU {uuid}, cap {limit}"
                " (hook bypassed?)"))
            actions.extend(_cancel(cfg, job_id, procs, f"over its memory cap on GPU {uuid}",
                                   cancelled))
            continue
        busy = [p.utilization_permille for p in procs if p.utilization_permille is not None]
        if not cfg.compute or not busy:
            continue
        mine = sum(busy)
        allowed = _allowed_permille(jobs.get(job_id), uuid,
                                    gpu_busy.get((node, uuid), 0) - mine)
        if mine > allowed + cfg.compute_tolerance_permille:
            actions.append(RecordViolation(
                node, uuid, job_id, 0, 0, pids,
                f"job {job_id} kept GPU {uuid} {mine / 10:.1f} % busy, its share is "
                f"{allowed / 10:.1f} % (launch gate bypassed?)", kind="compute"))
            actions.extend(_cancel(cfg, job_id, procs, f"over its compute share on GPU {uuid}",
                                   cancelled))
    return actions
