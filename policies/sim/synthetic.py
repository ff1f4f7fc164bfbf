"""Builders for snapshots: terse helpers for tests and a reproducible synthetic cluster for the
benchmark. Nothing here touches a real system."""

from __future__ import annotations

import random
import zlib

from slurm_vgpu.policies.decide.snapshot import (
    GpuState,
    JobGpuState,
    JobState,
    NodeState,
    SharePolicy,
    Snapshot,
)

GIB = 1 << 30
DEFAULT_SLICES = 10
DEFAULT_SLICE_BYTES = 8 * GIB
DEFAULT_SLICE_PERMILLE = 100


def make_gpu(node: str = "n1", index: int = 0, slices: int = DEFAULT_SLICES,
             slice_bytes: int = DEFAULT_SLICE_BYTES) -> GpuState:
    return GpuState(
        node=node, index=index, uuid=gpu_uuid(node, index), slices=slices,
        slice_bytes=slice_bytes, slice_permille=1000 // slices,
        memory_bytes=slices * slice_bytes,
    )


def gpu_uuid(node: str, index: int) -> str:
    """A stable fake UUID in NVML's format, unique per (node, index)."""
    digest = f"{zlib.crc32(f'{node}/{index}'.encode()):012x}"
    return f"GPU-{index:08x}-0000-0000-0000-{digest}"


def make_node(name: str = "n1", ngpus: int = 2, slices: int = DEFAULT_SLICES,
              slice_bytes: int = DEFAULT_SLICE_BYTES, vgpu_current: int | None = None,
              weight: int | None = 1, state: str = "mixed") -> NodeState:
    gpus = tuple(make_gpu(name, i, slices, slice_bytes) for i in range(ngpus))
    configured = slices * ngpus
    return NodeState(
        name=name, gpus=gpus, vgpu_configured=configured,
        vgpu_current=configured if vgpu_current is None else vgpu_current,
        weight=weight, state=state,
    )


def make_job(job_id: int, gpu: GpuState, slices: int, *, share: SharePolicy =
             SharePolicy.GUARANTEED, idle_seconds: float = 0.0, memory_used_bytes: int = 0,
             compute_limit_permille: int | None = None, partition: str = "normal",
             qos: str = "normal", start_time: float | None = None, uid: int = 1000,
             memory_limit_bytes: int | None = None) -> JobState:
    """A job holding `slices` of `gpu`, with limits as the SPANK plugin would write them."""
    guaranteed = slices * gpu.slice_permille
    jg = JobGpuState(
        gpu_uuid=gpu.uuid, slices=slices,
        memory_limit_bytes=slices * gpu.slice_bytes if memory_limit_bytes is None
        else memory_limit_bytes,
        compute_guaranteed_permille=guaranteed,
        compute_limit_permille=guaranteed if compute_limit_permille is None
        else compute_limit_permille,
        memory_used_bytes=memory_used_bytes,
        idle_seconds=idle_seconds,
    )
    return JobState(
        job_id=job_id, node=gpu.node, uid=uid, partition=partition, qos=qos, share=share,
        start_time=float(job_id) if start_time is None else start_time,
        vgpu_slices=slices, gpus=(jg,),
    )


def synthetic_cluster(nodes: int = 1000, gpus_per_node: int = 8, jobs: int = 20000,
                      seed: int = 7, slices: int = DEFAULT_SLICES) -> Snapshot:
    """A busy cluster: jobs of 1..10 slices packed first-fit onto GPUs, a mix of burst and
    guaranteed jobs, a third of them idle for a while, some preemptible ones on lent slices,
    and node counts/weights as slurmctld would report them. Deterministic for a seed."""
    rng = random.Random(seed)
    node_states: list[NodeState] = []
    job_states: list[JobState] = []
    free: list[list[int]] = []
    all_gpus: list[GpuState] = []
    for n in range(nodes):
        node = make_node(f"node{n:04d}", gpus_per_node, slices, weight=1)
        node_states.append(node)
        all_gpus.extend(node.gpus)
        free.append([slices] * gpus_per_node)
    job_id = 1
    cursor = 0
    attempts = 0
    while len(job_states) < jobs and attempts < jobs * 4:
        attempts += 1
        want = rng.choice((1, 1, 1, 2, 2, 3, 5, 10))
        g = cursor % len(all_gpus)
        cursor += 1
        n, i = divmod(g, gpus_per_node)
        gpu = all_gpus[g]
        backfilled = free[n][i] < want and rng.random() < 0.05
        if free[n][i] < want and not backfilled:
            continue
        free[n][i] -= want
        idle = rng.random() < 0.35
        job_states.append(make_job(
            job_id, gpu, want,
            share=SharePolicy.BURST if rng.random() < 0.5 else SharePolicy.GUARANTEED,
            idle_seconds=rng.uniform(0, 900) if idle else 0.0,
            memory_used_bytes=rng.randrange(0, want * gpu.slice_bytes + 1),
            partition="scavenger" if backfilled or rng.random() < 0.1 else "normal",
            start_time=1_700_000_000.0 + job_id,
        ))
        job_id += 1
    return Snapshot(time=1_700_001_000.0, nodes=tuple(node_states), jobs=tuple(job_states))
