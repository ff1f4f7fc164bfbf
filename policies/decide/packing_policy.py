"""Fragmentation-aware packing through node weights.

slurmctld gives a job the eligible node with the LOWEST weight, and `scontrol update
nodename=X weight=N` changes a weight at run time. So every node gets

    weight = base_weight + free_gpu_weight x (its sliced GPUs with no slice allocated)

A node whose GPUs are already partly used is preferred for the next small job, and nodes with
whole free GPUs are kept for jobs that need whole GPUs (best fit, applied by Slurm's own
scheduler). Jobs whose GPU placement is not known yet are assumed to occupy free GPUs, which
errs towards packing onto the node they landed on.
"""

from __future__ import annotations

from slurm_vgpu.policies.decide.actions import SetNodeWeight
from slurm_vgpu.policies.decide.config import PackingConfig
from slurm_vgpu.policies.decide.policy_common import NodeTenancy, index_snapshot
from slurm_vgpu.policies.decide.snapshot import Snapshot

UNSCHEDULABLE_STATES = ("down", "drain", "fail", "future", "maint")


def node_weight(tenancy: NodeTenancy, cfg: PackingConfig) -> int:
    """The weight packing wants for one node."""
    free_gpus = sum(1 for t in tenancy.gpus if not t.jobs)
    unplaced = sum(job.vgpu_slices for job in tenancy.unplaced)
    if unplaced and tenancy.gpus:
        per_gpu = max(1, max(t.gpu.slices for t in tenancy.gpus))
        free_gpus = max(0, free_gpus - (-(-unplaced // per_gpu)))
    return cfg.base_weight + cfg.free_gpu_weight * free_gpus


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
            free = (weight - cfg.base_weight) // cfg.free_gpu_weight if cfg.free_gpu_weight else 0
            actions.append(SetNodeWeight(node.name, weight, f"{free} whole GPU(s) free"))
    return actions
