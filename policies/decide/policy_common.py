"""Small helpers every policy shares: indexing a snapshot by GPU and classifying jobs."""

from __future__ import annotations

from dataclasses import dataclass

from slurm_vgpu.policies.decide.config import BackfillConfig
from slurm_vgpu.policies.decide.snapshot import GpuState, JobGpuState, JobState, Snapshot


@dataclass(slots=True)
class GpuTenancy:
    """One GPU and the jobs placed on it (built once per cycle, shared by the policies)."""

    gpu: GpuState
    jobs: list[tuple[JobState, JobGpuState]]

    @property
    def allocated_slices(self) -> int:
        return sum(jg.slices for _, jg in self.jobs)


@dataclass(slots=True)
class NodeTenancy:
    gpus: list[GpuTenancy]
    # Jobs Slurm placed on the node whose limits file (GPU placement) we have not seen yet.
    unplaced: list[JobState]


def index_snapshot(snapshot: Snapshot) -> dict[str, NodeTenancy]:
    """Group jobs by node and GPU in one pass. Placements naming a GPU the node does not have
    are ignored (the limits file is the plugin's, but we never trust it to invent hardware)."""
    nodes: dict[str, NodeTenancy] = {}
    by_uuid: dict[tuple[str, str], GpuTenancy] = {}
    for node in snapshot.nodes:
        tenancies = [GpuTenancy(gpu, []) for gpu in node.gpus]
        nodes[node.name] = NodeTenancy(tenancies, [])
        for tenancy in tenancies:
            by_uuid[(node.name, tenancy.gpu.uuid)] = tenancy
    for job in snapshot.jobs:
        node_t = nodes.get(job.node)
        if node_t is None:
            continue
        if not job.gpus:
            node_t.unplaced.append(job)
            continue
        for jg in job.gpus:
            gpu_t = by_uuid.get((job.node, jg.gpu_uuid))
            if gpu_t is not None:
                gpu_t.jobs.append((job, jg))
    return nodes


def is_preemptible(job: JobState, cfg: BackfillConfig) -> bool:
    """May this job run on lent slices (it accepts preemption by partition or QOS)?"""
    return job.partition in cfg.preemptible_partitions or job.qos in cfg.preemptible_qos


def newest_first(job: JobState) -> tuple[float, int]:
    """Sort key: the most recently started job first (it loses the least work when requeued)."""
    return (-job.start_time, -job.job_id)
