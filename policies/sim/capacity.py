"""Capacity: the fewest GPUs that serve a trace window as well as whole GPUs do, per regime.

"Effective utilization" is bound by the arrival rate; what a center plans with is how much
more of the same work the same GPUs serve. For one job window (the dynamic replay's jobs,
arrivals and durations unchanged) this searches, per regime, the smallest cluster (whole nodes)
on which every job finishes and the mean delay stays at or under the target. A job's delay is
the time it finishes later than it would have alone on an empty cluster: its queue wait plus
what sharing slowed it down by (for whole GPUs the delay is the wait). Counting the slowdown
keeps a regime from buying short waits with jobs that crawl on borrowed slices; `metric="wait"`
counts the queue wait only. The capacity of a regime is the whole-GPU regime's cluster size over
its own: 2.0 means the same GPUs serve the same work with the same delay twice over, the same
statement as "sustains twice the arrival rate" up to the replay's granularity (one node).

The search is a bisection over node counts, so it assumes that the delay does not grow when
nodes are added. A queue simulation can break that by a little (one more node can let a job
start earlier that then blocks a larger one); every evaluated point is kept, so the result
says where the curve was probed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slurm_vgpu.policies.sim.sim_dynamic import DynamicConfig, DynamicResult, SimJob, run_dynamic

Runner = Callable[[list[SimJob], int, str, int, DynamicConfig], DynamicResult]


class CapacityError(ValueError):
    """The target cannot be met within the search range."""


METRICS = ("delay", "wait")


def measure(result: DynamicResult, metric: str) -> float:
    """The figure held to the target; infinite where some job never finished."""
    if result.finished < result.jobs:
        return float("inf")
    return result.mean_delay_s if metric == "delay" else result.mean_wait_s


@dataclass
class CapacityResult:
    mode: str
    seed: int
    metric: str
    target_s: float
    gpus: int  # the fewest GPUs found that meet the target
    at: DynamicResult  # the replay there
    probes: dict[int, float] = field(default_factory=dict)  # GPUs -> the metric, every run


def fewest_gpus(jobs: list[SimJob], mode: str, seed: int, cfg: DynamicConfig,
                target_s: float, max_nodes: int, metric: str = "delay",
                run: Runner = run_dynamic) -> CapacityResult:
    """The smallest whole-node cluster, up to `max_nodes`, that meets the target."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    per_node = cfg.gpus_per_node
    least = max(1, -(-max(j.gpus for j in jobs) // per_node))  # the largest job must fit
    probes: dict[int, float] = {}
    results: dict[int, DynamicResult] = {}

    def value_at(nodes: int) -> float:
        gpus = nodes * per_node
        if gpus not in probes:
            results[gpus] = run(jobs, gpus, mode, seed, cfg)
            probes[gpus] = measure(results[gpus], metric)
        return probes[gpus]

    if value_at(max_nodes) > target_s:
        raise CapacityError(
            f"{mode}, seed {seed}: even {max_nodes * per_node} GPUs give a mean {metric} of "
            f"{probes[max_nodes * per_node] / 60:.0f} min, over the target of "
            f"{target_s / 60:.0f} min: raise --max-nodes or the target")
    lo, hi = least - 1, max_nodes  # hi meets the target; lo is below the range or does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if value_at(mid) <= target_s:
            hi = mid
        else:
            lo = mid
    return CapacityResult(mode, seed, metric, target_s, hi * per_node, results[hi * per_node],
                          dict(sorted(probes.items())))
