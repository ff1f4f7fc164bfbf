"""Fragmentation-aware packing through node weights.

slurmctld gives a job the eligible node with the LOWEST weight, and `scontrol update
nodename=X weight=N` changes a weight at run time. So every node gets

    weight = base_weight + free_gpu_weight x (its sliced GPUs with no slice allocated)
                         + free_slice_weight x (free slices on its partly used GPUs)

A node whose GPUs are already partly used is preferred for the next small job, and nodes with
whole free GPUs are kept for jobs that need whole GPUs (best fit, applied by Slurm's own
scheduler). The second term orders nodes with as many untouched GPUs by how little room their
broken GPUs have left. Without it slurmctld breaks the tie itself, by the fewest free CPUs
(select/cons_tres's best fit), which measurably fragments GPUs more (docs/placement.md: the
default openb list 6.60 % unallocated against 6.12 %). Jobs whose GPU placement is not known
yet are assumed to occupy free GPUs, which errs towards packing onto the node they landed on.
"""

from __future__ import annotations

import numpy as np

from slurm_vgpu.policies.decide.actions import SetNodeWeight
from slurm_vgpu.policies.decide.config import PackingConfig
from slurm_vgpu.policies.decide.policy_common import NodeTenancy, index_snapshot
from slurm_vgpu.policies.decide.snapshot import Snapshot

UNSCHEDULABLE_STATES = ("down", "drain", "fail", "future", "maint")


def node_weight(tenancy: NodeTenancy, cfg: PackingConfig) -> int:
    """The weight packing wants for one node."""
    free_gpus, free_slices = _free(tenancy)
    return cfg.base_weight + cfg.free_gpu_weight * free_gpus + cfg.free_slice_weight * free_slices


def node_weights(gpu_free_milli: np.ndarray, slices: int, cfg: PackingConfig) -> np.ndarray:
    """node_weight for many nodes at once, from free milli-GPU per GPU slot (-1: no such slot;
    GPUs of `slices` slices): the order the placement steering breaks ties by."""
    untouched = (gpu_free_milli == 1000).sum(axis=1)
    partial = np.where((gpu_free_milli >= 0) & (gpu_free_milli < 1000), gpu_free_milli, 0)
    free_slices = (partial * max(1, slices) // 1000).sum(axis=1)
    return np.asarray(cfg.base_weight + cfg.free_gpu_weight * untouched
                      + cfg.free_slice_weight * free_slices)


def _free(tenancy: NodeTenancy) -> tuple[int, int]:
    """(GPUs with no slice allocated, free slices on the partly used ones)."""
    free_gpus = sum(1 for t in tenancy.gpus if not t.jobs)
    free_slices = sum(max(0, t.gpu.slices - t.allocated_slices) for t in tenancy.gpus if t.jobs)
    unplaced = sum(job.vgpu_slices for job in tenancy.unplaced)
    if unplaced and tenancy.gpus:
        per_gpu = max(1, max(t.gpu.slices for t in tenancy.gpus))
        free_gpus = max(0, free_gpus - (-(-unplaced // per_gpu)))
    return free_gpus, free_slices


def plan_weights(snapshot: Snapshot, cfg: PackingConfig,
                 tenancy: dict[str, NodeTenancy] | None = None) -> list[SetNodeWeight]:
    """SetNodeWeight for every schedulable node whose weight differs from the packing one."""
    if not cfg.enabled or not snapshot.slurm_ok:
        return []
    if tenancy is None:
        tenancy = index_snapshot(snapshot)
    actions: list[SetNodeWeight] = []
    for node in snapshot.nodes:
        if not node.gpus or any(s in node.state.lower() for s in UNSCHEDULABLE_STATES):
            continue
        weight = node_weight(tenancy[node.name], cfg)
        if node.weight != weight:
            free_gpus, free_slices = _free(tenancy[node.name])
            actions.append(SetNodeWeight(node.name, weight, f"{free_gpus} whole GPU(s) free, "
                                         f"{free_slices} free slice(s) on used ones"))
    return actions
