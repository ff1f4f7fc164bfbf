"""Capacity: the fewest GPUs that serve a trace window as well as whole GPUs do, per regime.

"Effective utilization" is bound by the arrival rate; what a center plans with is how much
more of the same work the same GPUs serve. For one job window (the dynamic replay's jobs,
arrivals and durations unchanged) this finds, per regime, the smallest cluster (whole nodes)
on which every job finishes and the mean delay stays at or under the target. A job's delay is
the time it finishes later than it would have alone on an empty cluster: its queue wait plus
what sharing slowed it down by (for whole GPUs the delay is the wait). Counting the slowdown
keeps a regime from buying short waits with jobs that crawl on borrowed slices; `metric="wait"`
counts the queue wait only. The capacity of a regime is the whole-GPU regime's cluster size over
its own: 2.0 means the same GPUs serve the same work with the same delay twice over, the same
statement as "sustains twice the arrival rate" up to the replay's granularity (one node).

The replay's mean delay is not monotone in the cluster's size: one more node can let a job
start earlier that then blocks a larger one, and on the Philly window the curve wanders by
+-20 % over a plateau of several nodes. A bisection then lands wherever its probes happen to
fall (the same regime read 80 or 112 GPUs on one seed). So every size is replayed, from
`max_nodes` down, node by node, until the mean delay exceeds STOP_OVER_TARGET times the target
(smaller clusters, whose replays are the slow ones, are taken to be slower still), and the
curve is read through its least-squares non-increasing fit (pool adjacent violators): the size
found is the smallest whose fitted delay meets the target, which a single lucky or unlucky
size cannot move far. Every replay and the fit are kept, so the result says what it rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slurm_vgpu.policies.sim.sim_dynamic import DynamicConfig, DynamicResult, SimJob, run_dynamic

Runner = Callable[[list[SimJob], int, str, int, DynamicConfig], DynamicResult]


class CapacityError(ValueError):
    """The target cannot be met within the search range."""


METRICS = ("delay", "wait")
# the replays go down in size until the delay exceeds this many times the target
STOP_OVER_TARGET = 2.0


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
    fit: dict[int, float] = field(default_factory=dict)  # GPUs -> the non-increasing fit


def monotone_fit(values: list[float]) -> list[float]:
    """The least-squares non-increasing fit of `values` (ordered by cluster size): pool
    adjacent violators. An infinite value (some job never finished) pools every smaller
    size with it to infinity."""
    blocks: list[list[float]] = []  # [sum, count] per pooled run of sizes
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]


def node_counts(jobs: list[SimJob], cfg: DynamicConfig, max_nodes: int) -> range:
    """The cluster sizes replayed: from the fewest nodes that hold the largest job."""
    least = max(1, -(-max(j.gpus for j in jobs) // cfg.gpus_per_node))
    return range(least, max(least, max_nodes) + 1)


def fewest_gpus_of(mode: str, seed: int, metric: str, target_s: float,
                   results: dict[int, DynamicResult]) -> CapacityResult:
    """The smallest size whose fitted curve meets the target, from replays at every size
    (`results`: GPUs -> the replay there)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    sizes = sorted(results)
    probes = {g: measure(results[g], metric) for g in sizes}
    fit = dict(zip(sizes, monotone_fit([probes[g] for g in sizes]), strict=True))
    meets = [g for g in sizes if fit[g] <= target_s]
    if not meets:
        top = sizes[-1]
        raise CapacityError(
            f"{mode}, seed {seed}: even {top} GPUs give a mean {metric} of "
            f"{probes[top] / 60:.0f} min, over the target of "
            f"{target_s / 60:.0f} min: raise --max-nodes or the target")
    return CapacityResult(mode, seed, metric, target_s, meets[0], results[meets[0]], probes,
                          {g: round(v, 1) for g, v in fit.items()})


def scan_down(jobs: list[SimJob], mode: str, seed: int, cfg: DynamicConfig, target_s: float,
              max_nodes: int, metric: str = "delay",
              run: Runner = run_dynamic) -> dict[int, DynamicResult]:
    """Replays from `max_nodes` down, node by node, to the first size whose mean delay is over
    STOP_OVER_TARGET x the target or to the smallest that holds the largest job (GPUs -> the
    replay)."""
    results: dict[int, DynamicResult] = {}
    for nodes in reversed(node_counts(jobs, cfg, max_nodes)):
        gpus = nodes * cfg.gpus_per_node
        results[gpus] = run(jobs, gpus, mode, seed, cfg)
        if measure(results[gpus], metric) > STOP_OVER_TARGET * target_s:
            break
    return results


def fewest_gpus(jobs: list[SimJob], mode: str, seed: int, cfg: DynamicConfig,
                target_s: float, max_nodes: int, metric: str = "delay",
                run: Runner = run_dynamic) -> CapacityResult:
    """The smallest whole-node cluster, up to `max_nodes`, that meets the target (the CLI runs
    scan_down for several regimes and seeds in parallel processes)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return fewest_gpus_of(mode, seed, metric, target_s,
                          scan_down(jobs, mode, seed, cfg, target_s, max_nodes, metric, run))
