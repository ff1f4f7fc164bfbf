"""Idle-slice backfill: lend slices that their owners leave idle to preemptible jobs.

Slurm knows a node's vgpu only as a count (count-only GRES), which `scontrol update
nodename=X gres=vgpu:N` changes at run time. Lending k slices means raising the count to
configured + k; withdrawing means lowering it again (running jobs are untouched, and Slurm's
own preemption then requeues preemptible jobs when a normal job needs the capacity).

Per GPU, with P = its slices, owners = jobs within P, backfilled = jobs beyond P:
- lendable = the slices of owners idle for `idle_after_seconds`, minus the slices' worth of
  memory those owners still hold (their memory is never taken).
- backfilled jobs = when the GPU holds more slices than it has, the excess is borne by
  preemptible jobs, newest first. (Which jobs use the lent slices is a count to Slurm; we
  decide it the same way every cycle, so a restarted daemon derives the same answer.)
- memory: an owner that is not idle may use its whole cap at any time, an idle one keeps what
  it holds; when that plus what the backfilled jobs hold exceeds the GPU's memory, backfilled
  jobs are requeued, newest first, until it fits. (Their compute is throttled by the share
  policy as soon as an owner is active: throttle first, requeue when memory is needed.)
- a job that is not preemptible which slurmctld starts on lent slices is requeued by the
  SPANK plugin, which leaves <runtime_dir>/lent.refused: for `holdoff_seconds` after its time
  the node lends nothing (the offer is withdrawn), so that demand gets the capacity.
- a job that is not preemptible waiting for vgpu in one of the node's partitions would be the
  first slurmctld starts on lent slices (normal partitions outrank preemptible ones), only to
  be requeued: while one waits (squeue, the same read as the running jobs) the node lends
  nothing.
- counts reset by `scontrol reconfigure` or a slurmctld restart are re-applied because the
  desired count is recomputed every cycle and compared with what sinfo reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slurm_vgpu.policies.decide.actions import RequeueJob, SetNodeVgpuCount
from slurm_vgpu.policies.decide.config import BackfillConfig
from slurm_vgpu.policies.decide.policy_common import (
    GpuTenancy,
    NodeTenancy,
    index_snapshot,
    is_preemptible,
    newest_first,
)
from slurm_vgpu.policies.decide.snapshot import JobState, NodeState, PendingJob, Snapshot


@dataclass(slots=True)
class BackfillPlan:
    actions: list[SetNodeVgpuCount | RequeueJob] = field(default_factory=list)
    # Jobs running on lent slices (the share policy throttles them while owners are active).
    backfilled: set[int] = field(default_factory=set)
    # Per node: slices lent to Slurm this cycle (desired count - configured count).
    offered: dict[str, int] = field(default_factory=dict)
    # Per GPU uuid: the same, GPU by GPU (what the SPANK plugin may place lent jobs on).
    offered_gpus: dict[str, int] = field(default_factory=dict)
    # Per node: slices running on lent capacity.
    backfilled_slices: dict[str, int] = field(default_factory=dict)
    # Per GPU uuid: slices held beyond the GPU's slices by jobs that are NOT preemptible (a
    # normal job started on lent capacity): nothing to requeue, so it is reported.
    overcommitted: dict[str, int] = field(default_factory=dict)
    # Per node: seconds left of the hold-off (no lending: the plugin requeued a job that is
    # not preemptible from lent slices, backfill.holdoff_seconds), when it withheld an offer.
    held_off: dict[str, float] = field(default_factory=dict)
    # Per node: a waiting job that is not preemptible and may run there, when it withheld an
    # offer (it would be started on the lent slices and requeued).
    waiting: dict[str, PendingJob] = field(default_factory=dict)


def _mark_backfilled(t: GpuTenancy, cfg: BackfillConfig, plan: BackfillPlan) -> list[JobState]:
    over = t.allocated_slices - t.gpu.slices
    marked: list[JobState] = []
    if over <= 0:
        return marked
    candidates = sorted(
        ((job, jg.slices) for job, jg in t.jobs if is_preemptible(job, cfg)),
        key=lambda pair: newest_first(pair[0]),
    )
    for job, slices in candidates:
        if over <= 0:
            break
        marked.append(job)
        plan.backfilled.add(job.job_id)
        over -= slices
    if over > 0:
        plan.overcommitted[t.gpu.uuid] = over
    return marked


def _lendable_slices(t: GpuTenancy, cfg: BackfillConfig, backfilled: set[int]) -> int:
    slice_bytes = max(1, t.gpu.slice_bytes)
    lendable = 0
    for job, jg in t.jobs:
        if job.job_id in backfilled or jg.idle_seconds < cfg.idle_after_seconds:
            continue
        held = -(-jg.memory_used_bytes // slice_bytes)  # slices' worth of memory still held
        lendable += max(0, jg.slices - held)
    return lendable


def _requeue_for_memory(t: GpuTenancy, cfg: BackfillConfig, marked: list[JobState],
                        plan: BackfillPlan) -> None:
    if not marked:
        return
    marked_ids = {job.job_id for job in marked}
    demand = 0
    backfill_used: dict[int, int] = {}
    for job, jg in t.jobs:
        if job.job_id in marked_ids:
            backfill_used[job.job_id] = jg.memory_used_bytes
            demand += jg.memory_used_bytes
        elif jg.idle_seconds < cfg.idle_after_seconds:
            demand += max(jg.memory_limit_bytes, jg.memory_used_bytes)
        else:
            demand += jg.memory_used_bytes
    for job in marked:  # already newest first
        if demand <= t.gpu.memory_bytes:
            break
        plan.actions.append(RequeueJob(
            job.job_id,
            f"owners of GPU {t.gpu.uuid} need their memory back "
            f"({demand} bytes wanted, {t.gpu.memory_bytes} on the device)",
        ))
        demand -= backfill_used.get(job.job_id, 0)


def _held_off(node: NodeState, cfg: BackfillConfig, now: float) -> float:
    """Seconds of hold-off left: the SPANK plugin requeued a job that is not preemptible
    because slurmctld started it on this node's lent slices (lent.refused) less than
    `holdoff_seconds` ago. Such demand wants the capacity: lend nothing until it is over."""
    if node.lent_refused_at is None:
        return 0.0
    left = node.lent_refused_at + cfg.holdoff_seconds - now
    # a marker from the future (clock stepped back) holds off at most holdoff_seconds
    return min(left, cfg.holdoff_seconds) if left > 0 else 0.0


def _waiting_for(node: NodeState, pending: tuple[PendingJob, ...], cfg: BackfillConfig
                 ) -> PendingJob | None:
    """A pending vgpu job that is not preemptible and may start on this node (in one of its
    partitions that is not preemptible, or with a QOS that is not). Unknown partitions (sinfo
    did not say) block nothing."""
    if not node.partitions:
        return None
    for p in pending:
        if p.vgpu_per_node > node.vgpu_configured + (cfg.max_offer_slices or node.vgpu_configured):
            continue  # larger than this node can ever offer: it will not start here
        if p.qos and p.qos in cfg.preemptible_qos:
            continue
        if any(part in node.partitions and part not in cfg.preemptible_partitions
               for part in p.partitions):
            return p
    return None


def _plan_node(node: NodeState, tenancy: NodeTenancy, cfg: BackfillConfig, slurm_ok: bool,
               plan: BackfillPlan, now: float, pending: tuple[PendingJob, ...] = ()) -> None:
    lendable = 0
    backfilled_slices = 0
    per_gpu: list[tuple[str, int]] = []
    for t in tenancy.gpus:
        marked = _mark_backfilled(t, cfg, plan)
        if marked:
            marked_ids = {job.job_id for job in marked}
            backfilled_slices += sum(jg.slices for job, jg in t.jobs if job.job_id in marked_ids)
            if slurm_ok:
                _requeue_for_memory(t, cfg, marked, plan)
        gpu_lendable = _lendable_slices(t, cfg, plan.backfilled)
        per_gpu.append((t.gpu.uuid, gpu_lendable))
        lendable += gpu_lendable
    # Jobs Slurm placed here whose GPU placement is not known yet still count against the node.
    allocated = sum(t.allocated_slices for t in tenancy.gpus)
    allocated += sum(job.vgpu_slices for job in tenancy.unplaced)
    unplaced_over = allocated - node.vgpu_configured - backfilled_slices
    if unplaced_over > 0:
        for job in sorted(tenancy.unplaced, key=newest_first):
            if unplaced_over <= 0:
                break
            if is_preemptible(job, cfg):
                plan.backfilled.add(job.job_id)
                backfilled_slices += job.vgpu_slices
                unplaced_over -= job.vgpu_slices
    plan.backfilled_slices[node.name] = backfilled_slices

    if not cfg.enabled:
        lendable = 0
    held_off = _held_off(node, cfg, now)
    if held_off and lendable > 0:
        plan.held_off[node.name] = held_off
        lendable = 0
    waiting = _waiting_for(node, pending, cfg) if lendable > 0 else None
    if waiting is not None:
        plan.waiting[node.name] = waiting
        lendable = 0
    if cfg.max_offer_slices is not None:
        lendable = min(lendable, cfg.max_offer_slices)
    plan.offered[node.name] = lendable
    left = lendable
    for uuid, n in per_gpu:  # the node's offer, spread over its GPUs in inventory order
        take = min(n, left)
        left -= take
        if take:
            plan.offered_gpus[uuid] = take
    desired = node.vgpu_configured + lendable
    if slurm_ok and node.vgpu_current is not None and node.vgpu_current != desired:
        if lendable > 0:
            why = f"lend {lendable} idle slice(s) to preemptible jobs"
        elif node.name in plan.waiting:
            w = plan.waiting[node.name]
            why = (f"job {w.job_id} (partition {','.join(w.partitions) or '?'}, not "
                   f"preemptible) waits for vgpu here: nothing lent while it waits")
        elif node.name in plan.held_off:
            why = (f"a job that is not preemptible was started on lent slices: "
                   f"withdrawing the offer, nothing lent for {plan.held_off[node.name]:.0f}s")
        else:
            why = "no idle slices to lend: back to the configured count"
        plan.actions.append(SetNodeVgpuCount(node.name, desired, why))


def plan_backfill(snapshot: Snapshot, cfg: BackfillConfig,
                  tenancy: dict[str, NodeTenancy] | None = None) -> BackfillPlan:
    """Decide, per node, the vgpu count to offer Slurm, which jobs run on lent slices, and
    which of those must be requeued because owners need their memory."""
    if tenancy is None:
        tenancy = index_snapshot(snapshot)
    plan = BackfillPlan()
    for node in snapshot.nodes:
        if node.gpus:
            _plan_node(node, tenancy[node.name], cfg, snapshot.slurm_ok, plan, snapshot.time,
                       snapshot.pending)
    return plan
