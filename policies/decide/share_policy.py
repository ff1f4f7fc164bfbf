"""Work-conserving compute shares.

Every job is guaranteed slices x permille-per-slice of its GPU's compute. Per GPU and cycle:
- an active job keeps at least its guarantee; an idle job's limit is put back to its guarantee
  too (it uses nothing, and the moment it is active again the guarantee is already there);
- the compute that idle jobs (and, with `lend_unallocated`, unallocated slices) leave unused is
  split among the ACTIVE jobs that opted in with --vgpu-share=burst, in proportion to their
  guarantees, each capped at `max_burst_permille` (water-filling, so what one cannot take goes
  to the others);
- when an owner becomes active again, the next cycle sees it active and lowers the burst jobs
  back: its share returns within one control period;
- jobs running on lent (backfilled) slices get `throttle_permille` while any owner of their GPU
  is active;
- memory caps are never touched here (the action type cannot even carry one).
"""

from __future__ import annotations

from slurm_vgpu.policies.decide.actions import SetComputeLimit
from slurm_vgpu.policies.decide.config import ShareConfig
from slurm_vgpu.policies.decide.policy_common import GpuTenancy, NodeTenancy, index_snapshot
from slurm_vgpu.policies.decide.snapshot import JobGpuState, JobState, SharePolicy, Snapshot

FULL_DEVICE_PERMILLE = 1000


def _water_fill(spare: int, receivers: list[tuple[int, int, int]]) -> dict[int, int]:
    """Split `spare` among receivers (key, weight, headroom) in proportion to weight, none
    above its headroom; returns key -> extra. Integer permille; remainders are dropped."""
    extra: dict[int, int] = {}
    active = [r for r in receivers if r[2] > 0 and r[1] > 0]
    while spare > 0 and active:
        total_weight = sum(w for _, w, _ in active)
        saturated = [r for r in active if r[2] * total_weight <= spare * r[1]]
        if not saturated:
            for key, weight, _ in active:
                extra[key] = extra.get(key, 0) + spare * weight // total_weight
            break
        for key, _, headroom in saturated:
            extra[key] = extra.get(key, 0) + headroom
            spare -= headroom
        active = [r for r in active if r not in saturated]
    return extra


def gpu_targets(t: GpuTenancy, cfg: ShareConfig, backfilled: set[int] | frozenset[int],
                throttle_permille: int) -> list[tuple[JobState, JobGpuState, int]]:
    """Compute target (permille) for every job on one GPU."""
    owners_active = any(
        jg.idle_seconds < cfg.idle_after_seconds
        for job, jg in t.jobs if job.job_id not in backfilled
    )
    targets: list[int] = []
    used_by_active = 0
    guaranteed_total = 0
    receivers: list[tuple[int, int, int]] = []
    for i, (job, jg) in enumerate(t.jobs):
        guarantee = jg.compute_guaranteed_permille
        guaranteed_total += guarantee
        throttled = job.job_id in backfilled and owners_active
        target = min(throttle_permille, guarantee) if throttled else guarantee
        targets.append(target)
        if jg.idle_seconds < cfg.idle_after_seconds:
            used_by_active += target
            if cfg.enabled and not throttled and job.share == SharePolicy.BURST:
                headroom = max(0, cfg.max_burst_permille - target)
                receivers.append((i, max(guarantee, 1), headroom))
    capacity = FULL_DEVICE_PERMILLE if cfg.lend_unallocated else min(
        FULL_DEVICE_PERMILLE, guaranteed_total)
    spare = capacity - used_by_active
    if receivers and spare > 0:
        for i, extra in _water_fill(spare, receivers).items():
            targets[i] += extra
    return [(job, jg, targets[i]) for i, (job, jg) in enumerate(t.jobs)]


def _worth_writing(current: int, target: int, cfg: ShareConfig) -> bool:
    if target == current:
        return False
    # Lowering is how an owner gets its share back: always write it.
    return target < current or target - current >= cfg.min_change_permille


def plan_shares(snapshot: Snapshot, cfg: ShareConfig,
                backfilled: set[int] | frozenset[int] = frozenset(),
                throttle_permille: int = 0,
                tenancy: dict[str, NodeTenancy] | None = None) -> list[SetComputeLimit]:
    """SetComputeLimit for every job whose compute target differs from its limits file."""
    if tenancy is None:
        tenancy = index_snapshot(snapshot)
    actions: list[SetComputeLimit] = []
    for node_t in tenancy.values():
        for t in node_t.gpus:
            if not t.jobs:
                continue
            for job, jg, target in gpu_targets(t, cfg, backfilled, throttle_permille):
                if not _worth_writing(jg.compute_limit_permille, target, cfg):
                    continue
                if target > jg.compute_guaranteed_permille:
                    why = "burst: co-tenants idle"
                elif target < jg.compute_guaranteed_permille:
                    why = "backfilled job throttled: an owner of the GPU is active"
                else:
                    why = "back to the guaranteed share"
                actions.append(SetComputeLimit(job.job_id, jg.gpu_uuid, target, why))
    return actions
