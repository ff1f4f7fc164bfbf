"""What the policies see: an immutable snapshot of nodes, GPUs, jobs and GPU processes.

The daemon builds one per control period from Slurm, the per-job files and NVML; the trace
simulator builds them from traces. Policies are pure functions of a Snapshot (plus their
config), so both run the very same policy code. Every type here is a frozen dataclass of plain
values: cheap to build by the thousand and safe to share.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class SharePolicy(enum.IntEnum):
    """`--vgpu-share=`: may the job borrow compute that co-tenants leave idle?
    Values match `enum vgpu_share_policy` of native/include/vgpu_abi.h."""

    GUARANTEED = 0
    BURST = 1


@dataclass(frozen=True, slots=True)
class GpuState:
    """One sliced physical GPU of a node (a `gpu` line of the node inventory) as observed."""

    node: str
    index: int
    uuid: str
    slices: int
    slice_bytes: int
    slice_permille: int
    memory_bytes: int
    # Whole-device readings from NVML; None where NVML is unavailable.
    utilization_permille: int | None = None
    memory_used_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class JobGpuState:
    """A job's slices on one GPU: its limits (from the limits file) and its measured usage."""

    gpu_uuid: str
    slices: int
    memory_limit_bytes: int
    compute_guaranteed_permille: int
    compute_limit_permille: int
    memory_used_bytes: int = 0
    # Share of the device the job achieved over the last control period (0..1000).
    compute_used_permille: int = 0
    # Time since the job last used this GPU's compute; 0.0 while it is active.
    idle_seconds: float = 0.0
    # Cumulative time its launches waited at the hook's gate (throttling).
    throttled_seconds: float = 0.0
    # The hook's high-water mark of the job's device memory on this GPU (0: unknown).
    memory_peak_bytes: int = 0


@dataclass(frozen=True, slots=True)
class JobState:
    """A running job holding vgpu slices on a node.

    `vgpu_slices` is Slurm's count for the node (what slurmctld allocated); `gpus` is the
    placement the SPANK plugin chose (empty until the plugin has written the limits file)."""

    job_id: int
    node: str
    uid: int
    partition: str
    qos: str
    share: SharePolicy
    start_time: float
    vgpu_slices: int
    gpus: tuple[JobGpuState, ...] = ()
    # The job's AdminComment as slurmctld reports it (a vgpu1 summary written earlier, so a
    # restarted daemon continues a running job's accounting); "" when unknown.
    admin_comment: str = ""


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding device memory, seen by NVML, attributed to a job where possible.

    job_id/step are None for processes that belong to no Slurm job step we can prove (the
    daemon attributes by cgroup or by slurmstepd ancestry, never by user-settable variables)."""

    node: str
    gpu_uuid: str
    pid: int
    used_memory_bytes: int
    job_id: int | None = None
    step: str | None = None
    # SM share it kept busy over the last period (NVML), 0..1000; None if unknown.
    utilization_permille: int | None = None


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node: its sliced GPUs and what slurmctld currently believes about it."""

    name: str
    gpus: tuple[GpuState, ...]
    # The node's vgpu count in slurm.conf: the sum of its GPUs' slices.
    vgpu_configured: int
    # slurmctld's current vgpu count (sinfo); None when unknown (Slurm unreachable).
    vgpu_current: int | None = None
    # slurmctld's current scheduling weight; None when unknown.
    weight: int | None = None
    # Slurm node state ("idle", "mixed", "down", ...); "" when unknown.
    state: str = ""
    # When the SPANK plugin last requeued a job that is not preemptible because slurmctld had
    # started it on lent slices (<runtime_dir>/lent.refused; seconds since the epoch); None
    # when it never did or the daemon cannot read that node's runtime directory.
    lent_refused_at: float | None = None
    # Partitions the node is in (sinfo); () when unknown.
    partitions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for vgpu slices (from the same `squeue` read as the running jobs): when
    it is not preemptible and may run on a node, lending that node's idle slices would only
    get it started on lent capacity and requeued."""

    job_id: int
    partitions: tuple[str, ...]  # it may start in any of them
    qos: str
    vgpu_per_node: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one control cycle decides on. `time` is seconds since the epoch."""

    time: float
    nodes: tuple[NodeState, ...]
    jobs: tuple[JobState, ...]
    processes: tuple[GpuProcess, ...] = ()
    # False when this cycle's Slurm poll failed: node/job data are the last known ones and
    # policies must not act on Slurm (no count or weight changes).
    slurm_ok: bool = True
    notes: tuple[str, ...] = field(default=())
    # vgpu jobs waiting to start anywhere in the cluster (not only on this daemon's nodes)
    pending: tuple[PendingJob, ...] = ()
