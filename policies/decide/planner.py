"""One control cycle: every policy over one snapshot, in a fixed order. The daemon and the
trace simulator both call `plan_cycle`, so they run the same decisions."""

from __future__ import annotations

from dataclasses import dataclass, field

from slurm_vgpu.policies.decide.actions import Action, RequeueJob
from slurm_vgpu.policies.decide.backfill_policy import plan_backfill
from slurm_vgpu.policies.decide.backstop import plan_backstop
from slurm_vgpu.policies.decide.config import PolicyConfig
from slurm_vgpu.policies.decide.packing_policy import plan_weights
from slurm_vgpu.policies.decide.policy_common import index_snapshot
from slurm_vgpu.policies.decide.share_policy import plan_shares
from slurm_vgpu.policies.decide.snapshot import Snapshot


@dataclass(slots=True)
class CyclePlan:
    actions: list[Action] = field(default_factory=list)
    backfilled: set[int] = field(default_factory=set)
    # node -> slices lent to Slurm / slices running on lent capacity
    offered: dict[str, int] = field(default_factory=dict)
    # gpu uuid -> slices lent on that GPU (the node's offer, GPU by GPU)
    offered_gpus: dict[str, int] = field(default_factory=dict)
    backfilled_slices: dict[str, int] = field(default_factory=dict)
    # gpu uuid -> slices of non-preemptible jobs beyond the GPU's slices
    overcommitted: dict[str, int] = field(default_factory=dict)
    # node -> why it lends nothing although it has idle slices: "holdoff" (the plugin requeued
    # a job that is not preemptible from lent slices) or "waiting_job" (one waits for the node)
    withheld: dict[str, str] = field(default_factory=dict)


def plan_cycle(snapshot: Snapshot, cfg: PolicyConfig) -> CyclePlan:
    """Evaluate backfill, shares, packing and the backstop; return the actions to apply.

    Order matters only for readability of logs: backstop first (safety), then backfill
    (requeues and counts), shares, weights. Each job is requeued at most once."""
    tenancy = index_snapshot(snapshot)
    backfill = plan_backfill(snapshot, cfg.backfill, tenancy)
    plan = CyclePlan(backfilled=backfill.backfilled, offered=backfill.offered,
                     offered_gpus=backfill.offered_gpus,
                     backfilled_slices=backfill.backfilled_slices,
                     overcommitted=backfill.overcommitted,
                     withheld={**dict.fromkeys(backfill.held_off, "holdoff"),
                               **dict.fromkeys(backfill.waiting, "waiting_job")})
    plan.actions.extend(plan_backstop(snapshot, cfg.backstop))
    requeued: set[int] = set()
    for action in backfill.actions:
        if isinstance(action, RequeueJob):
            if action.job_id in requeued:
                continue
            requeued.add(action.job_id)
        plan.actions.append(action)
    plan.actions.extend(
        a for a in plan_shares(snapshot, cfg.share, backfill.backfilled,
                               cfg.backfill.throttle_permille, tenancy)
        if a.job_id not in requeued
    )
    plan.actions.extend(plan_weights(snapshot, cfg.packing, tenancy))
    return plan
