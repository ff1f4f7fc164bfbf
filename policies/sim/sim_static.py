"""The FGD paper's static placement protocol (Weng et al., USENIX ATC 2023).

Jobs are sampled with replacement from a job list until their GPU request reaches
`inflation` x the cluster's GPU capacity, and placed one at a time on the node list; nothing
ever leaves; a job that fits nowhere fails. The reported figure is the unallocated GPU share
at the moment the arrived GPU requests reach 100 % of capacity.

`slice_milli` models slice granularity: every fractional request is rounded up to a whole
number of slices (1 = exact milli-GPU, 10 = 1 % slices, 100 = 10 % slices, vgpu's default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slurm_vgpu.policies.sim.placement import NEEDS_MIX, POLICIES, ClusterState
from slurm_vgpu.policies.sim.traces import GPU_MILLI, TraceJob, TraceNode


@dataclass
class StaticResult:
    policy: str
    seed: int
    slice_milli: int
    jobs_arrived: int = 0
    jobs_failed: int = 0
    # unallocated GPU % (by what the jobs hold, rounded to slices) at 100 % arrived
    unallocated_pct_at_100: float = float("nan")
    # share of capacity lost to rounding requests up to slices, at 100 % arrived
    rounding_pct_at_100: float = 0.0
    # allocation % at arrived = 0, 1, ..., 130 % of capacity
    allocation_curve: list[float] = field(default_factory=list)
    placements: int = 0


def sample_jobs(jobs: list[TraceJob], capacity_milli: int, inflation: float,
                rng: np.random.Generator) -> list[TraceJob]:
    """Sample with replacement until the GPU request reaches inflation x capacity."""
    target = inflation * capacity_milli
    out: list[TraceJob] = []
    total = 0
    while total < target:
        batch = rng.integers(0, len(jobs), size=1024)
        for i in batch:
            job = jobs[int(i)]
            out.append(job)
            total += job.gpu_request_milli
            if total >= target:
                break
    order = rng.permutation(len(out))
    return [out[int(i)] for i in order]


def round_to_slices(milli: int, slice_milli: int) -> int:
    return min(GPU_MILLI, -(-milli // slice_milli) * slice_milli)


def run_static(nodes: list[TraceNode], jobs: list[TraceJob], policy: str, seed: int,
               slice_milli: int = 1, inflation: float = 1.3,
               tick: Callable[[], None] | None = None) -> StaticResult:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(sorted(POLICIES))}")
    rng = np.random.default_rng(seed)
    state = ClusterState(nodes)
    capacity = state.capacity_milli
    workload = sample_jobs(jobs, capacity, inflation, rng)
    place = POLICIES[policy]
    if policy in NEEDS_MIX:
        state.use_mix(jobs)
    result = StaticResult(policy, seed, slice_milli)
    arrived = 0
    requested_allocated = 0
    next_point = 0
    curve: list[float] = []
    for job in workload:
        arrived += job.gpu_request_milli
        per_gpu = round_to_slices(job.gpu_milli, slice_milli) if job.num_gpu else 0
        ok = place(state, job, per_gpu, rng)
        result.placements += 1
        if ok:
            requested_allocated += job.gpu_request_milli
        else:
            result.jobs_failed += 1
        result.jobs_arrived += 1
        while next_point <= 130 and arrived >= next_point / 100 * capacity:
            alloc = state.allocated_milli / capacity * 100
            curve.append(alloc)
            if next_point == 100:
                result.unallocated_pct_at_100 = 100.0 - alloc
                result.rounding_pct_at_100 = (state.allocated_milli - requested_allocated) \
                    / capacity * 100
            next_point += 1
        if tick is not None:
            tick()
    result.allocation_curve = [round(a, 3) for a in curve]
    return result
